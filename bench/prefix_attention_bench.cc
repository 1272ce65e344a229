// Prefix attention (the bounded KV cache's kernel) on the CPU, all threads of the global pool:
//   BM_PrefixPrefill/<n_q>/<n_k>/<causal>   n_q queries against n_k keys, D = 64 (a chunk of prefill against
//                                   its cache; causal: query j sees n_k - n_q + 1 + j keys)
//   BM_PrefixDecode/<n_keys>        one query against a cache of n_keys, D = 64
//   BM_PrefixFewQueries/<n_q>/<n_k> n_q queries (all seeing every key) against n_k keys: where the
//                                   decode route hands over to the tile route
// gflops counts useful work only: 4*D flops (2*D multiply-adds) per (query, visible key) pair.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "longnet/kernels/prefix_attention.h"

namespace longnet::kernels {
namespace {

constexpr int64_t kDim = 64;

// Values in [-1, 1) from a hash of the index.
void fill(std::vector<float>& x, uint64_t seed) {
  for (size_t i = 0; i < x.size(); ++i) {
    uint64_t z = (seed << 40) + i * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ull;
    x[i] = static_cast<float>(z >> 40) / static_cast<float>(1 << 23) - 1.0f;
  }
}

void run(benchmark::State& state, int64_t num_queries, int64_t num_keys, const std::vector<int64_t>& limit) {
  ThreadPool& pool = ThreadPool::global();
  const PrefixAttentionShape shape{num_queries, num_keys, kDim, kDim, kDim, kDim, kDim, 0.0f};
  std::vector<float> q(static_cast<size_t>(num_queries * kDim)), k(static_cast<size_t>(num_keys * kDim));
  std::vector<float> v(k.size()), out(q.size()), lse(static_cast<size_t>(num_queries));
  fill(q, 1);
  fill(k, 2);
  fill(v, 3);
  std::vector<float> workspace(
      static_cast<size_t>(cpu::prefix_attention_workspace_floats(shape, pool.num_threads())));
  for (auto _ : state) {
    const absl::Status st = cpu::prefix_attention(shape, q.data(), k.data(), v.data(), limit, out.data(),
                                                  lse.data(), workspace, pool);
    if (!st.ok()) state.SkipWithError(std::string(st.message()).c_str());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double pairs = static_cast<double>(std::accumulate(limit.begin(), limit.end(), int64_t{0}));
  state.counters["gflops"] =
      benchmark::Counter(4.0 * kDim * pairs / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = pool.num_threads();
}

void BM_PrefixPrefill(benchmark::State& state) {
  const int64_t num_queries = state.range(0);
  const int64_t num_keys = state.range(1);
  const bool causal = state.range(2) != 0;
  // Causal: the queries are the last num_queries keys' positions, each seeing the keys up to its own.
  std::vector<int64_t> limit(static_cast<size_t>(num_queries), num_keys);
  if (causal) std::iota(limit.begin(), limit.end(), num_keys - num_queries + 1);
  run(state, num_queries, num_keys, limit);
}

void BM_PrefixDecode(benchmark::State& state) {
  const int64_t n = state.range(0);
  run(state, 1, n, {n});
}

void BM_PrefixFewQueries(benchmark::State& state) {
  const int64_t num_queries = state.range(0);
  const int64_t num_keys = state.range(1);
  run(state, num_queries, num_keys, std::vector<int64_t>(static_cast<size_t>(num_queries), num_keys));
}

BENCHMARK(BM_PrefixPrefill)
    ->Args({2048, 2048, 1})
    ->Args({2048, 2048, 0})
    ->Args({43, 2731, 1})   // a 512-token chunk in the (w, r) = (32768, 12) branch, late in its segment
    ->Args({256, 2048, 1})  // a 256-token chunk in the (2048, 1) branch, at the end of its segment
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_PrefixDecode)->Arg(2048)->Arg(65536)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_PrefixFewQueries)
    ->ArgsProduct({{1, 2, 3, 4, 8, 12, 24}, {2048, 16384}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace longnet::kernels

BENCHMARK_MAIN();
