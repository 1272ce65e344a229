#include "longnet/kernels/softmax.h"

#include <cstdint>
#include <limits>

#include "cpu/basic_avx2.h"
#include "cpu/cpu_features.h"
#include "cpu/parallel.h"

namespace longnet::kernels::cpu {

void softmax(const SoftmaxShape& shape, const float* x, float* y, float* lse, ThreadPool& pool) {
  if (shape.rows <= 0) return;
  if (shape.dim <= 0) {
    if (lse != nullptr) {
      for (int64_t r = 0; r < shape.rows; ++r) {
        lse[r] = -std::numeric_limits<float>::infinity();
      }
    }
    return;
  }
  const bool simd = has_avx2_fma();
  parallel_rows(pool, shape.rows, shape.dim, [&](int64_t begin, int64_t end) {
    if (simd) {
      for (int64_t r = begin; r < end; ++r) {
        const float row_lse = avx2::softmax_row(x + r * shape.x_stride, y + r * shape.y_stride, shape.dim);
        if (lse != nullptr) lse[r] = row_lse;
      }
    } else {
      SoftmaxShape block = shape;  // portable path: the reference (double) per block of rows
      block.rows = end - begin;
      reference::softmax(block, x + begin * shape.x_stride, y + begin * shape.y_stride,
                         lse == nullptr ? nullptr : lse + begin);
    }
  });
}

}  // namespace longnet::kernels::cpu
