#if defined(LONGNET_WITH_CUDA)  // model/ globs every source; this one is CUDA-only

// Attention in the device graph: DilatedSelfAttention's cached (decoder) and block (encoder) paths and
// CrossAttention, step for step as self_attention.cc and cross_attention.cc do them on the CPU. The host
// cuts the work (segments, pieces, the rows each head sees: kv_cache.h) exactly as there; the device
// copies rows into the caches, runs prefix attention per head and merges the branches.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "longnet/kernels/cuda_device.h"
#include "longnet/kernels/dilated_attention.h"
#include "longnet/kernels/prefix_attention.h"
#include "longnet/kernels/xpos.h"
#include "longnet/model/cuda_graph.h"

namespace longnet::model {

using kernels::cuda::to_status;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr size_t kF = sizeof(float);

// `rows` rows of `width` floats from src (src_stride floats apart) to dst (dst_stride apart), on the device.
absl::Status copy_rows(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t width,
                       int64_t rows, const char* what) {
  if (rows == 0) return absl::OkStatus();
  return to_status(cudaMemcpy2DAsync(dst, static_cast<size_t>(dst_stride) * kF, src,
                                     static_cast<size_t>(src_stride) * kF, static_cast<size_t>(width) * kF,
                                     static_cast<size_t>(rows), cudaMemcpyDeviceToDevice, nullptr),
                   what);
}

}  // namespace

absl::Status CudaGraph::self_attention_cached(const ExecContext& ctx, const SelfAttention& a,
                                              std::span<const SequenceChunk> views, int64_t layer,
                                              int64_t total, const float* x_normed, float* x) {
  const DilatedSelfAttention& host = *a.host;
  if (!host.xpos_status_.ok()) return host.xpos_status_;
  const int64_t e = host.embed_dim_;
  absl::StatusOr<Tensor> q = scratch(total, e);
  absl::StatusOr<Tensor> k = scratch(total, e);
  absl::StatusOr<Tensor> v = scratch(total, e);
  absl::StatusOr<Tensor> acc = scratch(total, e);
  absl::StatusOr<Tensor> acc_lse = scratch(total, host.heads_);
  for (const auto* t : {&q, &k, &v, &acc, &acc_lse}) {
    if (!t->ok()) return t->status();
  }
  if (auto st = linear(a.q_proj, total, x_normed, e, q->data<float>(), e); !st.ok()) return st;
  if (auto st = linear(a.k_proj, total, x_normed, e, k->data<float>(), e); !st.ok()) return st;
  if (auto st = linear(a.v_proj, total, x_normed, e, v->data<float>(), e); !st.ok()) return st;
  // A head no branch covers at a token keeps out = 0 and lse = -inf, as on the CPU.
  if (auto st =
          to_status(cudaMemsetAsync(acc->data<float>(), 0, static_cast<size_t>(total * e) * kF, nullptr),
                    "clearing the attention accumulator");
      !st.ok())
    return st;
  if (auto st = fill(acc_lse->data<float>(), total * host.heads_, kNegInf); !st.ok()) return st;
  for (const SequenceChunk& c : views) {
    const int64_t r0 = c.row_begin;
    auto st = attend_chunk(ctx, a, c, layer, q->data<float>() + r0 * e, k->data<float>() + r0 * e,
                           v->data<float>() + r0 * e, acc->data<float>() + r0 * e,
                           acc_lse->data<float>() + r0 * host.heads_);
    if (!st.ok()) return st;
  }
  float* out = acc->data<float>();
  if (a.inner_norm) {
    if (auto st = norm(*a.inner_norm, total, out, out); !st.ok()) return st;
  }
  return linear_add(a.out_proj, total, out, x);
}

