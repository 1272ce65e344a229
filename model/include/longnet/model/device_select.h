#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "longnet/model/dtype.h"

// Which device runs the model: the `--device auto|cpu|cuda[:N]` choice of the CLI and the server, and the
// reason, for the log. auto takes CUDA device 0 when the CUDA runtime reports a device and the CPU
// otherwise; asking for CUDA where there is none is FailedPrecondition with the runtime's reason, never a
// crash. A build without the CUDA backend (LONGNET_WITH_CUDA=OFF) reports no device, saying so.
namespace longnet::model {

struct DeviceRequest {
  enum class Kind { kAuto, kCpu, kCuda };
  Kind kind = Kind::kAuto;
  int cuda_ordinal = 0;  // kCuda only: "cuda:N"; "cuda" is device 0
};

// "auto", "cpu", "cuda", "cuda:N" (case-sensitive, as flags are). InvalidArgument naming the text.
absl::StatusOr<DeviceRequest> parse_device_request(std::string_view text);

// What the CUDA runtime said: the device count (> 0), or why there is no device (FailedPrecondition from
// kernels::cuda::device_count, or "built without CUDA").
struct CudaProbe {
  absl::StatusOr<int> devices = 0;
};

struct DeviceChoice {
  Device device;
  std::string reason;  // one line for the log, e.g. "cpu: auto found no CUDA device (...)"
};

// The decision alone, from a probe's result: no runtime calls (unit-tested with made-up probes).
absl::StatusOr<DeviceChoice> choose_device(const DeviceRequest& request, const CudaProbe& probe);

// Asks the CUDA runtime (in CUDA builds; elsewhere the probe says the backend is not built).
CudaProbe probe_cuda();

// probe_cuda() then choose_device(). The runtime is asked only for auto and cuda requests.
absl::StatusOr<DeviceChoice> select_device(const DeviceRequest& request);

// Whether this build has the CUDA backend at all.
bool cuda_backend_built();

}  // namespace longnet::model
