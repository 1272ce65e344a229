#include <immintrin.h>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <utility>

#include "cpu/matmul_panels.h"
#include "longnet/kernels/gemm.h"

// AVX2/FMA panel loop: tiles of 6 rows of A x 1 panel (16 columns, two vectors). Per step of k: two
// loads of the panel and 6 broadcasts of A feed 12 FMAs into 12 accumulators (15 of 16 registers in
// use); two panels are two passes over the rows. A row alone (a decode step of one sequence) takes 4
// panels per pass instead: 8 independent FMA chains hide the FMA latency a 1-row tile waits on.
namespace longnet::kernels::cpu {
namespace {

constexpr int kTileRows = 6;
constexpr int kLanes = 8;

// Lanes below `valid` (0 <= valid <= 8) set.
inline __m256i lanes_below(int64_t valid) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(valid)), lane);
}

// kRows rows of A x kCount adjacent panels (kRows * kCount <= 6): per step of k, 2 * kCount loads and kRows
// broadcasts feed 2 * kRows * kCount FMAs into as many accumulators.
template <int kRows, int kCount>
void tile(const float* a, int64_t lda, const float* panels, int64_t k, float* c, int64_t ldc, int64_t cols,
          bool accumulate) {
  const int64_t panel_floats = k * kPanelWidth;
  __m256 acc[kRows][kCount][2];
#pragma GCC unroll 6
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 4
    for (int b = 0; b < kCount; ++b)
      acc[i][b][0] = acc[i][b][1] = _mm256_setzero_ps();
  }
  for (int64_t p = 0; p < k; ++p) {
    __m256 w[kCount][2];
#pragma GCC unroll 4
    for (int b = 0; b < kCount; ++b) {
      w[b][0] = _mm256_loadu_ps(panels + b * panel_floats + p * kPanelWidth);
      w[b][1] = _mm256_loadu_ps(panels + b * panel_floats + p * kPanelWidth + kLanes);
    }
#pragma GCC unroll 6
    for (int i = 0; i < kRows; ++i) {
      const __m256 x = _mm256_broadcast_ss(a + i * lda + p);
#pragma GCC unroll 4
      for (int b = 0; b < kCount; ++b) {
        acc[i][b][0] = _mm256_fmadd_ps(x, w[b][0], acc[i][b][0]);
        acc[i][b][1] = _mm256_fmadd_ps(x, w[b][1], acc[i][b][1]);
      }
    }
  }
  // Every index of acc below is a constant once the loops are unrolled: an index the compiler cannot
  // resolve (as an earlier `acc[i][v / 2][v % 2]` over a loop with a break) makes it keep acc in memory and
  // store all 12 accumulators at every step of k, which halved this loop's speed.
#pragma GCC unroll 4
  for (int b = 0; b < kCount; ++b) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {  // the two vectors of panel b
      const int64_t valid = cols - (2 * b + h) * kLanes;
      if (valid <= 0) continue;
      const __m256i mask = lanes_below(valid < kLanes ? valid : kLanes);
#pragma GCC unroll 6
      for (int i = 0; i < kRows; ++i) {
        float* out = c + i * ldc + (2 * b + h) * kLanes;
        __m256 sum = acc[i][b][h];
        if (accumulate) sum = _mm256_add_ps(sum, _mm256_maskload_ps(out, mask));
        _mm256_maskstore_ps(out, mask, sum);
      }
    }
  }
}

using TileFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, bool);

template <int... kRows>
constexpr auto make_short_tiles(std::integer_sequence<int, kRows...>) {
  return std::array<TileFn, sizeof...(kRows)>{tile<kRows + 1, 1>...};
}

void rows(const float* a, int64_t m, int64_t lda, const float* panel, int64_t k, float* c, int64_t ldc,
          int64_t cols, bool accumulate) {
  // Whole tiles of 6 rows, but when 1 to 3 rows would be left over, the last 6 + (m % 6) rows go as two
  // tiles of nearly equal height (4 + 3, 4 + 4, 5 + 4): a tile of 1 to 3 rows has too few FMA chains to hide
  // the FMA latency, and it streams the whole panel for as few rows (32 rows: 6 x 4 + 4 + 4, not 6 x 5 + 2).
  int64_t whole = m / kTileRows;
  if (whole > 0 && m % kTileRows != 0 && m % kTileRows <= 3) --whole;
  int64_t i = 0;
  for (; i < whole * kTileRows; i += kTileRows)
    tile<kTileRows, 1>(a + i * lda, lda, panel, k, c + i * ldc, ldc, cols, accumulate);
  // The rest (at most 9 rows): one or two tiles of at most 5 (kShort[h - 1] has height h).
  static constexpr auto kShort = make_short_tiles(std::make_integer_sequence<int, kTileRows - 1>{});
  const int64_t rest = m - i;
  const int64_t first = rest < kTileRows ? rest : (rest + 1) / 2;
  for (const int64_t height : {first, rest - first}) {
    if (height == 0) continue;
    kShort[static_cast<size_t>(height - 1)](a + i * lda, lda, panel, k, c + i * ldc, ldc, cols, accumulate);
    i += height;
  }
}

// A row alone takes this many panels per pass.
constexpr int kRowTilePanels = 4;
constexpr std::array<TileFn, kRowTilePanels> kRowTiles = {tile<1, 1>, tile<1, 2>, tile<1, 3>, tile<1, 4>};

}  // namespace

void matmul_panels_avx2(const float* a, int64_t m, int64_t lda, const float* panels, int64_t k, int count,
                        float* c, int64_t ldc, int64_t cols, bool accumulate) {
  if (count > 2) {
    for (int64_t i = 0; i < m; ++i) {
      for (int b = 0; b < count && b * kPanelWidth < cols; b += kRowTilePanels) {
        const int group = std::min(kRowTilePanels, count - b);
        kRowTiles[static_cast<size_t>(group - 1)](a + i * lda, lda, panels + b * k * kPanelWidth, k,
                                                  c + i * ldc + b * kPanelWidth, ldc, cols - b * kPanelWidth,
                                                  accumulate);
      }
    }
    return;
  }
  for (int b = 0; b < count && b * kPanelWidth < cols; ++b) {
    rows(a, m, lda, panels + b * k * kPanelWidth, k, c + b * kPanelWidth, ldc, cols - b * kPanelWidth,
         accumulate);
  }
}

}  // namespace longnet::kernels::cpu
