// Parity of the small CUDA kernels with their references: embedding lookup, XPOS, softmax, residual add
// and storage conversion.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gpu/gpu_test_support.h"
#include "longnet/kernels/cuda_elementwise.h"
#include "longnet/kernels/embedding.h"
#include "longnet/kernels/softmax.h"
#include "longnet/kernels/thread_pool.h"
#include "longnet/kernels/xpos.h"

namespace longnet::kernels {
namespace {

using gpu_test::DeviceBuffer;
using gpu_test::TypedDeviceArray;

class CudaOpsTest : public gpu_test::GpuTest {};

TEST_F(CudaOpsTest, EmbeddingMatchesReferenceForEveryTableType) {
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    SCOPED_TRACE(gpu_test::dtype_label(dtype));
    EmbeddingShape shape;
    shape.vocab_size = 1000;
    shape.dim = 200;
    shape.num_ids = 77;
    shape.out_stride = 210;
    shape.table_dtype = dtype;
    shape.scale = 3.5f;
    TypedDeviceArray table(dtype, gpu_test::random_floats(200000, -1.0f, 1.0f, 31));
    std::vector<int32_t> ids(77);
    for (size_t i = 0; i < ids.size(); ++i)
      ids[i] = static_cast<int32_t>((i * 389) % 1000);
    ids[5] = 999;
    ids[6] = 0;
    DeviceBuffer<int32_t> d_ids(ids.size());
    DeviceBuffer<float> out(77 * 210);
    LONGNET_GPU_ASSERT_OK(out.upload(std::vector<float>(out.size(), 9.0f)));
    LONGNET_GPU_ASSERT_OK(cuda::embedding(shape, table.get(), ids.data(), d_ids.get(), out.get(), nullptr));
    LONGNET_GPU_ASSERT_OK(gpu_test::finish("embedding"));
    // The reference reads the table in its storage type: give it the same bits.
    std::vector<uint16_t> bits;
    const std::vector<float> rounded =
        gpu_test::round_to(dtype, gpu_test::random_floats(200000, -1.0f, 1.0f, 31), &bits);
    std::vector<float> want(out.size(), 9.0f);
    const void* host_table = dtype == DType::kF32 ? static_cast<const void*>(rounded.data()) : bits.data();
    ASSERT_TRUE(reference::embedding(shape, host_table, ids.data(), want.data()).ok());
    absl::StatusOr<std::vector<float>> got = out.download();
    LONGNET_GPU_ASSERT_OK(got.status());
    EXPECT_EQ(gpu_test::max_abs_diff(*got, want).second, 0.0f);  // a widening and one multiply: exact
  }
}

TEST_F(CudaOpsTest, EmbeddingDeviceIdsWritesNaNRowsForBadIds) {
  EmbeddingShape shape;
  shape.vocab_size = 10;
  shape.dim = 4;
  shape.num_ids = 2;
  shape.out_stride = 4;
  DeviceBuffer<float> table(40);
  LONGNET_GPU_ASSERT_OK(table.upload(std::vector<float>(40, 1.0f)));
  DeviceBuffer<int32_t> ids(2);
  LONGNET_GPU_ASSERT_OK(ids.upload({3, 10}));
  DeviceBuffer<float> out(8);
  LONGNET_GPU_ASSERT_OK(cuda::embedding_device_ids(shape, table.get(), ids.get(), out.get(), nullptr));
  LONGNET_GPU_ASSERT_OK(gpu_test::finish("embedding_device_ids"));
  absl::StatusOr<std::vector<float>> got = out.download();
  LONGNET_GPU_ASSERT_OK(got.status());
  EXPECT_EQ((*got)[0], 1.0f);
  EXPECT_TRUE(std::isnan((*got)[4]));
}

// Host-side checks: they run without a device, before anything is copied or launched.
TEST(CudaOpsChecksTest, EmbeddingRefusesBadIdsBeforeAnyCudaCall) {
  EmbeddingShape shape;
  shape.vocab_size = 10;
  shape.dim = 4;
  shape.num_ids = 2;
  shape.out_stride = 4;
  const int32_t ids[2] = {3, 10};
  const absl::Status st = cuda::embedding(shape, nullptr, ids, nullptr, nullptr, nullptr);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("token id 10 at index 1"), std::string::npos) << st;
}

