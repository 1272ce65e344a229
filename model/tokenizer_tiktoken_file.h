#pragma once

// Reading what a "tiktoken" tokenizer is made of: its rank file and its keys of config.json's tokenizer
// entry (internal to longnet_model).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "tokenizer_bpe.h"

namespace longnet::model {

// The tokens of a rank file. Address-stable (held by unique_ptr): vocabulary's keys view into `bytes`.
struct TiktokenRanks {
  std::string bytes;  // every token's bytes, back to back
  struct Span {
    uint32_t offset = 0;
    uint32_t size = 0;  // 0: the id is not a token of the file
  };
  std::vector<Span> by_id;  // indexed by id, vocab_size entries
  BpeVocabulary vocabulary;
  size_t token_count = 0;

  std::string_view token(int32_t id) const {
    const Span span = by_id[static_cast<size_t>(id)];
    return std::string_view(bytes).substr(span.offset, span.size);
  }
};

// Reads "<base64 token bytes> <rank>" lines. InvalidArgument "<path>:<line>: <what>" for a malformed
// line, a rank outside [0, vocab_size), a token or rank given twice; "<path>: ..." when a single byte has
// no token; NotFound when the file is missing.
absl::StatusOr<std::unique_ptr<TiktokenRanks>> read_tiktoken_ranks(const std::filesystem::path& path,
                                                                   int64_t vocab_size);

// The kind-specific keys of the "tokenizer" entry of config.json.
struct TiktokenSettings {
  std::string pattern = "cl100k";
  std::vector<std::pair<std::string, int32_t>> special_tokens;  // sorted by text
};
// Reads them from TokenizerConfig::options_json (the whole entry; empty means no keys). Refuses keys the
// kind does not have, special tokens that are not non-empty valid UTF-8 strings, ids outside
// [0, vocab_size) and an id given to two strings, each with the key and value named.
absl::StatusOr<TiktokenSettings> read_tiktoken_settings(std::string_view options_json, int64_t vocab_size);

}  // namespace longnet::model
