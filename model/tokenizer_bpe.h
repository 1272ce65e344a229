#pragma once

// Byte-pair encoding of one pre-tokenized piece against a tiktoken rank table (internal to longnet_model).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace longnet::model {

// Token bytes -> rank (= id). Keys view bytes owned by the tokenizer.
using RankMap = absl::flat_hash_map<absl::string_view, int32_t>;

struct BpeVocabulary {
  RankMap ranks;
  std::array<int32_t, 256> byte_ranks{};  // the rank of each single byte: all 256 must be tokens
};

// Merges a piece the way tiktoken does: start from single bytes and repeatedly merge the adjacent pair whose
// concatenation has the lowest rank (the leftmost such pair on a tie) until no adjacent pair is a token.
// Pairs wait in a min-heap keyed by (rank, position) with stale entries skipped, so a piece of n bytes
// costs O(n log n): a megabyte run of one character does not go quadratic. Holds scratch buffers, so one
// instance per thread (per encode call).
class BytePairEncoder {
 public:
  // `vocabulary` must outlive the encoder.
  explicit BytePairEncoder(const BpeVocabulary& vocabulary) : vocabulary_(vocabulary) {}

  // Appends the ids of `piece` to `out`.
  void encode(std::string_view piece, std::vector<int32_t>& out);

 private:
  // Symbols are named by the offset of their first byte; 32 bits keep a symbol at 16 bytes and a heap
  // entry at 8, which is what makes long pieces fast (encode() cuts pieces at 4 GiB).
  struct Symbol {
    uint32_t end;       // one past its last byte
    uint32_t prev;      // the symbol before it, or kNone
    int32_t rank;       // its token
    int32_t pair_rank;  // the token it would make with the next symbol; -1 if none or merged away
  };
  static constexpr uint32_t kNone = UINT32_MAX;

  int32_t rank_of(std::string_view bytes) const;
  void encode_long(std::string_view piece, std::vector<int32_t>& out);
  // Sets symbol `left`'s pair rank from the bytes up to `end`, queueing the pair when it is a token.
  void update_pair(std::string_view piece, uint32_t left, uint32_t end);

  const BpeVocabulary& vocabulary_;
  std::vector<Symbol> symbols_;
  // (rank << 32 | left), smallest first: the lowest rank, then the leftmost position. A rank names one
  // byte string, so (rank, left) names one span, and an entry is current iff symbols_[left].pair_rank is
  // still its rank.
  std::vector<uint64_t> heap_;
};

}  // namespace longnet::model
