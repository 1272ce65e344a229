// Sampling (cuda_sampling.h): one block of 1024 threads per row. Every truncation and the draw are one
// question -- "where, walking the ids most likely first, does a running total first reach T?" -- answered
// without sorting: a radix descent over the logits' order-preserving 32-bit keys (4 digits of 8 bits,
// a histogram of the total per digit value, walked from the top), then one warp walks the ids that share
// the final key in id order. Top-k asks it with a count of 1 per id, top-p and the draw with
// probabilities. The result is a prefix of the order, "key > cut.key, or key == cut.key and id <= cut.id".
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "cuda/device_utils.cuh"
#include "longnet/kernels/cuda_sampling.h"

namespace longnet::kernels::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kBlockWarps = kThreads / kWarpSize;
constexpr int kBuckets = 256;

// Larger logits map to larger keys; -0 is +0 (the CPU compares them equal, so ids break the tie).
__device__ __forceinline__ uint32_t order_key(float w) {
  const uint32_t bits = __float_as_uint(w == 0.0f ? 0.0f : w);
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}

struct Cut {
  bool all = true;  // no cut: every id
  uint32_t key = 0;
  int32_t id = 0;
};

__device__ __forceinline__ bool in_cut(const Cut& c, uint32_t key, int32_t id) {
  return c.all || key > c.key || (key == c.key && id <= c.id);
}

// Plain fields only: __shared__ variables cannot have initialisers.
struct Shared {
  double hist[kBuckets];     // total of each digit value
  unsigned count[kBuckets];  // ids with each digit value (an empty bucket is never the answer)
  double warp_sums[kBlockWarps];
  float warp_max[kBlockWarps];
  int32_t warp_arg[kBlockWarps];
  int32_t warp_nan[kBlockWarps];
  int32_t bucket;
  double above;  // total of the buckets above the chosen one
  int32_t found;
  int32_t found_id;
};

__device__ double block_sum(double v, Shared& sh) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  if (threadIdx.x % kWarpSize == 0) sh.warp_sums[threadIdx.x / kWarpSize] = v;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < kBlockWarps; ++w)
    total += sh.warp_sums[w];
  __syncthreads();
  return total;
}

// Inclusive prefix sum over a warp.
__device__ __forceinline__ double warp_scan(double v) {
  const int lane = threadIdx.x % kWarpSize;
  for (int offset = 1; offset < kWarpSize; offset *= 2) {
    const double up = __shfl_up_sync(0xffffffffu, v, offset);
    if (lane >= offset) v += up;
  }
  return v;
}

// Warp 0 walks ids [0, vocab) in order over those with `select(id)`, adding mass(id), and returns (in
// sh.found / sh.cut.id) the first id where `before` plus the running total reaches T (exceeds it when
// strict). When none does (rounding), the last selected id with positive mass, if any.
template <typename Select, typename Mass>
__device__ void walk_ids(int32_t vocab, double before, double target, bool strict, Select select, Mass mass,
                         Shared& sh) {
  if (threadIdx.x < kWarpSize) {
    const int lane = threadIdx.x;
    double running = before;
    int32_t last_positive = -1;
    int32_t found = -1;
    for (int32_t base = 0; base < vocab && found < 0; base += kWarpSize) {
      const int32_t id = base + lane;
      const bool selected = id < vocab && select(id);
      const double m = selected ? mass(id) : 0.0;
      const double cum = running + warp_scan(m);
      const bool hit = selected && (strict ? m > 0.0 && cum > target : cum >= target);
      const unsigned hits = __ballot_sync(0xffffffffu, hit);
      const unsigned positives = __ballot_sync(0xffffffffu, m > 0.0);
      if (positives != 0) last_positive = base + 31 - __clz(static_cast<int>(positives));
      if (hits != 0) found = base + __ffs(static_cast<int>(hits)) - 1;
      running = __shfl_sync(0xffffffffu, cum, kWarpSize - 1);
    }
    if (lane == 0) {
      sh.found = found >= 0 || last_positive >= 0 ? 1 : 0;
      sh.found_id = found >= 0 ? found : last_positive;
    }
  }
  __syncthreads();
}

