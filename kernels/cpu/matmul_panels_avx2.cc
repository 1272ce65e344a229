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
//
// The first tile of a panel would read it from memory (a model's weights are used once per step and do not
// stay in the caches), one 64-byte row of the panel per step of k: faster than one core's share of memory
// bandwidth, so that tile waited on memory while the others ran from L2. Instead the tiles of a panel
// prefetch the next panel into L2 between them, a share each, while they compute (L1 cannot hold a panel
// beside the rows of A). On one Zen3 core, 32 rows against weights from memory: 63-75 -> 82-91 GFLOP/s
// (peak 100); a base-sized decoder step's products at 32 rows, 2 threads: 39-50 -> 35-39 ms (best of 30).
namespace longnet::kernels::cpu {
namespace {

constexpr int kTileRows = 6;
constexpr int kLanes = 8;

// Lanes below `valid` (0 <= valid <= 8) set.
inline __m256i lanes_below(int64_t valid) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(valid)), lane);
}

// Cache lines the tile prefetches while it runs: `count` lines from `first` on.
struct Prefetch {
  const char* first = nullptr;
  int64_t count = 0;
};

constexpr int64_t kLine = 64;
constexpr int64_t kPrefetchEvery = 16;  // steps of k between two rounds of prefetches

// kRows rows of A x kCount adjacent panels (kRows * kCount <= 6): per step of k, 2 * kCount loads and kRows
// broadcasts feed 2 * kRows * kCount FMAs into as many accumulators.
template <int kRows, int kCount>
void tile(const float* a, int64_t lda, const float* panels, int64_t k, float* c, int64_t ldc, int64_t cols,
          bool accumulate, Prefetch prefetch) {
  const int64_t panel_floats = k * kPanelWidth;
  __m256 acc[kRows][kCount][2];
#pragma GCC unroll 6
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 4
    for (int b = 0; b < kCount; ++b)
      acc[i][b][0] = acc[i][b][1] = _mm256_setzero_ps();
  }
  // The prefetches spread evenly over the steps of k.
  const int64_t per_round = (prefetch.count * kPrefetchEvery + k - 1) / k;
  const char* next_line = prefetch.first;
  const char* const end_line = prefetch.first + prefetch.count * kLine;
  for (int64_t round = 0; round < k; round += kPrefetchEvery) {
    for (int64_t j = 0; j < per_round && next_line < end_line; ++j, next_line += kLine)
      _mm_prefetch(next_line, _MM_HINT_T1);
    const int64_t round_end = std::min(k, round + kPrefetchEvery);
    for (int64_t p = round; p < round_end; ++p) {
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

using TileFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, bool,
                        Prefetch);

template <int... kRows>
constexpr auto make_short_tiles(std::integer_sequence<int, kRows...>) {
  return std::array<TileFn, sizeof...(kRows)>{tile<kRows + 1, 1>...};
}

// `next` is the panel that follows (nullptr after the last): the tiles prefetch it, a share each.
void rows(const float* a, int64_t m, int64_t lda, const float* panel, const float* next, int64_t k, float* c,
          int64_t ldc, int64_t cols, bool accumulate) {
  // Whole tiles of 6 rows, but when 1 to 3 rows would be left over, the last 6 + (m % 6) rows go as two
  // tiles of nearly equal height (4 + 3, 4 + 4, 5 + 4): a tile of 1 to 3 rows has too few FMA chains to hide
  // the FMA latency, and it streams the whole panel for as few rows (32 rows: 6 x 4 + 4 + 4, not 6 x 5 + 2).
  int64_t whole = m / kTileRows;
  if (whole > 0 && m % kTileRows != 0 && m % kTileRows <= 3) --whole;
  const int64_t rest = m - whole * kTileRows;  // at most 9 rows: one or two tiles of at most 5
  const int64_t first = rest < kTileRows ? rest : (rest + 1) / 2;
  const int64_t tiles = whole + (first > 0 ? 1 : 0) + (rest - first > 0 ? 1 : 0);
  const int64_t lines = next == nullptr ? 0 : k * kPanelWidth * static_cast<int64_t>(sizeof(float)) / kLine;
  int64_t t = 0;  // tile index, for its share of the prefetches
  const auto share = [&]() {
    const Prefetch p{reinterpret_cast<const char*>(next) + lines * t / tiles * kLine,
                     lines * (t + 1) / tiles - lines * t / tiles};
    ++t;
    return p;
  };
  int64_t i = 0;
  for (; i < whole * kTileRows; i += kTileRows)
    tile<kTileRows, 1>(a + i * lda, lda, panel, k, c + i * ldc, ldc, cols, accumulate, share());
  // kShort[h - 1] has height h.
  static constexpr auto kShort = make_short_tiles(std::make_integer_sequence<int, kTileRows - 1>{});
  for (const int64_t height : {first, rest - first}) {
    if (height == 0) continue;
    kShort[static_cast<size_t>(height - 1)](a + i * lda, lda, panel, k, c + i * ldc, ldc, cols, accumulate,
                                            share());
    i += height;
  }
}

// A row alone takes this many panels per pass.
constexpr int kRowTilePanels = 4;
constexpr std::array<TileFn, kRowTilePanels> kRowTiles = {tile<1, 1>, tile<1, 2>, tile<1, 3>, tile<1, 4>};

}  // namespace

void matmul_panels_avx2(const float* a, int64_t m, int64_t lda, const float* panels, int64_t k, int count,
                        float* c, int64_t ldc, int64_t cols, bool accumulate, const float* next) {
  if (count > 2) {
    for (int64_t i = 0; i < m; ++i) {
      for (int b = 0; b < count && b * kPanelWidth < cols; b += kRowTilePanels) {
        const int group = std::min(kRowTilePanels, count - b);
        kRowTiles[static_cast<size_t>(group - 1)](a + i * lda, lda, panels + b * k * kPanelWidth, k,
                                                  c + i * ldc + b * kPanelWidth, ldc, cols - b * kPanelWidth,
                                                  accumulate, Prefetch{});
      }
    }
    return;
  }
  for (int b = 0; b < count && b * kPanelWidth < cols; ++b) {
    const float* panel = panels + b * k * kPanelWidth;
    rows(a, m, lda, panel, b + 1 < count ? panel + k * kPanelWidth : next, k, c + b * kPanelWidth, ldc,
         cols - b * kPanelWidth, accumulate);
  }
}

}  // namespace longnet::kernels::cpu
