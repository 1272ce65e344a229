#include "longnet/model/device_select.h"

#include <charconv>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#if defined(LONGNET_WITH_CUDA)
#include "longnet/kernels/cuda_device.h"
#endif

namespace longnet::model {

absl::StatusOr<DeviceRequest> parse_device_request(std::string_view text) {
  DeviceRequest request;
  if (text == "auto") return request;
  if (text == "cpu") {
    request.kind = DeviceRequest::Kind::kCpu;
    return request;
  }
  if (text == "cuda") {
    request.kind = DeviceRequest::Kind::kCuda;
    return request;
  }
  constexpr std::string_view kCudaPrefix = "cuda:";
  if (text.starts_with(kCudaPrefix)) {
    const std::string_view digits = text.substr(kCudaPrefix.size());
    int ordinal = -1;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), ordinal);
    if (!digits.empty() && error == std::errc() && end == digits.data() + digits.size() && ordinal >= 0) {
      request.kind = DeviceRequest::Kind::kCuda;
      request.cuda_ordinal = ordinal;
      return request;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "device: '", std::string(text), "' is not one of auto, cpu, cuda, cuda:N (N a device ordinal)"));
}

absl::StatusOr<DeviceChoice> choose_device(const DeviceRequest& request, const CudaProbe& probe) {
  switch (request.kind) {
    case DeviceRequest::Kind::kCpu:
      return DeviceChoice{Device::cpu(), "cpu: requested"};
    case DeviceRequest::Kind::kAuto:
      if (probe.devices.ok() && *probe.devices > 0) {
        return DeviceChoice{Device::cuda(0), absl::StrCat("cuda:0: auto found ", *probe.devices,
                                                          " CUDA device", *probe.devices == 1 ? "" : "s")};
      }
      return DeviceChoice{Device::cpu(), absl::StrCat("cpu: auto found no CUDA device (",
                                                      probe.devices.ok() ? "the runtime reports 0 devices"
                                                                         : probe.devices.status().message(),
                                                      ")")};
    case DeviceRequest::Kind::kCuda:
      break;
  }
  const std::string asked = absl::StrCat("cuda:", request.cuda_ordinal);
  if (!probe.devices.ok() || *probe.devices <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("device ", asked, " was requested, but there is no CUDA device: ",
                     probe.devices.ok() ? "the runtime reports 0 devices" : probe.devices.status().message(),
                     ". Use --device=auto (falls back to the CPU) or --device=cpu"));
  }
  if (request.cuda_ordinal >= *probe.devices) {
    const int n = *probe.devices;
    return absl::FailedPreconditionError(
        absl::StrCat("device ", asked, " was requested, but the runtime reports ", n, " CUDA device",
                     n == 1 ? "" : "s", " (ordinals 0..", n - 1, ")"));
  }
  return DeviceChoice{Device::cuda(request.cuda_ordinal), absl::StrCat(asked, ": requested")};
}

bool cuda_backend_built() {
#if defined(LONGNET_WITH_CUDA)
  return true;
#else
  return false;
#endif
}

CudaProbe probe_cuda() {
#if defined(LONGNET_WITH_CUDA)
  return {kernels::cuda::device_count()};
#else
  return {absl::FailedPreconditionError(
      "this build has no CUDA backend (configured with LONGNET_WITH_CUDA=OFF)")};
#endif
}

absl::StatusOr<DeviceChoice> select_device(const DeviceRequest& request) {
  if (request.kind == DeviceRequest::Kind::kCpu) return choose_device(request, CudaProbe{});
  return choose_device(request, probe_cuda());
}

}  // namespace longnet::model
