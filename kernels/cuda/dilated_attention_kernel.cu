// LongNet dilated attention on CUDA: one launch per branch (and per chunk of up to 32 sequences), a thread
// block per (sequence, head, segment, query tile), flash-style: the tile's queries meet the segment's keys
// one key tile at a time with an online softmax, so scores never reach global memory. A head's dilated
// rows are addressed in place, row = first_row + j * r (cuda_attention_plan.h), never gathered into a
// copy. The finished rows are LSE-merged into out / lse by the block that computed them: within a branch
// no two blocks share a (row, head), and branches are stream-ordered launches, so no atomics are needed.
// docs/gpu.md describes the design; the tile arithmetic is host-tested
// (tests/kernels/cuda_attention_plan_test.cc); the host side is dilated_attention.cc.
#include <cuda_runtime.h>

#include <cmath>

#include "cuda/attention_launch.h"
#include "cuda/device_utils.cuh"
#include "longnet/kernels/attention_softmax_math.h"

namespace longnet::kernels::cuda {
namespace {

constexpr float kNegInf = -INFINITY;

// Loads `rows` rows of a tile into shared memory as fp32 (times `scale`): row i comes from global row
// first_row + i * row_step at column `col`; rows from `valid` on are zeros. Consecutive threads read
// consecutive columns, so each row is read coalesced.
template <typename T, int kDim>
__device__ __forceinline__ void load_tile(float* dst, int dst_stride, const T* src, int64_t src_stride,
                                          int64_t col, int64_t first_row, int64_t row_step, int64_t valid,
                                          int rows, float scale) {
  for (int e = threadIdx.x; e < rows * kDim; e += kAttentionThreads) {
    const int i = e / kDim;
    const int d = e - i * kDim;
    float x = 0.0f;
    if (i < valid) x = to_float(src[(first_row + i * row_step) * src_stride + col + d]) * scale;
    dst[i * dst_stride + d] = x;
  }
}

// Thread layout: lane group g = threadIdx.x / 8 owns query rows 4g .. 4g+3 of the tile; lane c =
// threadIdx.x % 8 of the group owns key columns c + 8j of each key tile and output columns c + 8j.
template <typename T, int kDim>
__global__ void __launch_bounds__(kAttentionThreads)
    dilated_attention_kernel(const __grid_constant__ DilatedBranchArgs args) {
  constexpr AttentionTileConfig kCfg = attention_tile_config(kDim);
  constexpr int kM = kCfg.block_m;
  constexpr int kN = kCfg.block_n;
  constexpr int kRows = kAttentionRowsPerThread;
  constexpr int kCols = kCfg.cols_per_thread;
  constexpr int kDims = kCfg.dims_per_thread;
  static_assert(kM == kAttentionThreads / kAttentionRowLanes * kRows, "one row group per 8 lanes");
  static_assert(kCols * kAttentionRowLanes == kN && kDims * kAttentionRowLanes == kDim, "whole columns");

  extern __shared__ float smem[];
  float* const q_s = smem + kCfg.q_offset;
  float* const kp_s = smem + kCfg.kp_offset;  // keys, then probabilities
  float* const v_s = smem + kCfg.v_offset;

  const int lane_col = threadIdx.x % kAttentionRowLanes;
  const int row0 = threadIdx.x / kAttentionRowLanes * kRows;
  const DilatedWorkTable& table = args.table;
  const T* const q = static_cast<const T*>(args.q);
  const T* const k = static_cast<const T*>(args.k);
  const T* const v = static_cast<const T*>(args.v);
  T* const out = static_cast<T*>(args.out);

  for (int64_t work = blockIdx.x; work < table.total_work; work += gridDim.x) {
    const DilatedWorkItem item = decode_dilated_work(table, work);
    const DilatedSegmentView seg = dilated_segment_view(table, item);
    const QueryTileRange tile = query_tile_range(seg.visible, item.tile, kM, args.causal);
    if (tile.end <= tile.begin) continue;  // this head sees fewer tokens in a short last segment
    const int64_t col = item.head * kDim;
    const int64_t step = seg.row_step;

    __syncthreads();  // the previous item's last reads of q_s are done
    load_tile<T, kDim>(q_s, kCfg.q_stride, q, args.q_stride, col, seg.first_row + tile.begin * step, step,
                       tile.end - tile.begin, kM, args.scale_log2);

    // Keys [0, limit[i]) of the segment are visible to row i (0 for the padding rows past the tile).
    int64_t limit[kRows];
    float m[kRows];  // running max, base 2
    float l[kRows];  // this thread's share of the running sum
    float o[kRows][kDims];
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      const int64_t j = tile.begin + row0 + i;
      limit[i] = j < tile.end ? query_key_limit(j, seg.visible, args.causal) : 0;
      m[i] = kNegInf;
      l[i] = 0.0f;
#pragma unroll
      for (int c = 0; c < kDims; ++c)
        o[i][c] = 0.0f;
    }

    for (int64_t kb = 0; kb < tile.key_end; kb += kN) {
      const int64_t valid = tile.key_end - kb;
      const int64_t first = seg.first_row + kb * step;
      load_tile<T, kDim>(kp_s, kCfg.k_stride, k, args.k_stride, col, first, step, valid, kN, 1.0f);
      load_tile<T, kDim>(v_s, kCfg.v_stride, v, args.v_stride, col, first, step, valid, kN, 1.0f);
      __syncthreads();

      float s[kRows][kCols];
#pragma unroll
      for (int i = 0; i < kRows; ++i) {
#pragma unroll
        for (int j = 0; j < kCols; ++j)
          s[i][j] = 0.0f;
      }
#pragma unroll 4
      for (int d = 0; d < kDim; ++d) {
        float a[kRows];
        float b[kCols];
#pragma unroll
        for (int i = 0; i < kRows; ++i)
          a[i] = q_s[(row0 + i) * kCfg.q_stride + d];
#pragma unroll
        for (int j = 0; j < kCols; ++j)
          b[j] = kp_s[(lane_col + kAttentionRowLanes * j) * kCfg.k_stride + d];
#pragma unroll
        for (int i = 0; i < kRows; ++i) {
#pragma unroll
          for (int j = 0; j < kCols; ++j)
            s[i][j] = fmaf(a[i], b[j], s[i][j]);
        }
      }

      // Online softmax. Masked scores (past the row's limit: later keys when causal, padding of a short
      // segment, padding rows) are -inf and weigh exactly 0.
#pragma unroll
      for (int i = 0; i < kRows; ++i) {
        float row_max = kNegInf;
#pragma unroll
        for (int j = 0; j < kCols; ++j) {
          if (lane_col + kAttentionRowLanes * j >= limit[i] - kb) s[i][j] = kNegInf;
          row_max = fmaxf(row_max, s[i][j]);
        }
        const OnlineSoftmaxStep st = online_softmax_step(m[i], group_max<kAttentionRowLanes>(row_max));
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < kCols; ++j) {
          s[i][j] = exp2f(s[i][j] - st.base);
          sum += s[i][j];
        }
        l[i] = l[i] * st.alpha + sum;
        m[i] = st.m_new;
#pragma unroll
        for (int c = 0; c < kDims; ++c)
          o[i][c] *= st.alpha;
      }

      __syncthreads();  // every thread is done reading keys: P takes their place
#pragma unroll
      for (int i = 0; i < kRows; ++i) {
#pragma unroll
        for (int j = 0; j < kCols; ++j)
          kp_s[(row0 + i) * kCfg.p_stride + lane_col + kAttentionRowLanes * j] = s[i][j];
      }
      __syncthreads();

#pragma unroll 4
      for (int n = 0; n < kN; ++n) {
        float p[kRows];
#pragma unroll
        for (int i = 0; i < kRows; ++i)
          p[i] = kp_s[(row0 + i) * kCfg.p_stride + n];
#pragma unroll
        for (int c = 0; c < kDims; ++c) {
          const float x = v_s[n * kCfg.v_stride + lane_col + kAttentionRowLanes * c];
#pragma unroll
          for (int i = 0; i < kRows; ++i)
            o[i][c] = fmaf(p[i], x, o[i][c]);
        }
      }
      __syncthreads();  // P and V are read: the next key tile may overwrite them
    }

