#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "longnet/model/config.h"
#include "longnet/model/utf8.h"

namespace longnet::model {

// Text <-> token ids for a model. The kinds the engine reads (the "tokenizer" entry of config.json):
//
// "byte" (MODEL_FORMAT.md): {"type": "byte", "byte_offset": 0, "add_bos": true, "add_eos": false}
//   Ids byte_offset .. byte_offset+255 are the bytes 0..255; encode(text) = [bos] + bytes (+ [eos]).
//   Any bytes are encoded as they are (invalid UTF-8 included). bos/eos/pad must lie outside the byte ids.
//
// "tiktoken": byte-level BPE read from a tiktoken rank file, e.g. OpenAI's cl100k_base:
//   {"type": "tiktoken", "file": "cl100k_base.tiktoken", "pattern": "cl100k", "add_bos": true,
//    "add_eos": false, "special_tokens": {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, ...}}
//   file            in the model directory; one line per token, "<base64 of its bytes> <rank>", the rank
//                   being its id. Every single byte must be a token (so any text can be encoded).
//   pattern         the pre-tokenizer splitting text into pieces before BPE; "cl100k" (the default) is
//                   tiktoken's cl100k_base regex. No other pattern is built in.
//   special_tokens  optional: strings that stand for one id each, outside the rank file's ids. They are
//                   recognised in text only when encode() is asked to (SpecialTokens::kRecognise);
//                   otherwise "<|endoftext|>" in a prompt is plain text, so a user cannot forge control
//                   tokens. decode() drops them, like bos/eos/pad.
//   Text that is not valid UTF-8 is first repaired (one U+FFFD per maximal ill-formed subpart), as a
//   JavaScript or Python caller of tiktoken would see it; valid text round-trips exactly.
//   bos/eos/pad must not be ids of ordinary tokens (decode would spell them out as text).
//
// Every id of a tokenizer is below the model's vocab_size. Methods are const and thread-safe.

// Whether encode() turns special-token strings found in the text into their ids.
enum class SpecialTokens { kAsText, kRecognise };

class IncrementalDecoder;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  virtual std::string_view kind() const = 0;  // "byte", "tiktoken"

  // [bos if add_bos] + encode_text(text) + [eos if add_eos].
  std::vector<int32_t> encode(std::string_view text, SpecialTokens specials = SpecialTokens::kAsText) const;
  // Appends the ids of `text` alone (no bos/eos) to `out`.
  virtual void encode_text(std::string_view text, SpecialTokens specials,
                           std::vector<int32_t>& out) const = 0;

  // The text of `ids`: the bytes of their text tokens, as valid UTF-8 (U+FFFD where the bytes are not).
  // Ids that are not text (bos/eos/pad, special tokens, ids of no token) are dropped.
  std::string decode(std::span<const int32_t> ids) const;
  // The bytes a token stands for; empty for ids that are not text. Not necessarily a whole character.
  virtual std::string_view token_bytes(int32_t id) const = 0;

  // A fresh decoder for one stream of generated ids. Must not outlive this tokenizer.
  IncrementalDecoder incremental_decoder() const;

  int64_t vocab_size() const { return vocab_size_; }  // the model's: every id is below it
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t pad_id() const { return pad_id_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }

 protected:
  // The ids are checked by load_tokenizer before a tokenizer is built.
  Tokenizer(const ModelConfig& config, int32_t bos_id, int32_t eos_id, int32_t pad_id);

 private:
  int64_t vocab_size_;
  int32_t bos_id_;
  int32_t eos_id_;
  int32_t pad_id_;
  bool add_bos_;
  bool add_eos_;
};

// Turns one sequence's generated ids into text as they come. A character whose bytes are split across
// tokens (a 4-byte emoji in byte tokens, or a BPE token ending mid-character) is held back until it is
// complete, so every piece of text handed out is valid UTF-8; finish() turns bytes that can never
// complete into U+FFFD. Concatenating every feed() and finish() gives exactly decode(ids). One per
// stream, not thread-safe; cheap to create.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer) : tokenizer_(&tokenizer) {}

  // Appends to `out` the text that `id` completes (possibly nothing).
  void feed(int32_t id, std::string& out);
  std::string feed(int32_t id);
  // At the end of the stream: appends U+FFFD for an incomplete character still held back, then starts
  // afresh.
  void finish(std::string& out);
  std::string finish();
  bool has_pending() const { return utf8_.has_pending(); }

 private:
  const Tokenizer* tokenizer_;
  Utf8Sanitizer utf8_;
};

// The tokenizer that `config.tokenizer` describes, reading its files from `model_dir`. Errors
// (InvalidArgument, NotFound) name what was wrong: an unknown kind with the kinds supported, a missing
// or corrupt file with its path (and line), an id outside the vocabulary with the id and vocab_size.
// The kind-specific keys ("pattern", "special_tokens") come from TokenizerConfig::options_json.
absl::StatusOr<std::unique_ptr<Tokenizer>> load_tokenizer(const ModelConfig& config,
                                                          const std::filesystem::path& model_dir);

}  // namespace longnet::model
