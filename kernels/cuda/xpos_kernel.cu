// XPOS (xpos.h) on CUDA: one thread per (row, head, pair), grid-stride past the grid cap. Each pair is
// rotated and scaled in fp32 from the host-built table, the same arithmetic as cpu::apply_xpos.
#include <cuda_runtime.h>

#include "cuda/attention_launch.h"
#include "cuda/device_utils.cuh"

namespace longnet::kernels::cuda {
namespace {

template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) xpos_kernel(XposLaunchArgs args, T* x) {
  const int64_t half = args.head_dim / 2;
  const int64_t per_row = args.num_heads * half;
  const int64_t n = args.rows * per_row;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += stride) {
    const int64_t r = e / per_row;
    const int64_t rest = e - r * per_row;
    const int64_t h = rest / half;
    const int64_t j = rest - h * half;
    const int64_t t = (args.first_row + r) * half + j;
    T* v = x + r * args.row_stride + h * args.head_dim + 2 * j;
    const float x0 = to_float(v[0]);
    const float x1 = to_float(v[1]);
    const float c = args.cos[t];
    const float s = args.sin[t];
    const float z = args.scale[t];
    v[0] = from_float<T>((x0 * c - x1 * s) * z);
    v[1] = from_float<T>((x1 * c + x0 * s) * z);
  }
}

}  // namespace

cudaError_t launch_xpos(DType dtype, const XposLaunchArgs& args, void* x, cudaStream_t stream) {
  const ElementwiseLaunch shape = elementwise_launch(args.rows * args.num_heads * (args.head_dim / 2));
  if (shape.grid == 0) return cudaSuccess;
  cudaError_t result = cudaErrorInvalidValue;
  dispatch_dtype(dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    xpos_kernel<T><<<static_cast<unsigned>(shape.grid), shape.block, 0, stream>>>(args, static_cast<T*>(x));
    result = cudaGetLastError();
  });
  return result;
}

}  // namespace longnet::kernels::cuda
