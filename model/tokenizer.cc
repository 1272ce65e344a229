#include "longnet/model/tokenizer.h"

#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "json_util.h"
#include "tokenizer_kinds.h"

namespace longnet::model {

Tokenizer::Tokenizer(const ModelConfig& config, int32_t bos_id, int32_t eos_id, int32_t pad_id)
    : vocab_size_(config.vocab_size),
      bos_id_(bos_id),
      eos_id_(eos_id),
      pad_id_(pad_id),
      add_bos_(config.tokenizer.add_bos),
      add_eos_(config.tokenizer.add_eos) {}

std::vector<int32_t> Tokenizer::encode(std::string_view text, SpecialTokens specials) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 2);
  if (add_bos_) ids.push_back(bos_id_);
  encode_text(text, specials, ids);
  if (add_eos_) ids.push_back(eos_id_);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string text;
  IncrementalDecoder decoder(*this);
  for (const int32_t id : ids)
    decoder.feed(id, text);
  decoder.finish(text);
  return text;
}

IncrementalDecoder Tokenizer::incremental_decoder() const {
  return IncrementalDecoder(*this);
}

void IncrementalDecoder::feed(int32_t id, std::string& out) {
  utf8_.append(tokenizer_->token_bytes(id), out);
}

std::string IncrementalDecoder::feed(int32_t id) {
  std::string out;
  feed(id, out);
  return out;
}

void IncrementalDecoder::finish(std::string& out) {
  utf8_.finish(out);
}

std::string IncrementalDecoder::finish() {
  std::string out;
  finish(out);
  return out;
}

absl::StatusOr<SpecialIds> checked_special_ids(const ModelConfig& config) {
  if (config.vocab_size <= 0 || config.vocab_size > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer: vocab_size ", config.vocab_size, " is outside [1, 2^31 - 1]"));
  }
  const auto check = [&](const char* key, int64_t id) -> absl::StatusOr<int32_t> {
    if (id < 0 || id >= config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokenizer: ", key, " ", id, " is outside the vocabulary [0, ", config.vocab_size, ")"));
    }
    return static_cast<int32_t>(id);
  };
  SpecialIds ids;
  absl::StatusOr<int32_t> id = check("bos_id", config.bos_id);
  if (!id.ok()) return id.status();
  ids.bos = *id;
  id = check("eos_id", config.eos_id);
  if (!id.ok()) return id.status();
  ids.eos = *id;
  id = check("pad_id", config.pad_id);
  if (!id.ok()) return id.status();
  ids.pad = *id;
  return ids;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> load_tokenizer(const ModelConfig& config,
                                                          const std::filesystem::path& model_dir) {
  const std::string& kind = config.tokenizer.type;
  if (kind == kByteKind) return make_byte_tokenizer(config);
  if (kind == kTiktokenKind) return load_tiktoken_tokenizer(config, model_dir);
  return absl::InvalidArgumentError(absl::StrCat("tokenizer: unknown type ", json_util::quote(kind),
                                                 "; supported: \"", kByteKind, "\", \"", kTiktokenKind,
                                                 "\""));
}

}  // namespace longnet::model
