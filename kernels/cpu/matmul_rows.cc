#include "cpu/matmul_rows.h"

#include <algorithm>
#include <cassert>

#include "cpu/cpu_features.h"
#include "longnet/kernels/gemm.h"

namespace longnet::kernels::cpu {
namespace {

MatmulStripFn strip_fn() {
  static const MatmulStripFn fn = has_avx512()     ? matmul_strip_avx512
                                  : has_avx2_fma() ? matmul_strip_avx2
                                                   : matmul_strip_generic;
  return fn;
}

// A task covers at least this many multiply-adds (a few microseconds), so that a small product (one row,
// a narrow layer) stays on the calling thread instead of paying for a hand-off.
constexpr int64_t kMinTaskMacs = 1 << 16;

}  // namespace

void matmul_strip_generic(const float* a, int64_t m, int64_t lda, const float* const* w, int64_t k, float* c,
                          int64_t ldc, int64_t cols, bool accumulate) {
  for (int64_t i = 0; i < m; ++i) {
    const float* x = a + i * lda;
    for (int64_t j = 0; j < cols; ++j) {
      float sum = 0.0f;
      for (int64_t p = 0; p < k; ++p)
        sum += x[p] * w[j][p];
      float& out = c[i * ldc + j];
      out = accumulate ? out + sum : sum;
    }
  }
}

void matmul_rows(const MatmulRowsShape& s, const float* a, const float* w, float* c, ThreadPool& pool) {
  assert(validate_matmul_rows(s).ok());
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0) {
    if (!s.accumulate) {
      for (int64_t i = 0; i < s.m; ++i)
        std::fill_n(c + i * s.ldc, s.n, 0.0f);
    }
    return;
  }
  const int64_t strips = (s.n + kMatmulStrip - 1) / kMatmulStrip;
  const int64_t strip_macs = s.m * s.k * kMatmulStrip;
  // Several tasks per thread keep the dynamic hand-out balanced; none smaller than kMinTaskMacs.
  const int64_t balanced = (strips + 4 * pool.num_threads() - 1) / (4 * pool.num_threads());
  const int64_t per_task = std::max(balanced, (kMinTaskMacs + strip_macs - 1) / strip_macs);
  const int64_t tasks = (strips + per_task - 1) / per_task;
  const MatmulStripFn fn = strip_fn();
  pool.parallel_for(tasks, [&](int64_t task, int /*thread*/) {
    const int64_t end = std::min(strips, (task + 1) * per_task);
    for (int64_t strip = task * per_task; strip < end; ++strip) {
      const int64_t n0 = strip * kMatmulStrip;
      const int64_t cols = std::min(kMatmulStrip, s.n - n0);
      const float* rows[kMatmulStrip];
      for (int64_t j = 0; j < kMatmulStrip; ++j)
        rows[j] = w + (n0 + std::min(j, cols - 1)) * s.ldw;  // a short strip repeats its last row
      fn(a, s.m, s.lda, rows, s.k, c + n0, s.ldc, cols, s.accumulate);
    }
  });
}

}  // namespace longnet::kernels::cpu
