#include <cuda_runtime.h>

#include "longnet/kernels/activation.h"
#include "longnet/kernels/cuda_launch.h"

namespace longnet::kernels::cuda {
namespace {

struct Gelu {
  // The exact form x/2 * (1 + erf(x/sqrt2)), not the tanh approximation; written with erfc (1 + erf(z) =
  // erfc(-z)) so the negative tail keeps its relative accuracy. At -inf the formula gives -inf * 0 = NaN;
  // the limit, like the reference's, is -0.
  __device__ float operator()(float x) const {
    if (isinf(x) && x < 0.0f) return -0.0f;
    return 0.5f * x * erfcf(x * -0.70710678118654752f);
  }
};

struct Relu {
  // As the reference: NaN stays NaN (it is not hidden), -0 stays -0.
  __device__ float operator()(float x) const { return x < 0.0f ? 0.0f : x; }
};

template <typename Op>
__global__ void __launch_bounds__(kElementwiseThreads) activation_kernel(float* x, int64_t n, Op op) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    x[i] = op(x[i]);
  }
}

template <typename Op>
void launch(float* x, int64_t n, cudaStream_t stream) {
  const ElementwiseLaunch shape = elementwise_launch(n);
  if (shape.grid == 0) return;
  activation_kernel<<<static_cast<unsigned>(shape.grid), shape.block, 0, stream>>>(x, n, Op{});
}

}  // namespace

// Launch errors are left in the runtime's error state (cudaGetLastError / the next synchronising call):
// the declaration returns nothing, and the caller checks once per batch of launches.
void activation(Activation act, float* x, int64_t n, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  switch (act) {
    case Activation::kGelu:
      launch<Gelu>(x, n, s);
      return;
    case Activation::kRelu:
      launch<Relu>(x, n, s);
      return;
  }
}

}  // namespace longnet::kernels::cuda
