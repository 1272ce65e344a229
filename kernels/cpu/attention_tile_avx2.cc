#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/attention_tile.h"
#include "cpu/vec_avx2.h"

// AVX2/FMA tile loops. Both products use one 6x16 register block (12 accumulators, as BLIS does for
// sgemm on Haswell-class cores): per step, two 8-float loads of the right operand and six broadcasts of
// the left one feed twelve FMAs.
namespace longnet::kernels::cpu {
namespace {

constexpr int64_t kRows = 6;  // rows of one register block
static_assert(kMicroRows % kRows == 0 && kKeyStrip == 16,
              "the micro-kernels below are written for 6x16 blocks");

// C[6][16] (+)= A[6][k_len] * B[k_len][16]; A rows lda apart, B rows ldb apart, C rows ldc apart.
template <bool kAccumulate>
inline void micro_6x16(int64_t k_len, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                       int64_t ldc) {
  __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
  if constexpr (kAccumulate) {
    c00 = _mm256_loadu_ps(c + 0 * ldc), c01 = _mm256_loadu_ps(c + 0 * ldc + 8);
    c10 = _mm256_loadu_ps(c + 1 * ldc), c11 = _mm256_loadu_ps(c + 1 * ldc + 8);
    c20 = _mm256_loadu_ps(c + 2 * ldc), c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
    c30 = _mm256_loadu_ps(c + 3 * ldc), c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
    c40 = _mm256_loadu_ps(c + 4 * ldc), c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
    c50 = _mm256_loadu_ps(c + 5 * ldc), c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
  } else {
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
  }
  for (int64_t kk = 0; kk < k_len; ++kk) {
    const __m256 b0 = _mm256_loadu_ps(b + kk * ldb);
    const __m256 b1 = _mm256_loadu_ps(b + kk * ldb + 8);
    __m256 a0 = _mm256_broadcast_ss(a + 0 * lda + kk);
    __m256 a1 = _mm256_broadcast_ss(a + 1 * lda + kk);
    c00 = _mm256_fmadd_ps(a0, b0, c00), c01 = _mm256_fmadd_ps(a0, b1, c01);
    c10 = _mm256_fmadd_ps(a1, b0, c10), c11 = _mm256_fmadd_ps(a1, b1, c11);
    a0 = _mm256_broadcast_ss(a + 2 * lda + kk);
    a1 = _mm256_broadcast_ss(a + 3 * lda + kk);
    c20 = _mm256_fmadd_ps(a0, b0, c20), c21 = _mm256_fmadd_ps(a0, b1, c21);
    c30 = _mm256_fmadd_ps(a1, b0, c30), c31 = _mm256_fmadd_ps(a1, b1, c31);
    a0 = _mm256_broadcast_ss(a + 4 * lda + kk);
    a1 = _mm256_broadcast_ss(a + 5 * lda + kk);
    c40 = _mm256_fmadd_ps(a0, b0, c40), c41 = _mm256_fmadd_ps(a0, b1, c41);
    c50 = _mm256_fmadd_ps(a1, b0, c50), c51 = _mm256_fmadd_ps(a1, b1, c51);
  }
  _mm256_storeu_ps(c + 0 * ldc, c00), _mm256_storeu_ps(c + 0 * ldc + 8, c01);
  _mm256_storeu_ps(c + 1 * ldc, c10), _mm256_storeu_ps(c + 1 * ldc + 8, c11);
  _mm256_storeu_ps(c + 2 * ldc, c20), _mm256_storeu_ps(c + 2 * ldc + 8, c21);
  _mm256_storeu_ps(c + 3 * ldc, c30), _mm256_storeu_ps(c + 3 * ldc + 8, c31);
  _mm256_storeu_ps(c + 4 * ldc, c40), _mm256_storeu_ps(c + 4 * ldc + 8, c41);
  _mm256_storeu_ps(c + 5 * ldc, c50), _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}

// Lanes c..c+7 that lie below `valid`.
inline __m256 lanes_below(int64_t c, int64_t valid) {
  return _mm256_castsi256_ps(avx2::tail_mask(valid - c));
}

void scores_avx2(const float* q, int64_t rows, int64_t head_dim, const float* k_strips, int64_t strips,
                 float* scores, int64_t ld_scores) {
  // Strips outer: one 16-key strip (16 * head_dim floats) stays in L1 while every row group uses it.
  for (int64_t s = 0; s < strips; ++s) {
    for (int64_t i = 0; i < rows; i += kRows) {
      micro_6x16<false>(head_dim, q + i * head_dim, head_dim, k_strips + s * head_dim * kKeyStrip, kKeyStrip,
                        scores + i * ld_scores + s * kKeyStrip, ld_scores);
    }
  }
}

void softmax_step_avx2(float* scores, int64_t rows, int64_t cols, int64_t ld_scores, const int64_t* limit,
                       float* m, float* l, float* acc, int64_t dim_padded) {
  const __m256 neg_inf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < rows; ++i) {
    float* row = scores + i * ld_scores;
    const int64_t valid = std::clamp<int64_t>(limit[i], 0, cols);
    if (valid == 0) {
      std::fill(row, row + cols, 0.0f);
      continue;
    }
    __m256 vmax = neg_inf;
    for (int64_t c = 0; c < valid; c += 8) {
      vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(neg_inf, _mm256_loadu_ps(row + c), lanes_below(c, valid)));
    }
    const float new_max = std::max(m[i], avx2::hmax(vmax));
    const float alpha = std::exp(m[i] - new_max);  // 0 when m[i] is still -inf
    const __m256 shift = _mm256_set1_ps(new_max);
    __m256 vsum = _mm256_setzero_ps();
    for (int64_t c = 0; c < cols; c += 8) {
      const __m256 e = avx2::exp(_mm256_sub_ps(_mm256_loadu_ps(row + c), shift));
      const __m256 p = _mm256_and_ps(e, lanes_below(c, valid));
      _mm256_storeu_ps(row + c, p);
      vsum = _mm256_add_ps(vsum, p);
    }
    if (alpha != 1.0f) {
      const __m256 va = _mm256_set1_ps(alpha);
      float* out = acc + i * dim_padded;
      for (int64_t d = 0; d < dim_padded; d += 8)
        _mm256_storeu_ps(out + d, _mm256_mul_ps(_mm256_loadu_ps(out + d), va));
    }
    l[i] = l[i] * alpha + avx2::hsum(vsum);
    m[i] = new_max;
  }
}

void accumulate_values_avx2(const float* p, int64_t rows, int64_t keys, int64_t ld_p, const float* v,
                            float* acc, int64_t dim_padded) {
  // Value columns outer: a keys x 16 column slice of v stays in L1 while every row group uses it.
  for (int64_t c = 0; c < dim_padded; c += kKeyStrip) {
    for (int64_t i = 0; i < rows; i += kRows) {
      micro_6x16<true>(keys, p + i * ld_p, ld_p, v + c, dim_padded, acc + i * dim_padded + c, dim_padded);
    }
  }
}

}  // namespace

const AttentionTileOps& attention_tile_ops_avx2() {
  static constexpr AttentionTileOps ops{scores_avx2, softmax_step_avx2, accumulate_values_avx2};
  return ops;
}

}  // namespace longnet::kernels::cpu
