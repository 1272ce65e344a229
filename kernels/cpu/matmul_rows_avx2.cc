#include <immintrin.h>

#include "cpu/matmul_rows.h"

// AVX2/FMA strip loop: tiles of 2 rows of A x 4 rows of W, the reduction dimension along the 8 lanes. Per
// step of 8: four loads of W and two of A feed 8 FMAs into 8 accumulators (13 of 16 registers in use);
// the lanes are summed once at the end of the row.
namespace longnet::kernels::cpu {
namespace {

constexpr int kTileRows = 2;

// [sum a, sum b, sum c, sum d].
inline __m128 sum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// Lanes below `valid` (0 < valid < 8) set, for the masked tail.
inline __m256i tail_mask(int64_t valid) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(valid)), lane);
}

// acc[i][j] += a[i][p..] * w[j][p..] for one vector of columns, loaded by `load`.
template <int kRows, typename Load>
inline void step(__m256 (&acc)[kRows][4], const float* const* w, const float* a, int64_t lda, int64_t p,
                 Load load) {
  const __m256 b0 = load(w[0] + p);
  const __m256 b1 = load(w[1] + p);
  const __m256 b2 = load(w[2] + p);
  const __m256 b3 = load(w[3] + p);
  for (int i = 0; i < kRows; ++i) {
    const __m256 x = load(a + i * lda + p);
    acc[i][0] = _mm256_fmadd_ps(x, b0, acc[i][0]);
    acc[i][1] = _mm256_fmadd_ps(x, b1, acc[i][1]);
    acc[i][2] = _mm256_fmadd_ps(x, b2, acc[i][2]);
    acc[i][3] = _mm256_fmadd_ps(x, b3, acc[i][3]);
  }
}

template <int kRows>
inline void tile(const float* a, int64_t lda, const float* const* w, int64_t k, float* c, int64_t ldc,
                 int64_t cols, bool accumulate) {
  __m256 acc[kRows][4];
  for (int i = 0; i < kRows; ++i)
    acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = _mm256_setzero_ps();
  // Full steps load plainly; the last k % 8 columns through a mask (masked-off lanes are not read).
  const auto full = [](const float* x) { return _mm256_loadu_ps(x); };
  int64_t p = 0;
  for (; p + 8 <= k; p += 8)
    step<kRows>(acc, w, a, lda, p, full);
  if (p < k) {
    const __m256i mask = tail_mask(k - p);
    step<kRows>(acc, w, a, lda, p, [mask](const float* x) { return _mm256_maskload_ps(x, mask); });
  }
  for (int i = 0; i < kRows; ++i) {
    __m128 sums = sum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
    float* row = c + i * ldc;
    if (cols == 4) {
      if (accumulate) sums = _mm_add_ps(sums, _mm_loadu_ps(row));
      _mm_storeu_ps(row, sums);
    } else {
      alignas(16) float lanes[4];
      _mm_store_ps(lanes, sums);
      for (int64_t j = 0; j < cols; ++j)
        row[j] = accumulate ? row[j] + lanes[j] : lanes[j];
    }
  }
}

}  // namespace

void matmul_strip_avx2(const float* a, int64_t m, int64_t lda, const float* const* w, int64_t k, float* c,
                       int64_t ldc, int64_t cols, bool accumulate) {
  int64_t i = 0;
  for (; i + kTileRows <= m; i += kTileRows)
    tile<kTileRows>(a + i * lda, lda, w, k, c + i * ldc, ldc, cols, accumulate);
  if (i < m) tile<1>(a + i * lda, lda, w, k, c + i * ldc, ldc, cols, accumulate);
}

}  // namespace longnet::kernels::cpu
