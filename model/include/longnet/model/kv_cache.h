#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "longnet/kernels/dilated_schedule.h"
#include "longnet/model/memory_pool.h"
#include "longnet/model/tensor.h"

// The bounded dilated KV cache of LONGNET.md ("Incremental decoding with a bounded cache"). For every
// layer, branch (w, r) and head it holds the keys and values of the tokens that head sees in the branch's
// current segment: at most ceil(w / r) entries, whatever the context length. A new segment clears it.
// Everything is allocated when the cache is created, so its size is fixed for the sequence's life.
namespace longnet::model {

// One (layer, branch): keys and values of every head, [H, capacity, D] each.
struct BranchKv {
  Tensor keys;
  Tensor values;
  std::vector<int64_t> count;  // entries held per head (all belong to `segment`)
  int64_t segment = -1;        // the segment they belong to; -1 before the first token
  int64_t centre = 0;          // the XPOS centre the stored keys are scaled for (see DilatedSelfAttention)

  // Addresses only (never dereferenced), so they serve a cache on a CUDA device as well.
  float* key(int64_t head, int64_t entry) const;
  float* value(int64_t head, int64_t entry) const;

  // Moves to the segment (w positions long) of `position`, forgetting the one before (counts to 0, the
  // XPOS centre to the segment's start); returns the segment's first position.
  int64_t enter_segment(int64_t position, int64_t w);
};

// A chunk's rows cut at one branch's segment borders: `n` rows from row `row` of the chunk (position
// `begin`), all in the segment that starts at `segment_start`.
struct Piece {
  int64_t segment_start = 0;
  int64_t begin = 0;
  int64_t n = 0;
  int64_t row = 0;
  int64_t last() const { return begin + n - 1; }  // the piece's last position
};

// Calls fn(piece) for every piece of positions [first, first + rows) in a branch of segments w positions
// long, in order, with `kv` moved into the piece's segment first; stops at the first error fn returns.
template <typename Fn>
absl::Status for_each_piece(BranchKv& kv, int64_t first, int64_t rows, int64_t w, Fn&& fn) {
  const int64_t end = first + rows;
  for (int64_t pos = first; pos < end;) {
    Piece piece;
    piece.segment_start = kv.enter_segment(pos, w);
    piece.begin = pos;
    piece.n = std::min(piece.segment_start + w, end) - pos;
    piece.row = pos - first;
    if (absl::Status s = fn(piece); !s.ok()) return s;
    pos += piece.n;
  }
  return absl::OkStatus();
}

// The rows of a piece that one head of a branch appends to its cache and queries with. The piece holds
// positions [segment_start + rel, segment_start + rel + n) of one segment; the head, of offset `offset`
// in a branch of dilation r, sees the positions p with (p - segment_start) % r == offset: rows first,
// first + r, ..., `count` of them (count 0: none). The CPU and CUDA graphs both cut pieces with it.
struct HeadRows {
  int64_t first = 0;
  int64_t count = 0;
};
HeadRows head_rows(int64_t rel, int64_t n, int64_t r, int64_t offset);

// XPOS recentring of stored keys (DilatedSelfAttention): moving a branch's centre forward by `shift`
// positions multiplies pair j of every stored key by scale[j]^(shift / scale_base), a factor <= 1.
std::vector<float> xpos_recentre_factors(std::span<const float> scale, double scale_base, int64_t shift);

// XPOS factors of the position a sequence is decoding, for its layers to share (DilatedSelfAttention): every
// layer of a step meets the same position with the same branch centres and, in every checkpoint we know of,
// the same scale buffer, so the first layer's double-precision sin, cos and exp serve the others. Derived
// data only: a branch's entry is reused when position, centre and scales all match, rebuilt otherwise.
struct XposMemo {
  int64_t position = -1;                // of the rotation and of every branch entry; -1 before the first
  std::vector<float> cos, sin;          // head_dim / 2 each
  std::vector<float> scale;             // the scale buffer the branch entries were built from
  double scale_base = 0.0;              // and its base
  std::vector<int64_t> centre;          // per branch: the centre of its entry, -1 for none
  std::vector<float> q_scale, k_scale;  // per branch, head_dim / 2 each
};

class DilatedKvCache {
 public:
  // `max_positions` > 0 caps the context this cache will accept (a branch's capacity is then
  // ceil(min(w, max_positions) / r)); 0 means unlimited, which still bounds every branch by ceil(w / r).
  static absl::StatusOr<DilatedKvCache> create(int64_t layers, int64_t heads, int64_t head_dim,
                                               std::span<const kernels::DilatedBranch> branches,
                                               Allocator& allocator, int64_t max_positions = 0);

  // Entries a (branch, head) can hold: ceil(min(w, max_positions) / r).
  static int64_t branch_capacity(const kernels::DilatedBranch& branch, int64_t max_positions);
  // Bytes create() will take for this shape: what admission control checks against the pool.
  static size_t bytes_for(int64_t layers, int64_t heads, int64_t head_dim,
                          std::span<const kernels::DilatedBranch> branches, int64_t max_positions);

  BranchKv& at(int64_t layer, int64_t branch) { return slots_[layer * num_branches_ + branch]; }
  int64_t capacity(int64_t branch) const { return capacities_[branch]; }
  int64_t length() const { return length_; }  // positions consumed so far
  int64_t max_positions() const { return max_positions_; }
  void advance(int64_t positions) { length_ += positions; }
  XposMemo& xpos_memo() { return xpos_memo_; }
  size_t nbytes() const;  // bytes of every key and value buffer (constant for the cache's life)

 private:
  std::vector<BranchKv> slots_;  // layer-major
  std::vector<int64_t> capacities_;
  XposMemo xpos_memo_;
  int64_t num_branches_ = 0;
  int64_t length_ = 0;
  int64_t max_positions_ = 0;
};

}  // namespace longnet::model
