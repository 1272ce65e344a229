#include "longnet/kernels/gemm.h"

#include <cstdint>

namespace longnet::kernels::reference {
namespace {

// Element (i, j) of op(X) for X stored row-major with leading dimension ld.
double at(const float* x, int64_t ld, Transpose t, int64_t i, int64_t j) {
  return t == Transpose::kNo ? x[i * ld + j] : x[j * ld + i];
}

}  // namespace

void gemm(const GemmShape& s, const float* a, const float* b, float* c) {
  for (int64_t i = 0; i < s.m; ++i) {
    for (int64_t j = 0; j < s.n; ++j) {
      double sum = 0.0;
      for (int64_t p = 0; p < s.k; ++p) {
        sum += at(a, s.lda, s.trans_a, i, p) * at(b, s.ldb, s.trans_b, p, j);
      }
      const int64_t at = i * s.ldc + j;
      const double prior = s.beta == 0.0f ? 0.0 : double{s.beta} * c[at];  // beta == 0: C is not read
      c[at] = static_cast<float>(double{s.alpha} * sum + prior);
    }
  }
}

void gemm_batched(const GemmShape& s, const GemmBatch& batch, const float* a, const float* b, float* c) {
  for (int64_t i = 0; i < batch.count; ++i) {
    gemm(s, a + i * batch.stride_a, b + i * batch.stride_b, c + i * batch.stride_c);
  }
}

void gemv(const GemvShape& s, const float* a, const float* x, float* y) {
  const bool trans = s.trans == Transpose::kYes;
  const int64_t y_len = trans ? s.cols : s.rows;
  const int64_t x_len = trans ? s.rows : s.cols;
  for (int64_t i = 0; i < y_len; ++i) {
    double sum = 0.0;
    for (int64_t p = 0; p < x_len; ++p) {
      const double aij = trans ? a[p * s.lda + i] : a[i * s.lda + p];
      sum += aij * x[p * s.incx];
    }
    const int64_t at = i * s.incy;
    const double prior = s.beta == 0.0f ? 0.0 : double{s.beta} * y[at];
    y[at] = static_cast<float>(double{s.alpha} * sum + prior);
  }
}

}  // namespace longnet::kernels::reference
