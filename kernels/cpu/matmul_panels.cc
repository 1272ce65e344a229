#include "cpu/matmul_panels.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdint>
#include <vector>

#include "cpu/cpu_features.h"
#include "longnet/kernels/gemm.h"

namespace longnet::kernels::cpu {
namespace {

MatmulPanelsFn panels_fn() {
  static const MatmulPanelsFn fn = has_avx512()     ? matmul_panels_avx512
                                   : has_avx2_fma() ? matmul_panels_avx2
                                                    : matmul_panels_generic;
  return fn;
}

// A thread's share covers at least this many multiply-adds (a few microseconds), so that a small product
// (one row, a narrow layer) stays on the calling thread instead of paying for a hand-off.
constexpr int64_t kMinTaskMacs = 1 << 16;
// Rows of A per unit when A is tall: a block of A stays in L2 while the panels stream past it.
constexpr int64_t kRowBlock = 96;
// Up to this many rows, a unit spans kMaxPanelsPerRowCall panels and the loops take one row at a time
// (matrix-vector products: a decode step of one or two sequences); more rows share pairs of panels.
constexpr int64_t kFewRows = 2;

// A run of units [front, back) that its owner takes from the front and other threads from the back; both
// ends live in one atomic word, so a unit is taken exactly once.
class UnitRun {
 public:
  void reset(int64_t front, int64_t back) { ends_.store(pack(front, back), std::memory_order_relaxed); }
  int64_t take_front() { return take(true); }
  int64_t take_back() { return take(false); }

 private:
  static uint64_t pack(int64_t front, int64_t back) {
    return static_cast<uint64_t>(front) << 32 | static_cast<uint64_t>(back);
  }
  // The unit taken, or -1 when the run is empty.
  int64_t take(bool from_front) {
    uint64_t ends = ends_.load(std::memory_order_relaxed);
    for (;;) {
      const auto front = static_cast<int64_t>(ends >> 32);
      const auto back = static_cast<int64_t>(ends & 0xffffffffu);
      if (front >= back) return -1;
      const uint64_t taken = from_front ? pack(front + 1, back) : pack(front, back - 1);
      if (ends_.compare_exchange_weak(ends, taken, std::memory_order_relaxed))
        return from_front ? front : back - 1;
    }
  }
  std::atomic<uint64_t> ends_{0};
};

// C = bias, or C += bias, on every row of an m x n block.
void add_bias(const float* bias, int64_t m, int64_t n, float* c, int64_t ldc, bool accumulate) {
  for (int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    if (accumulate) {
      for (int64_t j = 0; j < n; ++j)
        row[j] += bias[j];
    } else {
      std::copy_n(bias, n, row);
    }
  }
}

}  // namespace

void matmul_panels_generic(const float* a, int64_t m, int64_t lda, const float* panels, int64_t k, int count,
                           float* c, int64_t ldc, int64_t cols, bool accumulate, const float* /*next*/) {
  const int64_t width = std::min<int64_t>(cols, count * kPanelWidth);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < width; ++j) {
      const float* column = panels + (j / kPanelWidth) * k * kPanelWidth + j % kPanelWidth;
      float sum = 0.0f;
      for (int64_t p = 0; p < k; ++p)
        sum += a[i * lda + p] * column[p * kPanelWidth];
      float& out = c[i * ldc + j];
      out = accumulate ? out + sum : sum;
    }
  }
}

}  // namespace longnet::kernels::cpu

