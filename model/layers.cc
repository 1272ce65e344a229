#include "longnet/model/layers.h"

#include <algorithm>
#include <cassert>
#include <string>

#include "absl/strings/str_cat.h"
#include "longnet/kernels/gemm.h"
#include "longnet/kernels/layer_norm.h"

namespace longnet::model {

absl::StatusOr<Tensor> scratch(const ExecContext& ctx, int64_t rows, int64_t cols) {
  const int64_t shape[] = {rows, cols};
  return Tensor::empty(shape, DType::kF32, *ctx.allocator);
}

Linear Linear::from(const ModelWeights& weights, const std::string& prefix, bool has_bias) {
  Linear linear;
  const Tensor& w = weights.get(absl::StrCat(prefix, ".weight"));
  linear.weight = w.data<float>();
  linear.panels = weights.panels(absl::StrCat(prefix, ".weight"));
  assert(linear.panels != nullptr && "LongNetModel::assemble packs every Linear's weight");
  linear.out_features = w.dim(0);
  linear.in_features = w.dim(1);
  if (has_bias) linear.bias = weights.get(absl::StrCat(prefix, ".bias")).data<float>();
  return linear;
}

void Linear::forward(int64_t rows, const float* x, int64_t x_stride, float* y, int64_t y_stride,
                     kernels::ThreadPool& pool, Output output,
                     std::optional<kernels::Activation> activation) const {
  const kernels::cpu::MatmulPanelsJob product = job(rows, x, x_stride, y, y_stride, output, activation);
  kernels::cpu::matmul_panels_together({&product, 1}, pool);
}

kernels::cpu::MatmulPanelsJob Linear::job(int64_t rows, const float* x, int64_t x_stride, float* y,
                                          int64_t y_stride, Output output,
                                          std::optional<kernels::Activation> activation) const {
  kernels::cpu::MatmulPanelsJob j;
  j.shape.m = rows;
  j.shape.n = out_features;
  j.shape.k = in_features;
  j.shape.lda = x_stride;
  j.shape.ldc = y_stride;
  j.shape.accumulate = output == Output::kAccumulate;
  j.a = x;
  j.panels = panels;
  j.c = y;
  j.bias = bias;
  j.activation = activation;
  return j;
}

Norm Norm::from(const ModelWeights& weights, const std::string& prefix, double eps) {
  Norm norm;
  const Tensor& gamma = weights.get(absl::StrCat(prefix, ".weight"));
  norm.gamma = gamma.data<float>();
  norm.beta = weights.get(absl::StrCat(prefix, ".bias")).data<float>();
  norm.dim = gamma.dim(0);
  norm.eps = static_cast<float>(eps);
  return norm;
}

void Norm::forward(int64_t rows, const float* x, int64_t x_stride, float* y, int64_t y_stride,
                   kernels::ThreadPool& pool) const {
  kernels::LayerNormShape shape;
  shape.rows = rows;
  shape.dim = dim;
  shape.x_stride = x_stride;
  shape.y_stride = y_stride;
  shape.eps = eps;
  kernels::cpu::layer_norm(shape, x, gamma, beta, y, pool);
}

FeedForward FeedForward::from(const ModelWeights& weights, const ModelConfig& config,
                              const std::string& prefix) {
  FeedForward ffn;
  ffn.norm = Norm::from(weights, absl::StrCat(prefix, "final_layer_norm"), config.layernorm_eps);
  ffn.fc1 = Linear::from(weights, absl::StrCat(prefix, "ffn.fc1"));
  ffn.fc2 = Linear::from(weights, absl::StrCat(prefix, "ffn.fc2"));
  if (config.subln) {
    ffn.inner_norm = Norm::from(weights, absl::StrCat(prefix, "ffn.ffn_layernorm"), config.layernorm_eps);
  }
  ffn.activation = config.activation;
  return ffn;
}

absl::Status FeedForward::add_to(const ExecContext& ctx, int64_t rows, float* x) const {
  const int64_t e = fc1.in_features;
  const int64_t f = fc1.out_features;
  absl::StatusOr<Tensor> normed = scratch(ctx, rows, e);
  if (!normed.ok()) return normed.status();
  absl::StatusOr<Tensor> hidden = scratch(ctx, rows, f);
  if (!hidden.ok()) return hidden.status();
  float* h = hidden->data<float>();
  norm.forward(rows, x, e, normed->data<float>(), e, *ctx.pool);
  fc1.forward(rows, normed->data<float>(), e, h, f, *ctx.pool, Linear::Output::kOverwrite, activation);
  if (inner_norm) inner_norm->forward(rows, h, f, h, f, *ctx.pool);
  fc2.forward(rows, h, f, x, e, *ctx.pool, Linear::Output::kAccumulate);  // the residual add
  return absl::OkStatus();
}

}  // namespace longnet::model
