// Prefix attention on CUDA (prefix_attention.h): queries over a key/value buffer where query j sees keys
// [0, key_limit[j]), the primitive of decoding with the bounded dilated KV cache. Decode has one query per
// (sequence, branch, head) and a few thousand keys, so one block per query would leave most of the GPU
// idle: the keys are split (flash-decoding), each block keeps the softmax state (max, sum, unnormalised
// output) of its split, and a second kernel merges the splits. The split is chosen from the shape alone
// (cuda_attention_plan.h: prefix_attention_plan), so results do not depend on the device. Also here: the
// LSE merge of attention branches (merge_attention_lse). The host side is prefix_attention.cc.
#include <cuda_runtime.h>

#include <cmath>

#include "cuda/attention_launch.h"
#include "cuda/device_utils.cuh"
#include "longnet/kernels/attention_softmax_math.h"

namespace longnet::kernels::cuda {
namespace {

constexpr float kNegInf = -INFINITY;
constexpr int kWarps = kDecodeThreads / kWarpSize;
constexpr int kKeyGroups = kDecodeThreads / kDecodeLanesPerKey;  // keys scored at once by a block
constexpr int kChunk = static_cast<int>(kDecodeChunkKeys);
static_assert(kChunk % kKeyGroups == 0 && kChunk % kDecodeThreads == 0, "whole rounds per chunk");

// Reduces one float per thread to a block total (or maximum); `stats` holds one float per warp. Ends
// with a barrier, so `stats` may be reused at once.
template <bool kMax>
__device__ __forceinline__ float block_reduce(float v, float* stats) {
  v = kMax ? group_max<kWarpSize>(v) : group_sum<kWarpSize>(v);
  if (threadIdx.x % kWarpSize == 0) stats[threadIdx.x / kWarpSize] = v;
  __syncthreads();
  float total = stats[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w)
    total = kMax ? fmaxf(total, stats[w]) : total + stats[w];
  __syncthreads();
  return total;
}

// Block (split, query, problem). Scores: 8 lanes per key, 16 keys at a time, into shared memory by chunk;
// values: warp w takes the chunk's keys w, w + 4, ..., each lane holding columns lane, lane + 32, ...
template <typename T, int kDim>
__global__ void __launch_bounds__(kDecodeThreads)
    prefix_attention_kernel(const __grid_constant__ PrefixAttentionArgs args) {
  constexpr int kLaneDims = (kDim + kWarpSize - 1) / kWarpSize;
  extern __shared__ float smem[];
  float* const q_s = smem;                     // [kDim], pre-scaled
  float* const p_s = q_s + kDim;               // [kChunk] scores, then probabilities
  float* const red_s = p_s + kChunk;           // [kWarps][kDim] per-warp output partials
  float* const stats = red_s + kWarps * kDim;  // [kWarps]

  const int warp = threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  const int key_lane = threadIdx.x % kDecodeLanesPerKey;
  const int key_group = threadIdx.x / kDecodeLanesPerKey;
  const PrefixAttentionPlan& plan = args.plan;
  const int64_t split = blockIdx.x;

  for (int64_t b = blockIdx.z; b < args.count; b += gridDim.z) {
    const T* const q = static_cast<const T*>(args.q) + b * args.q_batch_stride;
    const T* const k = static_cast<const T*>(args.k) + b * args.k_batch_stride;
    const T* const v = static_cast<const T*>(args.v) + b * args.v_batch_stride;
    for (int64_t j = blockIdx.y; j < args.num_queries; j += gridDim.y) {
      int64_t limit = args.num_keys;
      if (args.key_limit != nullptr) {  // clamped: a bad limit must not read outside the buffer
        const int64_t asked = args.key_limit[b * args.num_queries + j];
        limit = asked < 0 ? 0 : (asked > args.num_keys ? args.num_keys : asked);
      }
      const int64_t key_begin = split * plan.split_keys;
      const int64_t key_end = key_begin + plan.split_keys < limit ? key_begin + plan.split_keys : limit;

      __syncthreads();  // the previous query's readers of q_s / red_s are done
      for (int d = threadIdx.x; d < kDim; d += kDecodeThreads)
        q_s[d] = to_float(q[j * args.q_stride + d]) * args.scale_log2;
      __syncthreads();

      float m = kNegInf;  // the same in every thread
      float l = 0.0f;
      float acc[kLaneDims];
#pragma unroll
      for (int i = 0; i < kLaneDims; ++i)
        acc[i] = 0.0f;

      for (int64_t c0 = key_begin; c0 < key_end; c0 += kChunk) {
        const int64_t n_chunk = key_end - c0 < kChunk ? key_end - c0 : kChunk;
        for (int kk = key_group; kk < kChunk; kk += kKeyGroups) {  // same trip count for all lanes
          float dot = 0.0f;
          if (kk < n_chunk) {
            const T* const key = k + (c0 + kk) * args.k_stride;
            for (int d = key_lane; d < kDim; d += kDecodeLanesPerKey)
              dot = fmaf(q_s[d], to_float(key[d]), dot);
          }
          dot = group_sum<kDecodeLanesPerKey>(dot);
          if (key_lane == 0) p_s[kk] = kk < n_chunk ? dot : kNegInf;
        }
        __syncthreads();

        float local = kNegInf;
        for (int i = threadIdx.x; i < kChunk; i += kDecodeThreads)
          local = fmaxf(local, p_s[i]);
        const OnlineSoftmaxStep st = online_softmax_step(m, block_reduce<true>(local, stats));
        float sum = 0.0f;
        for (int i = threadIdx.x; i < kChunk; i += kDecodeThreads) {
          const float p = exp2f(p_s[i] - st.base);
          p_s[i] = p;
          sum += p;
        }
        l = l * st.alpha + block_reduce<false>(sum, stats);  // its barrier also publishes p_s
        m = st.m_new;

#pragma unroll
        for (int i = 0; i < kLaneDims; ++i)
          acc[i] *= st.alpha;
        for (int kk = warp; kk < n_chunk; kk += kWarps) {
          const float p = p_s[kk];
          const T* const value = v + (c0 + kk) * args.v_stride;
#pragma unroll
          for (int i = 0; i < kLaneDims; ++i) {
            const int d = lane + kWarpSize * i;
            if (d < kDim) acc[i] = fmaf(p, to_float(value[d]), acc[i]);
          }
        }
        __syncthreads();  // p_s is rewritten by the next chunk
      }

#pragma unroll
      for (int i = 0; i < kLaneDims; ++i) {
        const int d = lane + kWarpSize * i;
        if (d < kDim) red_s[warp * kDim + d] = acc[i];
      }
      __syncthreads();
      const int64_t row = b * args.num_queries + j;
      if (plan.splits == 1) {  // the whole answer: normalise and write
        T* const o = static_cast<T*>(args.out) + b * args.out_batch_stride + j * args.out_stride;
        const float inv_l = l > 0.0f ? 1.0f / l : 0.0f;
        for (int d = threadIdx.x; d < kDim; d += kDecodeThreads) {
          float total = 0.0f;
#pragma unroll
          for (int w = 0; w < kWarps; ++w)
            total += red_s[w * kDim + d];
          o[d] = from_float<T>(total * inv_l);
        }
        if (threadIdx.x == 0 && args.lse != nullptr)
          args.lse[b * args.lse_batch_stride + j] = l > 0.0f ? row_lse(m, l) : kNegInf;
      } else {  // a partial state: max, sum, unnormalised output
        float* const partial = args.partials + (row * plan.splits + split) * plan.partial_floats;
        for (int d = threadIdx.x; d < kDim; d += kDecodeThreads) {
          float total = 0.0f;
#pragma unroll
          for (int w = 0; w < kWarps; ++w)
            total += red_s[w * kDim + d];
          partial[2 + d] = total;
        }
        if (threadIdx.x == 0) {
          partial[0] = m;
          partial[1] = l;
        }
      }
    }
  }
}

// One block per (problem, query) row: merges the splits' states into the output, rescaling each to the
// largest max. Splits without keys (m = -inf, l = 0) weigh 0; a row with no key at all gets 0 / -inf.
template <typename T>
__global__ void __launch_bounds__(kDecodeThreads)
    combine_splits_kernel(const __grid_constant__ PrefixAttentionArgs args, int head_dim) {
  const PrefixAttentionPlan& plan = args.plan;
  const int64_t rows = args.count * args.num_queries;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* const partial = args.partials + row * plan.splits * plan.partial_floats;
    float m = kNegInf;
    for (int64_t s = 0; s < plan.splits; ++s)
      m = fmaxf(m, partial[s * plan.partial_floats]);
    const float base = m == kNegInf ? 0.0f : m;
    float l = 0.0f;
    for (int64_t s = 0; s < plan.splits; ++s)
      l += partial[s * plan.partial_floats + 1] * exp2f(partial[s * plan.partial_floats] - base);
    const int64_t b = row / args.num_queries;
    const int64_t j = row - b * args.num_queries;
    T* const o = static_cast<T*>(args.out) + b * args.out_batch_stride + j * args.out_stride;
    const float inv_l = l > 0.0f ? 1.0f / l : 0.0f;
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
      float total = 0.0f;
      for (int64_t s = 0; s < plan.splits; ++s) {
        const float* const state = partial + s * plan.partial_floats;
        if (state[1] > 0.0f) total += state[2 + d] * exp2f(state[0] - base);
      }
      o[d] = from_float<T>(total * inv_l);
    }
    if (threadIdx.x == 0 && args.lse != nullptr)
      args.lse[b * args.lse_batch_stride + j] = l > 0.0f ? row_lse(m, l) : kNegInf;
  }
}

