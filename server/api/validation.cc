#include "api/validation.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"

namespace longnet::server {
namespace {

// Debian's Abseil has its own string_view type.
absl::string_view av(std::string_view s) {
  return {s.data(), s.size()};
}

absl::Status invalid(std::string_view field, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(av(field), ": ", av(why)));
}

bool printable_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

model::SamplingParams sampling_from(const v1::GenerationParameters& p, const ModelTraits& model) {
  model::SamplingParams s;
  if (p.has_temperature()) s.temperature = p.temperature();
  if (p.has_top_k()) s.top_k = p.top_k();
  if (p.has_top_p()) s.top_p = p.top_p();
  if (p.has_repetition_penalty()) s.repetition_penalty = p.repetition_penalty();
  if (p.has_seed()) s.seed = p.seed();
  if (!p.ignore_eos() && model.eos_id >= 0) s.stop_ids.push_back(model.eos_id);
  for (int32_t id : p.stop_token_ids()) {
    if (std::find(s.stop_ids.begin(), s.stop_ids.end(), id) == s.stop_ids.end()) s.stop_ids.push_back(id);
  }
  return s;
}

absl::Status check_parameters(const v1::GenerationParameters& p, const ModelTraits& model,
                              const RequestLimits& limits) {
  if (p.has_max_new_tokens() &&
      (p.max_new_tokens() == 0 || static_cast<int64_t>(p.max_new_tokens()) > limits.max_new_tokens)) {
    return invalid("parameters.max_new_tokens", absl::StrCat(p.max_new_tokens(), " is not in [1, ",
                                                             limits.max_new_tokens, "] (max_new_tokens)"));
  }
  // The sampling values by the model's own rules (its messages start with the field's name).
  model::SamplingParams sampling = sampling_from(p, model);
  sampling.stop_ids.clear();  // stop_token_ids are checked below, with their index
  if (absl::Status st = sampling.validate(); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("parameters.", st.message()));
  }
  if (p.stop_size() > limits.max_stop_sequences) {
    return invalid("parameters.stop",
                   absl::StrCat(p.stop_size(), " stop sequences is over max_stop_sequences ",
                                limits.max_stop_sequences));
  }
  for (int i = 0; i < p.stop_size(); ++i) {
    const std::string& stop = p.stop(i);
    const std::string field = absl::StrCat("parameters.stop[", i, "]");
    if (stop.empty()) return invalid(field, "empty");
    if (static_cast<int64_t>(stop.size()) > limits.max_stop_sequence_bytes) {
      return invalid(field, absl::StrCat(stop.size(), " bytes is over max_stop_sequence_bytes ",
                                         limits.max_stop_sequence_bytes));
    }
  }
  if (absl::Status st =
          check_token_ids(as_span(p.stop_token_ids()), model.vocab_size, "parameters.stop_token_ids");
      !st.ok()) {
    return st;
  }
  if (static_cast<int64_t>(p.top_logprobs()) > limits.max_top_logprobs) {
    return invalid("parameters.top_logprobs",
                   absl::StrCat(p.top_logprobs(), " is over max_top_logprobs ", limits.max_top_logprobs));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status validate_request_id(std::string_view request_id) {
  if (request_id.size() > kMaxRequestIdLength) {
    return invalid("request_id",
                   absl::StrCat(request_id.size(), " characters is over the limit of ", kMaxRequestIdLength));
  }
  if (!printable_ascii(request_id)) {
    return invalid("request_id", "holds characters outside printable ASCII (0x20-0x7e)");
  }
  return absl::OkStatus();
}

absl::Status check_message_size(size_t bytes, const RequestLimits& limits) {
  if (static_cast<int64_t>(bytes) > limits.max_message_bytes) {
    return invalid("request",
                   absl::StrCat(bytes, " bytes is over max_message_bytes ", limits.max_message_bytes));
  }
  return absl::OkStatus();
}

absl::Status check_token_ids(std::span<const int32_t> ids, int64_t vocab_size, std::string_view field) {
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id < 0) return invalid(absl::StrCat(av(field), "[", i, "]"), absl::StrCat(id, " is negative"));
    if (id >= vocab_size) {
      return invalid(absl::StrCat(av(field), "[", i, "]"),
                     absl::StrCat(id, " is not below vocab_size ", vocab_size));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<GenerationPlan> validate_generate(const v1::GenerateRequest& request, const ModelTraits& model,
                                                 const RequestLimits& limits, const TokenizeFn& tokenize) {
  if (model.type == model::ModelType::kEncoder) {
    return absl::FailedPreconditionError(
        absl::StrCat("GenerationService: the model is ", av(model::model_type_name(model.type)),
                     " (encoder-only); generation needs longnet_decoder or longnet_encoder_decoder"));
  }
  if (absl::Status st = validate_request_id(request.request_id()); !st.ok()) return st;
  const v1::GenerationParameters& p = request.parameters();
  if (absl::Status st = check_parameters(p, model, limits); !st.ok()) return st;

  std::vector<int32_t> input;
  switch (request.input_case()) {
    case v1::GenerateRequest::kText:
      if (request.text().empty()) return invalid("text", "empty");
      input = tokenize(request.text());
      if (input.empty()) return invalid("text", "the text has no tokens");
      break;
    case v1::GenerateRequest::kIds: {
      if (request.ids().ids().empty()) return invalid("ids", "empty");
      if (absl::Status st = check_token_ids(as_span(request.ids().ids()), model.vocab_size, "ids"); !st.ok())
        return st;
      input.assign(request.ids().ids().begin(), request.ids().ids().end());
      break;
    }
    case v1::GenerateRequest::INPUT_NOT_SET:
      return invalid("input", "set text or ids");
  }
  const std::string_view input_field = request.has_text() ? "text" : "ids";
  if (static_cast<int64_t>(input.size()) > limits.max_prompt_tokens) {
    return invalid(input_field, absl::StrCat("the prompt has ", input.size(),
                                             " tokens; max_prompt_tokens is ", limits.max_prompt_tokens));
  }

  GenerationPlan plan;
  plan.prompt_tokens = static_cast<int64_t>(input.size());
  plan.echo = p.echo();
  plan.logprobs = p.logprobs();
  plan.top_logprobs = static_cast<int32_t>(p.top_logprobs());
  plan.stop.assign(p.stop().begin(), p.stop().end());
  if (p.has_seed()) plan.seed = p.seed();
  GenerationJob& job = plan.job;
  job.max_new_tokens = p.has_max_new_tokens() ? p.max_new_tokens() : kDefaultMaxNewTokens;
  job.sampling = sampling_from(p, model);
  job.eos_id = p.ignore_eos() ? -1 : model.eos_id;
  job.logprobs = plan.logprobs || plan.top_logprobs > 0;
  job.top_logprobs = plan.top_logprobs;
  if (plan.echo) plan.prompt_ids = input;
  if (model.type == model::ModelType::kEncoderDecoder) {
    job.source_ids = std::move(input);
    job.prompt_ids = {model.bos_id};
  } else {
    job.prompt_ids = std::move(input);
  }
  return plan;
}

absl::StatusOr<EncodeSettings> validate_encode_options(const v1::EncodeOptions& options,
                                                       const ModelTraits& model, const RequestLimits& limits,
                                                       EncodeRpc rpc) {
  EncodeSettings s;
  switch (options.pooling()) {
    case v1::POOLING_UNSPECIFIED:
    case v1::POOLING_MEAN:
      s.pooling = Pooling::kMean;
      break;
    case v1::POOLING_FIRST:
      s.pooling = Pooling::kFirst;
      break;
    case v1::POOLING_LAST:
      s.pooling = Pooling::kLast;
      break;
    case v1::POOLING_NONE:
      s.pooling = Pooling::kNone;
      break;
    default:
      return invalid("options.pooling", absl::StrCat(static_cast<int>(options.pooling()),
                                                     " is not a Pooling value (POOLING_MEAN, POOLING_FIRST, "
                                                     "POOLING_LAST, POOLING_NONE)"));
  }
  switch (options.truncation()) {
    case v1::TRUNCATION_UNSPECIFIED:
    case v1::TRUNCATION_NONE:
      s.truncation = v1::TRUNCATION_NONE;
      break;
    case v1::TRUNCATION_LEFT:
    case v1::TRUNCATION_RIGHT:
      s.truncation = options.truncation();
      break;
    default:
      return invalid("options.truncation",
                     absl::StrCat(static_cast<int>(options.truncation()),
                                  " is not a Truncation value (TRUNCATION_NONE, TRUNCATION_LEFT, "
                                  "TRUNCATION_RIGHT)"));
  }
  if (options.max_tokens() > static_cast<uint64_t>(limits.max_document_tokens)) {
    return invalid("options.max_tokens", absl::StrCat(options.max_tokens(), " is over max_document_tokens ",
                                                      limits.max_document_tokens));
  }
  s.max_tokens_given = options.max_tokens() > 0;
  s.max_tokens = s.max_tokens_given ? static_cast<int64_t>(options.max_tokens()) : limits.max_document_tokens;
  s.normalize = options.normalize();
  if (options.normalize() && s.pooling == Pooling::kNone) {
    return invalid("options.normalize", "there is no pooled vector to normalize with POOLING_NONE");
  }
  if (rpc != EncodeRpc::kEncodeStream) {
    if (options.return_token_states()) {
      return invalid("options.return_token_states", "per-token output is streamed; use EncodeStream");
    }
    if (options.return_token_logprobs()) {
      return invalid("options.return_token_logprobs", "per-token output is streamed; use EncodeStream");
    }
  }
  if (options.return_token_logprobs() && !options.score()) {
    return invalid("options.return_token_logprobs", "needs options.score");
  }
  if (options.score() && model.type != model::ModelType::kDecoder) {
    return invalid("options.score", absl::StrCat("scoring needs a decoder-only model (longnet_decoder); this "
                                                 "model is ",
                                                 av(model::model_type_name(model.type))));
  }
  s.score = options.score();
  s.return_token_states = options.return_token_states();
  s.return_token_logprobs = options.return_token_logprobs();
  return s;
}

absl::StatusOr<PreparedDocument> prepare_document(std::vector<int32_t> ids, bool from_text, uint64_t bytes,
                                                  const EncodeSettings& settings, const ModelTraits& model,
                                                  std::string_view field) {
  if (ids.empty()) return invalid(field, "the document has no tokens");
  if (!from_text) {
    if (absl::Status st = check_token_ids(ids, model.vocab_size, absl::StrCat(av(field), ".ids")); !st.ok()) {
      return st;
    }
  }
  PreparedDocument doc;
  doc.from_text = from_text;
  doc.bytes = from_text ? bytes : 0;
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n > settings.max_tokens) {
    const std::string limit = settings.max_tokens_given
                                  ? absl::StrCat("options.max_tokens is ", settings.max_tokens)
                                  : absl::StrCat("max_document_tokens is ", settings.max_tokens);
    switch (settings.truncation) {
      case v1::TRUNCATION_LEFT:
        ids.erase(ids.begin(), ids.begin() + (n - settings.max_tokens));
        break;
      case v1::TRUNCATION_RIGHT:
        ids.resize(static_cast<size_t>(settings.max_tokens));
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat(av(field), " has ", n, " tokens; ", limit,
                         "; set options.truncation to TRUNCATION_LEFT or TRUNCATION_RIGHT to cut it"));
    }
    doc.truncated = n - settings.max_tokens;
  }
  if (settings.score && ids.size() < 2) {
    return invalid(field, absl::StrCat("scoring needs at least 2 tokens; the document has ", ids.size()));
  }
  doc.ids = std::move(ids);
  return doc;
}

absl::StatusOr<PreparedDocument> prepare_document(const v1::Document& document,
                                                  const EncodeSettings& settings, const ModelTraits& model,
                                                  const TokenizeFn& tokenize, std::string_view field) {
  switch (document.input_case()) {
    case v1::Document::kText:
      if (document.text().empty()) return invalid(absl::StrCat(av(field), ".text"), "empty");
      return prepare_document(tokenize(document.text()), true, document.text().size(), settings, model,
                              field);
    case v1::Document::kIds: {
      if (document.ids().ids().empty()) return invalid(absl::StrCat(av(field), ".ids"), "empty");
      std::vector<int32_t> ids(document.ids().ids().begin(), document.ids().ids().end());
      return prepare_document(std::move(ids), false, 0, settings, model, field);
    }
    case v1::Document::INPUT_NOT_SET:
      break;
  }
  return invalid(absl::StrCat(av(field), ".input"), "set text or ids");
}

absl::Status validate_batch_shape(const v1::EncodeBatchRequest& request, const RequestLimits& limits) {
  if (request.documents().empty()) return invalid("documents", "empty");
  if (request.documents_size() > limits.max_batch_documents) {
    return invalid("documents",
                   absl::StrCat(request.documents_size(), " documents is over max_batch_documents ",
                                limits.max_batch_documents));
  }
  std::unordered_map<std::string_view, int> seen;
  for (int i = 0; i < request.documents_size(); ++i) {
    const std::string& id = request.documents(i).id();
    const std::string field = absl::StrCat("documents[", i, "].id");
    if (id.empty()) return invalid(field, "empty (EncodeBatch correlates results by id)");
    auto [it, inserted] = seen.emplace(id, i);
    if (!inserted) {
      return invalid(field, absl::StrCat("\"", id, "\" repeats documents[", it->second, "].id"));
    }
  }
  return absl::OkStatus();
}

absl::Status DocumentAssembler::add(const v1::EncodeStreamRequest& message, size_t index) {
  ++messages_;
  if (index > 0) {
    if (message.has_options()) {
      return invalid("options",
                     absl::StrCat("only the first message may carry options (message ", index, ")"));
    }
    if (!message.document_id().empty()) {
      return invalid("document_id",
                     absl::StrCat("only the first message may carry document_id (message ", index, ")"));
    }
    if (!message.request_id().empty()) {
      return invalid("request_id",
                     absl::StrCat("only the first message may carry request_id (message ", index, ")"));
    }
  }
  switch (message.chunk_case()) {
    case v1::EncodeStreamRequest::kText: {
      if (kind_ == Kind::kIds) {
        return invalid("text", absl::StrCat("message ", index,
                                            " carries text but the document started as ids; a document is "
                                            "all text or all ids"));
      }
      kind_ = Kind::kText;
      const int64_t limit = limits_.max_document_bytes();
      if (static_cast<int64_t>(text_.size() + message.text().size()) > limit) {
        return invalid("text", absl::StrCat("the document is over max_document_bytes ", limit,
                                            " (16 x max_document_tokens) at message ", index));
      }
      text_.append(message.text());
      break;
    }
    case v1::EncodeStreamRequest::kIds: {
      if (kind_ == Kind::kText) {
        return invalid("ids", absl::StrCat("message ", index,
                                           " carries ids but the document started as text; a document is "
                                           "all text or all ids"));
      }
      kind_ = Kind::kIds;
      const int64_t limit = limits_.max_document_bytes() / 4;
      if (static_cast<int64_t>(ids_.size()) + message.ids().ids_size() > limit) {
        return invalid("ids", absl::StrCat("the document is over ", limit,
                                           " ids (max_document_bytes / 4) at message ", index));
      }
      ids_.insert(ids_.end(), message.ids().ids().begin(), message.ids().ids().end());
      break;
    }
    case v1::EncodeStreamRequest::CHUNK_NOT_SET:
      break;
  }
  return absl::OkStatus();
}

}  // namespace longnet::server
