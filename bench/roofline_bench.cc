// This machine's roofline, for reading the other benchmarks: the fp32 FMA peak (independent FMA chains in
// registers, the widest vectors the CPU has) and the read bandwidth from a buffer that fits in L2 (1 MiB per
// thread) and one that does not (25 MiB per thread, about a 32-sequence decode step's KV-cache reads), each
// on 1 and 2 threads. Counters: FLOP/s and bytes/s summed over the threads.
//
//   build/release/bench/longnet_roofline_bench
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>

namespace {

constexpr int kChains = 12;  // > FMA latency x ports: keeps both FMA units busy
constexpr int64_t kFmaIterations = 1 << 20;

__attribute__((target("avx512f"))) float fma_chains_avx512(int64_t iterations) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i)
    acc[i] = _mm512_set1_ps(1.0f + static_cast<float>(i) * 1e-7f);
  const __m512 m = _mm512_set1_ps(0.9999999f);
  const __m512 c = _mm512_set1_ps(1e-7f);
  for (int64_t t = 0; t < iterations; ++t) {
    for (int i = 0; i < kChains; ++i)
      acc[i] = _mm512_fmadd_ps(acc[i], m, c);
  }
  __m512 sum = acc[0];
  for (int i = 1; i < kChains; ++i)
    sum = _mm512_add_ps(sum, acc[i]);
  alignas(64) float lanes[16];  // not _mm512_reduce_add_ps: GCC 12 warns inside it (-Wuninitialized)
  _mm512_store_ps(lanes, sum);
  float total = 0.0f;
  for (float v : lanes)
    total += v;
  return total;
}

__attribute__((target("avx2,fma"))) float fma_chains_avx2(int64_t iterations) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i)
    acc[i] = _mm256_set1_ps(1.0f + static_cast<float>(i) * 1e-7f);
  const __m256 m = _mm256_set1_ps(0.9999999f);
  const __m256 c = _mm256_set1_ps(1e-7f);
  for (int64_t t = 0; t < iterations; ++t) {
    for (int i = 0; i < kChains; ++i)
      acc[i] = _mm256_fmadd_ps(acc[i], m, c);
  }
  __m256 sum = acc[0];
  for (int i = 1; i < kChains; ++i)
    sum = _mm256_add_ps(sum, acc[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  float total = 0.0f;
  for (float v : lanes)
    total += v;
  return total;
}

bool has_avx512() {
  return __builtin_cpu_supports("avx512f") != 0;
}

void BM_FmaPeak(benchmark::State& state) {
  const bool wide = has_avx512();
  for (auto _ : state) {
    int64_t iterations = kFmaIterations;
    benchmark::DoNotOptimize(iterations);  // else the pure call is computed once, outside the loop
    benchmark::DoNotOptimize(wide ? fma_chains_avx512(iterations) : fma_chains_avx2(iterations));
  }
  const double flops_per_call = static_cast<double>(kFmaIterations) * kChains * (wide ? 16 : 8) * 2;
  state.counters["FLOP/s"] = benchmark::Counter(flops_per_call * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
  state.SetLabel(wide ? "avx512" : "avx2");
}
BENCHMARK(BM_FmaPeak)->Threads(1)->Threads(2)->UseRealTime();

__attribute__((target("avx2"))) float sum_floats(const float* p, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(p + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(p + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_loadu_ps(p + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_loadu_ps(p + i + 24));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  float total = 0.0f;
  for (float v : lanes)
    total += v;
  return total;
}

// Each thread sums its own buffer of range(0) MiB, again and again.
void BM_ReadBandwidth(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0)) * (size_t{1} << 20) / sizeof(float);
  std::vector<float> buffer(n, 1.0f);
  for (auto _ : state) {
    const float* p = buffer.data();
    benchmark::DoNotOptimize(p);  // else the pure call is computed once, outside the loop
    benchmark::ClobberMemory();
    benchmark::DoNotOptimize(sum_floats(p, n));
  }
  state.counters["bytes/s"] =
      benchmark::Counter(static_cast<double>(n * sizeof(float)) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ReadBandwidth)->ArgName("MiB")->Arg(1)->Arg(25)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
