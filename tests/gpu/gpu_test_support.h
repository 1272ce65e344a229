#pragma once

// Shared pieces of the GPU parity tests: device buffers that free themselves, the fixture that skips
// (with the runtime's reason) when there is no device, 16-bit storage helpers and comparisons.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "longnet/kernels/convert.h"
#include "longnet/kernels/cuda_device.h"
#include "longnet/kernels/dtype.h"

namespace longnet::kernels::gpu_test {

// Evaluates `expr` (an absl::Status) once; on error fails the test and prints the status.
#define LONGNET_GPU_ASSERT_OK(expr)                         \
  do {                                                      \
    const absl::Status assert_ok_status = (expr);           \
    ASSERT_TRUE(assert_ok_status.ok()) << assert_ok_status; \
  } while (false)

// Tolerances of the parity tests against the double-precision references.
inline constexpr float kF32Tolerance = 2e-4f;
inline constexpr float kHalfTolerance = 2e-2f;

inline float tolerance(DType dtype) {
  return dtype == DType::kF32 ? kF32Tolerance : kHalfTolerance;
}

// A device buffer of `count` elements of T; errors surface through status(), never as aborts.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : count_(count) {
    if (count == 0) return;
    status_ = cuda::to_status(cudaMalloc(&data_, count * sizeof(T)), "cudaMalloc");
    if (!status_.ok()) data_ = nullptr;
  }
  ~DeviceBuffer() {
    if (data_ != nullptr) (void)cudaFree(data_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return static_cast<T*>(data_); }
  size_t size() const { return count_; }
  const absl::Status& status() const { return status_; }

  absl::Status upload(const std::vector<T>& host) {
    if (!status_.ok()) return status_;
    if (host.size() != count_) return absl::InvalidArgumentError("upload: size mismatch");
    if (count_ == 0) return absl::OkStatus();
    return cuda::to_status(cudaMemcpy(data_, host.data(), count_ * sizeof(T), cudaMemcpyHostToDevice),
                           "cudaMemcpy to device");
  }
  absl::StatusOr<std::vector<T>> download() const {
    if (!status_.ok()) return status_;
    std::vector<T> host(count_);
    if (count_ == 0) return host;
    absl::Status status = cuda::to_status(
        cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy to host");
    if (!status.ok()) return status;
    return host;
  }

 private:
  size_t count_;
  void* data_ = nullptr;
  absl::Status status_;
};

// Launch errors and execution errors of what was just queued.
inline absl::Status finish(std::string_view what) {
  absl::Status launch = cuda::to_status(cudaGetLastError(), std::string(what) + " launch");
  if (!launch.ok()) return launch;
  return cuda::to_status(cudaDeviceSynchronize(), std::string(what) + " execution");
}

inline std::vector<float> random_floats(size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v)
    f = dist(rng);
  return v;
}

// The values as `dtype` stores them: fp32 as they are; fp16 / bf16 rounded (so the reference sees exactly
// what the kernel reads). `bits` gets the 16-bit patterns for the upload.
inline std::vector<float> round_to(DType dtype, const std::vector<float>& x, std::vector<uint16_t>* bits) {
  std::vector<float> rounded(x);
  if (dtype == DType::kF32) return rounded;
  bits->resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    (*bits)[i] = dtype == DType::kF16 ? reference::fp32_to_fp16(x[i]) : reference::fp32_to_bf16(x[i]);
    rounded[i] =
        dtype == DType::kF16 ? reference::fp16_to_fp32((*bits)[i]) : reference::bf16_to_fp32((*bits)[i]);
  }
  return rounded;
}

// A device copy of `x` in `dtype` (bytes), made from round_to's output.
class TypedDeviceArray {
 public:
  TypedDeviceArray(DType dtype, const std::vector<float>& x)
      : dtype_(dtype), f32_(dtype == DType::kF32 ? x.size() : 0), b16_(dtype == DType::kF32 ? 0 : x.size()) {
    std::vector<uint16_t> bits;
    rounded_ = round_to(dtype, x, &bits);
    status_ = dtype == DType::kF32 ? f32_.upload(rounded_) : b16_.upload(bits);
  }
  void* get() const {
    return dtype_ == DType::kF32 ? static_cast<void*>(f32_.get()) : static_cast<void*>(b16_.get());
  }
  const std::vector<float>& rounded() const { return rounded_; }
  const absl::Status& status() const { return status_; }
  absl::StatusOr<std::vector<float>> download() const {
    if (dtype_ == DType::kF32) return f32_.download();
    absl::StatusOr<std::vector<uint16_t>> bits = b16_.download();
    if (!bits.ok()) return bits.status();
    std::vector<float> out(bits->size());
    for (size_t i = 0; i < out.size(); ++i)
      out[i] =
          dtype_ == DType::kF16 ? reference::fp16_to_fp32((*bits)[i]) : reference::bf16_to_fp32((*bits)[i]);
    return out;
  }

 private:
  DType dtype_;
  DeviceBuffer<float> f32_;
  DeviceBuffer<uint16_t> b16_;
  std::vector<float> rounded_;
  absl::Status status_;
};

// Index and size of the largest |got - expected|; non-finite expected values must match exactly.
inline std::pair<size_t, float> max_abs_diff(const std::vector<float>& got,
                                             const std::vector<float>& expected) {
  std::pair<size_t, float> worst{0, 0.0f};
  for (size_t i = 0; i < got.size() && i < expected.size(); ++i) {
    float d = 0.0f;
    if (std::isnan(expected[i])) {
      d = std::isnan(got[i]) ? 0.0f : std::numeric_limits<float>::infinity();
    } else if (std::isinf(expected[i])) {
      d = got[i] == expected[i] ? 0.0f : std::numeric_limits<float>::infinity();
    } else {
      d = std::fabs(got[i] - expected[i]);
      if (std::isnan(d)) d = std::numeric_limits<float>::infinity();
    }
    if (d > worst.second) worst = {i, d};
  }
  return worst;
}

inline const char* dtype_label(DType dtype) {
  return dtype == DType::kF32 ? "f32" : (dtype == DType::kF16 ? "f16" : "bf16");
}

// Skips the test, saying why, when the CUDA runtime has no device; otherwise selects device 0.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<int> count = cuda::device_count();
    if (!count.ok()) GTEST_SKIP() << count.status().message();
    LONGNET_GPU_ASSERT_OK(cuda::to_status(cudaSetDevice(0), "cudaSetDevice(0)"));
  }
};

template <typename Param>
class GpuParamTest : public GpuTest, public ::testing::WithParamInterface<Param> {};

}  // namespace longnet::kernels::gpu_test
