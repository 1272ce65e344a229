#pragma once

// Matrix products on a CUDA device through cuBLAS (gemm, strided-batched gemm) and cuBLASLt (a linear
// layer with its bias fused into the product's epilogue), with the row-major conventions of gemm.h.
// fp32 products compute in fp32 (no TF32: the results stay within the CPU path's tolerance); fp16 and
// bf16 operands compute in fp32 on the tensor cores and may write fp32 or their own type. CUDA builds only.
#if defined(LONGNET_WITH_CUDA)

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "longnet/kernels/dtype.h"
#include "longnet/kernels/gemm.h"

namespace longnet::kernels::cuda {

// Storage types of a product: A and B share one; C (and the bias) is that one or fp32.
struct GemmTypes {
  DType ab = DType::kF32;
  DType c = DType::kF32;
};

// y (M x N, row stride ldy) = x (M x K, row stride ldx) * W^T + bias, with W stored N x K (row stride ldw)
// as torch.nn.Linear keeps its weight, and bias N values (or nullptr: none).
struct LinearShape {
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  int64_t ldx = 0;
  int64_t ldw = 0;
  int64_t ldy = 0;
};

// One per stream and thread (cuBLAS handles must not be shared between threads). Holds a cuBLAS and a
// cuBLASLt handle and the Lt workspace. Device pointers throughout; work is queued on the stream given
// at creation and not waited for. Errors are absl::Status: bad shapes InvalidArgument naming the field
// (validate_gemm), a type pair without a kernel InvalidArgument, cuBLAS failures by kind.
class Blas {
 public:
  // `stream` is a cudaStream_t (nullptr = the default stream). FailedPrecondition without a device.
  static absl::StatusOr<std::unique_ptr<Blas>> create(void* stream,
                                                      size_t lt_workspace_bytes = size_t{4} << 20);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  absl::Status gemm(const GemmShape& shape, GemmTypes types, const void* a, const void* b, void* c);
  // Strides are in elements of each operand's type; 0 shares one operand across the batch.
  absl::Status gemm_batched(const GemmShape& shape, const GemmBatch& batch, GemmTypes types, const void* a,
                            const void* b, void* c);
  absl::Status linear(const LinearShape& shape, GemmTypes types, const void* x, const void* w,
                      const void* bias, void* y);

 private:
  struct Handles;
  explicit Blas(std::unique_ptr<Handles> handles);
  std::unique_ptr<Handles> handles_;
};

// "CUBLAS_STATUS_..." names and codes, for messages; exposed for tests.
absl::Status cublas_status(int status, const char* what);

}  // namespace longnet::kernels::cuda

#endif  // LONGNET_WITH_CUDA
