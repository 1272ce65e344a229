#pragma once

// Small AVX2/FMA helpers shared by the basic kernels. Include only from *_avx2.cc files: these
// functions are compiled for AVX2 and must never run on a processor without it.
#include <immintrin.h>

#include <cstdint>

#include "cpu/exp_polynomial.h"

namespace longnet::kernels::cpu::avx2 {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// Lanes [0, count) set, for loads and stores of the last count < 8 elements of a row.
inline __m256i tail_mask(int64_t count) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), lane);
}

// e^(a + b) for a + b in [-87.3, 88.3], where a may be large and b is small (|b| of order 1). a enters
// the range reduction a - n ln2 on its own, where it is exact, so its rounding error does not grow with
// |a| (one rounded argument a + b would be off by |a| * 2^-24, i.e. 5e-6 relative at a = -80).
// The polynomial: exp_polynomial.h.
inline __m256 exp_split(__m256 a, __m256 b) {
  namespace c = exp_polynomial;
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(_mm256_add_ps(a, b), _mm256_set1_ps(c::kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(c::kLn2Hi), a);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(c::kLn2Lo), _mm256_add_ps(r, b));
  __m256 p = _mm256_set1_ps(c::kC6);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c::kC5));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c::kC4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c::kC3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c::kC2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c::kC1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c::kC0));
  const __m256i exponent =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(exponent));
}

// e^x for any x: 0 below -87.3 (where float would go subnormal; -inf gives exactly 0), NaN stays NaN.
inline __m256 exp(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3f);
  // max/min return their second operand when one is NaN: x goes second so NaN survives the clamp.
  const __m256 clamped = _mm256_min_ps(_mm256_set1_ps(88.3f), _mm256_max_ps(lo, x));
  const __m256 e = exp_split(clamped, _mm256_setzero_ps());
  return _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), e);
}

}  // namespace longnet::kernels::cpu::avx2
