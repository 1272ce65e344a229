#include "longnet/kernels/layer_norm.h"

#include <algorithm>
#include <cstdint>

#include "cpu/basic_avx2.h"
#include "cpu/cpu_features.h"
#include "cpu/parallel.h"

namespace longnet::kernels::cpu {

void layer_norm(const LayerNormShape& shape, const float* x, const float* gamma, const float* beta, float* y,
                ThreadPool& pool) {
  if (shape.rows <= 0 || shape.dim <= 0) return;
  const bool simd = has_avx2_fma();
  parallel_rows(pool, shape.rows, shape.dim, [&](int64_t begin, int64_t end) {
    if (simd) {
      for (int64_t r = begin; r < end; ++r) {
        avx2::layer_norm_row(x + r * shape.x_stride, gamma, beta, y + r * shape.y_stride, shape.dim,
                             shape.eps);
      }
    } else {
      // Without AVX2 the reference (double accumulation) is the portable path, run per block of rows.
      LayerNormShape block = shape;
      block.rows = end - begin;
      reference::layer_norm(block, x + begin * shape.x_stride, gamma, beta, y + begin * shape.y_stride);
    }
  });
}

}  // namespace longnet::kernels::cpu
