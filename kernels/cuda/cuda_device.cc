#include "longnet/kernels/cuda_device.h"

#include <string>

#include "absl/strings/str_cat.h"

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

}  // namespace

absl::Status to_status(cudaError_t error, std::string_view what) {
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::Status(code_for(error), absl::StrCat(what, " returned ", cudaGetErrorName(error), " (",
                                                    cudaGetErrorString(error), ")"));
}

absl::StatusOr<int> device_count() {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    // cudaGetDeviceCount's errors are not sticky: clear it so later runtime calls do not report it again.
    (void)cudaGetLastError();
    const absl::Status status = to_status(error, "cudaGetDeviceCount");
    return absl::Status(status.code(), absl::StrCat("no CUDA device: ", status.message()));
  }
  if (count <= 0) {
    return absl::FailedPreconditionError("no CUDA device: cudaGetDeviceCount found 0 devices");
  }
  return count;
}

}  // namespace longnet::kernels::cuda
