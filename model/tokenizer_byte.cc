// The "byte" tokenizer of MODEL_FORMAT.md: one id per byte, shifted by byte_offset.

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tokenizer_kinds.h"

namespace longnet::model {
namespace {

constexpr int32_t kByteCount = 256;

class ByteTokenizer final : public Tokenizer {
 public:
  ByteTokenizer(const ModelConfig& config, const SpecialIds& ids, int32_t byte_offset)
      : Tokenizer(config, ids.bos, ids.eos, ids.pad), byte_offset_(byte_offset) {
    for (int32_t byte = 0; byte < kByteCount; ++byte)
      bytes_[byte] = static_cast<char>(byte);
  }

  std::string_view kind() const override { return kByteKind; }

  // Byte-level by contract: the bytes go through untouched, valid UTF-8 or not, so encode is lossless.
  void encode_text(std::string_view text, SpecialTokens /*specials: this kind has none*/,
                   std::vector<int32_t>& out) const override {
    out.reserve(out.size() + text.size());
    for (const char c : text)
      out.push_back(byte_offset_ + static_cast<unsigned char>(c));
  }

  std::string_view token_bytes(int32_t id) const override {
    const int64_t byte = int64_t{id} - byte_offset_;
    if (byte < 0 || byte >= kByteCount) return {};
    return {&bytes_[byte], 1};
  }

 private:
  int32_t byte_offset_;
  char bytes_[kByteCount];  // token_bytes() views into this
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> make_byte_tokenizer(const ModelConfig& config) {
  absl::StatusOr<SpecialIds> ids = checked_special_ids(config);
  if (!ids.ok()) return ids.status();
  const int64_t offset = config.tokenizer.byte_offset;
  if (offset < 0 || offset + kByteCount > config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer: byte_offset ", offset, " puts the byte ids [",
                                                   offset, ", ", offset + kByteCount,
                                                   ") outside the vocabulary [0, ", config.vocab_size, ")"));
  }
  // A special id among the byte ids would be decoded as a byte and could not be told apart in encode().
  const std::pair<const char*, int32_t> specials[] = {
      {"bos_id", ids->bos}, {"eos_id", ids->eos}, {"pad_id", ids->pad}};
  for (const auto& [key, id] : specials) {
    if (id >= offset && id < offset + kByteCount) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer: ", key, " ", id, " is one of the byte ids [",
                                                     offset, ", ", offset + kByteCount, ")"));
    }
  }
  return std::make_unique<ByteTokenizer>(config, *ids, static_cast<int32_t>(offset));
}

}  // namespace longnet::model
