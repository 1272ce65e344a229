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
constexpr int64_t kCacheLineFloats = 16;

int64_t round_up(int64_t n, int64_t step) {
  return kernels::ceil_div(n, step) * step;
}

// prefix_attention's workspace for one query over the largest cache of any chunk's branch: it serves every
// smaller one (prefix_attention_workspace_floats).
int64_t token_workspace_floats(std::span<const SequenceChunk> chunks, int64_t num_branches, int64_t head_dim,
                               int num_threads) {
  int64_t capacity = 0;
  for (const SequenceChunk& c : chunks) {
    for (int64_t b = 0; b < num_branches; ++b)
      capacity = std::max(capacity, c.cache->capacity(b));
  }
  kernels::PrefixAttentionShape shape;
  shape.num_queries = 1;
  shape.num_keys = capacity;
  shape.head_dim = head_dim;
  shape.q_stride = shape.k_stride = shape.v_stride = shape.out_stride = head_dim;
  return kernels::cpu::prefix_attention_workspace_floats(shape, num_threads);
}

// Points the sequence's XPOS memo at position t and at a layer's scales. Whatever it held for another
// position or other scales is dropped; the rotation, which depends on t alone, is rebuilt with t.
void enter_xpos_memo(XposMemo& memo, const kernels::XposPairConstants& constants,
                     std::span<const float> scale, int64_t t) {
  if (memo.scale_base != constants.scale_base || !std::ranges::equal(memo.scale, scale)) {
    memo.scale.assign(scale.begin(), scale.end());
    memo.scale_base = constants.scale_base;
    std::fill(memo.centre.begin(), memo.centre.end(), -1);
  }
  if (memo.position == t) return;
  memo.position = t;
  std::fill(memo.centre.begin(), memo.centre.end(), -1);
  kernels::cpu::xpos_rotation(constants, t, memo.cos.data(), memo.sin.data());
}

// Offset of branch b's scales in the memo (q_scale, k_scale) around `centre`, built unless an earlier
// layer of this step built them.
size_t xpos_memo_scales(XposMemo& memo, const kernels::XposPairConstants& constants, int64_t b,
                        int64_t centre) {
  const auto at = static_cast<size_t>(b * constants.half_dim());
  int64_t& built_for = memo.centre[static_cast<size_t>(b)];
  if (built_for != centre) {
    built_for = centre;
    kernels::cpu::xpos_scales(constants, memo.position, static_cast<double>(centre), memo.q_scale.data() + at,
                              memo.k_scale.data() + at);
  }
  return at;
}

}  // namespace

// One thread's buffers for decode steps, reused by every chunk it attends in a forward_cached call: the
// token's q and k rows rotated (XPOS), one head's scaled query and output, and prefix_attention's
// workspace. One block per call, where every chunk used to take a dozen allocations per layer.
struct DilatedSelfAttention::TokenScratch {
  float* q_rotated = nullptr;  // embed_dim floats each
  float* k_rotated = nullptr;
  float* query = nullptr;  // head_dim floats each
  float* out = nullptr;
  std::span<float> workspace;

  // Floats of one thread's set, in whole cache lines so that threads never share one.
  static int64_t floats(int64_t embed_dim, int64_t head_dim, int64_t workspace_floats) {
    return round_up(2 * embed_dim + 2 * head_dim + workspace_floats, kCacheLineFloats);
  }

  static TokenScratch carve(float* p, int64_t embed_dim, int64_t head_dim, int64_t workspace_floats) {
    TokenScratch s;
    s.q_rotated = p;
    s.k_rotated = s.q_rotated + embed_dim;
    s.query = s.k_rotated + embed_dim;
    s.out = s.query + head_dim;
    s.workspace = std::span<float>(s.out + head_dim, static_cast<size_t>(workspace_floats));
    return s;
  }
};

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
    absl::StatusOr<kernels::XposPairConstants> constants =
        kernels::xpos_pair_constants({stack.head_dim(), a.xpos_scale_base_, a.xpos_scale_});
    if (constants.ok()) {
      a.xpos_constants_ = *std::move(constants);
    } else {
      a.xpos_status_ = constants.status();
    }
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

// q, k and v of `rows` rows (embed_dim floats each) in one parallel loop: the three products share their
// input and are independent, so the threads meet once instead of three times.
void DilatedSelfAttention::project_qkv(const ExecContext& ctx, int64_t rows, const float* x_normed, float* q,
                                       float* k, float* v) const {
  const int64_t e = embed_dim_;
  const kernels::cpu::MatmulPanelsJob products[] = {q_proj_.job(rows, x_normed, e, q, e),
                                                    k_proj_.job(rows, x_normed, e, k, e),
                                                    v_proj_.job(rows, x_normed, e, v, e)};
  kernels::cpu::matmul_panels_together(products, *ctx.pool);
}

