#include <cuda_runtime.h>

#include "longnet/kernels/cuda_launch.h"
#include "longnet/kernels/layer_norm.h"

namespace longnet::kernels::cuda {
namespace {

__device__ float warp_sum(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

// Sum over the block in two levels: shuffles within each warp, then every warp adds the per-warp partials
// (one float per warp in `partials`), so all threads return the total without another broadcast.
// blockDim.x is a multiple of kWarpSize (layer_norm_launch), so every shuffle has a full warp.
__device__ float block_sum(float v, float* partials) {
  const unsigned lane = threadIdx.x % kWarpSize;
  const unsigned warp = threadIdx.x / kWarpSize;
  const unsigned warps = blockDim.x / kWarpSize;
  v = warp_sum(v);
  if (lane == 0) partials[warp] = v;
  __syncthreads();
  v = warp_sum(lane < warps ? partials[lane] : 0.0f);
  __syncthreads();  // `partials` is reused by the next call
  return v;
}

// One block per row, rows strided by gridDim.x. Two passes for the variance (mean first, then the mean
// of squared deviations): in fp32 this stays accurate for rows with a large mean, where E[x^2]-E[x]^2
// would cancel. Every element is read and written by the same thread in all passes, so y may be x
// (in place: the same pointer and stride; otherwise x and y must not overlap).
__global__ void __launch_bounds__(kLayerNormMaxThreads)
    layer_norm_kernel(LayerNormShape shape, const float* x, const float* gamma, const float* beta, float* y) {
  extern __shared__ float partials[];
  const float inv_dim = 1.0f / static_cast<float>(shape.dim);
  for (int64_t row = blockIdx.x; row < shape.rows; row += gridDim.x) {
    const float* xr = x + row * shape.x_stride;
    float* yr = y + row * shape.y_stride;

    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < shape.dim; i += blockDim.x) {
      sum += xr[i];
    }
    const float mean = block_sum(sum, partials) * inv_dim;

    float squares = 0.0f;
    for (int64_t i = threadIdx.x; i < shape.dim; i += blockDim.x) {
      const float d = xr[i] - mean;
      squares += d * d;
    }
    const float rstd = rsqrtf(block_sum(squares, partials) * inv_dim + shape.eps);

    for (int64_t i = threadIdx.x; i < shape.dim; i += blockDim.x) {
      yr[i] = (xr[i] - mean) * rstd * gamma[i] + beta[i];
    }
  }
}

}  // namespace

// Launch errors stay in the runtime's error state, as for activation().
void layer_norm(const LayerNormShape& shape, const float* x, const float* gamma, const float* beta, float* y,
                void* stream) {
  const LayerNormLaunch launch = layer_norm_launch(shape.rows, shape.dim);
  if (launch.grid == 0) return;
  layer_norm_kernel<<<static_cast<unsigned>(launch.grid), launch.block, launch.shared_bytes,
                      static_cast<cudaStream_t>(stream)>>>(shape, x, gamma, beta, y);
}

}  // namespace longnet::kernels::cuda