// The first element, most likely first, of those in `within`, where the running total of mass() reaches
// `target` (exceeds it when strict). Returns false when the total of `within` never does.
template <typename Mass>
__device__ bool find_cut(const float* logits, int32_t vocab, const Cut& within, double target, bool strict,
                         Mass mass, Shared& sh, Cut* result) {
  uint32_t prefix = 0;
  double before = 0.0;  // total of the ids whose keys are above the current prefix
  for (int level = 0; level < 4; ++level) {
    const int shift = 24 - 8 * level;
    for (int b = threadIdx.x; b < kBuckets; b += kThreads) {
      sh.hist[b] = 0.0;
      sh.count[b] = 0;
    }
    __syncthreads();
    for (int32_t i = threadIdx.x; i < vocab; i += kThreads) {
      const uint32_t key = order_key(logits[i]);
      if (!in_cut(within, key, i)) continue;
      if (level > 0 && (key >> (shift + 8)) != prefix) continue;
      const uint32_t digit = (key >> shift) & 0xffu;
      atomicAdd(&sh.hist[digit], mass(i));
      atomicAdd(&sh.count[digit], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double cum = before;
      int bucket = -1;
      for (int b = kBuckets - 1; b >= 0; --b) {
        const double next = cum + sh.hist[b];
        if (sh.count[b] > 0 && (strict ? next > target : next >= target)) {
          bucket = b;
          break;
        }
        cum = next;
      }
      sh.bucket = bucket;
      sh.above = cum;
    }
    __syncthreads();
    const int bucket = sh.bucket;
    before = sh.above;
    __syncthreads();
    if (bucket < 0) return false;  // only possible at level 0: the whole set falls short
    prefix = (prefix << 8) | static_cast<uint32_t>(bucket);
  }
  const uint32_t key = prefix;
  walk_ids(
      vocab, before, target, strict,
      [&](int32_t id) { return order_key(logits[id]) == key && in_cut(within, key, id); }, mass, sh);
  const bool found = sh.found != 0;
  const int32_t id = sh.found_id;
  __syncthreads();
  if (!found) return false;
  result->all = false;
  result->key = key;
  result->id = id;
  return true;
}

__global__ void __launch_bounds__(kThreads)
    sample_kernel(int64_t rows, int32_t vocab, const float* logits_all, int64_t stride,
                  const SamplingRowParams* params, int32_t* ids, int32_t* status, double* weights_all) {
  __shared__ Shared sh;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* logits = logits_all + row * stride;
    double* p = weights_all + row * vocab;
    const SamplingRowParams prm = params[row];

    // NaN check, max and argmax (lowest id on a tie).
    int32_t nan_id = vocab;
    float max = -INFINITY;
    int32_t arg = vocab;
    for (int32_t i = threadIdx.x; i < vocab; i += kThreads) {
      const float w = logits[i];
      if (isnan(w))
        nan_id = min(nan_id, i);
      else if (w > max || (w == max && i < arg)) {
        max = w;
        arg = i;
      }
    }
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
      nan_id = min(nan_id, __shfl_xor_sync(0xffffffffu, nan_id, offset));
      const float om = __shfl_xor_sync(0xffffffffu, max, offset);
      const int32_t oa = __shfl_xor_sync(0xffffffffu, arg, offset);
      if (om > max || (om == max && oa < arg)) {
        max = om;
        arg = oa;
      }
    }
    if (threadIdx.x % kWarpSize == 0) {
      sh.warp_max[threadIdx.x / kWarpSize] = max;
      sh.warp_arg[threadIdx.x / kWarpSize] = arg;
      sh.warp_nan[threadIdx.x / kWarpSize] = nan_id;
    }
    __syncthreads();
    max = sh.warp_max[0];
    arg = sh.warp_arg[0];
    nan_id = sh.warp_nan[0];
    for (int w = 1; w < kBlockWarps; ++w) {
      nan_id = min(nan_id, sh.warp_nan[w]);
      if (sh.warp_max[w] > max || (sh.warp_max[w] == max && sh.warp_arg[w] < arg)) {
        max = sh.warp_max[w];
        arg = sh.warp_arg[w];
      }
    }
    __syncthreads();
    const bool done = nan_id < vocab || max == -INFINITY || prm.temperature == 0.0f;
    if (done) {
      if (threadIdx.x == 0) {
        status[row] = nan_id < vocab ? kSampleNanLogit : (max == -INFINITY ? kSampleAllNegInf : kSampleOk);
        ids[row] = nan_id < vocab ? nan_id : (max == -INFINITY ? -1 : arg);
      }
      continue;
    }

    // Probabilities up to a common factor, as the CPU computes them (double, max subtracted first).
    const double t = prm.temperature;
    for (int32_t i = threadIdx.x; i < vocab; i += kThreads) {
      const float w = logits[i];
      p[i] = max == INFINITY ? (w == INFINITY ? 1.0 : 0.0) : exp((static_cast<double>(w) - max) / t);
    }
    __syncthreads();
    const auto probability = [p](int32_t i) { return p[i]; };

    Cut kept;  // all ids
    bool truncated = false;
    if (prm.top_k > 0 && prm.top_k < vocab) {
      find_cut(
          logits, vocab, kept, static_cast<double>(prm.top_k), false, [](int32_t) { return 1.0; }, sh, &kept);
      truncated = true;
    }
    if (prm.top_p < 1.0f) {
      double total = 0.0;
      for (int32_t i = threadIdx.x; i < vocab; i += kThreads) {
        if (in_cut(kept, order_key(logits[i]), i)) total += p[i];
      }
      total = block_sum(total, sh);
      Cut nucleus;
      // Not reaching p (rounding) keeps every candidate, as the CPU does.
      if (find_cut(logits, vocab, kept, static_cast<double>(prm.top_p) * total, false, probability, sh,
                   &nucleus))
        kept = nucleus;
      truncated = true;
    }

    double kept_total = 0.0;
    for (int32_t i = threadIdx.x; i < vocab; i += kThreads) {
      if (in_cut(kept, order_key(logits[i]), i)) kept_total += p[i];
    }
    kept_total = block_sum(kept_total, sh);
    const double target = prm.uniform * kept_total;
    int32_t chosen = -1;
    if (truncated) {  // the candidates most likely first
      Cut draw;
      if (find_cut(logits, vocab, kept, target, true, probability, sh, &draw)) {
        chosen = draw.id;
      } else {  // rounding left the target at the very top: the last candidate with weight
        walk_ids(
            vocab, 0.0, INFINITY, true, [&](int32_t id) { return in_cut(kept, order_key(logits[id]), id); },
            probability, sh);
        chosen = sh.found_id;
      }
    } else {  // nothing truncated: every id, in id order
      walk_ids(
          vocab, 0.0, target, true, [](int32_t) { return true; }, probability, sh);
      chosen = sh.found_id;
    }
    if (threadIdx.x == 0) {
      status[row] = kSampleOk;
      ids[row] = chosen;
    }
    __syncthreads();
  }
}

}  // namespace

void sample_tokens(int64_t rows, int64_t vocab, const float* logits, int64_t stride,
                   const SamplingRowParams* params, int32_t* ids, int32_t* status, void* workspace,
                   void* stream) {
  if (rows <= 0 || vocab <= 0) return;
  sample_kernel<<<static_cast<unsigned>(rows < kMaxGridBlocks ? rows : kMaxGridBlocks), kThreads, 0,
                  static_cast<cudaStream_t>(stream)>>>(rows, static_cast<int32_t>(vocab), logits, stride,
                                                       params, ids, status, static_cast<double*>(workspace));
}

}  // namespace longnet::kernels::cuda
