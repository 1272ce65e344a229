#include "longnet/kernels/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <cassert>
#include <cstdint>

namespace longnet::kernels::cpu {
namespace {

CBLAS_TRANSPOSE to_cblas(Transpose t) {
  return t == Transpose::kYes ? CblasTrans : CblasNoTrans;
}
Transpose flip(Transpose t) {
  return t == Transpose::kYes ? Transpose::kNo : Transpose::kYes;
}
blasint bi(int64_t v) {
  return static_cast<blasint>(v);
}

// C = beta * C for the degenerate products (K == 0 or alpha == 0) that BLAS would also reduce to this.
void scale_c(const GemmShape& s, float* c) {
  for (int64_t i = 0; i < s.m; ++i) {
    float* row = c + i * s.ldc;
    if (s.beta == 0.0f) {
      std::fill(row, row + s.n, 0.0f);
    } else if (s.beta != 1.0f) {
      for (int64_t j = 0; j < s.n; ++j) {
        row[j] *= s.beta;
      }
    }
  }
}

}  // namespace

void gemv(const GemvShape& s, const float* a, const float* x, float* y) {
  assert(validate_gemv(s).ok());
  const int64_t y_len = s.trans == Transpose::kNo ? s.rows : s.cols;
  if (s.rows == 0 || s.cols == 0 || s.alpha == 0.0f) {
    for (int64_t i = 0; i < y_len; ++i) {
      y[i * s.incy] = s.beta == 0.0f ? 0.0f : s.beta * y[i * s.incy];
    }
    return;
  }
  // With beta == 0 some OpenBLAS versions still scale y by 0, which keeps NaN: clear it first.
  if (s.beta == 0.0f) {
    for (int64_t i = 0; i < y_len; ++i) {
      y[i * s.incy] = 0.0f;
    }
  }
  cblas_sgemv(CblasRowMajor, to_cblas(s.trans), bi(s.rows), bi(s.cols), s.alpha, a, bi(s.lda), x, bi(s.incx),
              s.beta, y, bi(s.incy));
}

void gemm(const GemmShape& s, const float* a, const float* b, float* c) {
  assert(validate_gemm(s).ok());
  if (s.m == 0 || s.n == 0) return;
  if (s.k == 0 || s.alpha == 0.0f) {
    scale_c(s, c);
    return;
  }
  if (s.m == 1) {
    // The row of C is op(B)^T times the row of op(A); op(B)^T is B read with the opposite transpose.
    GemvShape v;
    v.trans = flip(s.trans_b);
    v.rows = s.trans_b == Transpose::kNo ? s.k : s.n;
    v.cols = s.trans_b == Transpose::kNo ? s.n : s.k;
    v.alpha = s.alpha;
    v.beta = s.beta;
    v.lda = s.ldb;
    v.incx = s.trans_a == Transpose::kNo ? 1 : s.lda;  // A^T stored K x 1: its column is strided
    v.incy = 1;
    gemv(v, b, a, c);
    return;
  }
  if (s.n == 1) {
    // The column of C is op(A) times the column of op(B).
    GemvShape v;
    v.trans = s.trans_a;
    v.rows = s.trans_a == Transpose::kNo ? s.m : s.k;
    v.cols = s.trans_a == Transpose::kNo ? s.k : s.m;
    v.alpha = s.alpha;
    v.beta = s.beta;
    v.lda = s.lda;
    v.incx = s.trans_b == Transpose::kNo ? s.ldb : 1;
    v.incy = s.ldc;
    gemv(v, a, b, c);
    return;
  }
  cblas_sgemm(CblasRowMajor, to_cblas(s.trans_a), to_cblas(s.trans_b), bi(s.m), bi(s.n), bi(s.k), s.alpha, a,
              bi(s.lda), b, bi(s.ldb), s.beta, c, bi(s.ldc));
}

void gemm_batched(const GemmShape& s, const GemmBatch& batch, const float* a, const float* b, float* c) {
  assert(validate_gemm(s, batch).ok());
  // BLAS already spreads each product over its threads; model-sized products keep them busy.
  for (int64_t i = 0; i < batch.count; ++i) {
    gemm(s, a + i * batch.stride_a, b + i * batch.stride_b, c + i * batch.stride_c);
  }
}

}  // namespace longnet::kernels::cpu
