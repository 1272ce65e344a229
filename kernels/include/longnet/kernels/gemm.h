#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "longnet/kernels/thread_pool.h"

// Row-major single-precision matrix products: C = alpha * op(A) op(B) + beta * C, with op(A) M x K,
// op(B) K x N and C M x N. The CPU path goes through BLAS (cblas_sgemm, or cblas_sgemv for the
// single-row and single-column products where sgemm is slow).
namespace longnet::kernels {

enum class Transpose { kNo, kYes };

// Leading dimensions are row strides in floats, BLAS-style: A is stored M x K (lda >= K) when
// trans_a == kNo and K x M (lda >= M) when kYes; likewise B is K x N (ldb >= N) or N x K (ldb >= K);
// C is M x N with ldc >= N. beta == 0 means C is write-only (NaN or garbage in C does not leak out).
struct GemmShape {
  Transpose trans_a = Transpose::kNo;
  Transpose trans_b = Transpose::kNo;
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  float alpha = 1.0f;
  float beta = 0.0f;
  int64_t lda = 0;
  int64_t ldb = 0;
  int64_t ldc = 0;
};

// `count` independent products; operand i starts stride_* floats after operand i-1. A stride of 0
// shares one operand across the batch (e.g. one weight matrix for every head).
struct GemmBatch {
  int64_t count = 1;
  int64_t stride_a = 0;
  int64_t stride_b = 0;
  int64_t stride_c = 0;
};

// y = alpha * op(A) x + beta * y with A stored rows x cols (lda >= cols); op(A) is A (kNo: x has cols
// entries, y has rows) or A^T (kYes: x has rows entries, y has cols). incx/incy are element strides (> 0).
struct GemvShape {
  Transpose trans = Transpose::kNo;
  int64_t rows = 0;
  int64_t cols = 0;
  float alpha = 1.0f;
  float beta = 0.0f;
  int64_t lda = 0;
  int64_t incx = 1;
  int64_t incy = 1;
};

// C = A W^T, or C += A W^T when accumulate: A is m x k (rows lda apart), W is n x k (rows ldw apart: a
// torch Linear's weight, out_features x in_features), C is m x n (rows ldc apart).
struct MatmulRowsShape {
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  int64_t lda = 0;
  int64_t ldw = 0;
  int64_t ldc = 0;
  bool accumulate = false;
};

// InvalidArgument naming the field when a dimension is negative, a leading dimension too small, or a
// dimension too large for the BLAS integer type. The kernels assume shapes that pass these checks.
absl::Status validate_gemm(const GemmShape& shape);
absl::Status validate_gemm(const GemmShape& shape, const GemmBatch& batch);
absl::Status validate_gemv(const GemvShape& shape);
absl::Status validate_matmul_rows(const MatmulRowsShape& shape);

namespace cpu {
// Picks the route: cblas_sgemv when M == 1 or N == 1, cblas_sgemm otherwise. BLAS runs its own threads.
void gemm(const GemmShape& shape, const float* a, const float* b, float* c);
void gemm_batched(const GemmShape& shape, const GemmBatch& batch, const float* a, const float* b, float* c);
void gemv(const GemvShape& shape, const float* a, const float* x, float* y);

// The product of MatmulRowsShape for few rows of A (decode steps of a batch: up to kMatmulRowsMax), on our
// own SIMD loops and `pool`: W is read where it lies (no packed copy), each strip of 4 of its rows once
// from memory for all rows of A, with k along the vector lanes. BLAS would repack W on every call, which
// costs as much as the arithmetic at these sizes. Deterministic: the result does not depend on the
// thread count.
inline constexpr int64_t kMatmulRowsMax = 64;
void matmul_rows(const MatmulRowsShape& shape, const float* a, const float* w, float* c, ThreadPool& pool);
}  // namespace cpu

namespace reference {
// Triple loops accumulating in double.
void gemm(const GemmShape& shape, const float* a, const float* b, float* c);
void gemm_batched(const GemmShape& shape, const GemmBatch& batch, const float* a, const float* b, float* c);
void gemv(const GemvShape& shape, const float* a, const float* x, float* y);
}  // namespace reference

}  // namespace longnet::kernels
