#include <immintrin.h>

#include <array>
#include <utility>

#include "cpu/matmul_panels.h"
#include "longnet/kernels/gemm.h"

// AVX2/FMA panel loop: tiles of 6 rows of A x 1 panel (16 columns, two vectors). Per step of k: two
// loads of the panel and 6 broadcasts of A feed 12 FMAs into 12 accumulators (15 of 16 registers in
// use); two panels are two passes over the rows.
namespace longnet::kernels::cpu {
namespace {

constexpr int kTileRows = 6;
constexpr int kLanes = 8;

// Lanes below `valid` (0 <= valid <= 8) set.
inline __m256i lanes_below(int64_t valid) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(valid)), lane);
}

template <int kRows>
void tile(const float* a, int64_t lda, const float* panel, int64_t k, float* c, int64_t ldc, int64_t cols,
          bool accumulate) {
  __m256 acc[kRows][2];
#pragma GCC unroll 6
  for (int i = 0; i < kRows; ++i)
    acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t p = 0; p < k; ++p) {
    const __m256 w0 = _mm256_loadu_ps(panel + p * kPanelWidth);
    const __m256 w1 = _mm256_loadu_ps(panel + p * kPanelWidth + kLanes);
#pragma GCC unroll 6
    for (int i = 0; i < kRows; ++i) {
      const __m256 x = _mm256_broadcast_ss(a + i * lda + p);
      acc[i][0] = _mm256_fmadd_ps(x, w0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(x, w1, acc[i][1]);
    }
  }
  for (int h = 0; h < 2; ++h) {
    const int64_t valid = cols - h * kLanes;
    if (valid <= 0) break;
    const __m256i mask = lanes_below(valid < kLanes ? valid : kLanes);
    for (int i = 0; i < kRows; ++i) {
      float* out = c + i * ldc + h * kLanes;
      __m256 sum = acc[i][h];
      if (accumulate) sum = _mm256_add_ps(sum, _mm256_maskload_ps(out, mask));
      _mm256_maskstore_ps(out, mask, sum);
    }
  }
}

using TileFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, bool);

template <int... kRows>
constexpr auto make_short_tiles(std::integer_sequence<int, kRows...>) {
  return std::array<TileFn, sizeof...(kRows)>{tile<kRows + 1>...};
}

void rows(const float* a, int64_t m, int64_t lda, const float* panel, int64_t k, float* c, int64_t ldc,
          int64_t cols, bool accumulate) {
  int64_t i = 0;
  for (; i + kTileRows <= m; i += kTileRows)
    tile<kTileRows>(a + i * lda, lda, panel, k, c + i * ldc, ldc, cols, accumulate);
  // The last m % 6 rows: one tile of that height (kShort[h - 1] has height h).
  static constexpr auto kShort = make_short_tiles(std::make_integer_sequence<int, kTileRows - 1>{});
  if (i < m) {
    kShort[static_cast<size_t>(m - i - 1)](a + i * lda, lda, panel, k, c + i * ldc, ldc, cols, accumulate);
  }
}

}  // namespace

void matmul_panels_avx2(const float* a, int64_t m, int64_t lda, const float* panels, int64_t k, int count,
                        float* c, int64_t ldc, int64_t cols, bool accumulate) {
  for (int b = 0; b < count && b * kPanelWidth < cols; ++b) {
    rows(a, m, lda, panels + b * k * kPanelWidth, k, c + b * kPanelWidth, ldc, cols - b * kPanelWidth,
         accumulate);
  }
}

}  // namespace longnet::kernels::cpu