// DilatedSelfAttention::attend_chunk on the device: per branch, the chunk's rows cut at segment borders,
// XPOS applied around the branch's centre, then attend_piece.
absl::Status CudaGraph::attend_chunk(const ExecContext& ctx, const SelfAttention& a,
                                     const SequenceChunk& chunk, int64_t layer, const float* q,
                                     const float* k, const float* v, float* acc, float* acc_lse) {
  const DilatedSelfAttention& host = *a.host;
  const int64_t e = host.embed_dim_;
  const bool xpos = !host.xpos_scale_.empty();
  absl::StatusOr<Tensor> xq;
  absl::StatusOr<Tensor> xk;
  if (xpos) {
    xq = scratch(chunk.rows, e);
    xk = scratch(chunk.rows, e);
    if (!xq.ok()) return xq.status();
    if (!xk.ok()) return xk.status();
  }
  for (int64_t b = 0; b < static_cast<int64_t>(host.branches_.size()); ++b) {
    BranchKv& kv = chunk.cache->at(layer, b);
    const int64_t w = host.branches_[static_cast<size_t>(b)].segment_length;
    auto st = for_each_piece(kv, chunk.first_position, chunk.rows, w, [&](const Piece& p) -> absl::Status {
      const float* pq = q + p.row * e;
      const float* pk = k + p.row * e;
      if (xpos) {
        if (p.last() - kv.centre > DilatedSelfAttention::kXposRecentre) {
          if (auto s = recentre_keys(a, kv, p.begin); !s.ok()) return s;
        }
        if (auto s = copy_rows(xq->data<float>(), e, pq, e, e, p.n, "copying queries"); !s.ok()) return s;
        if (auto s = copy_rows(xk->data<float>(), e, pk, e, e, p.n, "copying keys"); !s.ok()) return s;
        if (auto s = apply_xpos(ctx, a, p.n, p.begin, kv.centre, xq->data<float>(), xk->data<float>());
            !s.ok())
          return s;
        pq = xq->data<float>();
        pk = xk->data<float>();
      }
      return attend_piece(a, kv, b, p.segment_start, p.begin, p.n, pq, pk, v + p.row * e, acc + p.row * e,
                          acc_lse + p.row * host.heads_);
    });
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

// DilatedSelfAttention::attend_piece on the device. Each head's visible rows (r rows apart) are copied into
// its cache, its queries attend causally over the cache, and the result merges into the accumulator; the
// accumulator's lse values of those rows are gathered for the merge kernel and put back.
absl::Status CudaGraph::attend_piece(const SelfAttention& a, BranchKv& kv, int64_t branch,
                                     int64_t segment_start, int64_t piece_begin, int64_t n, const float* q,
                                     const float* k, const float* v, float* acc, float* acc_lse) {
  const DilatedSelfAttention& host = *a.host;
  const int64_t r = host.branches_[static_cast<size_t>(branch)].dilation;
  const int64_t d = host.head_dim_;
  const int64_t e = host.embed_dim_;
  const int64_t heads = host.heads_;
  const int64_t capacity = kv.keys.dim(1);
  const int64_t max_queries = kernels::ceil_div(n, r);
  absl::StatusOr<Tensor> out = scratch(max_queries, d);
  absl::StatusOr<Tensor> lse = scratch(max_queries, 1);
  absl::StatusOr<Tensor> row_lse = scratch(max_queries, 1);
  absl::StatusOr<PoolBuffer> limits = scratch_bytes(static_cast<size_t>(max_queries) * sizeof(int64_t));
  for (const auto* t : {&out, &lse, &row_lse}) {
    if (!t->ok()) return t->status();
  }
  if (!limits.ok()) return limits.status();
  std::vector<int64_t> host_limits(static_cast<size_t>(max_queries));
  const int64_t rel = piece_begin - segment_start;
  for (int64_t h = 0; h < heads; ++h) {
    const auto [first_row, nq] = head_rows(rel, n, r, kernels::head_offset(h, heads, r));
    if (nq == 0) continue;
    int64_t& base = kv.count[static_cast<size_t>(h)];
    if (base + nq > capacity) {
      return absl::InternalError(absl::StrCat("KV cache overflow: branch ", branch, " head ", h, " holds ",
                                              base, " + ", nq, " > capacity ", capacity));
    }
    const int64_t col = first_row * e + h * d;
    if (auto st = copy_rows(kv.key(h, base), d, k + col, r * e, d, nq, "appending keys"); !st.ok()) return st;
    if (auto st = copy_rows(kv.value(h, base), d, v + col, r * e, d, nq, "appending values"); !st.ok())
      return st;
    for (int64_t j = 0; j < nq; ++j)
      host_limits[static_cast<size_t>(j)] = base + j + 1;  // causal: itself and everything before it
    if (auto st = to_status(cudaMemcpyAsync(limits->data(), host_limits.data(), static_cast<size_t>(nq) * 8,
                                            cudaMemcpyHostToDevice, nullptr),
                            "copying key limits");
        !st.ok())
      return st;
    kernels::PrefixAttentionShape shape;
    shape.num_queries = nq;
    shape.num_keys = base + nq;
    shape.head_dim = d;
    shape.q_stride = r * e;
    shape.k_stride = shape.v_stride = shape.out_stride = d;
    const kernels::cuda::PrefixAttentionBatch batch;
    const int64_t ws_floats = kernels::cuda::prefix_attention_workspace_floats(shape, batch);
    absl::StatusOr<Tensor> ws = scratch(1, std::max<int64_t>(ws_floats, 1));
    if (!ws.ok()) return ws.status();
    auto st =
        kernels::cuda::prefix_attention(shape, batch, DType::kF32, q + col, kv.key(h, 0), kv.value(h, 0),
                                        static_cast<const int64_t*>(limits->data()), out->data<float>(),
                                        lse->data<float>(), ws->data<float>(), ws_floats, nullptr);
    if (!st.ok()) return st;
    float* head_lse = acc_lse + first_row * heads + h;
    if (st = copy_rows(row_lse->data<float>(), 1, head_lse, r * heads, 1, nq, "gathering lse"); !st.ok())
      return st;
    kernels::cuda::merge_attention_lse(nq, d, out->data<float>(), d, lse->data<float>(), acc + col, r * e,
                                       row_lse->data<float>(), nullptr);
    if (st = to_status(cudaGetLastError(), "merge_attention_lse"); !st.ok()) return st;
    if (st = copy_rows(head_lse, r * heads, row_lse->data<float>(), 1, 1, nq, "scattering lse"); !st.ok())
      return st;
    base += nq;
  }
  return absl::OkStatus();
}

// XPOS tables are built on the host (as on the CPU, in double precision) and copied over.
absl::Status CudaGraph::apply_xpos(const ExecContext& ctx, const SelfAttention& a, int64_t rows,
                                   int64_t first_position, int64_t centre, float* q, float* k) {
  const DilatedSelfAttention& host = *a.host;
  kernels::XposConfig config;
  config.head_dim = host.head_dim_;
  config.scale_base = host.xpos_scale_base_;
  config.scale = host.xpos_scale_;
  kernels::XposTable table;
  auto st = kernels::cpu::build_xpos_table(config, first_position, rows, static_cast<double>(centre), &table,
                                           *ctx.pool);
  if (!st.ok()) return st;
  const int64_t floats = kernels::cuda::xpos_device_table_floats(table);
  absl::StatusOr<Tensor> device_table = scratch(1, floats);
  if (!device_table.ok()) return device_table.status();
  kernels::cuda::XposDeviceTable view;
  if (st = kernels::cuda::upload_xpos_table(table, device_table->data<float>(), floats, &view, nullptr);
      !st.ok())
    return st;
  kernels::XposApplyShape shape;
  shape.rows = rows;
  shape.num_heads = host.heads_;
  shape.head_dim = host.head_dim_;
  shape.row_stride = host.embed_dim_;
  shape.first_position = first_position;
  if (st = kernels::cuda::apply_xpos(shape, kernels::XposRole::kQuery, view, DType::kF32, q, nullptr);
      !st.ok())
    return st;
  return kernels::cuda::apply_xpos(shape, kernels::XposRole::kKey, view, DType::kF32, k, nullptr);
}

// DilatedSelfAttention::recentre_keys on the device: pair j of every stored key times factor[j]. That is
// XPOS's key step with no rotation (cos 1, sin 0: x0 * 1 - x1 * 0 is x0 exactly) and the factors as the key
// scales, so the XPOS kernel does it over each head's entries.
absl::Status CudaGraph::recentre_keys(const SelfAttention& a, BranchKv& kv, int64_t new_centre) {
  const DilatedSelfAttention& host = *a.host;
  const std::vector<float> factor =
      xpos_recentre_factors(host.xpos_scale_, host.xpos_scale_base_, new_centre - kv.centre);
  const int64_t most = *std::max_element(kv.count.begin(), kv.count.end());
  kv.centre = new_centre;
  if (most == 0) return absl::OkStatus();
  const auto half = static_cast<int64_t>(factor.size());
  kernels::XposTable table;
  table.num_positions = most;
  table.half_dim = half;
  table.cos.assign(static_cast<size_t>(most * half), 1.0f);
  table.sin.assign(static_cast<size_t>(most * half), 0.0f);
  table.q_scale.assign(static_cast<size_t>(most * half), 1.0f);
  for (int64_t i = 0; i < most; ++i)
    table.k_scale.insert(table.k_scale.end(), factor.begin(), factor.end());
  const int64_t floats = kernels::cuda::xpos_device_table_floats(table);
  absl::StatusOr<Tensor> device_table = scratch(1, floats);
  if (!device_table.ok()) return device_table.status();
  kernels::cuda::XposDeviceTable view;
  auto st = kernels::cuda::upload_xpos_table(table, device_table->data<float>(), floats, &view, nullptr);
  if (!st.ok()) return st;
  for (int64_t h = 0; h < host.heads_; ++h) {
    kernels::XposApplyShape shape;
    shape.rows = kv.count[static_cast<size_t>(h)];
    if (shape.rows == 0) continue;
    shape.num_heads = 1;
    shape.head_dim = host.head_dim_;
    shape.row_stride = host.head_dim_;
    if (st = kernels::cuda::apply_xpos(shape, kernels::XposRole::kKey, view, DType::kF32, kv.key(h, 0),
                                       nullptr);
        !st.ok())
      return st;
  }
  return absl::OkStatus();
}

// DilatedSelfAttention::forward_block on the device: the dilated attention kernel over one encoder block.
absl::Status CudaGraph::self_attention_block(const ExecContext& ctx, const SelfAttention& a, int64_t rows,
                                             int64_t first_position, const float* x_normed, float* x) {
  const DilatedSelfAttention& host = *a.host;
  if (!host.xpos_status_.ok()) return host.xpos_status_;
  if (rows == 0) return absl::OkStatus();
  const bool xpos = !host.xpos_scale_.empty();
  if (xpos && rows > host.xpos_max_block_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "non-causal attention with XPOS over a block of ", rows, " positions: this model's limit is ",
        host.xpos_max_block_, " (XPOS scores of keys that far after a query exceed float32 range)"));
  }
  const int64_t e = host.embed_dim_;
  absl::StatusOr<Tensor> q = scratch(rows, e);
  absl::StatusOr<Tensor> k = scratch(rows, e);
  absl::StatusOr<Tensor> v = scratch(rows, e);
  absl::StatusOr<Tensor> out = scratch(rows, e);
  absl::StatusOr<Tensor> lse = scratch(rows, host.heads_);
  for (const auto* t : {&q, &k, &v, &out, &lse}) {
    if (!t->ok()) return t->status();
  }
  if (auto st = linear(a.q_proj, rows, x_normed, e, q->data<float>(), e); !st.ok()) return st;
  if (auto st = linear(a.k_proj, rows, x_normed, e, k->data<float>(), e); !st.ok()) return st;
  if (auto st = linear(a.v_proj, rows, x_normed, e, v->data<float>(), e); !st.ok()) return st;
  if (xpos) {
    auto st = apply_xpos(ctx, a, rows, first_position, first_position + rows / 2, q->data<float>(),
                         k->data<float>());
    if (!st.ok()) return st;
  }
  const int64_t starts[] = {0};
  const int64_t lens[] = {rows};
  kernels::DilatedAttentionShape shape;
  shape.num_heads = host.heads_;
  shape.head_dim = host.head_dim_;
  shape.seq_starts = starts;
  shape.seq_lens = lens;
  shape.q_stride = shape.k_stride = shape.v_stride = shape.out_stride = e;
  kernels::DilatedAttentionParams params;
  params.branches = host.branches_;
  params.causal = false;
  auto st =
      kernels::cuda::dilated_attention(shape, params, DType::kF32, q->data<float>(), k->data<float>(),
                                       v->data<float>(), out->data<float>(), lse->data<float>(), nullptr);
  if (!st.ok()) return st;
  float* o = out->data<float>();
  if (a.inner_norm) {
    if (st = norm(*a.inner_norm, rows, o, o); !st.ok()) return st;
  }
  return linear_add(a.out_proj, rows, o, x);
}

