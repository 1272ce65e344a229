// The "tiktoken" tokenizer: byte-level BPE over a tiktoken rank file (e.g. cl100k_base), text split into
// pieces by a pre-tokenizer regex first, special-token strings recognised only on request.

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "json_util.h"
#include "longnet/model/utf8.h"
#include "tokenizer_bpe.h"
#include "tokenizer_kinds.h"
#include "tokenizer_pretokenize.h"
#include "tokenizer_tiktoken_file.h"

namespace longnet::model {
namespace {

class TiktokenTokenizer final : public Tokenizer {
 public:
  TiktokenTokenizer(const ModelConfig& config, const SpecialIds& ids, std::unique_ptr<TiktokenRanks> ranks,
                    std::unique_ptr<Pretokenizer> pretokenizer,
                    std::vector<std::pair<std::string, int32_t>> special_tokens)
      : Tokenizer(config, ids.bos, ids.eos, ids.pad),
        ranks_(std::move(ranks)),
        pretokenizer_(std::move(pretokenizer)),
        special_tokens_(std::move(special_tokens)) {}

  std::string_view kind() const override { return kTiktokenKind; }

  void encode_text(std::string_view text, SpecialTokens specials, std::vector<int32_t>& out) const override {
    // The pre-tokenizer's classes are defined on characters, so bytes that are not UTF-8 are repaired
    // first, exactly as a JavaScript or Python caller's string would have them.
    std::string repaired;
    if (!is_valid_utf8(text)) {
      repaired = sanitize_utf8(text);
      text = repaired;
    }
    BytePairEncoder encoder(ranks_->vocabulary);
    if (specials == SpecialTokens::kAsText || special_tokens_.empty()) {
      encode_ordinary(text, encoder, out);
      return;
    }
    // Leftmost special string first (the longest where several start at one place); each one's next
    // occurrence is remembered, so the text is scanned once per special string.
    std::vector<size_t> next(special_tokens_.size());
    for (size_t k = 0; k < special_tokens_.size(); ++k)
      next[k] = text.find(special_tokens_[k].first);
    size_t position = 0;
    while (true) {
      size_t best = std::string_view::npos;
      size_t best_k = 0;
      for (size_t k = 0; k < special_tokens_.size(); ++k) {
        if (next[k] != std::string_view::npos && next[k] < position) {
          next[k] = text.find(special_tokens_[k].first, position);
        }
        if (next[k] < best || (next[k] == best && best != std::string_view::npos &&
                               special_tokens_[k].first.size() > special_tokens_[best_k].first.size())) {
          best = next[k];
          best_k = k;
        }
      }
      if (best == std::string_view::npos) break;
      encode_ordinary(text.substr(position, best - position), encoder, out);
      out.push_back(special_tokens_[best_k].second);
      position = best + special_tokens_[best_k].first.size();
    }
    encode_ordinary(text.substr(position), encoder, out);
  }

  std::string_view token_bytes(int32_t id) const override {
    if (id < 0 || static_cast<size_t>(id) >= ranks_->by_id.size()) return {};
    return ranks_->token(id);
  }

 private:
  void encode_ordinary(std::string_view text, BytePairEncoder& encoder, std::vector<int32_t>& out) const {
    Pretokenizer::Pieces pieces(*pretokenizer_, text);
    std::string_view piece;
    while (pieces.next(piece))
      encoder.encode(piece, out);
  }

  std::unique_ptr<TiktokenRanks> ranks_;
  std::unique_ptr<Pretokenizer> pretokenizer_;
  std::vector<std::pair<std::string, int32_t>> special_tokens_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> load_tiktoken_tokenizer(const ModelConfig& config,
                                                                   const std::filesystem::path& model_dir) {
  absl::StatusOr<SpecialIds> ids = checked_special_ids(config);
  if (!ids.ok()) return ids.status();
  if (config.tokenizer.file.empty()) {
    return absl::InvalidArgumentError(R"(tokenizer: type "tiktoken" needs "file", the rank file's name)");
  }
  absl::StatusOr<TiktokenSettings> settings =
      read_tiktoken_settings(config.tokenizer.options_json, config.vocab_size);
  if (!settings.ok()) return settings.status();
  absl::StatusOr<std::unique_ptr<Pretokenizer>> pretokenizer = Pretokenizer::create(settings->pattern);
  if (!pretokenizer.ok()) return pretokenizer.status();
  const std::filesystem::path path = model_dir / config.tokenizer.file;
  absl::StatusOr<std::unique_ptr<TiktokenRanks>> ranks = read_tiktoken_ranks(path, config.vocab_size);
  if (!ranks.ok()) return ranks.status();

  // An id that is both an ordinary token and a special one would decode as text, or encode two ways.
  const auto ordinary = [&](int32_t id) { return (*ranks)->by_id[static_cast<size_t>(id)].size != 0; };
  for (const auto& [text, id] : settings->special_tokens) {
    if (ordinary(id)) {
      return absl::InvalidArgumentError(absl::StrCat("config.json: tokenizer.special_tokens.", text, ": id ",
                                                     id, " is an ordinary token of ", path.string()));
    }
  }
  for (const auto& [key, id] :
       {std::pair{"bos_id", ids->bos}, std::pair{"eos_id", ids->eos}, std::pair{"pad_id", ids->pad}}) {
    if (ordinary(id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer: ", key, " ", id, " is the ordinary token ",
                       json_util::quote(sanitize_utf8((*ranks)->token(id))), " of ", path.string(),
                       "; use an id outside the rank file (e.g. a special token's)"));
    }
  }
  return std::make_unique<TiktokenTokenizer>(config, *ids, *std::move(ranks), *std::move(pretokenizer),
                                             std::move(settings->special_tokens));
}

}  // namespace longnet::model
