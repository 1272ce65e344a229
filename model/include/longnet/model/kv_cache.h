#pragma once

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

  float* key(int64_t head, int64_t entry) const;
  float* value(int64_t head, int64_t entry) const;
};

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
