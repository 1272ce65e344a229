#include "longnet/model/kv_cache.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace longnet::model {

float* BranchKv::key(int64_t head, int64_t entry) const {
  return keys.data<float>() + (head * keys.dim(1) + entry) * keys.dim(2);
}

float* BranchKv::value(int64_t head, int64_t entry) const {
  return values.data<float>() + (head * values.dim(1) + entry) * values.dim(2);
}

int64_t BranchKv::enter_segment(int64_t position, int64_t w) {
  const int64_t s = position / w;
  if (segment != s) {
    segment = s;
    std::fill(count.begin(), count.end(), 0);
    centre = s * w;
  }
  return s * w;
}

HeadRows head_rows(int64_t rel, int64_t n, int64_t r, int64_t offset) {
  HeadRows rows;
  rows.first = ((offset - rel % r) % r + r) % r;  // the first row whose position p has p % r == offset
  rows.count = rows.first < n ? (n - 1 - rows.first) / r + 1 : 0;
  return rows;
}

std::vector<float> xpos_recentre_factors(std::span<const float> scale, double scale_base, int64_t shift) {
  std::vector<float> factor(scale.size());
  const double exponent = static_cast<double>(shift) / scale_base;
  for (size_t j = 0; j < scale.size(); ++j)
    factor[j] = static_cast<float>(std::pow(static_cast<double>(scale[j]), exponent));
  return factor;
}

int64_t DilatedKvCache::branch_capacity(const kernels::DilatedBranch& branch, int64_t max_positions) {
  const int64_t span =
      max_positions > 0 ? std::min(branch.segment_length, max_positions) : branch.segment_length;
  return kernels::ceil_div(span, branch.dilation);
}

size_t DilatedKvCache::bytes_for(int64_t layers, int64_t heads, int64_t head_dim,
                                 std::span<const kernels::DilatedBranch> branches, int64_t max_positions) {
  size_t entries = 0;
  for (const auto& b : branches)
    entries += static_cast<size_t>(branch_capacity(b, max_positions));
  return 2 * sizeof(float) * static_cast<size_t>(layers * heads * head_dim) * entries;
}

absl::StatusOr<DilatedKvCache> DilatedKvCache::create(int64_t layers, int64_t heads, int64_t head_dim,
                                                      std::span<const kernels::DilatedBranch> branches,
                                                      Allocator& allocator, int64_t max_positions) {
  if (layers <= 0 || heads <= 0 || head_dim <= 0 || branches.empty() || max_positions < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("DilatedKvCache: bad shape: layers=", layers, " heads=", heads, " head_dim=", head_dim,
                     " branches=", branches.size(), " max_positions=", max_positions));
  }
  DilatedKvCache cache;
  cache.num_branches_ = static_cast<int64_t>(branches.size());
  cache.max_positions_ = max_positions;
  for (const auto& b : branches)
    cache.capacities_.push_back(branch_capacity(b, max_positions));
  cache.slots_.resize(static_cast<size_t>(layers * cache.num_branches_));
  // One block for the whole cache, every slot's keys and values a view of it: one allocation per
  // sequence, charged what admission reserved (bytes_for), and big enough for huge pages (memory_pool.h).
  const int64_t total_floats =
      static_cast<int64_t>(bytes_for(layers, heads, head_dim, branches, max_positions) / sizeof(float));
  const int64_t block_shape[] = {total_floats};
  absl::StatusOr<Tensor> block = Tensor::empty(block_shape, DType::kF32, allocator);
  if (!block.ok()) return block.status();
  int64_t offset = 0;
  const auto carve = [&](int64_t capacity) -> absl::StatusOr<Tensor> {
    const int64_t floats = heads * capacity * head_dim;
    absl::StatusOr<Tensor> part = block->slice(0, offset, offset + floats);
    offset += floats;
    if (!part.ok()) return part.status();
    const int64_t shape[] = {heads, capacity, head_dim};
    return part->reshape(shape);
  };
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t b = 0; b < cache.num_branches_; ++b) {
      BranchKv& slot = cache.at(l, b);
      absl::StatusOr<Tensor> k = carve(cache.capacities_[b]);
      if (!k.ok()) return k.status();
      absl::StatusOr<Tensor> v = carve(cache.capacities_[b]);
      if (!v.ok()) return v.status();
      slot.keys = *std::move(k);
      slot.values = *std::move(v);
      slot.count.assign(static_cast<size_t>(heads), 0);
    }
  }
  const auto half = static_cast<size_t>(head_dim / 2);
  const size_t num_branches = branches.size();
  XposMemo& memo = cache.xpos_memo_;
  memo.cos.resize(half);
  memo.sin.resize(half);
  memo.scale.reserve(half);
  memo.centre.assign(num_branches, -1);
  memo.q_scale.resize(num_branches * half);
  memo.k_scale.resize(num_branches * half);
  return cache;
}

size_t DilatedKvCache::nbytes() const {
  size_t total = 0;
  for (const BranchKv& slot : slots_)
    total += slot.keys.nbytes() + slot.values.nbytes();
  return total;
}

}  // namespace longnet::model
