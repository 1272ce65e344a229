#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "cpu/basic_avx2.h"
#include "cpu/vec_avx2.h"

namespace longnet::kernels::cpu::avx2 {

float softmax_row(const float* x, float* y, int64_t dim) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int64_t body = dim - dim % 8;
  const __m256i tail = tail_mask(dim - body);
  const __m256 tail_f = _mm256_castsi256_ps(tail);

  __m256 vmax = _mm256_set1_ps(neg_inf);
  for (int64_t i = 0; i < body; i += 8) {
    vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
  }
  vmax = _mm256_max_ps(vmax,
                       _mm256_blendv_ps(_mm256_set1_ps(neg_inf), _mm256_maskload_ps(x + body, tail), tail_f));
  const float max = hmax(vmax);
  if (max == neg_inf) {
    // Every entry is masked: no distribution exists. Defined as all zeros with lse = -inf.
    for (int64_t i = 0; i < dim; ++i) {
      y[i] = 0.0f;
    }
    return neg_inf;
  }

  const __m256 shift = _mm256_set1_ps(max);
  __m256 vsum = _mm256_setzero_ps();
  for (int64_t i = 0; i < body; i += 8) {
    const __m256 e = exp(_mm256_sub_ps(_mm256_loadu_ps(x + i), shift));
    _mm256_storeu_ps(y + i, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  if (body < dim) {
    const __m256 e = _mm256_and_ps(exp(_mm256_sub_ps(_mm256_maskload_ps(x + body, tail), shift)), tail_f);
    _mm256_maskstore_ps(y + body, tail, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  const float sum = hsum(vsum);  // >= 1: the maximum contributes e^0

  const __m256 inv = _mm256_set1_ps(1.0f / sum);
  for (int64_t i = 0; i < body; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), inv));
  }
  if (body < dim) _mm256_maskstore_ps(y + body, tail, _mm256_mul_ps(_mm256_maskload_ps(y + body, tail), inv));
  return max + std::log(sum);
}

}  // namespace longnet::kernels::cpu::avx2
