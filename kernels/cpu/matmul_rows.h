#pragma once

#include <cstdint>

// The per-ISA loops of matmul_rows (gemm.h): one strip of kMatmulStrip rows of W against every row of A.
namespace longnet::kernels::cpu {

inline constexpr int64_t kMatmulStrip = 4;

// For i < m and j < cols (cols <= kMatmulStrip): c[i * ldc + j] (+)= sum_p a[i * lda + p] * w[j][p], p < k.
// All kMatmulStrip pointers of w are read (a caller with cols < kMatmulStrip repeats a valid row); only
// the first `cols` results are stored.
using MatmulStripFn = void (*)(const float* a, int64_t m, int64_t lda, const float* const* w, int64_t k,
                               float* c, int64_t ldc, int64_t cols, bool accumulate);

void matmul_strip_avx512(const float* a, int64_t m, int64_t lda, const float* const* w, int64_t k, float* c,
                         int64_t ldc, int64_t cols, bool accumulate);
void matmul_strip_avx2(const float* a, int64_t m, int64_t lda, const float* const* w, int64_t k, float* c,
                       int64_t ldc, int64_t cols, bool accumulate);
void matmul_strip_generic(const float* a, int64_t m, int64_t lda, const float* const* w, int64_t k, float* c,
                          int64_t ldc, int64_t cols, bool accumulate);

}  // namespace longnet::kernels::cpu
