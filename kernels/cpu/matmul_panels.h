#pragma once

#include <cstdint>

// The per-ISA loops of matmul_panels (gemm.h): every row of A against one or two adjacent panels of W.
namespace longnet::kernels::cpu {

// At most this many panels per call, and more than 2 only for the few rows of a matrix-vector product.
inline constexpr int kMaxPanelsPerRowCall = 8;

// For i < m and j < cols (cols <= kPanelWidth * count, 1 <= count <= kMaxPanelsPerRowCall; count > 2
// is meant for m <= 2, where the loop takes each row alone): c[i * ldc + j] (+)= the sum over
// p < k of a[i * lda + p] * panels[(j / 16) * k * 16 + p * 16 + j % 16]. Each result is one running sum
// over p in order, so a row's result does not depend on m, the tiling, or the thread that computes it.
// `next` is the panel the caller hands over next (nullptr if none): a loop may prefetch it, never reads it.
using MatmulPanelsFn = void (*)(const float* a, int64_t m, int64_t lda, const float* panels, int64_t k,
                                int count, float* c, int64_t ldc, int64_t cols, bool accumulate,
                                const float* next);

void matmul_panels_avx512(const float* a, int64_t m, int64_t lda, const float* panels, int64_t k, int count,
                          float* c, int64_t ldc, int64_t cols, bool accumulate, const float* next);
void matmul_panels_avx2(const float* a, int64_t m, int64_t lda, const float* panels, int64_t k, int count,
                        float* c, int64_t ldc, int64_t cols, bool accumulate, const float* next);
void matmul_panels_generic(const float* a, int64_t m, int64_t lda, const float* panels, int64_t k, int count,
                           float* c, int64_t ldc, int64_t cols, bool accumulate, const float* next);

}  // namespace longnet::kernels::cpu
