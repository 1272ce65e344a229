#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/request.h"
#include "longnet/model/config.h"
#include "longnet/v1/encode.pb.h"
#include "longnet/v1/generate.pb.h"

// Checks of longnet.v1 requests, before any work: pure functions from a request (and what the model and
// the server allow) to an engine job, or to an error that starts with the path of the field at fault and
// says why ("parameters.top_p: 1.5 is not in (0, 1]"). Bad input is InvalidArgument, a size over a limit
// is InvalidArgument naming the limit; asking a model for what its type cannot do is FailedPrecondition
// (generation on an encoder-only model) or InvalidArgument on the option (options.score).
namespace longnet::server {

namespace v1 = ::longnet::v1;

// The limits a request is checked against (ServerConfig's, copied so this file needs no config).
struct RequestLimits {
  int64_t max_prompt_tokens = 1048576;
  int64_t max_new_tokens = 4096;
  int64_t max_document_tokens = 2097152;
  int64_t max_batch_documents = 64;
  int64_t max_stop_sequences = 16;
  int64_t max_stop_sequence_bytes = 256;
  int64_t max_top_logprobs = 20;
  int64_t max_message_bytes = 16777216;

  // The longest document text EncodeStream accepts before tokenizing it.
  int64_t max_document_bytes() const { return 16 * max_document_tokens; }
};

// What validation needs to know of the model.
struct ModelTraits {
  model::ModelType type = model::ModelType::kDecoder;
  int64_t vocab_size = 0;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
};

inline constexpr uint32_t kDefaultMaxNewTokens = 64;
inline constexpr size_t kMaxRequestIdLength = 128;

// Text -> token ids with the model's tokenizer (bos/eos as it adds them to prompts).
using TokenizeFn = std::function<std::vector<int32_t>(std::string_view text)>;

// At most 128 printable ASCII characters (empty is fine: the server makes one).
absl::Status validate_request_id(std::string_view request_id);

// "request: N bytes is over max_message_bytes M".
absl::Status check_message_size(size_t bytes, const RequestLimits& limits);

// Every id in [0, vocab_size): "<field>[i]: <id> is not below vocab_size V" / "... is negative".
absl::Status check_token_ids(std::span<const int32_t> ids, int64_t vocab_size, std::string_view field);
inline std::span<const int32_t> as_span(const google::protobuf::RepeatedField<int32_t>& ids) {
  return {ids.data(), static_cast<size_t>(ids.size())};
}

// A GenerateRequest, checked and turned into an engine job.
struct GenerationPlan {
  GenerationJob job;                // request_id and deadline left for the caller; sampling.seed too when
  std::optional<uint64_t> seed;     // the client gave none (then `seed` is empty)
  std::vector<std::string> stop;    // stop strings, matched on the text
  std::vector<int32_t> prompt_ids;  // the input's tokens (the source of encoder-decoder models), for echo
  bool echo = false;
  bool logprobs = false;  // GeneratedToken.logprob wanted
  int32_t top_logprobs = 0;
  int64_t prompt_tokens = 0;  // usage.prompt_tokens
};

// FailedPrecondition for an encoder-only model; InvalidArgument for every bad field (parameters first,
// then the input, which is tokenized only once everything else passed).
absl::StatusOr<GenerationPlan> validate_generate(const v1::GenerateRequest& request, const ModelTraits& model,
                                                 const RequestLimits& limits, const TokenizeFn& tokenize);

// Which rpc the encode options came with: per-token outputs are streamed, so only EncodeStream takes them.
enum class EncodeRpc { kEncode, kEncodeStream, kEncodeBatch };

struct EncodeSettings {
  Pooling pooling = Pooling::kMean;
  bool normalize = false;
  v1::Truncation truncation = v1::TRUNCATION_NONE;
  int64_t max_tokens = 0;         // the limit truncation applies (options.max_tokens or max_document_tokens)
  bool max_tokens_given = false;  // names options.max_tokens in errors instead of max_document_tokens
  bool score = false;
  bool return_token_states = false;
  bool return_token_logprobs = false;
};

absl::StatusOr<EncodeSettings> validate_encode_options(const v1::EncodeOptions& options,
                                                       const ModelTraits& model, const RequestLimits& limits,
                                                       EncodeRpc rpc);

// One document's ids after the checks and truncation, ready for an EncodeJob.
struct PreparedDocument {
  std::vector<int32_t> ids;
  int64_t truncated = 0;  // tokens dropped by truncation
  uint64_t bytes = 0;     // bytes of its text (0 when sent as ids)
  bool from_text = false;
};

// Checks ids (range when `check_ids`, i.e. the client sent them), applies truncation, checks scoring has
// two tokens. `field` names the document in errors ("document", "documents[2]").
absl::StatusOr<PreparedDocument> prepare_document(std::vector<int32_t> ids, bool from_text, uint64_t bytes,
                                                  const EncodeSettings& settings, const ModelTraits& model,
                                                  std::string_view field);

// A Document message: input set and non-empty, then tokenize (text) / check (ids) and prepare_document.
absl::StatusOr<PreparedDocument> prepare_document(const v1::Document& document,
                                                  const EncodeSettings& settings, const ModelTraits& model,
                                                  const TokenizeFn& tokenize, std::string_view field);

// EncodeBatch's own rules: documents non-empty and at most max_batch_documents, ids non-empty and unique.
absl::Status validate_batch_shape(const v1::EncodeBatchRequest& request, const RequestLimits& limits);

// The document of an EncodeStream, message by message: options, document_id and request_id only in the
// first message; chunks all text or all ids; text capped at max_document_bytes and ids at
// max_document_bytes / 4, refused as soon as a chunk goes over.
class DocumentAssembler {
 public:
  explicit DocumentAssembler(const RequestLimits& limits) : limits_(limits) {}

  // `index` counts messages from 0.
  absl::Status add(const v1::EncodeStreamRequest& message, size_t index);

  bool empty() const { return kind_ == Kind::kNone; }
  bool is_text() const { return kind_ == Kind::kText; }
  const std::string& text() const { return text_; }
  std::vector<int32_t>& ids() { return ids_; }
  size_t messages() const { return messages_; }

 private:
  enum class Kind { kNone, kText, kIds };
  RequestLimits limits_;
  Kind kind_ = Kind::kNone;
  std::string text_;
  std::vector<int32_t> ids_;
  size_t messages_ = 0;
};

}  // namespace longnet::server
