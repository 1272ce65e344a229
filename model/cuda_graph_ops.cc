#if defined(LONGNET_WITH_CUDA)  // model/ globs every source; this one is CUDA-only

// The position-wise steps of the device graph: the CUDA counterparts of layers.cc and of the embedding.
#include <cuda_runtime_api.h>

#include <vector>

#include "longnet/kernels/cuda_device.h"
#include "longnet/kernels/cuda_elementwise.h"
#include "longnet/kernels/embedding.h"
#include "longnet/kernels/layer_norm.h"
#include "longnet/model/cuda_graph.h"

namespace longnet::model {

using kernels::cuda::to_status;

namespace {
// A void kernel's launch error, which stays in the runtime's error state.
absl::Status launched(const char* what) {
  return to_status(cudaGetLastError(), what);
}
}  // namespace

absl::Status CudaGraph::linear(const Linear& l, int64_t rows, const float* x, int64_t ldx, float* y,
                               int64_t ldy) {
  kernels::cuda::LinearShape shape;
  shape.m = rows;
  shape.n = l.out_features;
  shape.k = l.in_features;
  shape.ldx = ldx;
  shape.ldw = l.in_features;
  shape.ldy = ldy;
  return blas_->linear(shape, kernels::cuda::GemmTypes{}, x, l.weight, l.bias, y);
}

// cuBLASLt's bias epilogue writes y; the residual add is a second, element-wise kernel.
absl::Status CudaGraph::linear_add(const Linear& l, int64_t rows, const float* x, float* y) {
  if (rows == 0) return absl::OkStatus();
  absl::StatusOr<Tensor> product = scratch(rows, l.out_features);
  if (!product.ok()) return product.status();
  if (auto st = linear(l, rows, x, l.in_features, product->data<float>(), l.out_features); !st.ok())
    return st;
  kernels::cuda::residual_add(DType::kF32, y, product->data<float>(), rows * l.out_features, nullptr);
  return launched("residual_add");
}

absl::Status CudaGraph::norm(const Norm& n, int64_t rows, const float* x, float* y) {
  kernels::LayerNormShape shape;
  shape.rows = rows;
  shape.dim = n.dim;
  shape.x_stride = n.dim;
  shape.y_stride = n.dim;
  shape.eps = n.eps;
  kernels::cuda::layer_norm(shape, x, n.gamma, n.beta, y, nullptr);
  return launched("layer_norm");
}

// x += fc2(SubLN(act(fc1(LN(x))))), as FeedForward::add_to.
absl::Status CudaGraph::feed_forward(const FeedForward& f, int64_t rows, float* x) {
  const int64_t e = f.fc1.in_features;
  const int64_t h = f.fc1.out_features;
  absl::StatusOr<Tensor> normed = scratch(rows, e);
  absl::StatusOr<Tensor> hidden = scratch(rows, h);
  if (!normed.ok()) return normed.status();
  if (!hidden.ok()) return hidden.status();
  float* hd = hidden->data<float>();
  if (auto st = norm(f.norm, rows, x, normed->data<float>()); !st.ok()) return st;
  if (auto st = linear(f.fc1, rows, normed->data<float>(), e, hd, h); !st.ok()) return st;
  kernels::cuda::activation(f.activation, hd, rows * h, nullptr);
  if (auto st = launched("activation"); !st.ok()) return st;
  if (f.inner_norm) {
    if (auto st = norm(*f.inner_norm, rows, hd, hd); !st.ok()) return st;
  }
  return linear_add(f.fc2, rows, hd, x);
}

absl::Status CudaGraph::embed(const Stack& s, std::span<const int32_t> ids, float* x) {
  absl::StatusOr<PoolBuffer> device_ids = scratch_bytes(ids.size() * sizeof(int32_t));
  if (!device_ids.ok()) return device_ids.status();
  kernels::EmbeddingShape shape;
  shape.vocab_size = model_.vocab_size();
  shape.dim = s.host->sizes.embed_dim;
  shape.num_ids = static_cast<int64_t>(ids.size());
  shape.out_stride = shape.dim;
  shape.table_dtype = DType::kF32;
  shape.scale = s.host->embed_scale;
  return kernels::cuda::embedding(shape, s.embed_tokens, ids.data(),
                                  static_cast<int32_t*>(device_ids->data()), x, nullptr);
}

// cudaMemset writes bytes; other values (-inf) come from the host.
absl::Status CudaGraph::fill(float* x, int64_t n, float value) {
  const std::vector<float> host(static_cast<size_t>(n), value);
  return to_status(
      cudaMemcpyAsync(x, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice, nullptr),
      "filling a device buffer");
}

}  // namespace longnet::model

#endif  // LONGNET_WITH_CUDA
