#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "cpu/basic_avx2.h"
#include "cpu/vec_avx2.h"

namespace longnet::kernels::cpu::avx2 {

// Two passes over x (mean, then the mean squared deviation) rather than E[x^2] - mean^2, which cancels
// badly when |mean| is large next to the spread. y is written only in the last pass, so y == x is fine.
void layer_norm_row(const float* x, const float* gamma, const float* beta, float* y, int64_t dim, float eps) {
  const int64_t body = dim - dim % 8;
  const __m256i tail = tail_mask(dim - body);

  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= body; i += 16) {
    acc0 = _mm256_add_ps(acc0, _mm256_loadu_ps(x + i));
    acc1 = _mm256_add_ps(acc1, _mm256_loadu_ps(x + i + 8));
  }
  if (i < body) acc0 = _mm256_add_ps(acc0, _mm256_loadu_ps(x + i));
  acc0 = _mm256_add_ps(acc0, _mm256_maskload_ps(x + body, tail));  // masked lanes load as 0
  const float mean = hsum(_mm256_add_ps(acc0, acc1)) / static_cast<float>(dim);

  const __m256 vmean = _mm256_set1_ps(mean);
  acc0 = _mm256_setzero_ps();
  acc1 = _mm256_setzero_ps();
  for (i = 0; i + 16 <= body; i += 16) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), vmean);
    const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vmean);
    acc0 = _mm256_fmadd_ps(d0, d0, acc0);
    acc1 = _mm256_fmadd_ps(d1, d1, acc1);
  }
  if (i < body) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vmean);
    acc0 = _mm256_fmadd_ps(d, d, acc0);
  }
  const __m256 d_tail =
      _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + body, tail), vmean), _mm256_castsi256_ps(tail));
  acc0 = _mm256_fmadd_ps(d_tail, d_tail, acc0);
  const float var = hsum(_mm256_add_ps(acc0, acc1)) / static_cast<float>(dim);
  const __m256 rstd = _mm256_set1_ps(1.0f / std::sqrt(var + eps));

  for (i = 0; i < body; i += 8) {
    const __m256 n = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmean), rstd);
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(n, _mm256_loadu_ps(gamma + i), _mm256_loadu_ps(beta + i)));
  }
  if (body < dim) {
    const __m256 n = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + body, tail), vmean), rstd);
    const __m256 out =
        _mm256_fmadd_ps(n, _mm256_maskload_ps(gamma + body, tail), _mm256_maskload_ps(beta + body, tail));
    _mm256_maskstore_ps(y + body, tail, out);
  }
}

}  // namespace longnet::kernels::cpu::avx2
