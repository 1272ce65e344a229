#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "longnet/kernels/activation.h"
#include "longnet/kernels/gemm.h"
#include "longnet/kernels/thread_pool.h"
#include "longnet/model/memory_pool.h"
#include "longnet/model/tensor.h"
#include "longnet/model/weights.h"

// The position-wise building blocks of a LongNet layer: affine projections, layer norms and the
// feed-forward block. Each is a view of weights owned by ModelWeights (no copies) and works on row-major
// activations of `rows` rows, `stride` floats apart.
namespace longnet::model {

// Where a forward pass runs: its threads and the pool its activations come from. A model on a CUDA device
// takes host buffers from `allocator` and its activations from `device_allocator`, or from its own device
// pool when that is null (the engine passes a wrapper that records a step's peak).
struct ExecContext {
  kernels::ThreadPool* pool = nullptr;
  Allocator* allocator = nullptr;
  Allocator* device_allocator = nullptr;
};

// A contiguous float32 scratch tensor of rows x cols from the context's pool.
absl::StatusOr<Tensor> scratch(const ExecContext& ctx, int64_t rows, int64_t cols);

// y = x W^T + b, W stored (out_features, in_features) as torch's nn.Linear.
struct Linear {
  const float* weight = nullptr;  // out_features x in_features, as in the file (the CUDA graph uploads it)
  const float* panels = nullptr;  // the same, packed for kernels::cpu::matmul_panels (ModelWeights)
  const float* bias = nullptr;    // may be null (the LM head has none)
  int64_t in_features = 0;
  int64_t out_features = 0;

  // kOverwrite: y = x W^T + b. kAccumulate: y += x W^T + b (a residual add fused into the GEMM).
  enum class Output { kOverwrite, kAccumulate };

  static Linear from(const ModelWeights& weights, const std::string& prefix, bool has_bias = true);
  // Runs on kernels::cpu::matmul_panels over `pool`, one row (a matrix-vector product) included; with an
  // activation, y gets it block by block inside the product.
  void forward(int64_t rows, const float* x, int64_t x_stride, float* y, int64_t y_stride,
               kernels::ThreadPool& pool, Output output = Output::kOverwrite,
               std::optional<kernels::Activation> activation = std::nullopt) const;
  // forward()'s product, for running several Linears in one parallel loop
  // (kernels::cpu::matmul_panels_together).
  kernels::cpu::MatmulPanelsJob job(int64_t rows, const float* x, int64_t x_stride, float* y,
                                    int64_t y_stride, Output output = Output::kOverwrite,
                                    std::optional<kernels::Activation> activation = std::nullopt) const;
};

struct Norm {
  const float* gamma = nullptr;
  const float* beta = nullptr;
  int64_t dim = 0;
  float eps = 1e-5f;

  static Norm from(const ModelWeights& weights, const std::string& prefix, double eps);
  // y may alias x.
  void forward(int64_t rows, const float* x, int64_t x_stride, float* y, int64_t y_stride,
               kernels::ThreadPool& pool) const;
};

// x += fc2(SubLN(act(fc1(LN(x))))), the FFN half of a pre-LN layer (sub-LN only with subln).
struct FeedForward {
  Norm norm;  // final_layer_norm
  Linear fc1;
  Linear fc2;
  std::optional<Norm> inner_norm;  // ffn.ffn_layernorm
  kernels::Activation activation = kernels::Activation::kGelu;

  // `prefix` is the layer's ("layers.3." or "decoder.layers.3.").
  static FeedForward from(const ModelWeights& weights, const ModelConfig& config, const std::string& prefix);
  absl::Status add_to(const ExecContext& ctx, int64_t rows, float* x) const;  // x: rows x E, contiguous
};

}  // namespace longnet::model
