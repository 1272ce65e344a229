// Parity of the cuBLAS / cuBLASLt wrappers with the double-accumulating reference GEMM: transposes,
// leading dimensions, alpha / beta, strided batches with a shared operand, the fused-bias linear layer;
// fp32, and fp16 / bf16 operands with fp32 or 16-bit results.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gpu/gpu_test_support.h"
#include "longnet/kernels/cuda_gemm.h"
#include "longnet/kernels/gemm.h"

namespace longnet::kernels {
namespace {

using gpu_test::DeviceBuffer;
using gpu_test::TypedDeviceArray;

class CudaGemmTest : public gpu_test::GpuTest {
 protected:
  void SetUp() override {
    gpu_test::GpuTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    absl::StatusOr<std::unique_ptr<cuda::Blas>> blas = cuda::Blas::create(nullptr);
    LONGNET_GPU_ASSERT_OK(blas.status());
    blas_ = std::move(*blas);
  }
  std::unique_ptr<cuda::Blas> blas_;
};

// Relative to the size of the sums: K products of values in [-1, 1].
float gemm_tolerance(DType dtype, int64_t k) {
  return gpu_test::tolerance(dtype) * std::max(1.0f, std::sqrt(static_cast<float>(k)) / 4.0f);
}

TEST_F(CudaGemmTest, GemmAndBatchesMatchReference) {
  for (DType ab : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (DType c_type : {ab, DType::kF32}) {
      for (Transpose ta : {Transpose::kNo, Transpose::kYes}) {
        for (Transpose tb : {Transpose::kNo, Transpose::kYes}) {
          SCOPED_TRACE(std::string(gpu_test::dtype_label(ab)) + " -> " + gpu_test::dtype_label(c_type) +
                       (ta == Transpose::kYes ? " A^T" : " A") + (tb == Transpose::kYes ? " B^T" : " B"));
          GemmShape s;
          s.trans_a = ta;
          s.trans_b = tb;
          s.m = 37;
          s.n = 50;
          s.k = 129;
          s.alpha = 0.75f;
          s.beta = 0.5f;
          s.lda = (ta == Transpose::kNo ? s.k : s.m) + 2;
          s.ldb = (tb == Transpose::kNo ? s.n : s.k) + 3;
          s.ldc = s.n + 1;
          GemmBatch batch{3, (ta == Transpose::kNo ? s.m : s.k) * s.lda, 0, s.m * s.ldc};  // B shared
          TypedDeviceArray a(
              ab, gpu_test::random_floats(static_cast<size_t>(batch.count * batch.stride_a), -1, 1, 71));
          TypedDeviceArray b(
              ab, gpu_test::random_floats(static_cast<size_t>((tb == Transpose::kNo ? s.k : s.n) * s.ldb), -1,
                                          1, 72));
          TypedDeviceArray c(
              c_type, gpu_test::random_floats(static_cast<size_t>(batch.count * batch.stride_c), -1, 1, 73));
          LONGNET_GPU_ASSERT_OK(blas_->gemm_batched(s, batch, {ab, c_type}, a.get(), b.get(), c.get()));
          LONGNET_GPU_ASSERT_OK(gpu_test::finish("gemm_batched"));
          std::vector<float> want = c.rounded();
          reference::gemm_batched(s, batch, a.rounded().data(), b.rounded().data(), want.data());
          std::vector<uint16_t> unused;
          want = gpu_test::round_to(c_type, want, &unused);
          absl::StatusOr<std::vector<float>> got = c.download();
          LONGNET_GPU_ASSERT_OK(got.status());
          EXPECT_LE(gpu_test::max_abs_diff(*got, want).second,
                    gemm_tolerance(c_type == DType::kF32 ? ab : c_type, s.k));
        }
      }
    }
  }
}

TEST_F(CudaGemmTest, LinearWithFusedBiasMatchesReference) {
  for (DType ab : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (bool with_bias : {true, false}) {
      SCOPED_TRACE(std::string(gpu_test::dtype_label(ab)) + (with_bias ? " bias" : " no bias"));
      cuda::LinearShape s{33, 96, 64, 64 + 4, 64, 96 + 8};  // m, n, k, ldx, ldw, ldy
      TypedDeviceArray x(ab, gpu_test::random_floats(static_cast<size_t>(s.m * s.ldx), -1, 1, 81));
      TypedDeviceArray w(ab, gpu_test::random_floats(static_cast<size_t>(s.n * s.ldw), -1, 1, 82));
      TypedDeviceArray bias(ab, gpu_test::random_floats(static_cast<size_t>(s.n), -1, 1, 83));
      TypedDeviceArray y(ab, std::vector<float>(static_cast<size_t>(s.m * s.ldy), 0.0f));
      LONGNET_GPU_ASSERT_OK(
          blas_->linear(s, {ab, ab}, x.get(), w.get(), with_bias ? bias.get() : nullptr, y.get()));
      LONGNET_GPU_ASSERT_OK(gpu_test::finish("linear"));
      GemmShape g;
      g.trans_b = Transpose::kYes;
      g.m = s.m;
      g.n = s.n;
      g.k = s.k;
      g.lda = s.ldx;
      g.ldb = s.ldw;
      g.ldc = s.ldy;
      std::vector<float> want(static_cast<size_t>(s.m * s.ldy), 0.0f);
      reference::gemm(g, x.rounded().data(), w.rounded().data(), want.data());
      for (int64_t i = 0; i < s.m && with_bias; ++i) {
        for (int64_t j = 0; j < s.n; ++j)
          want[static_cast<size_t>(i * s.ldy + j)] += bias.rounded()[static_cast<size_t>(j)];
      }
      std::vector<uint16_t> unused;
      want = gpu_test::round_to(ab, want, &unused);
      absl::StatusOr<std::vector<float>> got = y.download();
      LONGNET_GPU_ASSERT_OK(got.status());
      EXPECT_LE(gpu_test::max_abs_diff(*got, want).second, gemm_tolerance(ab, s.k));
    }
  }
}

TEST_F(CudaGemmTest, BadShapesAndTypesAreInvalidArgument) {
  GemmShape s;
  s.m = s.n = s.k = 4;
  s.lda = 2;  // < k
  s.ldb = s.ldc = 4;
  EXPECT_EQ(blas_->gemm(s, {}, nullptr, nullptr, nullptr).code(), absl::StatusCode::kInvalidArgument);
  s.lda = 4;
  EXPECT_EQ(blas_->gemm(s, {DType::kF16, DType::kBF16}, nullptr, nullptr, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CudaGemmChecksTest, CreateWithoutDeviceSaysWhy) {
  absl::StatusOr<std::unique_ptr<cuda::Blas>> blas = cuda::Blas::create(nullptr);
  if (blas.ok()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_EQ(blas.status().code(), absl::StatusCode::kFailedPrecondition) << blas.status();
}

}  // namespace
}  // namespace longnet::kernels