namespace longnet::kernels {

int64_t panel_floats(int64_t n, int64_t k) {
  return (n + kPanelWidth - 1) / kPanelWidth * kPanelWidth * k;
}

void pack_panels(const float* w, int64_t n, int64_t k, int64_t ldw, float* panels) {
  const int64_t padded = (n + kPanelWidth - 1) / kPanelWidth * kPanelWidth;
  for (int64_t j = 0; j < padded; ++j) {
    float* column = panels + (j / kPanelWidth) * k * kPanelWidth + j % kPanelWidth;
    for (int64_t p = 0; p < k; ++p)
      column[p * kPanelWidth] = j < n ? w[j * ldw + p] : 0.0f;
  }
}

namespace cpu {

void matmul_panels(const MatmulPanelsShape& s, const float* a, const float* panels, float* c,
                   ThreadPool& pool, const float* bias, std::optional<Activation> activation) {
  assert(validate_matmul_panels(s).ok());
  if (s.m == 0 || s.n == 0) return;
  // The epilogue of an m x n block of C.
  const auto activate = [&](float* block_c, int64_t rows, int64_t cols) {
    if (!activation) return;
    for (int64_t i = 0; i < rows; ++i)
      activation_inline(*activation, block_c + i * s.ldc, cols);
  };
  if (s.k == 0) {
    if (bias != nullptr) {
      add_bias(bias, s.m, s.n, c, s.ldc, s.accumulate);
    } else if (!s.accumulate) {
      for (int64_t i = 0; i < s.m; ++i)
        std::fill_n(c + i * s.ldc, s.n, 0.0f);
    }
    activate(c, s.m, s.n);
    return;
  }
  // Units of work: (a block of rows of A) x (a group of panels: a pair, or 8 for a few rows).
  const int64_t group = s.m <= kFewRows ? kMaxPanelsPerRowCall : 2;
  const int64_t group_cols = group * kPanelWidth;
  const int64_t groups = (s.n + group_cols - 1) / group_cols;
  const int64_t block = std::min(s.m, kRowBlock);
  const int64_t blocks = (s.m + block - 1) / block;
  const int64_t units = groups * blocks;
  const int64_t unit_macs = block * s.k * group_cols;
  const MatmulPanelsFn fn = panels_fn();
  const auto run_unit = [&](int64_t unit) {
    const int64_t row0 = unit / groups * block;
    const int64_t col0 = unit % groups * group_cols;
    const int64_t rows = std::min(block, s.m - row0);
    const int64_t cols = std::min(group_cols, s.n - col0);
    const auto count = static_cast<int>((cols + kPanelWidth - 1) / kPanelWidth);
    // The next unit's panels follow these in memory, unless this is the last group of a row block.
    const float* next = col0 + group_cols < s.n ? panels + (col0 + group_cols) * s.k : nullptr;
    // The bias goes into this unit's block of C just before the loops accumulate onto it (in cache).
    float* block_c = c + row0 * s.ldc + col0;
    if (bias != nullptr) add_bias(bias + col0, rows, cols, block_c, s.ldc, s.accumulate);
    fn(a + row0 * s.lda, rows, s.lda, panels + col0 * s.k, s.k, count, block_c, s.ldc, cols,
       s.accumulate || bias != nullptr, next);
    activate(block_c, rows, cols);
  };
  // Each thread owns an equal run of consecutive units and takes them front to back (each unit prefetches
  // the next one's panels); a thread done with its own run takes units one at a time from the back of the
  // others', so the threads finish within about one unit of each other. Threads: no more than the units
  // of at least kMinTaskMacs allow (one: the product runs on the caller).
  const int64_t min_units = (kMinTaskMacs + unit_macs - 1) / unit_macs;
  const int64_t threads = std::clamp<int64_t>(units / min_units, 1, pool.num_threads());
  // (A UnitRun holds unit indices in 32 bits: 2^32 units of 96 rows x 32 columns is a product far beyond
  // any memory.)
  if (threads == 1 || units > INT32_MAX) {
    for (int64_t unit = 0; unit < units; ++unit)
      run_unit(unit);
    return;
  }
  std::vector<UnitRun> runs(static_cast<size_t>(threads));
  for (int64_t t = 0; t < threads; ++t)
    runs[static_cast<size_t>(t)].reset(units * t / threads, units * (t + 1) / threads);
  pool.parallel_for(threads, [&](int64_t task, int /*thread*/) {
    for (int64_t unit = runs[static_cast<size_t>(task)].take_front(); unit >= 0;
         unit = runs[static_cast<size_t>(task)].take_front())
      run_unit(unit);
    for (int64_t other = 1; other < threads; ++other) {
      UnitRun& victim = runs[static_cast<size_t>((task + other) % threads)];
      for (int64_t unit = victim.take_back(); unit >= 0; unit = victim.take_back())
        run_unit(unit);
    }
  });
}

}  // namespace cpu
}  // namespace longnet::kernels
