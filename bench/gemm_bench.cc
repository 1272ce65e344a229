// Single-precision GEMM through the kernels' BLAS route. BM_Sgemm/2048 (2048^3) is the machine's
// reference figure for how fast this CPU multiplies matrices; the model-shaped cases show what the
// engine's projections get, and the GEMV cases the single-token decode path (M = 1 goes to sgemv).
// Reported: GFLOP/s of wall-clock time counting 2*M*N*K flops per product.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "longnet/kernels/gemm.h"
#include "longnet/kernels/thread_pool.h"

namespace longnet::kernels {
namespace {

std::vector<float> filled(int64_t n, int64_t salt) {
  // Deterministic values in [-1, 1): sgemm's speed does not depend on them, but denormals or NaN would.
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    v[static_cast<size_t>(i)] = static_cast<float>(((i + salt) * 7919 + 13) % 2001) / 1000.0f - 1.0f;
  }
  return v;
}

// GFLOP/s over wall-clock time. Google Benchmark's rate counters divide by the CPU time of the main
// thread unless UseRealTime() is set, which would rename the case to ".../real_time" (bench/attention.sh
// looks for exactly BM_Sgemm/2048); BLAS runs its own threads, so main-thread CPU time undercounts the
// elapsed time (by 2x on 2 cores) and the rate would double. Hence the rate is computed here.
void set_gflops(benchmark::State& state, double seconds, int64_t m, int64_t n, int64_t k) {
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const double rate = seconds > 0.0 ? flops * static_cast<double>(state.iterations()) / seconds : 0.0;
  state.counters["gflops"] =
      benchmark::Counter(rate, benchmark::Counter::kDefaults, benchmark::Counter::kIs1000);
}

// Runs product(a, b, c) as the benchmark loop over operands A (M x K), B (K x N values) and C (M x N),
// then reports GFLOP/s.
template <typename Product>
void time_product(benchmark::State& state, int64_t m, int64_t n, int64_t k, const Product& product) {
  const std::vector<float> a = filled(m * k, 1);
  const std::vector<float> b = filled(k * n, 2);
  std::vector<float> c(static_cast<size_t>(m * n));
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    product(a.data(), b.data(), c.data());
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), m, n, k);
}

// C (M x N) = A (M x K) B, with B stored N x K when trans_b (a torch Linear weight: y = x W^T).
void run_gemm(benchmark::State& state, int64_t m, int64_t n, int64_t k, bool trans_b) {
  GemmShape s;
  s.trans_b = trans_b ? Transpose::kYes : Transpose::kNo;
  s.m = m;
  s.n = n;
  s.k = k;
  s.lda = k;
  s.ldb = trans_b ? k : n;
  s.ldc = n;
  time_product(state, m, n, k, [&](const float* a, const float* b, float* c) { cpu::gemm(s, a, b, c); });
}

void BM_Sgemm(benchmark::State& state) {
  const int64_t size = state.range(0);
  run_gemm(state, size, size, size, false);
}
BENCHMARK(BM_Sgemm)->Arg(512)->Arg(2048)->Unit(benchmark::kMillisecond);

// A LongNet-base-sized layer (E = 768, F = 3072, V = 32000) over a block of `tokens` tokens, weights
// stored as torch keeps them (out_features x in_features).
void BM_ModelGemm(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  const int64_t out_features = state.range(1);
  const int64_t in_features = state.range(2);
  run_gemm(state, tokens, out_features, in_features, true);
}
BENCHMARK(BM_ModelGemm)
    ->ArgNames({"tokens", "out", "in"})
    ->Args({2048, 2304, 768})  // fused q/k/v projection (3 x 768)
    ->Args({2048, 768, 768})   // out_proj
    ->Args({2048, 3072, 768})  // fc1
    ->Args({2048, 768, 3072})  // fc2
    ->Args({16, 32000, 768})   // logits for a small decode batch
    ->Unit(benchmark::kMillisecond);

