#include "longnet/model/self_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "longnet/kernels/dilated_attention.h"
#include "longnet/kernels/prefix_attention.h"
#include "longnet/kernels/xpos.h"

namespace longnet::model {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

}  // namespace

DilatedSelfAttention DilatedSelfAttention::from(const ModelWeights& weights, const ModelConfig& config,
                                                const StackConfig& stack, const std::string& prefix) {
  DilatedSelfAttention a;
  a.q_proj_ = Linear::from(weights, absl::StrCat(prefix, "self_attn.q_proj"));
  a.k_proj_ = Linear::from(weights, absl::StrCat(prefix, "self_attn.k_proj"));
  a.v_proj_ = Linear::from(weights, absl::StrCat(prefix, "self_attn.v_proj"));
  a.out_proj_ = Linear::from(weights, absl::StrCat(prefix, "self_attn.out_proj"));
  if (config.subln) {
    a.inner_norm_ =
        Norm::from(weights, absl::StrCat(prefix, "self_attn.inner_attn_ln"), config.layernorm_eps);
  }
  if (config.xpos_rel_pos) {
    const Tensor& scale = weights.get(absl::StrCat(prefix, "self_attn.xpos.scale"));
    a.xpos_scale_ = std::span<const float>(scale.data<float>(), static_cast<size_t>(scale.numel()));
    a.xpos_scale_base_ = config.xpos_scale_base;
    float smallest = 1.0f;
    for (float v : a.xpos_scale_)
      smallest = std::min(smallest, v);
    // scale^(-block/base) <= 1e18  <=>  block <= 18 ln(10) base / -ln(scale).
    a.xpos_max_block_ = smallest >= 1.0f ? std::numeric_limits<int64_t>::max()
                                         : static_cast<int64_t>(18.0 * std::log(10.0) * a.xpos_scale_base_ /
                                                                -std::log(static_cast<double>(smallest)));
  }
  a.branches_ = config.branches;
  a.heads_ = stack.attention_heads;
  a.head_dim_ = stack.head_dim();
  a.embed_dim_ = stack.embed_dim;
  return a;
}

absl::Status DilatedSelfAttention::forward_cached(const ExecContext& ctx,
                                                  std::span<const SequenceChunk> chunks, int64_t layer,
                                                  const float* x_normed, float* residual) const {
  int64_t total = 0;
  for (const SequenceChunk& c : chunks)
    total = std::max(total, c.row_begin + c.rows);
  if (total == 0) return absl::OkStatus();
  const int64_t e = embed_dim_;
  absl::StatusOr<Tensor> q = scratch(ctx, total, e);
  absl::StatusOr<Tensor> k = scratch(ctx, total, e);
  absl::StatusOr<Tensor> v = scratch(ctx, total, e);
  absl::StatusOr<Tensor> acc = scratch(ctx, total, e);
  absl::StatusOr<Tensor> acc_lse = scratch(ctx, total, heads_);
  for (const auto* t : {&q, &k, &v, &acc, &acc_lse}) {
    if (!t->ok()) return t->status();
  }
  q_proj_.forward(total, x_normed, e, q->data<float>(), e, *ctx.pool);
  k_proj_.forward(total, x_normed, e, k->data<float>(), e, *ctx.pool);
  v_proj_.forward(total, x_normed, e, v->data<float>(), e, *ctx.pool);
  std::fill_n(acc->data<float>(), total * e, 0.0f);
  std::fill_n(acc_lse->data<float>(), total * heads_, kNegInf);
  auto attend = [&](const SequenceChunk& c) {
    const int64_t r0 = c.row_begin;
    return attend_chunk(ctx, c, layer, q->data<float>() + r0 * e, k->data<float>() + r0 * e,
                        v->data<float>() + r0 * e, acc->data<float>() + r0 * e,
                        acc_lse->data<float>() + r0 * heads_);
  };
  // Long chunks (prefill) one after the other, each parallel inside; short ones (decode steps of a
  // batch) side by side, one chunk per task: their kernels are too small to split, and the loops they
  // would start run inline. Chunks touch disjoint rows and caches (one chunk per sequence).
  std::vector<size_t> short_chunks;
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (chunks[i].rows > kShortChunkRows || chunks.size() == 1) {
      if (absl::Status s = attend(chunks[i]); !s.ok()) return s;
    } else {
      short_chunks.push_back(i);
    }
  }
  if (!short_chunks.empty()) {
    std::vector<absl::Status> status(short_chunks.size());
    ctx.pool->parallel_for(static_cast<int64_t>(short_chunks.size()), [&](int64_t t, int) {
      status[static_cast<size_t>(t)] = attend(chunks[short_chunks[static_cast<size_t>(t)]]);
    });
    for (const absl::Status& s : status) {
      if (!s.ok()) return s;
    }
  }
  float* a = acc->data<float>();
  if (inner_norm_) inner_norm_->forward(total, a, e, a, e, *ctx.pool);
  out_proj_.forward(total, a, e, residual, e, *ctx.pool, Linear::Output::kAccumulate);
  return absl::OkStatus();
}

