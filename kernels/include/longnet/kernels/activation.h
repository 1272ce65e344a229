#pragma once

#include <cstdint>

#include "longnet/kernels/thread_pool.h"

// Element-wise FFN activations, in place over n floats.
namespace longnet::kernels {

enum class Activation { kGelu, kRelu };  // gelu is the exact erf form: x * 0.5 * (1 + erf(x / sqrt(2)))

namespace cpu {
void activation(Activation act, float* x, int64_t n, ThreadPool& pool);
// The same on the calling thread, for a block that is already one task's (a product's epilogue).
void activation_inline(Activation act, float* x, int64_t n);
}  // namespace cpu

namespace reference {
void activation(Activation act, float* x, int64_t n);
}  // namespace reference

#if defined(LONGNET_WITH_CUDA)
namespace cuda {
// x is device memory; the launch is queued on `stream` (a cudaStream_t; nullptr = the default stream).
void activation(Activation act, float* x, int64_t n, void* stream);
}  // namespace cuda
#endif

}  // namespace longnet::kernels
