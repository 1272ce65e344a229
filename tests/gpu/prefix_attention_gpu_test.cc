// Parity of the CUDA prefix (decode) attention and of the LSE merge with their double-precision
// references: batches of problems, per-query key limits including 0 and the full buffer, one split and
// many (the split-K partials and their merge), fp32 / fp16 / bf16 storage.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

#include "gpu/gpu_test_support.h"
#include "longnet/kernels/cuda_attention_plan.h"
#include "longnet/kernels/prefix_attention.h"

namespace longnet::kernels {
namespace {

using gpu_test::DeviceBuffer;
using gpu_test::TypedDeviceArray;

struct PrefixCase {
  std::string name;
  int64_t count;
  int64_t num_queries;
  int64_t num_keys;
  int64_t head_dim;
  bool limits;  // per-query limits (else nullptr: every key)
  DType dtype;
};

void PrintTo(const PrefixCase& c, std::ostream* os) {
  *os << c.name;
}

class CudaPrefixAttentionTest : public gpu_test::GpuParamTest<PrefixCase> {};

TEST_P(CudaPrefixAttentionTest, MatchesReference) {
  const PrefixCase& c = GetParam();
  const int64_t d = c.head_dim;
  const int64_t row = d + 3;  // rows wider than a head
  PrefixAttentionShape shape;
  shape.num_queries = c.num_queries;
  shape.num_keys = c.num_keys;
  shape.head_dim = d;
  shape.q_stride = shape.k_stride = shape.v_stride = shape.out_stride = row;
  cuda::PrefixAttentionBatch batch;
  batch.count = c.count;
  batch.q_stride = batch.out_stride = c.num_queries * row;
  batch.k_stride = batch.v_stride = c.num_keys * row;
  batch.lse_stride = c.num_queries;

  const auto size = [](int64_t x) { return static_cast<size_t>(x); };
  TypedDeviceArray q(c.dtype, gpu_test::random_floats(size(c.count * c.num_queries * row), -2.0f, 2.0f, 11));
  TypedDeviceArray k(c.dtype, gpu_test::random_floats(size(c.count * c.num_keys * row), -2.0f, 2.0f, 12));
  TypedDeviceArray v(c.dtype, gpu_test::random_floats(size(c.count * c.num_keys * row), -1.0f, 1.0f, 13));
  TypedDeviceArray out(c.dtype, std::vector<float>(size(c.count * c.num_queries * row), 555.0f));
  DeviceBuffer<float> lse(size(c.count * c.num_queries));
  std::vector<int64_t> limits(size(c.count * c.num_queries), c.num_keys);
  if (c.limits) {
    for (size_t i = 0; i < limits.size(); ++i)  // 0, the whole buffer, and causal-like prefixes between
      limits[i] =
          i % 5 == 0 ? 0 : (i % 5 == 1 ? c.num_keys : static_cast<int64_t>(i * 37) % (c.num_keys + 1));
  }
  DeviceBuffer<int64_t> limit_dev(limits.size());
  LONGNET_GPU_ASSERT_OK(limit_dev.upload(limits));
  const int64_t ws = cuda::prefix_attention_workspace_floats(shape, batch);
  DeviceBuffer<float> workspace(size(ws));
  LONGNET_GPU_ASSERT_OK(cuda::prefix_attention(shape, batch, c.dtype, q.get(), k.get(), v.get(),
                                               c.limits ? limit_dev.get() : nullptr, out.get(), lse.get(),
                                               workspace.get(), ws, nullptr));
  LONGNET_GPU_ASSERT_OK(gpu_test::finish("prefix_attention"));

  absl::StatusOr<std::vector<float>> got = out.download();
  absl::StatusOr<std::vector<float>> got_lse = lse.download();
  LONGNET_GPU_ASSERT_OK(got.status());
  LONGNET_GPU_ASSERT_OK(got_lse.status());
  std::vector<float> want(got->size(), 555.0f), want_lse(got_lse->size());
  for (int64_t b = 0; b < c.count; ++b) {
    const std::span<const int64_t> lim(limits.data() + b * c.num_queries, size(c.num_queries));
    ASSERT_TRUE(reference::prefix_attention(
                    shape, q.rounded().data() + b * batch.q_stride, k.rounded().data() + b * batch.k_stride,
                    v.rounded().data() + b * batch.v_stride, lim, want.data() + b * batch.out_stride,
                    want_lse.data() + b * c.num_queries)
                    .ok());
  }
  std::vector<uint16_t> unused;
  want = gpu_test::round_to(c.dtype, want, &unused);
  const auto [at, diff] = gpu_test::max_abs_diff(*got, want);
  EXPECT_LE(diff, gpu_test::tolerance(c.dtype))
      << "out[" << at << "] = " << (*got)[at] << ", want " << want[at];
  const auto [lat, ldiff] = gpu_test::max_abs_diff(*got_lse, want_lse);
  EXPECT_LE(ldiff, gpu_test::tolerance(c.dtype) * 4)
      << "lse[" << lat << "] = " << (*got_lse)[lat] << ", want " << want_lse[lat];
}

std::vector<PrefixCase> cases() {
  std::vector<PrefixCase> all;
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    const std::string t = gpu_test::dtype_label(dtype);
    for (int64_t d : {32, 64, 80, 96, 128}) {
      // Decode: one query per head, keys split across blocks.
      all.push_back({absl::StrCat("Decode_D", d, "_", t), 16, 1, 2731, d, true, dtype});
    }
    all.push_back({absl::StrCat("ChunkedPrefill_", t), 4, 70, 600, 64, true, dtype});
    all.push_back({absl::StrCat("OneSplitManyRows_", t), 64, 20, 300, 64, false, dtype});
    all.push_back({absl::StrCat("NoKeys_", t), 3, 2, 0, 64, false, dtype});
  }
  return all;
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaPrefixAttentionTest, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<PrefixCase>& param_info) {
                           return param_info.param.name;
                         });

