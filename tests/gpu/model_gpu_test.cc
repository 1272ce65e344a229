// The whole model on a CUDA device against the same model on the CPU (which
// tests/model/forward_parity_test.py holds to the float64 reference): decoder logits through chunked prefill,
// one-token decoding and batches, XPOS recentring of cached keys, encoder states block by block, and an
// encoder-decoder. Without a device the tests skip with the runtime's reason.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include <gtest/gtest.h>

#include "gpu/gpu_test_support.h"
#include "longnet/kernels/thread_pool.h"
#include "longnet/model/cuda_memory_pool.h"
#include "longnet/model/model.h"
#include "support/random_model.h"

namespace longnet::model {
namespace {

using kernels::DilatedBranch;
using kernels::gpu_test::kF32Tolerance;

using testing::random_ids;

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float worst = 0.0f;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

// The same random model twice: one stays on the CPU, the other goes to the device.
class ModelOnCuda : public kernels::gpu_test::GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    absl::StatusOr<std::unique_ptr<CudaMemoryPool>> pool = CudaMemoryPool::create({});
    LONGNET_GPU_ASSERT_OK(pool.status());
    device_pool = *std::move(pool);
  }
  void TearDown() override {
    gpu.reset();
    cpu.reset();
  }

  void build(const ModelConfig& config) {
    cpu = testing::random_model(config, host_pool, 5);
    gpu = testing::random_model(config, host_pool, 5);
    ASSERT_NE(cpu, nullptr);
    ASSERT_NE(gpu, nullptr);
    LONGNET_GPU_ASSERT_OK(gpu->to_cuda(*device_pool));
    EXPECT_TRUE(gpu->device().is_cuda());
  }

  // Logits of every position, `chunk` tokens per forward().
  std::vector<float> logits(const LongNetModel& m, const std::vector<int32_t>& ids, int64_t chunk,
                            std::span<const int32_t> source = {}) {
    auto seq = m.start_sequence(ctx, source);
    EXPECT_TRUE(seq.ok()) << seq.status();
    if (!seq.ok()) return {};
    const int64_t vocab = m.vocab_size();
    std::vector<float> out(ids.size() * static_cast<size_t>(vocab));
    const absl::Status st =
        m.forward_chunked(ctx, **seq, ids, chunk, DecoderOutput::kLogits,
                          [&](int64_t first, int64_t rows, const float* rows_out) {
                            std::copy_n(rows_out, rows * vocab, out.data() + first * vocab);
                            return absl::OkStatus();
                          });
    EXPECT_TRUE(st.ok()) << st;
    return out;
  }

  std::vector<float> encoded(const LongNetModel& m, const std::vector<int32_t>& ids) {
    const int64_t e = m.config().encoder->embed_dim;
    std::vector<float> out(ids.size() * static_cast<size_t>(e));
    const absl::Status st = m.encode(ctx, ids, [&](int64_t first, int64_t rows, const float* hidden) {
      std::copy_n(hidden, rows * e, out.data() + first * e);
      return absl::OkStatus();
    });
    EXPECT_TRUE(st.ok()) << st;
    return out;
  }

  MemoryPool host_pool;
  kernels::ThreadPool threads{2};
  ExecContext ctx{&threads, &host_pool};
  std::unique_ptr<CudaMemoryPool> device_pool;
  std::unique_ptr<LongNetModel> cpu;
  std::unique_ptr<LongNetModel> gpu;
};

// Head size 32 and 64; dilations above 1 and above the head count; segments that end inside a chunk.
TEST_F(ModelOnCuda, DecoderLogitsMatchTheCpuForEveryChunking) {
  const std::vector<DilatedBranch> branches = {{16, 1}, {32, 2}, {64, 4}};
  for (int64_t embed : {64, 128}) {
    build(testing::small_config(ModelType::kDecoder, embed, 2, 2, branches));
    const std::vector<int32_t> ids = random_ids(150, 3);
    const std::vector<float> want = logits(*cpu, ids, 150);
    for (int64_t chunk : {1, 7, 64, 150}) {
      EXPECT_LE(max_abs_diff(want, logits(*gpu, ids, chunk)), kF32Tolerance)
          << "embed " << embed << " chunk " << chunk;
    }
  }
}