template <typename T, int kDim>
cudaError_t launch_prefix(const PrefixAttentionArgs& args, cudaStream_t stream) {
  const PrefixAttentionPlan& plan = args.plan;
  if (plan.splits == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(plan.grid_x), static_cast<unsigned>(plan.grid_y),
                  static_cast<unsigned>(plan.grid_z));
  prefix_attention_kernel<T, kDim><<<grid, kDecodeThreads, plan.smem_bytes, stream>>>(args);
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess || plan.splits == 1) return e;
  const int64_t rows = args.count * args.num_queries;
  combine_splits_kernel<T>
      <<<static_cast<unsigned>(rows < kMaxGridBlocks ? rows : kMaxGridBlocks), kDecodeThreads, 0, stream>>>(
          args, kDim);
  return cudaGetLastError();
}

// A warp per row, rows strided over the grid. The row's old LSE is read by every lane before lane 0
// writes the new one (__syncwarp between).
__global__ void merge_lse_kernel(int64_t rows, int64_t head_dim, const float* out, int64_t out_stride,
                                 const float* lse, float* acc_out, int64_t acc_stride, float* acc_lse) {
  const int lane = threadIdx.x % kWarpSize;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarpSize);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarpSize) + threadIdx.x / kWarpSize;
       i < rows; i += warps) {
    const float b = lse[i];
    const float a = acc_lse[i];
    __syncwarp();
    if (b == kNegInf) continue;  // an empty branch adds nothing
    const LseMerge w = lse_merge(a, b);
    float* const acc = acc_out + i * acc_stride;
    const float* const row = out + i * out_stride;
    for (int64_t d = lane; d < head_dim; d += kWarpSize)
      acc[d] = w.w_old == 0.0f ? w.w_new * row[d] : w.w_old * acc[d] + w.w_new * row[d];
    if (lane == 0) acc_lse[i] = w.lse;
  }
}

}  // namespace

cudaError_t launch_prefix_attention(DType dtype, int head_dim, const PrefixAttentionArgs& args,
                                    cudaStream_t stream) {
  cudaError_t result = cudaErrorInvalidValue;
  dispatch_dtype(dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    dispatch_head_dim(head_dim,
                      [&](auto dim) { result = launch_prefix<T, decltype(dim)::value>(args, stream); });
  });
  return result;
}

cudaError_t launch_merge_attention_lse(int64_t rows, int64_t head_dim, const float* out, int64_t out_stride,
                                       const float* lse, float* acc_out, int64_t acc_stride, float* acc_lse,
                                       cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  constexpr int kThreads = 256;
  constexpr int64_t kRowsPerBlock = kThreads / kWarpSize;
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  merge_lse_kernel<<<static_cast<unsigned>(blocks < kMaxGridBlocks ? blocks : kMaxGridBlocks), kThreads, 0,
                     stream>>>(rows, head_dim, out, out_stride, lse, acc_out, acc_stride, acc_lse);
  return cudaPeekAtLastError();  // left in the error state: the caller checks once per batch of launches
}

}  // namespace longnet::kernels::cuda