TEST(CudaPrefixAttentionChecksTest, ShapeAndWorkspaceErrorsComeBeforeAnyCudaCall) {
  PrefixAttentionShape shape;
  shape.num_queries = 1;
  shape.num_keys = 4096;
  shape.head_dim = 64;
  shape.q_stride = shape.k_stride = shape.v_stride = shape.out_stride = 64;
  cuda::PrefixAttentionBatch batch;
  // The plan splits this decode, so it needs a workspace.
  ASSERT_GT(cuda::prefix_attention_workspace_floats(shape, batch), 0);
  absl::Status st = cuda::prefix_attention(shape, batch, DType::kF32, nullptr, nullptr, nullptr, nullptr,
                                           nullptr, nullptr, nullptr, 0, nullptr);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  shape.head_dim = 48;
  shape.q_stride = shape.k_stride = shape.v_stride = shape.out_stride = 48;
  st = cuda::prefix_attention(shape, batch, DType::kF32, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                              nullptr, 0, nullptr);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  shape.head_dim = 64;
  shape.q_stride = 10;
  st = cuda::prefix_attention(shape, batch, DType::kF32, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                              nullptr, 0, nullptr);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
}

// merge_attention_lse against the reference, with empty accumulators and empty branches among the rows.
class CudaMergeLseTest : public gpu_test::GpuTest {};

TEST_F(CudaMergeLseTest, MatchesReference) {
  constexpr int64_t kRows = 1000, kDim = 80, kStride = 96;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  std::vector<float> out = gpu_test::random_floats(kRows * kStride, -1.0f, 1.0f, 21);
  std::vector<float> acc = gpu_test::random_floats(kRows * kStride, -1.0f, 1.0f, 22);
  std::vector<float> lse = gpu_test::random_floats(kRows, -5.0f, 5.0f, 23);
  std::vector<float> acc_lse = gpu_test::random_floats(kRows, -5.0f, 5.0f, 24);
  for (int64_t i = 0; i < kRows; i += 7)
    lse[static_cast<size_t>(i)] = kNegInf;
  for (int64_t i = 3; i < kRows; i += 11) {
    acc_lse[static_cast<size_t>(i)] = kNegInf;
    acc[static_cast<size_t>(i * kStride)] = std::numeric_limits<float>::quiet_NaN();  // must not be read
  }
  DeviceBuffer<float> d_out(out.size()), d_acc(acc.size()), d_lse(lse.size()), d_acc_lse(acc_lse.size());
  LONGNET_GPU_ASSERT_OK(d_out.upload(out));
  LONGNET_GPU_ASSERT_OK(d_acc.upload(acc));
  LONGNET_GPU_ASSERT_OK(d_lse.upload(lse));
  LONGNET_GPU_ASSERT_OK(d_acc_lse.upload(acc_lse));
  cuda::merge_attention_lse(kRows, kDim, d_out.get(), kStride, d_lse.get(), d_acc.get(), kStride,
                            d_acc_lse.get(), nullptr);
  LONGNET_GPU_ASSERT_OK(gpu_test::finish("merge_attention_lse"));
  reference::merge_attention_lse(kRows, kDim, out.data(), kStride, lse.data(), acc.data(), kStride,
                                 acc_lse.data());
  absl::StatusOr<std::vector<float>> got = d_acc.download();
  absl::StatusOr<std::vector<float>> got_lse = d_acc_lse.download();
  LONGNET_GPU_ASSERT_OK(got.status());
  LONGNET_GPU_ASSERT_OK(got_lse.status());
  EXPECT_LE(gpu_test::max_abs_diff(*got, acc).second, gpu_test::kF32Tolerance);
  EXPECT_LE(gpu_test::max_abs_diff(*got_lse, acc_lse).second, gpu_test::kF32Tolerance);
}

}  // namespace
}  // namespace longnet::kernels
