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

void activation_inline(Activation act, float* x, int64_t n) {
  if (n <= 0) return;
  if (act == Activation::kRelu) {
    relu(x, n);
  } else if (has_avx2_fma()) {
    avx2::gelu(x, n);
  } else {
    reference::activation(act, x, n);  // portable path: std::erfc in double
  }
}

void activation(Activation act, float* x, int64_t n, ThreadPool& pool) {
  if (n <= 0) return;
  // Treat the array as rows of one element so parallel_rows hands out blocks of ~16K elements.
  parallel_rows(pool, n, 1,
                [&](int64_t begin, int64_t end) { activation_inline(act, x + begin, end - begin); });
}

}  // namespace longnet::kernels::cpu
