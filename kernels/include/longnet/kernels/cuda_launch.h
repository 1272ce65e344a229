#pragma once

#include <cstddef>
#include <cstdint>

// Launch shapes of the CUDA kernels, as plain host arithmetic: the .cu files launch with exactly these
// numbers, and the host tests (tests/kernels/cuda_launch_test.cc) check them on machines without CUDA.
// No CUDA header here, and C++17 only (nvcc compiles the .cu files as C++17).
namespace longnet::kernels::cuda {

inline constexpr int kWarpSize = 32;
// gridDim.y/z are limited to 65535; keeping gridDim.x there too keeps every launch in range, and the
// kernels loop (grid-stride) over whatever a capped grid does not cover.
inline constexpr int64_t kMaxGridBlocks = 65535;

struct ElementwiseLaunch {
  int64_t grid = 0;  // 0: nothing to do, do not launch
  int block = 0;
};

// One thread per element, 256 threads a block; past kMaxGridBlocks blocks each thread strides on.
inline constexpr int kElementwiseThreads = 256;

constexpr ElementwiseLaunch elementwise_launch(int64_t n) {
  if (n <= 0) return {};
  const int64_t blocks = (n + kElementwiseThreads - 1) / kElementwiseThreads;
  return {blocks < kMaxGridBlocks ? blocks : kMaxGridBlocks, kElementwiseThreads};
}

struct LayerNormLaunch {
  int64_t grid = 0;         // blocks; 0: nothing to do, do not launch
  int block = 0;            // threads per block, a multiple of kWarpSize
  size_t shared_bytes = 0;  // one float per warp: the partial sums of the block reduction
};

// One block per row (blocks loop over rows past kMaxGridBlocks). The block gets about
// kLayerNormItemsPerThread elements per thread, rounded up to whole warps, between one warp (short rows)
// and kLayerNormMaxThreads (long rows, where each thread then handles more elements).
inline constexpr int kLayerNormItemsPerThread = 4;
inline constexpr int kLayerNormMaxThreads = 1024;

constexpr LayerNormLaunch layer_norm_launch(int64_t rows, int64_t dim) {
  if (rows <= 0 || dim <= 0) return {};
  const int64_t wanted = (dim + kLayerNormItemsPerThread - 1) / kLayerNormItemsPerThread;
  const int64_t warps = (wanted + kWarpSize - 1) / kWarpSize;
  const int64_t max_warps = kLayerNormMaxThreads / kWarpSize;
  const int block = static_cast<int>(warps < max_warps ? warps : max_warps) * kWarpSize;
  return {rows < kMaxGridBlocks ? rows : kMaxGridBlocks, block,
          static_cast<size_t>(block / kWarpSize) * sizeof(float)};
}

// Softmax rows have the shape of layer-norm rows: one block per row, sized by the row, one float per warp
// of shared memory for the block reductions (max, then sum).
constexpr LayerNormLaunch softmax_launch(int64_t rows, int64_t dim) {
  return layer_norm_launch(rows, dim);
}

}  // namespace longnet::kernels::cuda
