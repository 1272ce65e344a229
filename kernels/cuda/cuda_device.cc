#include "longnet/kernels/cuda_device.h"

#include <string>

namespace longnet::kernels::cuda {
namespace {

absl::StatusCode code_for(cudaError_t error) {
  switch (error) {
    case cudaErrorMemoryAllocation:
      return absl::StatusCode::kResourceExhausted;
    case cudaErrorInvalidValue:
    case cudaErrorInvalidConfiguration:
    case cudaErrorInvalidDevicePointer:
    case cudaErrorInvalidMemcpyDirection:
    case cudaErrorInvalidDevice:
      return absl::StatusCode::kInvalidArgument;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
    case cudaErrorDevicesUnavailable:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kInternal;
  }
}

std::string version_string(int version) {  // CUDA encodes 12.4 as 12040
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

// cudaErrorInsufficientDriver also covers "no driver at all"; say which, since the fixes differ.
std::string driver_note() {
  int driver = 0;
  int runtime = 0;
  if (cudaDriverGetVersion(&driver) != cudaSuccess || cudaRuntimeGetVersion(&runtime) != cudaSuccess)
    return "";
  if (driver == 0) return "; no CUDA driver is loaded (libcuda.so not found)";
  return "; the driver supports CUDA " + version_string(driver) + ", this build's runtime is CUDA " +
         version_string(runtime);
}

}  // namespace

absl::Status to_status(cudaError_t error, std::string_view what) {
  if (error == cudaSuccess) return absl::OkStatus();
  std::string message(what);
  message += " returned ";
  message += cudaGetErrorName(error);
  message += " (";
  message += cudaGetErrorString(error);
  message += ")";
  return absl::Status(code_for(error), message);
}

absl::StatusOr<int> device_count() {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    // cudaGetDeviceCount's errors are not sticky: clear it so later runtime calls do not report it again.
    (void)cudaGetLastError();
    // Whatever the runtime's reason, for the caller it means one thing: no CUDA backend here.
    std::string message = "no CUDA device: " + std::string(to_status(error, "cudaGetDeviceCount").message());
    if (error == cudaErrorInsufficientDriver) message += driver_note();
    return absl::FailedPreconditionError(message);
  }
  if (count <= 0) {
    return absl::FailedPreconditionError("no CUDA device: cudaGetDeviceCount found 0 devices");
  }
  return count;
}

}  // namespace longnet::kernels::cuda
