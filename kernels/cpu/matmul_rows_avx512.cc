#include <immintrin.h>

#include "cpu/matmul_rows.h"

// GCC 12's own AVX-512 intrinsics (unpack, shuffle, extract) start from _mm512_undefined_ps() and trip
// -Wuninitialized when inlined; the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// AVX-512 strip loop: tiles of 6 rows of A x 4 rows of W, the reduction dimension along the 16 lanes. Per
// step of 16: four loads of W and six of A feed 24 FMAs into 24 accumulators (of 32 registers); the lanes
// are summed once at the end of the row.
namespace longnet::kernels::cpu {
namespace {

constexpr int kTileRows = 6;

// [sum a, sum b, sum c, sum d].
inline __m128 sum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  // Within each 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3], then [a, b, c, d] partial sums.
  const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
  const __m512 abcd = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m256 half = _mm256_add_ps(_mm512_castps512_ps256(abcd), _mm512_extractf32x8_ps(abcd, 1));
  return _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
}

// acc[i][j] += a[i][p..] * w[j][p..] for one vector of columns, loaded by `load`.
template <int kRows, typename Load>
inline void step(__m512 (&acc)[kRows][4], const float* const* w, const float* a, int64_t lda, int64_t p,
                 Load load) {
  const __m512 b0 = load(w[0] + p);
  const __m512 b1 = load(w[1] + p);
  const __m512 b2 = load(w[2] + p);
  const __m512 b3 = load(w[3] + p);
#pragma GCC unroll 6
  for (int i = 0; i < kRows; ++i) {
    const __m512 x = load(a + i * lda + p);
    acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
    acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
    acc[i][2] = _mm512_fmadd_ps(x, b2, acc[i][2]);
    acc[i][3] = _mm512_fmadd_ps(x, b3, acc[i][3]);
  }
}

template <int kRows>
inline void tile(const float* a, int64_t lda, const float* const* w, int64_t k, float* c, int64_t ldc,
                 int64_t cols, bool accumulate) {
  __m512 acc[kRows][4];
  for (int i = 0; i < kRows; ++i)
    acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = _mm512_setzero_ps();
  // Full steps load plainly; the last k % 16 columns through a mask (masked-off lanes are not read).
  const auto full = [](const float* x) { return _mm512_loadu_ps(x); };
  int64_t p = 0;
  for (; p + 16 <= k; p += 16)
    step<kRows>(acc, w, a, lda, p, full);
  if (p < k) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (k - p)) - 1u);
    step<kRows>(acc, w, a, lda, p, [mask](const float* x) { return _mm512_maskz_loadu_ps(mask, x); });
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

void matmul_strip_avx512(const float* a, int64_t m, int64_t lda, const float* const* w, int64_t k, float* c,
                         int64_t ldc, int64_t cols, bool accumulate) {
  int64_t i = 0;
  for (; i + kTileRows <= m; i += kTileRows)
    tile<kTileRows>(a + i * lda, lda, w, k, c + i * ldc, ldc, cols, accumulate);
  // The last m % 6 rows: one tile of that height.
  using Tile = void (*)(const float*, int64_t, const float* const*, int64_t, float*, int64_t, int64_t, bool);
  static constexpr Tile kShort[kTileRows] = {nullptr, tile<1>, tile<2>, tile<3>, tile<4>, tile<5>};
  if (i < m) kShort[m - i](a + i * lda, lda, w, k, c + i * ldc, ldc, cols, accumulate);
}

}  // namespace longnet::kernels::cpu