absl::Status DilatedSelfAttention::attend_chunk(const ExecContext& ctx, const SequenceChunk& chunk,
                                                int64_t layer, const float* q, const float* k, const float* v,
                                                float* acc, float* acc_lse) const {
  if (chunk.cache == nullptr) return absl::InternalError("DilatedSelfAttention: a chunk without a KV cache");
  const int64_t e = embed_dim_;
  const bool xpos = !xpos_scale_.empty();
  absl::StatusOr<Tensor> xq;
  absl::StatusOr<Tensor> xk;
  if (xpos) {
    xq = scratch(ctx, chunk.rows, e);
    xk = scratch(ctx, chunk.rows, e);
    if (!xq.ok()) return xq.status();
    if (!xk.ok()) return xk.status();
  }
  const int64_t end = chunk.first_position + chunk.rows;
  for (int64_t b = 0; b < static_cast<int64_t>(branches_.size()); ++b) {
    BranchKv& kv = chunk.cache->at(layer, b);
    const int64_t w = branches_[b].segment_length;
    for (int64_t pos = chunk.first_position; pos < end;) {
      const int64_t segment = pos / w;
      const int64_t segment_start = segment * w;
      const int64_t piece_end = std::min(segment_start + w, end);
      const int64_t n = piece_end - pos;
      if (kv.segment != segment) {  // a new segment: the branch forgets the previous one
        kv.segment = segment;
        std::fill(kv.count.begin(), kv.count.end(), 0);
        kv.centre = segment_start;
      }
      const int64_t row = pos - chunk.first_position;
      const float* pq = q + row * e;
      const float* pk = k + row * e;
      if (xpos) {
        if (piece_end - 1 - kv.centre > kXposRecentre) recentre_keys(kv, pos);
        std::copy_n(pq, n * e, xq->data<float>());
        std::copy_n(pk, n * e, xk->data<float>());
        absl::Status s = apply_xpos(ctx, n, pos, kv.centre, xq->data<float>(), xk->data<float>());
        if (!s.ok()) return s;
        pq = xq->data<float>();
        pk = xk->data<float>();
      }
      absl::Status s = attend_piece(ctx, kv, b, segment_start, pos, n, pq, pk, v + row * e, acc + row * e,
                                    acc_lse + row * heads_);
      if (!s.ok()) return s;
      pos = piece_end;
    }
  }
  return absl::OkStatus();
}

