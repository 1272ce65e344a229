// Parity of the CUDA kernels with their scalar references (kernels/reference), run on the first CUDA
// device. Without a device every parity test skips and says why; the status tests below run anyway.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <iostream>
#include <iterator>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gpu/gpu_test_support.h"
#include "longnet/kernels/activation.h"
#include "longnet/kernels/cuda_device.h"
#include "longnet/kernels/cuda_launch.h"
#include "longnet/kernels/layer_norm.h"

namespace longnet::kernels {
namespace {

using gpu_test::DeviceBuffer;
using gpu_test::finish;
using gpu_test::max_abs_diff;
using gpu_test::random_floats;
using CudaKernelsTest = gpu_test::GpuTest;  // skips, saying why, without a device

constexpr float kTolerance = gpu_test::kF32Tolerance;

// --- activation --------------------------------------------------------------------------------------

struct ActivationCase {
  Activation act;
  int64_t n;
};

void PrintTo(const ActivationCase& c, std::ostream* os) {
  *os << (c.act == Activation::kGelu ? "gelu" : "relu") << " n=" << c.n;
}

class CudaActivationTest : public CudaKernelsTest, public ::testing::WithParamInterface<ActivationCase> {};

TEST_P(CudaActivationTest, MatchesReference) {
  const auto [act, n] = GetParam();
  std::vector<float> x = random_floats(static_cast<size_t>(n), -8.0f, 8.0f, 7u + static_cast<uint32_t>(n));
  // Signed zeros, tiny values, the erf tails where gelu saturates to x and to -0, and non-finite values
  // (compared exactly: +inf, -inf -> gelu -0, NaN stays NaN).
  constexpr float kInf = std::numeric_limits<float>::infinity();
  constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
  const float specials[] = {0.0f,   -0.0f, 1e-7f, -1e-7f, 3.0f,  -3.0f, 30.0f,
                            -30.0f, 1e4f,  -1e4f, kInf,   -kInf, kNaN};
  for (size_t i = 0; i < std::size(specials) && i < x.size(); ++i) {
    x[i] = specials[i];
  }

  std::vector<float> expected = x;
  reference::activation(act, expected.data(), n);

  DeviceBuffer<float> device(x.size());
  LONGNET_GPU_ASSERT_OK(device.status());
  LONGNET_GPU_ASSERT_OK(device.upload(x));
  cuda::activation(act, device.get(), n, nullptr);
  LONGNET_GPU_ASSERT_OK(finish("activation"));
  absl::StatusOr<std::vector<float>> got = device.download();
  ASSERT_TRUE(got.ok()) << got.status();

  const auto [where, diff] = max_abs_diff(*got, expected);
  EXPECT_LE(diff, kTolerance) << "at " << where << ", x = " << x[where] << ": got " << (*got)[where]
                              << ", reference " << expected[where];
}

std::vector<ActivationCase> activation_cases() {
  // 0: no launch at all. Sizes around one block, and one past the capped grid so that threads stride.
  const int64_t past_grid_cap = cuda::kMaxGridBlocks * cuda::kElementwiseThreads + 1001;
  std::vector<ActivationCase> cases;
  for (Activation act : {Activation::kGelu, Activation::kRelu}) {
    for (int64_t n :
         {int64_t{0}, int64_t{1}, int64_t{255}, int64_t{256}, int64_t{257}, int64_t{100003}, past_grid_cap}) {
      cases.push_back({act, n});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Sizes, CudaActivationTest, ::testing::ValuesIn(activation_cases()),
                         [](const ::testing::TestParamInfo<ActivationCase>& param_info) {
                           const bool past_cap =
                               param_info.param.n > cuda::kMaxGridBlocks * cuda::kElementwiseThreads;
                           return std::string(param_info.param.act == Activation::kGelu ? "Gelu" : "Relu") +
                                  (past_cap ? "_PastGridCap_" : "_") + std::to_string(param_info.param.n);
                         });

// --- layer norm --------------------------------------------------------------------------------------

struct LayerNormCase {
  int64_t rows;
  int64_t dim;
  int64_t x_pad;  // stride - dim
  int64_t y_pad;
  bool in_place;  // y is x (then y_pad is ignored: the same rows)
  float offset;   // added to every x: a large mean tests the variance's accuracy
};

void PrintTo(const LayerNormCase& c, std::ostream* os) {
  *os << c.rows << "x" << c.dim << " pad " << c.x_pad << "/" << c.y_pad << (c.in_place ? " in place" : "")
      << " offset " << c.offset;
}

class CudaLayerNormTest : public CudaKernelsTest, public ::testing::WithParamInterface<LayerNormCase> {};

TEST_P(CudaLayerNormTest, MatchesReference) {
  const LayerNormCase c = GetParam();
  LayerNormShape shape;
  shape.rows = c.rows;
  shape.dim = c.dim;
  shape.x_stride = c.dim + c.x_pad;
  shape.y_stride = c.in_place ? shape.x_stride : c.dim + c.y_pad;
  const auto x_size = static_cast<size_t>(c.rows * shape.x_stride);
  const auto y_size = static_cast<size_t>(c.rows * shape.y_stride);
  const auto dim = static_cast<size_t>(c.dim);

  std::vector<float> x = random_floats(x_size, -2.0f, 2.0f, 11u);
  for (float& v : x) {
    v += c.offset;
  }
  const std::vector<float> gamma = random_floats(dim, 0.5f, 1.5f, 12u);
  const std::vector<float> beta = random_floats(dim, -0.5f, 0.5f, 13u);
  // Padding between y rows must come back untouched: fill y with a value the kernel never writes.
  const float sentinel = -12345.0f;
  std::vector<float> expected = c.in_place ? x : std::vector<float>(y_size, sentinel);
  reference::layer_norm(shape, x.data(), gamma.data(), beta.data(), expected.data());

  DeviceBuffer<float> dx(x_size), dgamma(dim), dbeta(dim), dy(c.in_place ? 0 : y_size);
  for (const DeviceBuffer<float>* d : {&dx, &dgamma, &dbeta, &dy}) {
    LONGNET_GPU_ASSERT_OK(d->status());
  }
  LONGNET_GPU_ASSERT_OK(dx.upload(x));
  LONGNET_GPU_ASSERT_OK(dgamma.upload(gamma));
  LONGNET_GPU_ASSERT_OK(dbeta.upload(beta));
  if (!c.in_place) {
    LONGNET_GPU_ASSERT_OK(dy.upload(std::vector<float>(y_size, sentinel)));
  }
  float* y = c.in_place ? dx.get() : dy.get();
  cuda::layer_norm(shape, dx.get(), dgamma.get(), dbeta.get(), y, nullptr);
  LONGNET_GPU_ASSERT_OK(finish("layer_norm"));
  absl::StatusOr<std::vector<float>> got = c.in_place ? dx.download() : dy.download();
  ASSERT_TRUE(got.ok()) << got.status();

  const auto [where, diff] = max_abs_diff(*got, expected);
  EXPECT_LE(diff, kTolerance) << "at row " << static_cast<int64_t>(where) / shape.y_stride << ", column "
                              << static_cast<int64_t>(where) % shape.y_stride << ": got " << (*got)[where]
                              << ", reference " << expected[where];
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaLayerNormTest,
    ::testing::Values(LayerNormCase{1, 1, 0, 0, false, 0.0f},        // one element: y = beta
                      LayerNormCase{3, 7, 0, 0, false, 0.0f},        // less than a warp
                      LayerNormCase{5, 64, 0, 0, false, 0.0f},       // exactly one warp's worth
                      LayerNormCase{17, 1000, 3, 10, false, 0.0f},   // strided rows, padding kept
                      LayerNormCase{4, 4096, 0, 0, false, 0.0f},     // the largest block
                      LayerNormCase{2, 10000, 0, 0, false, 0.0f},    // several elements per thread
                      LayerNormCase{33, 768, 0, 0, true, 0.0f},      // in place
                      LayerNormCase{9, 1536, 5, 0, true, 0.0f},      // in place, strided
                      LayerNormCase{8, 1024, 0, 0, false, 1000.0f},  // large mean, small spread
                      LayerNormCase{cuda::kMaxGridBlocks + 5, 8, 0, 0, false, 0.0f}),  // rows past the grid
    [](const ::testing::TestParamInfo<LayerNormCase>& param_info) {
      const LayerNormCase& c = param_info.param;
      return (c.rows > cuda::kMaxGridBlocks ? "PastGridCap_" : "") + std::to_string(c.rows) + "x" +
             std::to_string(c.dim) + (c.x_pad != 0 || c.y_pad != 0 ? "_strided" : "") +
             (c.in_place ? "_in_place" : "") + (c.offset != 0.0f ? "_offset" : "");
    });

TEST_F(CudaKernelsTest, LayerNormWithNoRowsLaunchesNothing) {
  LayerNormShape shape;
  shape.dim = 16;
  shape.x_stride = shape.y_stride = 16;
  cuda::layer_norm(shape, nullptr, nullptr, nullptr, nullptr, nullptr);  // rows = 0: must not touch memory
  const absl::Status done = finish("layer_norm");
  EXPECT_TRUE(done.ok()) << done;
}

// --- status helpers: these run without a device too ---------------------------------------------------

TEST(CudaDeviceTest, DeviceCountIsPositiveOrSaysWhyNot) {
  absl::StatusOr<int> count = cuda::device_count();
  if (count.ok()) {
    EXPECT_GT(*count, 0);
  } else {
    EXPECT_EQ(count.status().code(), absl::StatusCode::kFailedPrecondition) << count.status();
    EXPECT_EQ(count.status().message().rfind("no CUDA device: cudaGetDeviceCount ", 0), 0u) << count.status();
    std::cout << "device_count(): " << count.status().message() << "\n";
  }
}

TEST(CudaDeviceTest, ToStatusNamesTheCallAndTheError) {
  EXPECT_TRUE(cuda::to_status(cudaSuccess, "cudaMalloc").ok());

  const absl::Status oom = cuda::to_status(cudaErrorMemoryAllocation, "cudaMalloc");
  EXPECT_EQ(oom.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(oom.message(), std::string("cudaMalloc returned cudaErrorMemoryAllocation (") +
                               cudaGetErrorString(cudaErrorMemoryAllocation) + ")");

  EXPECT_EQ(cuda::to_status(cudaErrorInvalidConfiguration, "launch").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cuda::to_status(cudaErrorNoDevice, "cudaGetDeviceCount").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(cuda::to_status(cudaErrorIllegalAddress, "kernel").code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace longnet::kernels
