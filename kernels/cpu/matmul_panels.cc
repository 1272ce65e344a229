#include "cpu/matmul_panels.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdint>
#include <vector>

#include "absl/container/inlined_vector.h"
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

namespace {

// How one product is cut into units: (a block of rows of A) x (a group of panels: a pair, or 8 for a few
// rows).
struct UnitPlan {
  int64_t group_cols = 0;
  int64_t groups = 0;
  int64_t block = 0;
  int64_t units = 0;
  int64_t unit_macs = 0;
};

UnitPlan plan_units(const MatmulPanelsShape& s) {
  UnitPlan p;
  const int64_t group = s.m <= kFewRows ? kMaxPanelsPerRowCall : 2;
  p.group_cols = group * kPanelWidth;
  p.groups = (s.n + p.group_cols - 1) / p.group_cols;
  p.block = std::min(s.m, kRowBlock);
  p.units = p.groups * ((s.m + p.block - 1) / p.block);
  p.unit_macs = p.block * s.k * p.group_cols;
  return p;
}

// The epilogue of a rows x cols block of C.
void activate(const MatmulPanelsJob& job, float* block_c, int64_t rows, int64_t cols) {
  if (!job.activation) return;
  for (int64_t i = 0; i < rows; ++i)
    activation_inline(*job.activation, block_c + i * job.shape.ldc, cols);
}

// A product with k = 0: C = bias or 0 (or unchanged when accumulating), then the activation.
void empty_product(const MatmulPanelsJob& job) {
  const MatmulPanelsShape& s = job.shape;
  if (job.bias != nullptr) {
    add_bias(job.bias, s.m, s.n, job.c, s.ldc, s.accumulate);
  } else if (!s.accumulate) {
    for (int64_t i = 0; i < s.m; ++i)
      std::fill_n(job.c + i * s.ldc, s.n, 0.0f);
  }
  activate(job, job.c, s.m, s.n);
}

void run_unit(const MatmulPanelsJob& job, const UnitPlan& plan, int64_t unit, MatmulPanelsFn fn) {
  const MatmulPanelsShape& s = job.shape;
  const int64_t row0 = unit / plan.groups * plan.block;
  const int64_t col0 = unit % plan.groups * plan.group_cols;
  const int64_t rows = std::min(plan.block, s.m - row0);
  const int64_t cols = std::min(plan.group_cols, s.n - col0);
  const auto count = static_cast<int>((cols + kPanelWidth - 1) / kPanelWidth);
  // The next unit's panels follow these in memory, unless this is the last group of a row block.
  const float* next = col0 + plan.group_cols < s.n ? job.panels + (col0 + plan.group_cols) * s.k : nullptr;
  // The bias goes into this unit's block of C just before the loops accumulate onto it (in cache).
  float* block_c = job.c + row0 * s.ldc + col0;
  if (job.bias != nullptr) add_bias(job.bias + col0, rows, cols, block_c, s.ldc, s.accumulate);
  fn(job.a + row0 * s.lda, rows, s.lda, job.panels + col0 * s.k, s.k, count, block_c, s.ldc, cols,
     s.accumulate || job.bias != nullptr, next);
  activate(job, block_c, rows, cols);
}

}  // namespace

void matmul_panels(const MatmulPanelsShape& s, const float* a, const float* panels, float* c,
                   ThreadPool& pool, const float* bias, std::optional<Activation> activation) {
  const MatmulPanelsJob job{s, a, panels, c, bias, activation};
  matmul_panels_together({&job, 1}, pool);
}

void matmul_panels_together(std::span<const MatmulPanelsJob> jobs, ThreadPool& pool) {
  // The units of all products in one sequence: product j's are [first[j], first[j + 1]). Inline storage:
  // this runs for every product of every step, and a handful of products come together at most.
  absl::InlinedVector<UnitPlan, 4> plans;
  absl::InlinedVector<int64_t, 5> first = {0};
  int64_t macs = 0;
  for (const MatmulPanelsJob& job : jobs) {
    assert(validate_matmul_panels(job.shape).ok());
    const bool empty = job.shape.m == 0 || job.shape.n == 0;
    if (!empty && job.shape.k == 0) empty_product(job);
    plans.push_back(empty || job.shape.k == 0 ? UnitPlan{} : plan_units(job.shape));
    first.push_back(first.back() + plans.back().units);
    macs += plans.back().units * plans.back().unit_macs;
  }
  const int64_t units = first.back();
  if (units == 0) return;
  const MatmulPanelsFn fn = panels_fn();
  const auto run = [&](int64_t unit) {
    size_t j = 0;
    while (unit >= first[j + 1])
      ++j;
    run_unit(jobs[j], plans[j], unit - first[j], fn);
  };
  // Each thread owns an equal run of consecutive units and takes them front to back (each unit prefetches
  // the next one's panels); a thread done with its own run takes units one at a time from the back of the
  // others', so the threads finish within about one unit of each other. Threads: no more than the units,
  // nor more than shares of at least kMinTaskMacs (one: the products run on the caller).
  const int64_t threads = std::clamp<int64_t>(std::min(units, macs / kMinTaskMacs), 1, pool.num_threads());
  // (A UnitRun holds unit indices in 32 bits: 2^32 units of 96 rows x 32 columns is a product far beyond
  // any memory.)
  if (threads == 1 || units > INT32_MAX) {
    for (int64_t unit = 0; unit < units; ++unit)
      run(unit);
    return;
  }
  std::vector<UnitRun> runs(static_cast<size_t>(threads));
  for (int64_t t = 0; t < threads; ++t)
    runs[static_cast<size_t>(t)].reset(units * t / threads, units * (t + 1) / threads);
  pool.parallel_for(threads, [&](int64_t task, int /*thread*/) {
    for (int64_t unit = runs[static_cast<size_t>(task)].take_front(); unit >= 0;
         unit = runs[static_cast<size_t>(task)].take_front())
      run(unit);
    for (int64_t other = 1; other < threads; ++other) {
      UnitRun& victim = runs[static_cast<size_t>((task + other) % threads)];
      for (int64_t unit = victim.take_back(); unit >= 0; unit = victim.take_back())
        run(unit);
    }
  });
}

}  // namespace cpu
}  // namespace longnet::kernels
