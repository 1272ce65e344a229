#pragma once

#include <cstdint>

#include "longnet/kernels/thread_pool.h"

// LayerNorm over the last dimension: y = (x - mean) / sqrt(var + eps) * gamma + beta, rows of `dim`
// floats; x and y rows are `stride` floats apart (y may alias x).
namespace longnet::kernels {

struct LayerNormShape {
  int64_t rows = 0;
  int64_t dim = 0;
  int64_t x_stride = 0;
  int64_t y_stride = 0;
  float eps = 1e-5f;
};

namespace cpu {
void layer_norm(const LayerNormShape& shape, const float* x, const float* gamma, const float* beta, float* y,
                ThreadPool& pool);
}  // namespace cpu

namespace reference {
void layer_norm(const LayerNormShape& shape, const float* x, const float* gamma, const float* beta, float* y);
}  // namespace reference

#if defined(LONGNET_WITH_CUDA)
namespace cuda {
// Device pointers; queued on `stream` (a cudaStream_t; nullptr = the default stream).
void layer_norm(const LayerNormShape& shape, const float* x, const float* gamma, const float* beta, float* y,
                void* stream);
}  // namespace cuda
#endif

}  // namespace longnet::kernels
