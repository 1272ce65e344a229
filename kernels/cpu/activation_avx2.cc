#include <immintrin.h>

#include <cstdint>

#include "cpu/basic_avx2.h"
#include "cpu/vec_avx2.h"

namespace longnet::kernels::cpu::avx2 {
namespace {

// gelu(x) = x/2 * (1 + erf(x/sqrt2)) = x/2 * (2 - E) for x >= 0 and x/2 * E for x < 0, where
// E = erfc(|x|/sqrt2). Writing it through erfc keeps the negative tail accurate in relative terms
// (1 + erf(x) in float cancels to nothing there).
//
// erfc(z) = t * exp(-z^2 + P(s)), with t = 2/(2+z) and s = a t + b mapping t over [2/11.5, 1] (z in
// [0, 9.5]) onto [-1, 1]. P is a degree-9 Chebyshev fit of log(erfc(z)/t) + z^2, 5e-8 absolute, i.e.
// relative in erfc. z^2 = x^2/2 is split exactly (FMA) into hi + lo so the large part enters the
// exponential exactly. Overall error: about 3e-7 relative to gelu.
__m256 gelu8(__m256 x) {
  const __m256 abs_x = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 z = _mm256_mul_ps(abs_x, _mm256_set1_ps(0.70710678118654752f));
  const __m256 t = _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(_mm256_set1_ps(2.0f), z));
  const __m256 s =
      _mm256_fmadd_ps(t, _mm256_set1_ps(2.4210526943206787f), _mm256_set1_ps(-1.4210525751113892f));
  __m256 p = _mm256_set1_ps(5.011638859286904e-05f);
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(7.225340959848836e-05f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-0.0004967175773344934f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-0.0002458406670484692f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(0.0035364567302167416f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-0.0008711661212146282f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-0.028741445392370224f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(0.014718656428158283f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(0.56561279296875f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-0.5536350607872009f));

  const __m256 half = _mm256_set1_ps(0.5f);
  const __m256 xx = _mm256_mul_ps(x, x);
  const __m256 z2_hi = _mm256_mul_ps(xx, half);                         // exact halving
  const __m256 z2_lo = _mm256_mul_ps(_mm256_fmsub_ps(x, x, xx), half);  // the rounding error of x*x
  // Past |x| = 13, erfc(z) < 1e-38: gelu is x above and rounds to -0 below (limit of x * 0 at -inf too).
  const __m256 beyond = _mm256_cmp_ps(abs_x, _mm256_set1_ps(13.0f), _CMP_GT_OQ);
  const __m256 z2_hi_safe = _mm256_andnot_ps(beyond, z2_hi);  // keep exp's argument in range
  const __m256 e =
      _mm256_mul_ps(t, exp_split(_mm256_sub_ps(_mm256_setzero_ps(), z2_hi_safe), _mm256_sub_ps(p, z2_lo)));
  const __m256 erfc_z = _mm256_andnot_ps(beyond, e);

  const __m256 negative = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  const __m256 phi2 = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(2.0f), erfc_z), erfc_z, negative);
  const __m256 y = _mm256_mul_ps(_mm256_mul_ps(half, x), phi2);
  // -inf * 0 would be NaN: the far negative side is -0 outright.
  const __m256 far_negative = _mm256_and_ps(beyond, negative);
  return _mm256_blendv_ps(y, _mm256_set1_ps(-0.0f), far_negative);
}

}  // namespace

void gelu(float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(x + i, gelu8(_mm256_loadu_ps(x + i)));
  }
  if (i < n) {
    const __m256i tail = tail_mask(n - i);
    _mm256_maskstore_ps(x + i, tail, gelu8(_mm256_maskload_ps(x + i, tail)));
  }
}

}  // namespace longnet::kernels::cpu::avx2