// One token: y = W x through the gemm entry point (M == 1 routes to sgemv).
void BM_Sgemv(benchmark::State& state) {
  const int64_t out_features = state.range(0);
  const int64_t in_features = state.range(1);
  run_gemm(state, 1, out_features, in_features, true);
}
BENCHMARK(BM_Sgemv)
    ->ArgNames({"out", "in"})
    ->Args({768, 768})
    ->Args({3072, 768})
    ->Args({768, 3072})
    ->Args({32000, 768})
    ->Unit(benchmark::kMicrosecond);

// A Linear layer over `rows` tokens (a batch of decode steps, or a prefill chunk), on the BLAS route
// (BM_LinearBlas) and on matmul_panels over the weight packed once into panels (BM_LinearPanels), the
// engine's route for every row count. Same shapes, so the ratio of their gflops is what the engine gains.
void BM_LinearBlas(benchmark::State& state) {
  run_gemm(state, state.range(0), state.range(1), state.range(2), true);
}

// A dense m x k by (n x k)^T product on matmul_panels, as a Linear layer runs it.
MatmulPanelsShape dense_panels_shape(int64_t m, int64_t n, int64_t k) {
  MatmulPanelsShape s;
  s.m = m;
  s.n = n;
  s.k = k;
  s.lda = k;
  s.ldc = n;
  return s;
}

void BM_LinearPanels(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const MatmulPanelsShape s = dense_panels_shape(m, n, k);
  ThreadPool pool;
  // W as time_product makes it (filled(k * n, 2)), packed once before the timed loop, as at model load.
  const std::vector<float> w = filled(k * n, 2);
  std::vector<float> panels(static_cast<size_t>(panel_floats(n, k)));
  pack_panels(w.data(), n, k, k, panels.data());
  time_product(state, m, n, k, [&](const float* a, const float* /*w*/, float* c) {
    cpu::matmul_panels(s, a, panels.data(), c, pool);
  });
}

void decode_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rows", "out", "in"});
  for (int64_t rows : {1, 8, 32, 64, 512}) {
    b->Args({rows, 1024, 256});  // the demo model's fc1
    b->Args({rows, 256, 1024});  // its fc2
    b->Args({rows, 3072, 768});  // a base-sized fc1
  }
  b->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_LinearBlas)->Apply(decode_shapes);
BENCHMARK(BM_LinearPanels)->Apply(decode_shapes);

// An attention layer's q, k and v projections (3 x out x in, one input of `rows` rows) as three
// matmul_panels calls (together = 0) or one matmul_panels_together (1): the threads meet once instead of
// three times. GFLOP/s of all three.
void BM_QkvPanels(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const bool together = state.range(3) != 0;
  const MatmulPanelsShape s = dense_panels_shape(m, n, k);
  ThreadPool pool;
  std::vector<std::vector<float>> panels;
  for (int64_t i = 0; i < 3; ++i) {
    const std::vector<float> w = filled(k * n, 2 + i);
    panels.emplace_back(static_cast<size_t>(panel_floats(n, k)));
    pack_panels(w.data(), n, k, k, panels.back().data());
  }
  time_product(state, m, 3 * n, k, [&](const float* a, const float* /*w*/, float* c) {
    if (together) {
      cpu::MatmulPanelsJob jobs[3];
      for (int64_t i = 0; i < 3; ++i) {
        cpu::MatmulPanelsJob& job = jobs[i];
        job.shape = s;
        job.a = a;
        job.panels = panels[static_cast<size_t>(i)].data();
        job.c = c + i * m * n;
      }
      cpu::matmul_panels_together(jobs, pool);
    } else {
      for (int64_t i = 0; i < 3; ++i)
        cpu::matmul_panels(s, a, panels[static_cast<size_t>(i)].data(), c + i * m * n, pool);
    }
  });
}
BENCHMARK(BM_QkvPanels)
    ->ArgNames({"rows", "out", "in", "together"})
    ->Args({32, 768, 768, 0})
    ->Args({32, 768, 768, 1})
    ->Args({8, 768, 768, 0})
    ->Args({8, 768, 768, 1})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace longnet::kernels

BENCHMARK_MAIN();
