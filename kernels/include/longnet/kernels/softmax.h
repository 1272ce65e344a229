#pragma once

#include <cstdint>

#include "longnet/kernels/thread_pool.h"

// Row-wise softmax over `dim` floats, stabilised by subtracting the row maximum. Optionally writes the
// natural log-sum-exp of each row (lse = max + log(sum exp(x - max))), the quantity attention merges by.
namespace longnet::kernels {

// x and y rows are x_stride / y_stride floats apart; y may alias x (same pointer and stride).
// Entries may be -inf (masked out): they get probability exactly 0. A row whose entries are all -inf
// (or a row with dim == 0) has no distribution: its outputs are 0 and its lse is -inf, never NaN.
// NaN or +inf entries make their row meaningless (NaN, in practice).
struct SoftmaxShape {
  int64_t rows = 0;
  int64_t dim = 0;
  int64_t x_stride = 0;
  int64_t y_stride = 0;
};

namespace cpu {
// `lse` (rows floats, contiguous) may be nullptr.
void softmax(const SoftmaxShape& shape, const float* x, float* y, float* lse, ThreadPool& pool);
}  // namespace cpu

namespace reference {
void softmax(const SoftmaxShape& shape, const float* x, float* y, float* lse);
}  // namespace reference

#if defined(LONGNET_WITH_CUDA)
namespace cuda {
// Device pointers (`lse` may be nullptr); queued on `stream` (a cudaStream_t; nullptr = the default
// stream). Launch errors stay in the runtime's error state, as for layer_norm().
void softmax(const SoftmaxShape& shape, const float* x, float* y, float* lse, void* stream);
}  // namespace cuda
#endif

}  // namespace longnet::kernels
