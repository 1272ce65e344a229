// Residual add and storage-type conversion: one thread per element, grid-stride past the grid cap.
#include <cuda_runtime.h>

#include "cuda/device_utils.cuh"
#include "longnet/kernels/cuda_elementwise.h"

namespace longnet::kernels::cuda {
namespace {

template <typename T>
__global__ void __launch_bounds__(kElementwiseThreads) residual_add_kernel(T* y, const T* x, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = from_float<T>(to_float(y[i]) + to_float(x[i]));
}

template <typename From, typename To>
__global__ void __launch_bounds__(kElementwiseThreads) convert_kernel(const From* src, To* dst, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dst[i] = from_float<To>(to_float(src[i]));
}

}  // namespace

void residual_add(DType dtype, void* y, const void* x, int64_t n, void* stream) {
  const ElementwiseLaunch shape = elementwise_launch(n);
  if (shape.grid == 0) return;
  dispatch_dtype(dtype, [&](auto type_tag) {
    using T = decltype(type_tag);
    residual_add_kernel<T>
        <<<static_cast<unsigned>(shape.grid), shape.block, 0, static_cast<cudaStream_t>(stream)>>>(
            static_cast<T*>(y), static_cast<const T*>(x), n);
  });
}

void convert(DType src_dtype, const void* src, DType dst_dtype, void* dst, int64_t n, void* stream) {
  const ElementwiseLaunch shape = elementwise_launch(n);
  if (shape.grid == 0 || (src_dtype == dst_dtype && src == dst)) return;
  dispatch_dtype(src_dtype, [&](auto from_tag) {
    using From = decltype(from_tag);
    dispatch_dtype(dst_dtype, [&](auto to_tag) {
      using To = decltype(to_tag);
      convert_kernel<From, To>
          <<<static_cast<unsigned>(shape.grid), shape.block, 0, static_cast<cudaStream_t>(stream)>>>(
              static_cast<const From*>(src), static_cast<To*>(dst), n);
    });
  });
}

}  // namespace longnet::kernels::cuda
