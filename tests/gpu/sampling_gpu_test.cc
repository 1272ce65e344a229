// The CUDA sampler picks the token model::Sampler picks for the same logits and draw: greedy, temperature,
// top-k, top-p, both together, ties, -inf and +inf logits, and the error rows.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gpu/gpu_test_support.h"
#include "longnet/kernels/cuda_sampling.h"
#include "longnet/model/sampling.h"

namespace longnet::kernels {
namespace {

using gpu_test::DeviceBuffer;

class CudaSamplingTest : public gpu_test::GpuTest {};

struct Row {
  model::SamplingParams params;
  std::vector<float> logits;
};

TEST_F(CudaSamplingTest, PicksWhatTheCpuSamplerPicks) {
  constexpr int64_t kVocab = 50257;
  constexpr float kInf = std::numeric_limits<float>::infinity();
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<Row> rows;
  const auto add = [&](float temperature, int32_t top_k, float top_p, uint64_t seed, auto&& tweak) {
    Row row;
    row.params.temperature = temperature;
    row.params.top_k = top_k;
    row.params.top_p = top_p;
    row.params.seed = seed;
    row.logits.resize(kVocab);
    for (float& x : row.logits)
      x = normal(rng);
    tweak(row.logits);
    rows.push_back(std::move(row));
  };
  const auto none = [](std::vector<float>&) {};
  for (uint64_t seed = 0; seed < 40; ++seed) {
    add(1.0f, 0, 1.0f, seed, none);   // plain draw, id order
    add(0.7f, 50, 1.0f, seed, none);  // top-k
    add(1.3f, 0, 0.9f, seed, none);   // top-p
    add(0.9f, 40, 0.5f, seed, none);  // both
    add(0.0f, 0, 1.0f, seed, none);   // greedy
  }
  add(1.0f, 3, 1.0f, 7, [](std::vector<float>& l) { l[10] = l[20] = l[30] = l[40] = 50.0f; });  // ties at k
  add(0.0f, 0, 1.0f, 7, [](std::vector<float>& l) { l[10] = l[20] = 50.0f; });  // greedy tie: lowest id
  add(1.0f, 0, 0.95f, 7, [&](std::vector<float>& l) {
    for (float& x : l)
      x = -kInf;
    l[100] = 1.0f;
    l[200] = 1.5f;
  });
  add(1.0f, 5, 1.0f, 7, [&](std::vector<float>& l) { l[3] = l[9] = kInf; });  // +inf share everything
  add(1.0f, 0, 1.0f, 7, [&](std::vector<float>& l) {
    l[1] = -0.0f;
    l[2] = 0.0f;
  });

  const int64_t n = static_cast<int64_t>(rows.size());
  std::vector<float> logits;
  std::vector<cuda::SamplingRowParams> params;
  std::vector<int32_t> want;
  for (Row& row : rows) {
    logits.insert(logits.end(), row.logits.begin(), row.logits.end());
    absl::StatusOr<model::Sampler> sampler = model::Sampler::create(row.params);
    ASSERT_TRUE(sampler.ok()) << sampler.status();
    absl::StatusOr<int32_t> id = sampler->sample(row.logits, {});
    ASSERT_TRUE(id.ok()) << id.status();
    want.push_back(*id);
    params.push_back({row.params.temperature, row.params.top_k, row.params.top_p,
                      model::Sampler::uniform(row.params.seed, 0)});
  }
  DeviceBuffer<float> d_logits(logits.size());
  DeviceBuffer<cuda::SamplingRowParams> d_params(params.size());
  DeviceBuffer<int32_t> d_ids(static_cast<size_t>(n)), d_status(static_cast<size_t>(n));
  DeviceBuffer<char> workspace(static_cast<size_t>(cuda::sample_workspace_bytes(n, kVocab)));
  LONGNET_GPU_ASSERT_OK(d_logits.upload(logits));
  LONGNET_GPU_ASSERT_OK(d_params.upload(params));
  cuda::sample_tokens(n, kVocab, d_logits.get(), kVocab, d_params.get(), d_ids.get(), d_status.get(),
                      workspace.get(), nullptr);
  LONGNET_GPU_ASSERT_OK(gpu_test::finish("sample_tokens"));
  absl::StatusOr<std::vector<int32_t>> ids = d_ids.download();
  absl::StatusOr<std::vector<int32_t>> status = d_status.download();
  LONGNET_GPU_ASSERT_OK(ids.status());
  LONGNET_GPU_ASSERT_OK(status.status());
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ((*status)[static_cast<size_t>(i)], cuda::kSampleOk) << "row " << i;
    EXPECT_EQ((*ids)[static_cast<size_t>(i)], want[static_cast<size_t>(i)])
        << "row " << i << ": temperature " << params[static_cast<size_t>(i)].temperature << " top_k "
        << params[static_cast<size_t>(i)].top_k << " top_p " << params[static_cast<size_t>(i)].top_p;
  }
}

TEST_F(CudaSamplingTest, NaNAndAllMaskedRowsAreReported) {
  constexpr int64_t kVocab = 100;
  std::vector<float> logits(2 * kVocab, 0.0f);
  logits[42] = std::numeric_limits<float>::quiet_NaN();
  for (int64_t i = kVocab; i < 2 * kVocab; ++i)
    logits[static_cast<size_t>(i)] = -std::numeric_limits<float>::infinity();
  std::vector<cuda::SamplingRowParams> params(2);
  DeviceBuffer<float> d_logits(logits.size());
  DeviceBuffer<cuda::SamplingRowParams> d_params(2);
  DeviceBuffer<int32_t> d_ids(2), d_status(2);
  DeviceBuffer<char> workspace(static_cast<size_t>(cuda::sample_workspace_bytes(2, kVocab)));
  LONGNET_GPU_ASSERT_OK(d_logits.upload(logits));
  LONGNET_GPU_ASSERT_OK(d_params.upload(params));
  cuda::sample_tokens(2, kVocab, d_logits.get(), kVocab, d_params.get(), d_ids.get(), d_status.get(),
                      workspace.get(), nullptr);
  LONGNET_GPU_ASSERT_OK(gpu_test::finish("sample_tokens"));
  absl::StatusOr<std::vector<int32_t>> ids = d_ids.download();
  absl::StatusOr<std::vector<int32_t>> status = d_status.download();
  LONGNET_GPU_ASSERT_OK(ids.status());
  LONGNET_GPU_ASSERT_OK(status.status());
  EXPECT_EQ((*status)[0], cuda::kSampleNanLogit);
  EXPECT_EQ((*ids)[0], 42);
  EXPECT_EQ((*status)[1], cuda::kSampleAllNegInf);
}

}  // namespace
}  // namespace longnet::kernels
