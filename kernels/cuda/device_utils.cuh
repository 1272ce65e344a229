#pragma once

// Small device helpers the CUDA kernels share: element types (fp32 storage or fp16 / bf16 storage with
// fp32 math), warp reductions, and the dtype -> C++ type dispatch of the launchers.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <type_traits>

#include "longnet/kernels/cuda_launch.h"
#include "longnet/kernels/dtype.h"

namespace longnet::kernels::cuda {

inline constexpr float kLog2e = 1.4426950408889634f;
inline constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ float to_float(float x) {
  return x;
}
__device__ __forceinline__ float to_float(__half x) {
  return __half2float(x);
}
__device__ __forceinline__ float to_float(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Reductions over the `width` consecutive lanes of a group (width a power of two <= 32): every lane of
// the group gets the result. All 32 lanes must call them together.
template <int kWidth>
__device__ __forceinline__ float group_max(float v) {
  for (int offset = kWidth / 2; offset > 0; offset /= 2)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}
template <int kWidth>
__device__ __forceinline__ float group_sum(float v) {
  for (int offset = kWidth / 2; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Calls fn(T{}) with T the storage type of `dtype`. Returns false for a dtype without a kernel.
template <typename Fn>
bool dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kF32:
      fn(float{});
      return true;
    case DType::kF16:
      fn(__half{});
      return true;
    case DType::kBF16:
      fn(__nv_bfloat16{});
      return true;
  }
  return false;
}

// Calls fn(std::integral_constant<int, D>{}) for the head sizes the attention kernels are compiled for
// (32, 64, 80, 96, 128). Returns false for any other head size.
template <typename Fn>
bool dispatch_head_dim(int head_dim, Fn&& fn) {
  switch (head_dim) {
    case 32:
      fn(std::integral_constant<int, 32>{});
      return true;
    case 64:
      fn(std::integral_constant<int, 64>{});
      return true;
    case 80:
      fn(std::integral_constant<int, 80>{});
      return true;
    case 96:
      fn(std::integral_constant<int, 96>{});
      return true;
    case 128:
      fn(std::integral_constant<int, 128>{});
      return true;
  }
  return false;
}

// Opts a kernel into more than the default 48 KB of dynamic shared memory when it needs it.
template <typename Kernel>
cudaError_t allow_shared_memory(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

}  // namespace longnet::kernels::cuda