TEST_F(CudaOpsTest, XposMatchesTheCpuPathForQueriesAndKeys) {
  ThreadPool pool(1);
  constexpr int64_t kRows = 50, kHeads = 3, kDim = 64, kStride = 3 * 64 + 5, kFirst = 1000;
  const std::vector<float> scale = xpos_default_scale(kDim);
  XposConfig config{kDim, 512.0, scale};
  XposTable table;
  ASSERT_TRUE(cpu::build_xpos_table(config, kFirst - 10, kRows + 20, kFirst + 25.0, &table, pool).ok());
  DeviceBuffer<float> d_table(static_cast<size_t>(cuda::xpos_device_table_floats(table)));
  cuda::XposDeviceTable view;
  LONGNET_GPU_ASSERT_OK(
      cuda::upload_xpos_table(table, d_table.get(), static_cast<int64_t>(d_table.size()), &view, nullptr));
  XposApplyShape shape{kRows, kHeads, kDim, kStride, kFirst};
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (XposRole role : {XposRole::kQuery, XposRole::kKey}) {
      SCOPED_TRACE(std::string(gpu_test::dtype_label(dtype)) +
                   (role == XposRole::kQuery ? " query" : " key"));
      TypedDeviceArray x(dtype, gpu_test::random_floats(kRows * kStride, -2.0f, 2.0f, 41));
      LONGNET_GPU_ASSERT_OK(cuda::apply_xpos(shape, role, view, dtype, x.get(), nullptr));
      LONGNET_GPU_ASSERT_OK(gpu_test::finish("apply_xpos"));
      std::vector<float> want = x.rounded();
      ASSERT_TRUE(cpu::apply_xpos(shape, role, table, want.data(), pool).ok());
      std::vector<uint16_t> unused;
      want = gpu_test::round_to(dtype, want, &unused);
      absl::StatusOr<std::vector<float>> got = x.download();
      LONGNET_GPU_ASSERT_OK(got.status());
      EXPECT_LE(gpu_test::max_abs_diff(*got, want).second, gpu_test::tolerance(dtype));
    }
  }
  // Positions outside the table are refused on the host.
  shape.first_position = kFirst + 100;
  EXPECT_EQ(cuda::apply_xpos(shape, XposRole::kQuery, view, DType::kF32, nullptr, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CudaOpsTest, SoftmaxMatchesReferenceIncludingMaskedRows) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int64_t dim : {1, 7, 1000, 5000}) {
    SCOPED_TRACE("dim " + std::to_string(dim));
    SoftmaxShape shape{40, dim, dim + 3, dim + 3};
    std::vector<float> x = gpu_test::random_floats(static_cast<size_t>(40 * (dim + 3)), -10.0f, 10.0f, 51);
    for (int64_t i = 0; i < dim; ++i)
      x[static_cast<size_t>(5 * (dim + 3) + i)] = kNegInf;  // row 5: all masked
    x[static_cast<size_t>(6 * (dim + 3))] = kNegInf;        // row 6: one masked entry
    DeviceBuffer<float> d_x(x.size()), d_lse(40);
    LONGNET_GPU_ASSERT_OK(d_x.upload(x));
    cuda::softmax(shape, d_x.get(), d_x.get(), d_lse.get(), nullptr);  // in place
    LONGNET_GPU_ASSERT_OK(gpu_test::finish("softmax"));
    std::vector<float> want(x), want_lse(40);
    reference::softmax(shape, x.data(), want.data(), want_lse.data());
    absl::StatusOr<std::vector<float>> got = d_x.download();
    absl::StatusOr<std::vector<float>> got_lse = d_lse.download();
    LONGNET_GPU_ASSERT_OK(got.status());
    LONGNET_GPU_ASSERT_OK(got_lse.status());
    EXPECT_LE(gpu_test::max_abs_diff(*got, want).second, gpu_test::kF32Tolerance);
    EXPECT_LE(gpu_test::max_abs_diff(*got_lse, want_lse).second, gpu_test::kF32Tolerance);
  }
}

TEST_F(CudaOpsTest, ResidualAddAndConvert) {
  constexpr int64_t kN = 100003;  // not a whole number of blocks
  const std::vector<float> a = gpu_test::random_floats(kN, -4.0f, 4.0f, 61);
  const std::vector<float> b = gpu_test::random_floats(kN, -4.0f, 4.0f, 62);
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    SCOPED_TRACE(gpu_test::dtype_label(dtype));
    TypedDeviceArray y(dtype, a), x(dtype, b);
    cuda::residual_add(dtype, y.get(), x.get(), kN, nullptr);
    LONGNET_GPU_ASSERT_OK(gpu_test::finish("residual_add"));
    std::vector<float> want(kN);
    for (size_t i = 0; i < want.size(); ++i)
      want[i] = y.rounded()[i] + x.rounded()[i];
    std::vector<uint16_t> unused;
    want = gpu_test::round_to(dtype, want, &unused);  // one rounding, as the kernel does
    absl::StatusOr<std::vector<float>> got = y.download();
    LONGNET_GPU_ASSERT_OK(got.status());
    EXPECT_EQ(gpu_test::max_abs_diff(*got, want).second, 0.0f);

    // fp32 -> dtype -> fp32 gives the reference's rounding exactly.
    DeviceBuffer<float> src(kN), back(kN);
    LONGNET_GPU_ASSERT_OK(src.upload(a));
    TypedDeviceArray mid(dtype, std::vector<float>(kN, 0.0f));
    cuda::convert(DType::kF32, src.get(), dtype, mid.get(), kN, nullptr);
    cuda::convert(dtype, mid.get(), DType::kF32, back.get(), kN, nullptr);
    LONGNET_GPU_ASSERT_OK(gpu_test::finish("convert"));
    absl::StatusOr<std::vector<float>> round_trip = back.download();
    LONGNET_GPU_ASSERT_OK(round_trip.status());
    EXPECT_EQ(gpu_test::max_abs_diff(*round_trip, gpu_test::round_to(dtype, a, &unused)).second, 0.0f);
  }
}

}  // namespace
}  // namespace longnet::kernels
