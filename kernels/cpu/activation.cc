#include "longnet/kernels/activation.h"

#include <cstdint>

#include "cpu/basic_avx2.h"
#include "cpu/cpu_features.h"
#include "cpu/parallel.h"

namespace longnet::kernels::cpu {
namespace {

void relu(float* x, int64_t n) {
  // `x < 0 ? 0 : x` rather than max(x, 0): NaN must stay NaN. The compiler vectorises this loop.
  for (int64_t i = 0; i < n; ++i) {
    x[i] = x[i] < 0.0f ? 0.0f : x[i];
  }
}

}  // namespace

void activation(Activation act, float* x, int64_t n, ThreadPool& pool) {
  if (n <= 0) return;
  const bool simd = has_avx2_fma();
  // Treat the array as rows of one element so parallel_rows hands out blocks of ~16K elements.
  parallel_rows(pool, n, 1, [&](int64_t begin, int64_t end) {
    float* block = x + begin;
    const int64_t count = end - begin;
    if (act == Activation::kRelu) {
      relu(block, count);
    } else if (simd) {
      avx2::gelu(block, count);
    } else {
      reference::activation(act, block, count);  // portable path: std::erfc in double
    }
  });
}

}  // namespace longnet::kernels::cpu
