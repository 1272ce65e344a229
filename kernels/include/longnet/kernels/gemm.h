#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "absl/status/status.h"
#include "longnet/kernels/activation.h"
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

// W (n x k: a torch Linear's weight, out_features x in_features) repacked once for matmul_panels: panels
// of kPanelWidth rows of W, each stored k-major (k x 16 floats: for every p, W[16b .. 16b+15][p]), the
// last panel padded with zeros. A product then reads W in the order it multiplies, one vector per p.
inline constexpr int64_t kPanelWidth = 16;
int64_t panel_floats(int64_t n, int64_t k);  // the packed size: ceil(n / 16) * 16 * k
// Writes panel_floats(n, k) floats at `panels` from W (rows ldw >= k apart).
void pack_panels(const float* w, int64_t n, int64_t k, int64_t ldw, float* panels);

// C = A W^T, or C += A W^T when accumulate: A is m x k (rows lda apart), W is n x k given as its panels
// (pack_panels), C is m x n (rows ldc apart). With a bias (n floats) matmul_panels adds it to every row of
// C first: C = bias + A W^T, or C = (C + bias) + A W^T.
struct MatmulPanelsShape {
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  int64_t lda = 0;
  int64_t ldc = 0;
  bool accumulate = false;
};

// InvalidArgument naming the field when a dimension is negative, a leading dimension too small, or a
// dimension too large for the BLAS integer type. The kernels assume shapes that pass these checks.
absl::Status validate_gemm(const GemmShape& shape);
absl::Status validate_gemm(const GemmShape& shape, const GemmBatch& batch);
absl::Status validate_gemv(const GemvShape& shape);
absl::Status validate_matmul_panels(const MatmulPanelsShape& shape);

namespace cpu {
// Picks the route: cblas_sgemv when M == 1 or N == 1, cblas_sgemm otherwise. BLAS runs its own threads.
void gemm(const GemmShape& shape, const float* a, const float* b, float* c);
void gemm_batched(const GemmShape& shape, const GemmBatch& batch, const float* a, const float* b, float* c);
void gemv(const GemvShape& shape, const float* a, const float* x, float* y);

// The product of MatmulPanelsShape on our own SIMD loops and `pool`: register tiles of 12 rows x 32
// columns (AVX-512; 6 x 16 on AVX2) take one broadcast of A and one vector of each panel per step of k,
// with no reduction across lanes. Every element of C is one running sum over k in order, so the result
// does not depend on m, on the other rows, or on the thread count: a sequence's logits are the same bits
// whatever else shares its batch.
// With an activation, each block of C gets it as soon as its sums are done (while in cache), where a pass
// of cpu::activation afterwards would read all of C again: the same function per element, so the same bits.
void matmul_panels(const MatmulPanelsShape& shape, const float* a, const float* panels, float* c,
                   ThreadPool& pool, const float* bias = nullptr,
                   std::optional<Activation> activation = std::nullopt);

// One product of matmul_panels_together, with matmul_panels' arguments.
struct MatmulPanelsJob {
  MatmulPanelsShape shape;
  const float* a = nullptr;
  const float* panels = nullptr;
  float* c = nullptr;
  const float* bias = nullptr;
  std::optional<Activation> activation;
};

// Independent products (no C is another's A) in one parallel loop: their units are handed out as one
// sequence, so the threads meet once at the end instead of once per product (an attention layer's q, k
// and v projections). Each C is the same bits as matmul_panels gives it alone.
void matmul_panels_together(std::span<const MatmulPanelsJob> jobs, ThreadPool& pool);
}  // namespace cpu

namespace reference {
// Triple loops accumulating in double.
void gemm(const GemmShape& shape, const float* a, const float* b, float* c);
void gemm_batched(const GemmShape& shape, const GemmBatch& batch, const float* a, const float* b, float* c);
void gemv(const GemvShape& shape, const float* a, const float* x, float* y);
}  // namespace reference

}  // namespace longnet::kernels
