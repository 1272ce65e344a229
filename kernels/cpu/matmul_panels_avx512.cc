#include <immintrin.h>

#include <array>
#include <utility>

#include "cpu/matmul_panels.h"
#include "longnet/kernels/gemm.h"

// AVX-512 panel loop: tiles of 12 rows of A x 2 panels (32 columns). Per step of k: two loads of the
// panels and 12 broadcasts of A feed 24 FMAs into 24 accumulators (of 32 registers); the results are
// stored as they are, with no reduction across lanes. A row alone (a decode step of one sequence) takes
// up to 8 panels at once instead: 8 independent FMA chains hide the FMA latency a 1 x 2 tile waits on.
namespace longnet::kernels::cpu {
namespace {

constexpr int kTileRows = 12;

template <int kRows, int kCount>
void tile(const float* a, int64_t lda, const float* panels, int64_t k, float* c, int64_t ldc, int64_t cols,
          bool accumulate) {
  const int64_t panel_floats = k * kPanelWidth;
  __m512 acc[kRows][kCount];
#pragma GCC unroll 12
  for (int i = 0; i < kRows; ++i) {
#pragma GCC unroll 8
    for (int b = 0; b < kCount; ++b)
      acc[i][b] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < k; ++p) {
    __m512 w[kCount];
#pragma GCC unroll 8
    for (int b = 0; b < kCount; ++b)
      w[b] = _mm512_loadu_ps(panels + b * panel_floats + p * kPanelWidth);
#pragma GCC unroll 12
    for (int i = 0; i < kRows; ++i) {
      const __m512 x = _mm512_set1_ps(a[i * lda + p]);
#pragma GCC unroll 8
      for (int b = 0; b < kCount; ++b)
        acc[i][b] = _mm512_fmadd_ps(x, w[b], acc[i][b]);
    }
  }
#pragma GCC unroll 8
  for (int b = 0; b < kCount; ++b) {
    const int64_t valid = cols - b * kPanelWidth;
    if (valid <= 0) break;
    const __mmask16 mask =
        valid >= kPanelWidth ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << valid) - 1u);
    for (int i = 0; i < kRows; ++i) {
      float* out = c + i * ldc + b * kPanelWidth;
      __m512 sum = acc[i][b];
      if (accumulate) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask, out));
      _mm512_mask_storeu_ps(out, mask, sum);
    }
  }
}

using TileFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, bool);

template <int kCount, int... kRows>
constexpr auto make_short_tiles(std::integer_sequence<int, kRows...>) {
  return std::array<TileFn, sizeof...(kRows)>{tile<kRows + 1, kCount>...};
}

template <int kCount>
void rows(const float* a, int64_t m, int64_t lda, const float* panels, int64_t k, float* c, int64_t ldc,
          int64_t cols, bool accumulate) {
  int64_t i = 0;
  for (; i + kTileRows <= m; i += kTileRows)
    tile<kTileRows, kCount>(a + i * lda, lda, panels, k, c + i * ldc, ldc, cols, accumulate);
  // The last m % 12 rows: one tile of that height (kShort[h - 1] has height h).
  static constexpr auto kShort = make_short_tiles<kCount>(std::make_integer_sequence<int, kTileRows - 1>{});
  if (i < m) {
    kShort[static_cast<size_t>(m - i - 1)](a + i * lda, lda, panels, k, c + i * ldc, ldc, cols, accumulate);
  }
}

template <int... kCounts>
constexpr auto make_row_tiles(std::integer_sequence<int, kCounts...>) {
  return std::array<TileFn, sizeof...(kCounts)>{tile<1, kCounts + 1>...};
}

}  // namespace

void matmul_panels_avx512(const float* a, int64_t m, int64_t lda, const float* panels, int64_t k, int count,
                          float* c, int64_t ldc, int64_t cols, bool accumulate, const float* /*next*/) {
  if (count > 2) {
    static constexpr auto kRowTiles = make_row_tiles(std::make_integer_sequence<int, kMaxPanelsPerRowCall>{});
    for (int64_t i = 0; i < m; ++i) {
      kRowTiles[static_cast<size_t>(count - 1)](a + i * lda, lda, panels, k, c + i * ldc, ldc, cols,
                                                accumulate);
    }
  } else if (count == 2) {
    rows<2>(a, m, lda, panels, k, c, ldc, cols, accumulate);
  } else {
    rows<1>(a, m, lda, panels, k, c, ldc, cols, accumulate);
  }
}

}  // namespace longnet::kernels::cpu
