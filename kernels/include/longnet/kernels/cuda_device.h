#pragma once

// CUDA runtime errors as absl::Status, and whether a device is there at all. Only with the CUDA backend:
// this header includes the CUDA runtime API.
#if defined(LONGNET_WITH_CUDA)

#include <cuda_runtime_api.h>

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace longnet::kernels::cuda {

// The number of CUDA devices, at least 1. With no driver or no device, FAILED_PRECONDITION (never an
// abort) saying why, e.g. "no CUDA device: cudaGetDeviceCount returned cudaErrorNoDevice (no CUDA-capable
// device is detected)"; callers fall back to the CPU backend and may print the message as it is.
absl::StatusOr<int> device_count();

// OkStatus for cudaSuccess; otherwise "<what> returned <error name> (<error description>)" with a code
// by kind: out of memory -> RESOURCE_EXHAUSTED, bad arguments or launch shape -> INVALID_ARGUMENT,
// no device / driver / code for this device -> FAILED_PRECONDITION, anything else -> INTERNAL.
absl::Status to_status(cudaError_t error, std::string_view what);

}  // namespace longnet::kernels::cuda

#endif  // LONGNET_WITH_CUDA
