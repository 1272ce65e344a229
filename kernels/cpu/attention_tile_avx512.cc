#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/attention_tile.h"
#include "cpu/exp_polynomial.h"

// GCC 12's own AVX-512 intrinsics (the reductions, roundscale) start from _mm512_undefined_ps() and
// trip -Wmaybe-uninitialized when inlined; the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// AVX-512 tile loops. A register block is 12 rows x 32 columns (24 zmm accumulators of 16 floats): per
// step, two loads of the right operand and twelve broadcasts of the left one feed 24 FMAs. A 12 x 16
// block finishes an odd number of 16-column strips.
namespace longnet::kernels::cpu {
namespace {

constexpr int64_t kRows = 12;
static_assert(kMicroRows % kRows == 0 && kKeyStrip == 16,
              "the micro-kernels below are written for 12-row blocks");

// C[12][16 * kVecs] (+)= A[12][k_len] * B[k_len][16 * kVecs]. Row kk of B is kVecs vectors of 16 floats at
// b + kk * ldb + v * b_vec_stride; A rows are lda apart, C rows ldc apart.
template <int kVecs, bool kAccumulate>
inline void micro_block(int64_t k_len, const float* a, int64_t lda, const float* b, int64_t ldb,
                        int64_t b_vec_stride, float* c, int64_t ldc) {
  __m512 acc[kRows][kVecs];
#pragma GCC unroll 12
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < kVecs; ++v) {
      acc[i][v] = kAccumulate ? _mm512_loadu_ps(c + i * ldc + v * kKeyStrip) : _mm512_setzero_ps();
    }
  }
  for (int64_t kk = 0; kk < k_len; ++kk) {
    __m512 bv[kVecs];
#pragma GCC unroll 2
    for (int v = 0; v < kVecs; ++v)
      bv[v] = _mm512_loadu_ps(b + kk * ldb + v * b_vec_stride);
#pragma GCC unroll 12
    for (int i = 0; i < kRows; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i * lda + kk]);
#pragma GCC unroll 2
      for (int v = 0; v < kVecs; ++v)
        acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < kVecs; ++v)
      _mm512_storeu_ps(c + i * ldc + v * kKeyStrip, acc[i][v]);
  }
}

// e^x for x <= 0 (exp_polynomial.h), with 2^n applied by scalef, which goes to 0 smoothly far below the
// float range.
inline __m512 exp_nonpositive(__m512 x) {
  namespace c = exp_polynomial;
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));  // e^-104 is 0 in float; keeps n in range
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(c::kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_fnmadd_ps(n, _mm512_set1_ps(c::kLn2Hi), x);
  f = _mm512_fnmadd_ps(n, _mm512_set1_ps(c::kLn2Lo), f);
  __m512 p = _mm512_set1_ps(c::kC6);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c::kC5));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c::kC4));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c::kC3));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c::kC2));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c::kC1));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c::kC0));
  return _mm512_scalef_ps(p, n);
}

// Lanes c..c+15 that lie below `valid`.
inline __mmask16 lanes_below(int64_t c, int64_t valid) {
  const int64_t n = std::clamp<int64_t>(valid - c, 0, 16);
  return static_cast<__mmask16>((1u << n) - 1u);
}

void scores_avx512(const float* q, int64_t rows, int64_t head_dim, const float* k_strips, int64_t strips,
                   float* scores, int64_t ld_scores) {
  const int64_t strip_floats = head_dim * kKeyStrip;
  // Strips outer: the strips in use stay in L1 while every row block reads them.
  int64_t s = 0;
  for (; s + 2 <= strips; s += 2) {
    for (int64_t i = 0; i < rows; i += kRows) {
      micro_block<2, false>(head_dim, q + i * head_dim, head_dim, k_strips + s * strip_floats, kKeyStrip,
                            strip_floats, scores + i * ld_scores + s * kKeyStrip, ld_scores);
    }
  }
  if (s < strips) {
    for (int64_t i = 0; i < rows; i += kRows) {
      micro_block<1, false>(head_dim, q + i * head_dim, head_dim, k_strips + s * strip_floats, kKeyStrip,
                            strip_floats, scores + i * ld_scores + s * kKeyStrip, ld_scores);
    }
  }
}

void softmax_step_avx512(float* scores, int64_t rows, int64_t cols, int64_t ld_scores, const int64_t* limit,
                         float* m, float* l, float* acc, int64_t dim_padded) {
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < rows; ++i) {
    float* row = scores + i * ld_scores;
    const int64_t valid = std::clamp<int64_t>(limit[i], 0, cols);
    if (valid == 0) {
      std::fill(row, row + cols, 0.0f);
      continue;
    }
    __m512 vmax = neg_inf;
    for (int64_t c = 0; c < valid; c += kKeyStrip) {
      vmax = _mm512_mask_max_ps(vmax, lanes_below(c, valid), vmax, _mm512_loadu_ps(row + c));
    }
    const float new_max = std::max(m[i], _mm512_reduce_max_ps(vmax));
    const float alpha = std::exp(m[i] - new_max);  // 0 when m[i] is still -inf
    const __m512 shift = _mm512_set1_ps(new_max);
    __m512 vsum = _mm512_setzero_ps();
    for (int64_t c = 0; c < cols; c += kKeyStrip) {
      const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(row + c), shift));
      const __m512 p = _mm512_maskz_mov_ps(lanes_below(c, valid), e);
      _mm512_storeu_ps(row + c, p);
      vsum = _mm512_add_ps(vsum, p);
    }
    if (alpha != 1.0f) {
      const __m512 va = _mm512_set1_ps(alpha);
      float* out = acc + i * dim_padded;
      for (int64_t d = 0; d < dim_padded; d += kKeyStrip) {
        _mm512_storeu_ps(out + d, _mm512_mul_ps(_mm512_loadu_ps(out + d), va));
      }
    }
    l[i] = l[i] * alpha + _mm512_reduce_add_ps(vsum);
    m[i] = new_max;
  }
}

void accumulate_values_avx512(const float* p, int64_t rows, int64_t keys, int64_t ld_p, const float* v,
                              float* acc, int64_t dim_padded) {
  // Value columns outer: a keys x 32 column slice of v stays in L1 while every row block uses it.
  int64_t c = 0;
  for (; c + 2 * kKeyStrip <= dim_padded; c += 2 * kKeyStrip) {
    for (int64_t i = 0; i < rows; i += kRows) {
      micro_block<2, true>(keys, p + i * ld_p, ld_p, v + c, dim_padded, kKeyStrip, acc + i * dim_padded + c,
                           dim_padded);
    }
  }
  if (c < dim_padded) {
    for (int64_t i = 0; i < rows; i += kRows) {
      micro_block<1, true>(keys, p + i * ld_p, ld_p, v + c, dim_padded, kKeyStrip, acc + i * dim_padded + c,
                           dim_padded);
    }
  }
}

}  // namespace

const AttentionTileOps& attention_tile_ops_avx512() {
  static constexpr AttentionTileOps ops{scores_avx512, softmax_step_avx512, accumulate_values_avx512};
  return ops;
}

}  // namespace longnet::kernels::cpu
