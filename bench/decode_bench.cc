// Batched decode steps of the embedded demo model (or LONGNET_BENCH_MODEL): one forward() of B sequences
// x 1 token each, as the server's engine runs them, with contexts of 8 to 136 tokens (an 8-token prompt,
// then 128 steps, then fresh sequences: the shape of bench/serve.sh's streams). Reports tokens/s, so the
// gain of batching is tokens/s at B over tokens/s at 1. BM_PrefillStep: one forward() of the prompts of B
// fresh sequences (25 tokens each, as serve.sh's), the step that starts B concurrent streams.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "longnet/kernels/thread_pool.h"
#include "longnet/model/default_model.h"
#include "longnet/model/model.h"

namespace {

using namespace longnet;

// LONGNET_BENCH_MODEL's model (else the embedded demo model) with the pools it runs on.
struct LoadedModel {
  model::MemoryPool pool;
  kernels::ThreadPool threads;
  std::unique_ptr<model::LongNetModel> model;
  model::ExecContext ctx{&threads, &pool};

  // False, with the benchmark skipped and the reason given, when the model cannot be loaded.
  bool load(benchmark::State& state) {
    const char* dir_env = std::getenv("LONGNET_BENCH_MODEL");
    absl::StatusOr<std::filesystem::path> dir =
        dir_env != nullptr ? absl::StatusOr<std::filesystem::path>(dir_env) : model::find_demo_model();
    absl::StatusOr<std::unique_ptr<model::LongNetModel>> loaded =
        dir.ok() ? model::LongNetModel::load(*dir, pool) : dir.status();
    if (!loaded.ok()) {
      state.SkipWithError(std::string(loaded.status().message()).c_str());
      return false;
    }
    model = *std::move(loaded);
    return true;
  }
};

void BM_DecodeStep(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  LoadedModel loaded;
  if (!loaded.load(state)) return;
  model::LongNetModel* m = loaded.model.get();
  const model::ExecContext& ctx = loaded.ctx;
  const std::vector<int32_t> prompt = {256, 73, 110, 32, 116, 104, 101, 32};
  std::vector<float> logits(static_cast<size_t>(m->vocab_size()) * static_cast<size_t>(batch));
  std::vector<std::unique_ptr<model::Sequence>> sequences(static_cast<size_t>(batch));
  const std::vector<int32_t> next(static_cast<size_t>(batch), 65);
  std::vector<model::DecodeChunk> chunks;
  auto restart = [&]() {
    chunks.clear();
    for (int i = 0; i < batch; ++i) {
      auto& seq = sequences[static_cast<size_t>(i)];
      seq = *m->start_sequence(ctx);
      const model::DecodeChunk c{seq.get(), prompt};
      if (!m->forward(ctx, {&c, 1}, model::DecoderOutput::kLastLogits, logits.data()).ok()) return false;
      chunks.push_back({seq.get(), std::span<const int32_t>(&next[static_cast<size_t>(i)], 1)});
    }
    return true;
  };
  constexpr int kStepsPerSequence = 128;
  int steps = 0;
  for (auto _ : state) {
    if (steps++ % kStepsPerSequence == 0) {
      state.PauseTiming();
      const bool ok = restart();
      state.ResumeTiming();
      if (!ok) {
        state.SkipWithError("prefill failed");
        return;
      }
    }
    if (!m->forward(ctx, chunks, model::DecoderOutput::kLastLogits, logits.data()).ok()) {
      state.SkipWithError("decode step failed");
      return;
    }
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * batch, benchmark::Counter::kIsRate);
}
// CPU is the whole process (every thread), so that work per step stays visible on a busy machine.
BENCHMARK(BM_DecodeStep)
    ->Arg(1)
    ->Arg(8)
    ->Arg(32)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

void BM_PrefillStep(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  LoadedModel loaded;
  if (!loaded.load(state)) return;
  model::LongNetModel* m = loaded.model.get();
  const model::ExecContext& ctx = loaded.ctx;
  const std::vector<int32_t> prompt(25, 65);
  std::vector<float> logits(static_cast<size_t>(m->vocab_size()) * static_cast<size_t>(batch));
  std::vector<std::unique_ptr<model::Sequence>> sequences(static_cast<size_t>(batch));
  std::vector<model::DecodeChunk> chunks;
  for (auto _ : state) {
    state.PauseTiming();
    chunks.clear();
    for (auto& seq : sequences) {
      seq = *m->start_sequence(ctx);
      chunks.push_back({seq.get(), prompt});
    }
    state.ResumeTiming();
    if (!m->forward(ctx, chunks, model::DecoderOutput::kLastLogits, logits.data()).ok()) {
      state.SkipWithError("prefill step failed");
      return;
    }
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * batch * 25.0, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_PrefillStep)->Arg(32)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
