// Parity of the CUDA dilated attention with the double-precision reference (kernels/reference): every
// head size, fp32 / fp16 / bf16 storage, causal and not, schedules with and without an r = 1 branch,
// short last segments, heads no branch covers, ragged batches beyond one launch's 32 sequences.
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
#include "longnet/kernels/dilated_attention.h"

namespace longnet::kernels {
namespace {

using gpu_test::DeviceBuffer;
using gpu_test::TypedDeviceArray;

struct AttentionCase {
  std::string name;
  int64_t num_heads;
  int64_t head_dim;
  std::vector<int64_t> starts;
  std::vector<int64_t> lens;
  std::vector<DilatedBranch> branches;
  bool causal;
  DType dtype;
};

void PrintTo(const AttentionCase& c, std::ostream* os) {
  *os << c.name;
}

class CudaDilatedAttentionTest : public gpu_test::GpuParamTest<AttentionCase> {};

TEST_P(CudaDilatedAttentionTest, MatchesReference) {
  const AttentionCase& c = GetParam();
  int64_t rows = 0;
  for (size_t b = 0; b < c.lens.size(); ++b)
    rows = std::max(rows, c.starts[b] + c.lens[b]);
  const int64_t stride = c.num_heads * c.head_dim + 8;  // padding columns must stay untouched
  const size_t n = static_cast<size_t>(rows * stride);
  TypedDeviceArray q(c.dtype, gpu_test::random_floats(n, -1.0f, 1.0f, 1));
  TypedDeviceArray k(c.dtype, gpu_test::random_floats(n, -1.0f, 1.0f, 2));
  TypedDeviceArray v(c.dtype, gpu_test::random_floats(n, -1.0f, 1.0f, 3));
  const std::vector<float> sentinel(n, 777.0f);
  TypedDeviceArray out(c.dtype, sentinel);
  DeviceBuffer<float> lse(static_cast<size_t>(rows * c.num_heads));
  LONGNET_GPU_ASSERT_OK(q.status());
  LONGNET_GPU_ASSERT_OK(k.status());
  LONGNET_GPU_ASSERT_OK(v.status());
  LONGNET_GPU_ASSERT_OK(out.status());
  LONGNET_GPU_ASSERT_OK(lse.upload(std::vector<float>(lse.size(), 777.0f)));

  DilatedAttentionShape shape;
  shape.num_heads = c.num_heads;
  shape.head_dim = c.head_dim;
  shape.seq_starts = c.starts;
  shape.seq_lens = c.lens;
  shape.q_stride = shape.k_stride = shape.v_stride = shape.out_stride = stride;
  DilatedAttentionParams params;
  params.branches = c.branches;
  params.causal = c.causal;
  LONGNET_GPU_ASSERT_OK(cuda::dilated_attention(shape, params, c.dtype, q.get(), k.get(), v.get(), out.get(),
                                                lse.get(), nullptr));
  LONGNET_GPU_ASSERT_OK(gpu_test::finish("dilated_attention"));

  std::vector<float> want_out(sentinel), want_lse(lse.size(), 777.0f);
  ASSERT_TRUE(reference::dilated_attention(shape, params, q.rounded().data(), k.rounded().data(),
                                           v.rounded().data(), want_out.data(), want_lse.data())
                  .ok());
  absl::StatusOr<std::vector<float>> got_out = out.download();
  absl::StatusOr<std::vector<float>> got_lse = lse.download();
  LONGNET_GPU_ASSERT_OK(got_out.status());
  LONGNET_GPU_ASSERT_OK(got_lse.status());
  // fp16 / bf16 outputs are rounded on the way out: compare against the reference rounded the same way.
  std::vector<uint16_t> unused;
  want_out = gpu_test::round_to(c.dtype, want_out, &unused);
  const auto [at, diff] = gpu_test::max_abs_diff(*got_out, want_out);
  EXPECT_LE(diff, gpu_test::tolerance(c.dtype))
      << "out[" << at << "] (row " << at / static_cast<size_t>(stride) << ") = " << (*got_out)[at]
      << ", want " << want_out[at];
  const auto [lse_at, lse_diff] = gpu_test::max_abs_diff(*got_lse, want_lse);
  EXPECT_LE(lse_diff, gpu_test::tolerance(c.dtype) * 4)
      << "lse[" << lse_at << "] = " << (*got_lse)[lse_at] << ", want " << want_lse[lse_at];
}

std::vector<AttentionCase> cases() {
  std::vector<AttentionCase> all;
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    const std::string t = gpu_test::dtype_label(dtype);
    for (int64_t d : {32, 64, 80, 96, 128}) {
      for (bool causal : {true, false}) {
        const std::string name = absl::StrCat("D", d, causal ? "_causal_" : "_noncausal_", t);
        // Several query and key tiles per segment; a short last segment; w % r != 0.
        all.push_back({name, 4, d, {0}, {333}, {{128, 1}, {200, 2}, {300, 3}}, causal, dtype});
      }
    }
    // No r = 1 branch and r > H: uncovered heads read 0 / -inf.
    all.push_back({absl::StrCat("Uncovered_", t), 3, 64, {0}, {150}, {{24, 4}, {512, 6}}, true, dtype});
    // Ragged, with gaps, an empty sequence, and more sequences than one launch takes.
    AttentionCase ragged{absl::StrCat("Ragged_", t), 2, 64, {}, {}, {{32, 1}, {64, 2}}, false, dtype};
    for (int b = 0; b < 40; ++b) {
      ragged.starts.push_back(b * 50 + 3);
      ragged.lens.push_back(b % 9 == 4 ? 0 : 1 + (b * 7) % 45);
    }
    all.push_back(ragged);
  }
  // The paper's kind of schedule at a length that spans several segments of every branch.
  all.push_back({"LongSchedule_f32",
                 8,
                 64,
                 {0},
                 {4096},
                 {{512, 1}, {1024, 2}, {2048, 4}, {4096, 8}},
                 true,
                 DType::kF32});
  return all;
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaDilatedAttentionTest, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<AttentionCase>& param_info) {
                           return param_info.param.name;
                         });

// Checked on the host before any CUDA call: runs without a device too.
TEST(CudaDilatedAttentionChecksTest, UnsupportedHeadSizeIsInvalidArgument) {
  DilatedAttentionShape shape;
  shape.num_heads = 2;
  shape.head_dim = 48;
  const std::vector<int64_t> starts = {0}, lens = {8};
  shape.seq_starts = starts;
  shape.seq_lens = lens;
  shape.q_stride = shape.k_stride = shape.v_stride = shape.out_stride = 96;
  DilatedAttentionParams params;
  params.branches = {{8, 1}};
  const absl::Status st = cuda::dilated_attention(shape, params, DType::kF32, nullptr, nullptr, nullptr,
                                                  nullptr, nullptr, nullptr);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
}

}  // namespace
}  // namespace longnet::kernels
