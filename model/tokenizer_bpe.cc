#include "tokenizer_bpe.h"

#include <algorithm>

namespace longnet::model {
namespace {

absl::string_view to_absl(std::string_view s) {
  return {s.data(), s.size()};
}

}  // namespace

int32_t BytePairEncoder::rank_of(std::string_view bytes) const {
  const auto it = vocabulary_.ranks.find(to_absl(bytes));
  return it == vocabulary_.ranks.end() ? -1 : it->second;
}

void BytePairEncoder::push_pair(std::string_view piece, size_t left, size_t mid, size_t end) {
  const int32_t rank = rank_of(piece.substr(left, end - left));
  if (rank < 0) return;
  // A min-heap on (rank, left): the lowest rank first, the leftmost pair among equal ranks.
  heap_.push_back({rank, left, mid, end});
  std::push_heap(heap_.begin(), heap_.end(), [](const Pair& a, const Pair& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  });
}

void BytePairEncoder::encode(std::string_view piece, std::vector<int32_t>& out) {
  if (piece.empty()) return;
  if (piece.size() == 1) {
    out.push_back(vocabulary_.byte_ranks[static_cast<unsigned char>(piece[0])]);
    return;
  }
  // Most pieces are whole tokens.
  if (const int32_t rank = rank_of(piece); rank >= 0) {
    out.push_back(rank);
    return;
  }

  const size_t n = piece.size();
  symbols_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    symbols_[i] = {i + 1, i == 0 ? kNone : i - 1, vocabulary_.byte_ranks[static_cast<unsigned char>(piece[i])], true};
  }
  heap_.clear();
  for (size_t i = 0; i + 1 < n; ++i)
    push_pair(piece, i, i + 1, i + 2);

  const auto later = [](const Pair& a, const Pair& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  };
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    const Pair pair = heap_.back();
    heap_.pop_back();
    // An entry is stale once either side has merged with something else since it was made.
    Symbol& left = symbols_[pair.left];
    if (!left.alive || left.end != pair.mid || symbols_[pair.mid].end != pair.end) continue;

    left.end = pair.end;
    left.rank = pair.rank;
    symbols_[pair.mid].alive = false;
    if (pair.end < n) {
      symbols_[pair.end].prev = pair.left;
      push_pair(piece, pair.left, pair.end, symbols_[pair.end].end);
    }
    if (left.prev != kNone) push_pair(piece, left.prev, pair.left, pair.end);
  }

  for (size_t i = 0; i < n; i = symbols_[i].end)
    out.push_back(symbols_[i].rank);
}

}  // namespace longnet::model
