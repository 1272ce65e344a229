// The device choice (`--device auto|cpu|cuda[:N]`): parsing, the decision from made-up CUDA probes, and
// the real probe on this machine (on one without a GPU, the "no device" paths run for real).
#include "longnet/model/device_select.h"

#include <iostream>
#include <string>

#include <gtest/gtest.h>

namespace longnet::model {
namespace {

TEST(DeviceSelectTest, ParsesTheFlagValues) {
  EXPECT_EQ(parse_device_request("auto")->kind, DeviceRequest::Kind::kAuto);
  EXPECT_EQ(parse_device_request("cpu")->kind, DeviceRequest::Kind::kCpu);
  EXPECT_EQ(parse_device_request("cuda")->kind, DeviceRequest::Kind::kCuda);
  EXPECT_EQ(parse_device_request("cuda")->cuda_ordinal, 0);
  absl::StatusOr<DeviceRequest> second = parse_device_request("cuda:1");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->kind, DeviceRequest::Kind::kCuda);
  EXPECT_EQ(second->cuda_ordinal, 1);
  for (const char* bad : {"", "CPU", "gpu", "cuda:", "cuda:-1", "cuda:x", "cuda:1x", "cuda0"}) {
    absl::StatusOr<DeviceRequest> r = parse_device_request(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(parse_device_request("gpu").status().message().find("'gpu'"), std::string::npos);
}

const CudaProbe kNoDevice{
    absl::FailedPreconditionError("no CUDA device: cudaGetDeviceCount returned cudaErrorNoDevice")};
const CudaProbe kTwoDevices{2};

TEST(DeviceSelectTest, AutoTakesCudaWhenThereIsOne) {
  absl::StatusOr<DeviceChoice> c = choose_device({}, kTwoDevices);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->device, Device::cuda(0));
  EXPECT_EQ(c->reason, "cuda:0: auto found 2 CUDA devices");
}

TEST(DeviceSelectTest, AutoFallsBackToTheCpuAndSaysWhy) {
  absl::StatusOr<DeviceChoice> c = choose_device({}, kNoDevice);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->device, Device::cpu());
  EXPECT_EQ(c->reason,
            "cpu: auto found no CUDA device (no CUDA device: cudaGetDeviceCount returned cudaErrorNoDevice)");
  c = choose_device({}, CudaProbe{0});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->device.is_cpu());
}

TEST(DeviceSelectTest, CpuIsTakenWithoutAskingCuda) {
  absl::StatusOr<DeviceChoice> c = choose_device({DeviceRequest::Kind::kCpu, 0}, kTwoDevices);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->device.is_cpu());
  EXPECT_EQ(c->reason, "cpu: requested");
}

TEST(DeviceSelectTest, ForcingCudaWithoutADeviceIsFailedPrecondition) {
  absl::StatusOr<DeviceChoice> c = choose_device({DeviceRequest::Kind::kCuda, 0}, kNoDevice);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(c.status().message().find("device cuda:0 was requested, but there is no CUDA device"),
            std::string::npos)
      << c.status();
  EXPECT_NE(c.status().message().find("--device=auto"), std::string::npos) << c.status();
}

TEST(DeviceSelectTest, CudaOrdinalMustExist) {
  absl::StatusOr<DeviceChoice> c = choose_device({DeviceRequest::Kind::kCuda, 1}, kTwoDevices);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->device, Device::cuda(1));
  c = choose_device({DeviceRequest::Kind::kCuda, 2}, kTwoDevices);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(c.status().message().find("reports 2 CUDA devices (ordinals 0..1)"), std::string::npos)
      << c.status();
}

// The real probe: whatever this machine has, the answers are consistent and nothing crashes.
TEST(DeviceSelectTest, RealProbeAgreesWithTheChoice) {
  const CudaProbe probe = probe_cuda();
  const bool has_cuda = probe.devices.ok() && *probe.devices > 0;
  if (!cuda_backend_built()) {
    EXPECT_FALSE(has_cuda);
    EXPECT_NE(probe.devices.status().message().find("LONGNET_WITH_CUDA=OFF"), std::string::npos);
  }
  absl::StatusOr<DeviceChoice> automatic = select_device({});
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_EQ(automatic->device.is_cuda(), has_cuda);
  std::cout << "select_device(auto): " << automatic->reason << "\n";
  absl::StatusOr<DeviceChoice> forced = select_device({DeviceRequest::Kind::kCuda, 0});
  EXPECT_EQ(forced.ok(), has_cuda) << forced.status();
  if (!has_cuda) {
    EXPECT_EQ(forced.status().code(), absl::StatusCode::kFailedPrecondition);
  }
  absl::StatusOr<DeviceChoice> cpu = select_device({DeviceRequest::Kind::kCpu, 0});
  ASSERT_TRUE(cpu.ok());
  EXPECT_TRUE(cpu->device.is_cpu());
}

}  // namespace
}  // namespace longnet::model
