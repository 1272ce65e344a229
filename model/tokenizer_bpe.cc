#include "tokenizer_bpe.h"

#include <algorithm>
#include <functional>

namespace longnet::model {
namespace {

constexpr size_t kMaxPiece = UINT32_MAX - 1;  // symbol offsets and kNone must fit 32 bits

uint64_t heap_key(int32_t rank, uint32_t left) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(rank)) << 32) | left;
}

}  // namespace

int32_t BytePairEncoder::rank_of(std::string_view bytes) const {
  const auto it = vocabulary_.ranks.find(absl::string_view(bytes.data(), bytes.size()));
  return it == vocabulary_.ranks.end() ? -1 : it->second;
}

void BytePairEncoder::encode(std::string_view piece, std::vector<int32_t>& out) {
  if (piece.size() == 1) {
    out.push_back(vocabulary_.byte_ranks[static_cast<unsigned char>(piece[0])]);
    return;
  }
  // Most pieces are whole tokens.
  if (const int32_t rank = rank_of(piece); rank >= 0) {
    out.push_back(rank);
    return;
  }
  // Beyond 4 GiB a piece is cut (tiktoken would not cut it; no real text has such a piece).
  while (piece.size() > kMaxPiece) {
    encode_long(piece.substr(0, kMaxPiece), out);
    piece.remove_prefix(kMaxPiece);
  }
  if (!piece.empty()) encode_long(piece, out);
}

void BytePairEncoder::update_pair(std::string_view piece, uint32_t left, uint32_t end) {
  const int32_t rank = end <= piece.size() ? rank_of(piece.substr(left, end - left)) : -1;
  symbols_[left].pair_rank = rank;
  if (rank >= 0) {
    heap_.push_back(heap_key(rank, left));
    std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
  }
}

void BytePairEncoder::encode_long(std::string_view piece, std::vector<int32_t>& out) {
  const auto n = static_cast<uint32_t>(piece.size());
  symbols_.resize(n);
  heap_.clear();
  for (uint32_t i = 0; i < n; ++i) {
    const int32_t pair_rank = i + 1 < n ? rank_of(piece.substr(i, 2)) : -1;
    symbols_[i] = {i + 1, i == 0 ? kNone : i - 1,
                   vocabulary_.byte_ranks[static_cast<unsigned char>(piece[i])], pair_rank};
    if (pair_rank >= 0) heap_.push_back(heap_key(pair_rank, i));
  }
  std::make_heap(heap_.begin(), heap_.end(), std::greater<>());

  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
    const uint64_t key = heap_.back();
    heap_.pop_back();
    const auto rank = static_cast<int32_t>(key >> 32);
    const auto left = static_cast<uint32_t>(key);
    if (symbols_[left].pair_rank != rank) continue;  // stale: a side merged with something else since

    // Merge `left` with the symbol after it.
    const uint32_t right = symbols_[left].end;
    const uint32_t end = symbols_[right].end;
    symbols_[right].pair_rank = -1;
    symbols_[left].end = end;
    symbols_[left].rank = rank;
    if (end < n) {
      symbols_[end].prev = left;
      update_pair(piece, left, symbols_[end].end);
    } else {
      symbols_[left].pair_rank = -1;
    }
    if (const uint32_t prev = symbols_[left].prev; prev != kNone) update_pair(piece, prev, end);
  }

  for (uint32_t i = 0; i < n; i = symbols_[i].end)
    out.push_back(symbols_[i].rank);
}

}  // namespace longnet::model