absl::Status DilatedSelfAttention::forward_cached(const ExecContext& ctx,
                                                  std::span<const SequenceChunk> chunks, int64_t layer,
                                                  const float* x_normed, float* residual) const {
  if (!xpos_status_.ok()) return xpos_status_;
  int64_t total = 0;
  bool any_token = false;
  for (const SequenceChunk& c : chunks) {
    if (c.cache == nullptr) return absl::InternalError("DilatedSelfAttention: a chunk without a KV cache");
    total = std::max(total, c.row_begin + c.rows);
    any_token = any_token || c.rows == 1;
  }
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
  project_qkv(ctx, total, x_normed, q->data<float>(), k->data<float>(), v->data<float>());
  std::fill_n(acc->data<float>(), total * e, 0.0f);
  std::fill_n(acc_lse->data<float>(), total * heads_, kNegInf);
  const int threads = ctx.pool->num_threads();
  const int64_t token_workspace =
      any_token ? token_workspace_floats(chunks, static_cast<int64_t>(branches_.size()), head_dim_, threads)
                : 0;
  const int64_t token_floats = TokenScratch::floats(e, head_dim_, token_workspace);
  absl::StatusOr<Tensor> token_block =
      any_token ? scratch(ctx, threads, token_floats) : absl::StatusOr<Tensor>(Tensor());
  if (!token_block.ok()) return token_block.status();
  // `thread` picks the caller's set of decode buffers: parallel_for's thread index, or 0 outside a loop.
  auto attend = [&](const SequenceChunk& c, int thread) {
    const int64_t r0 = c.row_begin;
    const float* cq = q->data<float>() + r0 * e;
    const float* ck = k->data<float>() + r0 * e;
    const float* cv = v->data<float>() + r0 * e;
    float* c_acc = acc->data<float>() + r0 * e;
    float* c_lse = acc_lse->data<float>() + r0 * heads_;
    if (c.rows != 1) return attend_chunk(ctx, c, layer, cq, ck, cv, c_acc, c_lse);
    const TokenScratch buffers = TokenScratch::carve(token_block->data<float>() + thread * token_floats, e,
                                                     head_dim_, token_workspace);
    return attend_token(ctx, c, layer, cq, ck, cv, c_acc, c_lse, buffers);
  };
  // Long chunks (prefill) one after the other, each parallel inside; short ones (decode steps of a
  // batch) side by side, one chunk per task: their kernels are too small to split, and the loops they
  // would start run inline. Chunks touch disjoint rows and caches (one chunk per sequence).
  std::vector<size_t> short_chunks;
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (chunks[i].rows > kShortChunkRows || chunks.size() == 1) {
      if (absl::Status s = attend(chunks[i], 0); !s.ok()) return s;
    } else {
      short_chunks.push_back(i);
    }
  }
  if (!short_chunks.empty()) {
    std::vector<absl::Status> status(short_chunks.size());
    ctx.pool->parallel_for(static_cast<int64_t>(short_chunks.size()), [&](int64_t t, int thread) {
      status[static_cast<size_t>(t)] = attend(chunks[short_chunks[static_cast<size_t>(t)]], thread);
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

// Position t of one sequence (a decode step). Per branch, the heads that see t append its key and value to
// their caches and attend over all the cache holds: t is the newest entry, so every key is visible. XPOS
// rotates q and k once for all branches; only the scales depend on a branch (its centre), and the factors
// come from the sequence's memo, which the step's first layer fills.
absl::Status DilatedSelfAttention::attend_token(const ExecContext& ctx, const SequenceChunk& chunk,
                                                int64_t layer, const float* q, const float* k, const float* v,
                                                float* acc, float* acc_lse,
                                                const TokenScratch& scratch) const {
  const int64_t t = chunk.first_position;
  const int64_t d = head_dim_;
  const bool xpos = !xpos_scale_.empty();
  XposMemo& memo = chunk.cache->xpos_memo();
  if (xpos) {
    enter_xpos_memo(memo, xpos_constants_, xpos_scale_, t);
    kernels::cpu::xpos_rotate_row(memo.cos.data(), memo.sin.data(), heads_, d, q, scratch.q_rotated);
    kernels::cpu::xpos_rotate_row(memo.cos.data(), memo.sin.data(), heads_, d, k, scratch.k_rotated);
    q = scratch.q_rotated;
    k = scratch.k_rotated;
  }
  for (int64_t b = 0; b < static_cast<int64_t>(branches_.size()); ++b) {
    BranchKv& kv = chunk.cache->at(layer, b);
    const int64_t r = branches_[b].dilation;
    const int64_t seen_by = (t - kv.enter_segment(t, branches_[b].segment_length)) % r;  // a head offset
    const float* q_scale = nullptr;
    const float* k_scale = nullptr;
    if (xpos) {
      if (t - kv.centre > kXposRecentre) recentre_keys(kv, t);
      const size_t at = xpos_memo_scales(memo, xpos_constants_, b, kv.centre);
      q_scale = memo.q_scale.data() + at;
      k_scale = memo.k_scale.data() + at;
    }
    for (int64_t h = 0; h < heads_; ++h) {
      if (kernels::head_offset(h, heads_, r) != seen_by) continue;
      absl::Status s = attend_token_head(ctx, kv, h, q + h * d, k + h * d, v + h * d, q_scale, k_scale,
                                         scratch, acc + h * d, acc_lse + h);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

// Head h of a branch that sees the token: its key (scaled by k_scale, for the branch's XPOS centre) and
// value join the head's cache, then its query (scaled by q_scale) attends over the cache and the result
// merges into the head's output. The scales are nullptr without XPOS.
absl::Status DilatedSelfAttention::attend_token_head(const ExecContext& ctx, BranchKv& kv, int64_t h,
                                                     const float* q, const float* k, const float* v,
                                                     const float* q_scale, const float* k_scale,
                                                     const TokenScratch& scratch, float* acc,
                                                     float* acc_lse) const {
  const int64_t d = head_dim_;
  int64_t& count = kv.count[static_cast<size_t>(h)];
  if (count == kv.keys.dim(1)) {
    return absl::InternalError(absl::StrCat("KV cache overflow: head ", h, " holds ", count, " = capacity"));
  }
  if (k_scale != nullptr) {
    kernels::cpu::xpos_scale_head(k_scale, d, k, kv.key(h, count));
    kernels::cpu::xpos_scale_head(q_scale, d, q, scratch.query);
    q = scratch.query;
  } else {
    std::copy_n(k, d, kv.key(h, count));
  }
  std::copy_n(v, d, kv.value(h, count));
  ++count;
  kernels::PrefixAttentionShape shape;
  shape.num_queries = 1;
  shape.num_keys = count;
  shape.head_dim = d;
  shape.q_stride = shape.k_stride = shape.v_stride = shape.out_stride = d;
  const int64_t limit = count;
  float lse = 0.0f;
  absl::Status s = kernels::cpu::prefix_attention(shape, q, kv.key(h, 0), kv.value(h, 0), {&limit, 1},
                                                  scratch.out, &lse, scratch.workspace, *ctx.pool);
  if (!s.ok()) return s;
  kernels::cpu::merge_attention_lse(1, d, scratch.out, d, &lse, acc, d, acc_lse);
  return absl::OkStatus();
}

absl::Status DilatedSelfAttention::attend_chunk(const ExecContext& ctx, const SequenceChunk& chunk,
                                                int64_t layer, const float* q, const float* k, const float* v,
                                                float* acc, float* acc_lse) const {
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
  for (int64_t b = 0; b < static_cast<int64_t>(branches_.size()); ++b) {
    BranchKv& kv = chunk.cache->at(layer, b);
    absl::Status s = for_each_piece(
        kv, chunk.first_position, chunk.rows, branches_[b].segment_length, [&](const Piece& p) {
          const float* pq = q + p.row * e;
          const float* pk = k + p.row * e;
          if (xpos) {
            if (p.last() - kv.centre > kXposRecentre) recentre_keys(kv, p.begin);
            std::copy_n(pq, p.n * e, xq->data<float>());
            std::copy_n(pk, p.n * e, xk->data<float>());
            absl::Status st = apply_xpos(ctx, p.n, p.begin, kv.centre, xq->data<float>(), xk->data<float>());
            if (!st.ok()) return st;
            pq = xq->data<float>();
            pk = xk->data<float>();
          }
          return attend_piece(ctx, kv, b, p.segment_start, p.begin, p.n, pq, pk, v + p.row * e,
                              acc + p.row * e, acc_lse + p.row * heads_);
        });
    if (!s.ok()) return s;
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
    const auto [first_row, nq] = head_rows(rel, n, r, kernels::head_offset(h, heads_, r));
    if (nq == 0) continue;
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
  const std::vector<float> factor =
      xpos_recentre_factors(xpos_scale_, xpos_scale_base_, new_centre - kv.centre);
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
  if (!xpos_status_.ok()) return xpos_status_;
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
  project_qkv(ctx, rows, x_normed, q->data<float>(), k->data<float>(), v->data<float>());
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