// CrossAttention::add_to on the device: every head in one launch (a batch of problems d columns apart),
// every query seeing the whole memory.
absl::Status CudaGraph::cross_attention(const CrossAttention& a, int64_t rows, float* x, const Tensor& keys,
                                        const Tensor& values) {
  if (rows == 0) return absl::OkStatus();
  const int64_t e = a.q_proj.out_features;
  const int64_t heads = decoder_->host->sizes.attention_heads;
  const int64_t d = e / heads;
  absl::StatusOr<Tensor> normed = scratch(rows, e);
  absl::StatusOr<Tensor> q = scratch(rows, e);
  absl::StatusOr<Tensor> out = scratch(rows, e);
  absl::StatusOr<Tensor> lse = scratch(heads, rows);
  for (const auto* t : {&normed, &q, &out, &lse}) {
    if (!t->ok()) return t->status();
  }
  if (auto st = norm(a.norm, rows, x, normed->data<float>()); !st.ok()) return st;
  if (auto st = linear(a.q_proj, rows, normed->data<float>(), e, q->data<float>(), e); !st.ok()) return st;
  kernels::PrefixAttentionShape shape;
  shape.num_queries = rows;
  shape.num_keys = keys.dim(0);
  shape.head_dim = d;
  shape.q_stride = shape.k_stride = shape.v_stride = shape.out_stride = e;
  kernels::cuda::PrefixAttentionBatch batch;
  batch.count = heads;
  batch.q_stride = batch.k_stride = batch.v_stride = batch.out_stride = d;
  batch.lse_stride = rows;
  const int64_t ws_floats = kernels::cuda::prefix_attention_workspace_floats(shape, batch);
  absl::StatusOr<Tensor> ws = scratch(1, std::max<int64_t>(ws_floats, 1));
  if (!ws.ok()) return ws.status();
  auto st = kernels::cuda::prefix_attention(shape, batch, DType::kF32, q->data<float>(), keys.data<float>(),
                                            values.data<float>(), nullptr, out->data<float>(),
                                            lse->data<float>(), ws->data<float>(), ws_floats, nullptr);
  if (!st.ok()) return st;
  return linear_add(a.out_proj, rows, out->data<float>(), x);
}

}  // namespace longnet::model

#endif  // LONGNET_WITH_CUDA
