// Row-wise softmax (softmax.h) on CUDA: one block per row (rows strided past the grid cap), a block-wide
// max and then a block-wide sum of exp(x - max), with the reference's conventions for masked rows.
#include <cuda_runtime.h>

#include <cmath>

#include "cuda/device_utils.cuh"
#include "longnet/kernels/softmax.h"

namespace longnet::kernels::cuda {
namespace {

// Two-level block reduction (shuffles, then one float per warp in `partials`); blockDim.x is whole warps.
// Ends with a barrier, so `partials` may be reused at once.
template <bool kMax>
__device__ float block_reduce(float v, float* partials) {
  const unsigned lane = threadIdx.x % kWarpSize;
  const unsigned warps = blockDim.x / kWarpSize;
  v = kMax ? group_max<kWarpSize>(v) : group_sum<kWarpSize>(v);
  if (lane == 0) partials[threadIdx.x / kWarpSize] = v;
  __syncthreads();
  const float init = kMax ? -INFINITY : 0.0f;
  v = lane < warps ? partials[lane] : init;
  v = kMax ? group_max<kWarpSize>(v) : group_sum<kWarpSize>(v);
  __syncthreads();
  return v;
}

// Every element is read by the same thread in all passes and written in the last, after two barriers,
// so y may be x.
__global__ void __launch_bounds__(kLayerNormMaxThreads)
    softmax_kernel(SoftmaxShape shape, const float* x, float* y, float* lse) {
  extern __shared__ float partials[];
  for (int64_t row = blockIdx.x; row < shape.rows; row += gridDim.x) {
    const float* xr = x + row * shape.x_stride;
    float* yr = y + row * shape.y_stride;
    float max = -INFINITY;
    for (int64_t i = threadIdx.x; i < shape.dim; i += blockDim.x)
      max = fmaxf(max, xr[i]);  // fmaxf skips NaN, as the reference's std::fmax
    max = block_reduce<true>(max, partials);
    if (max == -INFINITY) {  // every entry masked (or dim == 0): zeros and lse = -inf, never NaN
      for (int64_t i = threadIdx.x; i < shape.dim; i += blockDim.x)
        yr[i] = 0.0f;
      if (threadIdx.x == 0 && lse != nullptr) lse[row] = -INFINITY;
      continue;
    }
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < shape.dim; i += blockDim.x)
      sum += expf(xr[i] - max);
    sum = block_reduce<false>(sum, partials);
    const float inv = 1.0f / sum;
    for (int64_t i = threadIdx.x; i < shape.dim; i += blockDim.x)
      yr[i] = expf(xr[i] - max) * inv;
    if (threadIdx.x == 0 && lse != nullptr) lse[row] = max + logf(sum);
  }
}

}  // namespace

void softmax(const SoftmaxShape& shape, const float* x, float* y, float* lse, void* stream) {
  const LayerNormLaunch launch = softmax_launch(shape.rows, shape.dim < 1 ? 1 : shape.dim);
  if (launch.grid == 0) return;
  softmax_kernel<<<static_cast<unsigned>(launch.grid), launch.block, launch.shared_bytes,
                   static_cast<cudaStream_t>(stream)>>>(shape, x, y, lse);
}

}  // namespace longnet::kernels::cuda
