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
  struct Symbol {
    size_t end;   // one past its last byte; symbols are named by their first byte's offset
    size_t prev;  // the symbol before it, or kNone
    int32_t rank;
    bool alive;  // false once merged into the symbol before it
  };
  struct Pair {
    int32_t rank;  // of the merged bytes
    size_t left;   // the left symbol
    size_t mid;    // the right symbol (= left's end when the entry was made)
    size_t end;    // the right symbol's end when the entry was made
  };
  static constexpr size_t kNone = static_cast<size_t>(-1);

  int32_t rank_of(std::string_view bytes) const;
  void push_pair(std::string_view piece, size_t left, size_t mid, size_t end);

  const BpeVocabulary& vocabulary_;
  std::vector<Symbol> symbols_;
  std::vector<Pair> heap_;
};

}  // namespace longnet::model
