#pragma once

// Element-wise CUDA kernels that have no CPU counterpart of their own (the CPU model does these inline):
// the residual add and storage-type conversion. CUDA builds only; device pointers; queued on `stream` (a
// cudaStream_t; nullptr = the default stream). Launch errors stay in the runtime's error state
// (cudaGetLastError), as for the other void kernels.
#if defined(LONGNET_WITH_CUDA)

#include <cstdint>

#include "longnet/kernels/dtype.h"

namespace longnet::kernels::cuda {

// y[i] += x[i] for n elements of `dtype` (fp16 / bf16 added in fp32 and rounded once). y may equal x.
void residual_add(DType dtype, void* y, const void* x, int64_t n, void* stream);

// dst[i] = src[i] converted (round to nearest even when narrowing, as the CPU's convert.h). src and dst
// must not overlap unless the dtypes are equal and src == dst.
void convert(DType src_dtype, const void* src, DType dst_dtype, void* dst, int64_t n, void* stream);

}  // namespace longnet::kernels::cuda

#endif  // LONGNET_WITH_CUDA