    // Each row's sum is spread over its 8 lanes; the old LSE of a row is read by all 8 before lane 0
    // writes the new one (__syncwarp between).
    float branch_lse[kRows];
    float old_lse[kRows];
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      l[i] = group_sum<kAttentionRowLanes>(l[i]);
      const int64_t j = tile.begin + row0 + i;
      const int64_t row = seg.first_row + j * step;
      const bool valid = j < tile.end;
      branch_lse[i] = valid ? row_lse(m[i], l[i]) : kNegInf;
      old_lse[i] = valid && !args.first_branch ? args.lse[row * table.num_heads + item.head] : kNegInf;
    }
    __syncwarp();
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      const int64_t j = tile.begin + row0 + i;
      if (j >= tile.end) continue;
      const int64_t row = seg.first_row + j * step;
      const LseMerge w = lse_merge(old_lse[i], branch_lse[i]);
      const float inv_l = 1.0f / l[i];
      T* const o_row = out + row * args.out_stride + col;
#pragma unroll
      for (int c = 0; c < kDims; ++c) {
        const int d = lane_col + kAttentionRowLanes * c;
        const float mine = o[i][c] * inv_l;
        const float merged = w.w_old == 0.0f ? w.w_new * mine : w.w_old * to_float(o_row[d]) + w.w_new * mine;
        o_row[d] = from_float<T>(merged);
      }
      if (lane_col == 0) args.lse[row * table.num_heads + item.head] = w.lse;
    }
  }
}