// Rows [piece_begin, piece_begin + n) all lie in one segment of `branch`. Each head appends the keys and
// values of the rows it sees to its cache and attends, causally, over the cache.
absl::Status DilatedSelfAttention::attend_piece(const ExecContext& ctx, BranchKv& kv, int64_t branch,
                                                int64_t segment_start, int64_t piece_begin, int64_t n,
                                                const float* q, const float* k, const float* v, float* acc,
                                                float* acc_lse) const {
  const int64_t r = branches_[branch].dilation;
  const int64_t d = head_dim_;
  const int64_t e = embed_dim_;
  const int64_t capacity = kv.keys.dim(1);
  const int64_t max_queries = kernels::ceil_div(n, r);

  kernels::PrefixAttentionShape shape;
  shape.num_queries = max_queries;
  shape.num_keys = capacity;
  shape.head_dim = d;
  shape.q_stride = r * e;
  shape.k_stride = d;
  shape.v_stride = d;
  shape.out_stride = d;
  const int64_t ws_floats = kernels::cpu::prefix_attention_workspace_floats(shape, ctx.pool->num_threads());
  absl::StatusOr<Tensor> out = scratch(ctx, max_queries, d + 1);  // d outputs, then 1 lse per query
  absl::StatusOr<Tensor> ws = scratch(ctx, 1, std::max<int64_t>(ws_floats, 1));
  if (!out.ok()) return out.status();
  if (!ws.ok()) return ws.status();
  float* out_rows = out->data<float>();
  float* out_lse = out_rows + max_queries * d;
  std::vector<int64_t> limits(static_cast<size_t>(max_queries));
  std::vector<float> row_lse(static_cast<size_t>(max_queries));

  const int64_t rel = piece_begin - segment_start;
  for (int64_t h = 0; h < heads_; ++h) {
    const int64_t offset = kernels::head_offset(h, heads_, r);
    const int64_t first_row = ((offset - rel % r) % r + r) % r;  // first row whose position p has p % r == o
    if (first_row >= n) continue;
    const int64_t nq = (n - 1 - first_row) / r + 1;
    const int64_t base = kv.count[static_cast<size_t>(h)];
    if (base + nq > capacity) {
      return absl::InternalError(absl::StrCat("KV cache overflow: branch ", branch, " head ", h, " holds ",
                                              base, " + ", nq, " > capacity ", capacity));
    }
    for (int64_t j = 0; j < nq; ++j) {
      const int64_t row = first_row + j * r;
      std::copy_n(k + row * e + h * d, d, kv.key(h, base + j));
      std::copy_n(v + row * e + h * d, d, kv.value(h, base + j));
      limits[static_cast<size_t>(j)] = base + j + 1;  // causal: itself and everything before it
    }
    shape.num_queries = nq;
    shape.num_keys = base + nq;
    absl::Status s = kernels::cpu::prefix_attention(
        shape, q + first_row * e + h * d, kv.key(h, 0), kv.value(h, 0),
        std::span<const int64_t>(limits.data(), static_cast<size_t>(nq)), out_rows, out_lse,
        std::span<float>(ws->data<float>(), static_cast<size_t>(ws_floats)), *ctx.pool);
    if (!s.ok()) return s;
    // The head's rows lie r rows apart: their accumulated lse values are gathered for the kernel's
    // contiguous layout and put back after the merge.
    for (int64_t j = 0; j < nq; ++j)
      row_lse[static_cast<size_t>(j)] = acc_lse[(first_row + j * r) * heads_ + h];
    kernels::cpu::merge_attention_lse(nq, d, out_rows, d, out_lse, acc + first_row * e + h * d, r * e,
                                      row_lse.data());
    for (int64_t j = 0; j < nq; ++j)
      acc_lse[(first_row + j * r) * heads_ + h] = row_lse[static_cast<size_t>(j)];
    kv.count[static_cast<size_t>(h)] += nq;
  }
  return absl::OkStatus();
}

absl::Status DilatedSelfAttention::apply_xpos(const ExecContext& ctx, int64_t rows, int64_t first_position,
                                              int64_t centre, float* q, float* k) const {
  kernels::XposConfig config;
  config.head_dim = head_dim_;
  config.scale_base = xpos_scale_base_;
  config.scale = xpos_scale_;
  kernels::XposTable table;
  absl::Status s = kernels::cpu::build_xpos_table(config, first_position, rows, static_cast<double>(centre),
                                                  &table, *ctx.pool);
  if (!s.ok()) return s;
  kernels::XposApplyShape shape;
  shape.rows = rows;
  shape.num_heads = heads_;
  shape.head_dim = head_dim_;
  shape.row_stride = embed_dim_;
  shape.first_position = first_position;
  s = kernels::cpu::apply_xpos(shape, kernels::XposRole::kQuery, table, q, *ctx.pool);
  if (!s.ok()) return s;
  return kernels::cpu::apply_xpos(shape, kernels::XposRole::kKey, table, k, *ctx.pool);
}

