// Dilated attention on the CPU at the paper's language-model schedule: H = 8, D = 64,
// w = [2048, 4096, 8192, 16384, 32768], r = [1, 2, 4, 6, 12], causal, one sequence of N tokens.
// Reported: seconds per call and GFLOP/s counting only useful work, 4*D flops (2*D multiply-adds) per
// (query, visible key) pair, summed over every branch and head.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "longnet/kernels/dilated_attention.h"

namespace longnet::kernels {
namespace {

constexpr int64_t kHeads = 8;
constexpr int64_t kDim = 64;

DilatedAttentionParams paper_schedule() {
  return {{{2048, 1}, {4096, 2}, {8192, 4}, {16384, 6}, {32768, 12}}, true, 0.0f};
}

// Exact count of (query, key) pairs the definition evaluates for one causal sequence of n tokens.
double useful_pairs(int64_t n, int64_t heads, const DilatedAttentionParams& params) {
  double pairs = 0.0;
  for (const DilatedBranch& br : params.branches) {
    const int64_t w = effective_segment_length(br.segment_length, n);
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t offset = head_offset(h, heads, br.dilation);
      for (int64_t s = 0; s < num_segments(n, w); ++s) {
        const auto visible = static_cast<double>(visible_count(std::min(w, n - s * w), br.dilation, offset));
        pairs += params.causal ? visible * (visible + 1.0) / 2.0 : visible * visible;
      }
    }
  }
  return pairs;
}

// Fills x with values in [-1, 1) in parallel (a hash of the index), touching every page before timing.
void fill(std::vector<float>& x, uint64_t seed, ThreadPool& pool) {
  const int64_t chunks = 256;
  const auto n = static_cast<int64_t>(x.size());
  pool.parallel_for(chunks, [&](int64_t c, int) {
    for (int64_t i = c * n / chunks; i < (c + 1) * n / chunks; ++i) {
      uint64_t z = (seed << 40) + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;
      z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ull;
      x[static_cast<size_t>(i)] = static_cast<float>(z >> 40) / static_cast<float>(1 << 23) - 1.0f;
    }
  });
}

void BM_DilatedAttention(benchmark::State& state) {
  const int64_t n = state.range(0);
  ThreadPool& pool = ThreadPool::global();
  const DilatedAttentionParams params = paper_schedule();
  const std::vector<int64_t> starts{0};
  const std::vector<int64_t> lens{n};
  DilatedAttentionShape shape;
  shape.num_heads = kHeads;
  shape.head_dim = kDim;
  shape.seq_starts = starts;
  shape.seq_lens = lens;
  shape.q_stride = shape.k_stride = shape.v_stride = shape.out_stride = kHeads * kDim;

  const auto elems = static_cast<size_t>(n * kHeads * kDim);
  std::vector<float> q(elems), k(elems), v(elems), out(elems), lse(static_cast<size_t>(n * kHeads));
  fill(q, 1, pool);
  fill(k, 2, pool);
  fill(v, 3, pool);
  fill(out, 4, pool);
  std::vector<float> workspace(
      static_cast<size_t>(cpu::dilated_attention_workspace_floats(shape, params, pool.num_threads())));

  for (auto _ : state) {
    const absl::Status st = cpu::dilated_attention(shape, params, q.data(), k.data(), v.data(), out.data(),
                                                   lse.data(), workspace, pool);
    if (!st.ok()) state.SkipWithError(std::string(st.message()).c_str());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double flops = 4.0 * kDim * useful_pairs(n, kHeads, params);
  state.counters["gflops"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = pool.num_threads();
}

BENCHMARK(BM_DilatedAttention)
    ->Arg(8192)
    ->Arg(65536)
    ->Arg(1048576)
    ->Unit(benchmark::kSecond)
    ->Repetitions(3)  // shared machines are noisy: bench/attention.sh takes the fastest repetition
    ->UseRealTime()
    ->MeasureProcessCPUTime();

}  // namespace
}  // namespace longnet::kernels

BENCHMARK_MAIN();