// Three sequences of different lengths in one forward(), last-row logits and hidden states with logits.
TEST_F(ModelOnCuda, BatchedStepsMatchTheCpu) {
  build(testing::small_config(ModelType::kDecoder, 64, 2, 2, {{16, 1}, {32, 2}}));
  for (DecoderOutput what : {DecoderOutput::kLastLogits, DecoderOutput::kHiddenAndLogits}) {
    std::vector<std::vector<float>> outs;
    for (const LongNetModel* m : {cpu.get(), gpu.get()}) {
      std::vector<std::unique_ptr<Sequence>> seqs;
      std::vector<std::vector<int32_t>> prompts = {random_ids(5, 1), random_ids(40, 2), random_ids(1, 3)};
      std::vector<DecodeChunk> chunks;
      int64_t rows = 0;
      for (const auto& p : prompts) {
        auto seq = m->start_sequence(ctx);
        ASSERT_TRUE(seq.ok()) << seq.status();
        seqs.push_back(*std::move(seq));
        chunks.push_back({seqs.back().get(), p});
        rows += what == DecoderOutput::kLastLogits ? 1 : static_cast<int64_t>(p.size());
      }
      std::vector<float> out(static_cast<size_t>(rows * m->output_dim(what)));
      const absl::Status st = m->forward(ctx, chunks, what, out.data());
      ASSERT_TRUE(st.ok()) << st;
      outs.push_back(std::move(out));
    }
    EXPECT_LE(max_abs_diff(outs[0], outs[1]), kF32Tolerance);
  }
}

// A segment longer than DilatedSelfAttention::kXposRecentre: the cached keys are rescaled on the device.
TEST_F(ModelOnCuda, XposRecentringMatchesTheCpu) {
  build(testing::small_config(ModelType::kDecoder, 64, 2, 1, {{8192, 1}}));
  const std::vector<int32_t> ids = random_ids(4300, 9);
  EXPECT_LE(max_abs_diff(logits(*cpu, ids, 512), logits(*gpu, ids, 512)), kF32Tolerance);
}

TEST_F(ModelOnCuda, EncoderStatesMatchTheCpu) {
  build(testing::small_config(ModelType::kEncoder, 64, 2, 2, {{32, 1}, {64, 2}}));
  for (size_t n : {1u, 50u, 200u}) {  // one short block, and blocks of the widest segment
    const std::vector<int32_t> ids = random_ids(n, 4);
    EXPECT_LE(max_abs_diff(encoded(*cpu, ids), encoded(*gpu, ids)), kF32Tolerance) << n << " tokens";
  }
}

TEST_F(ModelOnCuda, EncoderDecoderLogitsMatchTheCpu) {
  build(testing::small_config(ModelType::kEncoderDecoder, 64, 2, 2, {{16, 1}, {32, 2}}));
  const std::vector<int32_t> source = random_ids(70, 5);
  const std::vector<int32_t> target = random_ids(30, 6);
  const std::vector<float> want = logits(*cpu, target, 30, source);
  EXPECT_LE(max_abs_diff(want, logits(*gpu, target, 1, source)), kF32Tolerance);
  EXPECT_LE(max_abs_diff(want, logits(*gpu, target, 30, source)), kF32Tolerance);
}

// Caches live in the device pool, and a bad id is refused before any of them changes.
TEST_F(ModelOnCuda, CachesAreDeviceMemoryAndBadIdsChangeNothing) {
  build(testing::small_config(ModelType::kDecoder, 64, 2, 1, {{16, 1}}));
  const size_t weights = device_pool->stats().in_use_bytes;
  {
    auto seq = gpu->start_sequence(ctx);
    ASSERT_TRUE(seq.ok()) << seq.status();
    EXPECT_EQ(&gpu->cache_allocator(ctx), device_pool.get());
    EXPECT_GE(device_pool->stats().in_use_bytes, weights + (*seq)->nbytes());
    const std::vector<int32_t> bad = {1, 2, 999};
    const DecodeChunk chunk{seq->get(), bad};
    std::vector<float> out(259);
    const absl::Status st = gpu->forward(ctx, {&chunk, 1}, DecoderOutput::kLastLogits, out.data());
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    EXPECT_EQ((*seq)->length(), 0);
  }
  LONGNET_GPU_ASSERT_OK(kernels::cuda::to_status(cudaDeviceSynchronize(), "sync"));
  EXPECT_EQ(device_pool->stats().in_use_bytes, weights);
}

}  // namespace
}  // namespace longnet::model