// Stored keys carry scale^((c - u)/base) for centre c; moving the centre to c' multiplies pair j by
// scale[j]^((c' - c)/base), a factor <= 1 since c' > c.
void DilatedSelfAttention::recentre_keys(BranchKv& kv, int64_t new_centre) const {
  const int64_t half = head_dim_ / 2;
  std::vector<float> factor(static_cast<size_t>(half));
  const double exponent = static_cast<double>(new_centre - kv.centre) / xpos_scale_base_;
  for (int64_t j = 0; j < half; ++j) {
    factor[static_cast<size_t>(j)] =
        static_cast<float>(std::pow(static_cast<double>(xpos_scale_[j]), exponent));
  }
  for (int64_t h = 0; h < heads_; ++h) {
    for (int64_t entry = 0; entry < kv.count[static_cast<size_t>(h)]; ++entry) {
      float* key = kv.key(h, entry);
      for (int64_t j = 0; j < half; ++j) {
        key[2 * j] *= factor[static_cast<size_t>(j)];
        key[2 * j + 1] *= factor[static_cast<size_t>(j)];
      }
    }
  }
  kv.centre = new_centre;
}

absl::Status DilatedSelfAttention::forward_block(const ExecContext& ctx, int64_t rows, int64_t first_position,
                                                 const float* x_normed, float* residual) const {
  if (rows == 0) return absl::OkStatus();
  const bool xpos = !xpos_scale_.empty();
  if (xpos && rows > xpos_max_block_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "non-causal attention with XPOS over a block of ", rows, " positions: this model's limit is ",
        xpos_max_block_, " (XPOS scores of keys that far after a query exceed float32 range)"));
  }
  const int64_t e = embed_dim_;
  absl::StatusOr<Tensor> q = scratch(ctx, rows, e);
  absl::StatusOr<Tensor> k = scratch(ctx, rows, e);
  absl::StatusOr<Tensor> v = scratch(ctx, rows, e);
  absl::StatusOr<Tensor> out = scratch(ctx, rows, e);
  absl::StatusOr<Tensor> lse = scratch(ctx, rows, heads_);
  for (const auto* t : {&q, &k, &v, &out, &lse}) {
    if (!t->ok()) return t->status();
  }
  q_proj_.forward(rows, x_normed, e, q->data<float>(), e, *ctx.pool);
  k_proj_.forward(rows, x_normed, e, k->data<float>(), e, *ctx.pool);
  v_proj_.forward(rows, x_normed, e, v->data<float>(), e, *ctx.pool);
  if (xpos) {
    absl::Status s =
        apply_xpos(ctx, rows, first_position, first_position + rows / 2, q->data<float>(), k->data<float>());
    if (!s.ok()) return s;
  }
  const int64_t starts[] = {0};
  const int64_t lens[] = {rows};
  kernels::DilatedAttentionShape shape;
  shape.num_heads = heads_;
  shape.head_dim = head_dim_;
  shape.seq_starts = starts;
  shape.seq_lens = lens;
  shape.q_stride = shape.k_stride = shape.v_stride = shape.out_stride = e;
  kernels::DilatedAttentionParams params;
  params.branches = branches_;
  params.causal = false;
  const int64_t ws_floats =
      kernels::cpu::dilated_attention_workspace_floats(shape, params, ctx.pool->num_threads());
  absl::StatusOr<Tensor> ws = scratch(ctx, 1, std::max<int64_t>(ws_floats, 1));
  if (!ws.ok()) return ws.status();
  absl::Status s = kernels::cpu::dilated_attention(
      shape, params, q->data<float>(), k->data<float>(), v->data<float>(), out->data<float>(),
      lse->data<float>(), std::span<float>(ws->data<float>(), static_cast<size_t>(ws_floats)), *ctx.pool);
  if (!s.ok()) return s;
  float* o = out->data<float>();
  if (inner_norm_) inner_norm_->forward(rows, o, e, o, e, *ctx.pool);
  out_proj_.forward(rows, o, e, residual, e, *ctx.pool, Linear::Output::kAccumulate);
  return absl::OkStatus();
}

}  // namespace longnet::model