template <typename T>
__global__ void clear_outputs_kernel(const __grid_constant__ DilatedWorkTable table, int64_t head_dim, T* out,
                                     int64_t out_stride, float* lse) {
  const int s = static_cast<int>(blockIdx.y);
  const int64_t width = table.num_heads * head_dim;
  const int64_t count = table.seq_len[s] * width;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += stride) {
    const int64_t t = e / width;
    const int64_t c = e - t * width;
    const int64_t row = table.seq_start[s] + t;
    out[row * out_stride + c] = from_float<T>(0.0f);
    if (c < table.num_heads) lse[row * table.num_heads + c] = kNegInf;
  }
}

template <typename T, int kDim>
cudaError_t launch_branch(const DilatedBranchArgs& args, cudaStream_t stream) {
  constexpr AttentionTileConfig kCfg = attention_tile_config(kDim);
  const int64_t grid = attention_grid(args.table.total_work);
  if (grid == 0) return cudaSuccess;
  const cudaError_t opt_in = allow_shared_memory(dilated_attention_kernel<T, kDim>, kCfg.smem_bytes);
  if (opt_in != cudaSuccess) return opt_in;
  dilated_attention_kernel<T, kDim>
      <<<static_cast<unsigned>(grid), kAttentionThreads, kCfg.smem_bytes, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_dilated_branch(DType dtype, int head_dim, const DilatedBranchArgs& args,
                                  cudaStream_t stream) {
  cudaError_t result = cudaErrorInvalidValue;
  dispatch_dtype(dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    dispatch_head_dim(head_dim,
                      [&](auto dim) { result = launch_branch<T, decltype(dim)::value>(args, stream); });
  });
  return result;
}

cudaError_t launch_clear_attention_outputs(DType dtype, const DilatedWorkTable& table, int64_t head_dim,
                                           void* out, int64_t out_stride, float* lse, cudaStream_t stream) {
  if (table.num_seqs == 0) return cudaSuccess;
  int64_t longest = 0;
  for (int s = 0; s < table.num_seqs; ++s)
    longest = table.seq_len[s] > longest ? table.seq_len[s] : longest;
  const ElementwiseLaunch shape = elementwise_launch(longest * table.num_heads * head_dim);
  const dim3 grid(static_cast<unsigned>(shape.grid), static_cast<unsigned>(table.num_seqs));
  cudaError_t result = cudaErrorInvalidValue;
  dispatch_dtype(dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    clear_outputs_kernel<T>
        <<<grid, shape.block, 0, stream>>>(table, head_dim, static_cast<T*>(out), out_stride, lse);
    result = cudaGetLastError();
  });
  return result;
}

}  // namespace longnet::kernels::cuda
