#include "longnet/model/cross_attention.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "longnet/kernels/prefix_attention.h"

namespace longnet::model {

CrossAttention CrossAttention::from(const ModelWeights& weights, const ModelConfig& config,
                                    const StackConfig& stack, const std::string& prefix) {
  CrossAttention a;
  a.norm_ = Norm::from(weights, absl::StrCat(prefix, "encoder_attn_layer_norm"), config.layernorm_eps);
  a.q_proj_ = Linear::from(weights, absl::StrCat(prefix, "encoder_attn.q_proj"));
  a.k_proj_ = Linear::from(weights, absl::StrCat(prefix, "encoder_attn.k_proj"));
  a.v_proj_ = Linear::from(weights, absl::StrCat(prefix, "encoder_attn.v_proj"));
  a.out_proj_ = Linear::from(weights, absl::StrCat(prefix, "encoder_attn.out_proj"));
  a.heads_ = stack.attention_heads;
  a.head_dim_ = stack.head_dim();
  a.embed_dim_ = stack.embed_dim;
  return a;
}

absl::Status CrossAttention::project_memory(const ExecContext& ctx, int64_t memory_rows, const float* memory,
                                            Tensor* keys, Tensor* values) const {
  absl::StatusOr<Tensor> k = scratch(ctx, memory_rows, embed_dim_);
  if (!k.ok()) return k.status();
  absl::StatusOr<Tensor> v = scratch(ctx, memory_rows, embed_dim_);
  if (!v.ok()) return v.status();
  k_proj_.forward(memory_rows, memory, embed_dim_, k->data<float>(), embed_dim_, *ctx.pool);
  v_proj_.forward(memory_rows, memory, embed_dim_, v->data<float>(), embed_dim_, *ctx.pool);
  *keys = *std::move(k);
  *values = *std::move(v);
  return absl::OkStatus();
}

absl::Status CrossAttention::add_to(const ExecContext& ctx, int64_t rows, float* residual, const Tensor& keys,
                                    const Tensor& values) const {
  if (rows == 0) return absl::OkStatus();
  const int64_t e = embed_dim_;
  const int64_t memory_rows = keys.dim(0);
  kernels::PrefixAttentionShape shape;
  shape.num_queries = rows;
  shape.num_keys = memory_rows;
  shape.head_dim = head_dim_;
  shape.q_stride = shape.k_stride = shape.v_stride = shape.out_stride = e;
  const int64_t ws_floats = kernels::cpu::prefix_attention_workspace_floats(shape, ctx.pool->num_threads());
  absl::StatusOr<Tensor> normed = scratch(ctx, rows, e);
  absl::StatusOr<Tensor> q = scratch(ctx, rows, e);
  absl::StatusOr<Tensor> out = scratch(ctx, rows, e);
  absl::StatusOr<Tensor> lse = scratch(ctx, rows, 1);
  absl::StatusOr<Tensor> ws = scratch(ctx, 1, std::max<int64_t>(ws_floats, 1));
  for (const auto* t : {&normed, &q, &out, &lse, &ws}) {
    if (!t->ok()) return t->status();
  }
  norm_.forward(rows, residual, e, normed->data<float>(), e, *ctx.pool);
  q_proj_.forward(rows, normed->data<float>(), e, q->data<float>(), e, *ctx.pool);
  // Not causal: every query sees the whole memory.
  const std::vector<int64_t> limits(static_cast<size_t>(rows), memory_rows);
  for (int64_t h = 0; h < heads_; ++h) {
    const int64_t col = h * head_dim_;
    absl::Status s = kernels::cpu::prefix_attention(
        shape, q->data<float>() + col, keys.data<float>() + col, values.data<float>() + col, limits,
        out->data<float>() + col, lse->data<float>(),
        std::span<float>(ws->data<float>(), static_cast<size_t>(ws_floats)), *ctx.pool);
    if (!s.ok()) return s;
  }
  out_proj_.forward(rows, out->data<float>(), e, residual, e, *ctx.pool, Linear::Output::kAccumulate);
  return absl::OkStatus();
}

}  // namespace longnet::model
