#if defined(LONGNET_WITH_CUDA)  // model/ globs every source; this one is CUDA-only

#include "longnet/model/cuda_graph.h"

#include <cuda_runtime_api.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "longnet/kernels/cuda_device.h"

namespace longnet::model {

using kernels::cuda::to_status;

namespace {
// The value of `result`, or T{} after keeping its error in `failed` (the first error of a run wins).
template <typename T>
T take(absl::StatusOr<T> result, absl::Status& failed) {
  if (result.ok()) return *std::move(result);
  if (failed.ok()) failed = result.status();
  return T{};
}
}  // namespace

CudaGraph::CudaGraph(const LongNetModel& model, Allocator& device) : model_(model), device_(device) {}

CudaGraph::~CudaGraph() {
  // Work still queued may read the weights: let it finish before they go back to the pool.
  (void)cudaStreamSynchronize(nullptr);
}

absl::StatusOr<std::unique_ptr<CudaGraph>> CudaGraph::create(const LongNetModel& model, Allocator& device) {
  if (!device.device().is_cuda()) {
    return absl::FailedPreconditionError(
        absl::StrCat("CudaGraph: the allocator is on ", device.device().to_string(), ", not a CUDA device"));
  }
  std::unique_ptr<CudaGraph> graph(new CudaGraph(model, device));
  if (auto st = graph->enter(nullptr); !st.ok()) return st;
  absl::StatusOr<std::unique_ptr<kernels::cuda::Blas>> blas = kernels::cuda::Blas::create(nullptr);
  if (!blas.ok()) return blas.status();
  graph->blas_ = *std::move(blas);
  if (auto st = graph->build(); !st.ok()) return st;
  if (auto st = to_status(cudaStreamSynchronize(nullptr), "copying the weights to the device"); !st.ok())
    return st;
  return graph;
}

absl::StatusOr<const float*> CudaGraph::upload(const float* host, int64_t n) {
  if (host == nullptr) return nullptr;
  if (auto it = weights_.find(host); it != weights_.end())
    return static_cast<const float*>(it->second.data());
  const size_t bytes = static_cast<size_t>(n) * sizeof(float);
  absl::StatusOr<PoolBuffer> buffer = device_.allocate(bytes);
  if (!buffer.ok()) return buffer.status();
  if (auto st =
          to_status(cudaMemcpy(buffer->data(), host, bytes, cudaMemcpyHostToDevice), "copying a weight");
      !st.ok())
    return st;
  const auto* device = static_cast<const float*>(buffer->data());
  weights_.emplace(host, *std::move(buffer));
  return device;
}

absl::StatusOr<CudaGraph::Linear> CudaGraph::mirror(const model::Linear& l) {
  Linear d;
  d.in_features = l.in_features;
  d.out_features = l.out_features;
  absl::StatusOr<const float*> w = upload(l.weight, l.in_features * l.out_features);
  if (!w.ok()) return w.status();
  absl::StatusOr<const float*> b = upload(l.bias, l.out_features);
  if (!b.ok()) return b.status();
  d.weight = *w;
  d.bias = *b;
  return d;
}

absl::StatusOr<CudaGraph::Norm> CudaGraph::mirror(const model::Norm& n) {
  Norm d;
  d.dim = n.dim;
  d.eps = n.eps;
  absl::StatusOr<const float*> gamma = upload(n.gamma, n.dim);
  if (!gamma.ok()) return gamma.status();
  absl::StatusOr<const float*> beta = upload(n.beta, n.dim);
  if (!beta.ok()) return beta.status();
  d.gamma = *gamma;
  d.beta = *beta;
  return d;
}

// Mirrors a host stack: the same layers, their weights on the device. Linear and norm pointers are all the
// graph reads of them; the self-attention also keeps its host object for the schedule and XPOS.
absl::StatusOr<CudaGraph::Stack> CudaGraph::mirror(const LongNetModel::Stack& s) {
  Stack d;
  d.host = &s;
  absl::StatusOr<const float*> embed = upload(s.embed_tokens, model_.vocab_size() * s.sizes.embed_dim);
  if (!embed.ok()) return embed.status();
  d.embed_tokens = *embed;
  absl::Status failed;  // the first error of the mirror() calls below
  for (const LongNetModel::Layer& host : s.layers) {
    Layer l;
    l.self_attn_norm = take(mirror(host.self_attn_norm), failed);
    const DilatedSelfAttention& a = host.self_attn;
    l.self_attn.host = &a;
    l.self_attn.q_proj = take(mirror(a.q_proj_), failed);
    l.self_attn.k_proj = take(mirror(a.k_proj_), failed);
    l.self_attn.v_proj = take(mirror(a.v_proj_), failed);
    l.self_attn.out_proj = take(mirror(a.out_proj_), failed);
    if (a.inner_norm_) l.self_attn.inner_norm = take(mirror(*a.inner_norm_), failed);
    if (host.cross_attn) {
      const model::CrossAttention& c = *host.cross_attn;
      CrossAttention dc;
      dc.norm = take(mirror(c.norm_), failed);
      dc.q_proj = take(mirror(c.q_proj_), failed);
      dc.k_proj = take(mirror(c.k_proj_), failed);
      dc.v_proj = take(mirror(c.v_proj_), failed);
      dc.out_proj = take(mirror(c.out_proj_), failed);
      l.cross_attn = dc;
    }
    l.ffn.norm = take(mirror(host.ffn.norm), failed);
    l.ffn.fc1 = take(mirror(host.ffn.fc1), failed);
    l.ffn.fc2 = take(mirror(host.ffn.fc2), failed);
    if (host.ffn.inner_norm) l.ffn.inner_norm = take(mirror(*host.ffn.inner_norm), failed);
    l.ffn.activation = host.ffn.activation;
    if (!failed.ok()) return failed;
    d.layers.push_back(std::move(l));
  }
  d.final_norm = take(mirror(s.final_norm), failed);
  if (!failed.ok()) return failed;
  return d;
}

absl::Status CudaGraph::build() {
  for (const auto& [host, device] : {std::pair{&model_.encoder_, &encoder_}, {&model_.decoder_, &decoder_}}) {
    if (!host->has_value()) continue;
    absl::StatusOr<Stack> stack = mirror(**host);
    if (!stack.ok()) return stack.status();
    *device = *std::move(stack);
  }
  if (decoder_) {
    absl::StatusOr<Linear> head = mirror(model_.lm_head_);
    if (!head.ok()) return head.status();
    lm_head_ = *head;
  }
  return absl::OkStatus();
}

absl::StatusOr<Tensor> CudaGraph::scratch(int64_t rows, int64_t cols) const {
  const int64_t shape[] = {rows, cols};
  return Tensor::empty(shape, DType::kF32, *activations_);
}

absl::StatusOr<PoolBuffer> CudaGraph::scratch_bytes(size_t bytes) const {
  return activations_->allocate(std::max<size_t>(bytes, 1));
}

absl::Status CudaGraph::enter(const ExecContext* ctx) {
  activations_ = ctx != nullptr && ctx->device_allocator != nullptr ? ctx->device_allocator : &device_;
  return to_status(cudaSetDevice(device_.device().index), "cudaSetDevice");
}

absl::Status CudaGraph::forward(const ExecContext& ctx, std::span<const DecodeChunk> chunks,
                                std::span<const SequenceChunk> views, std::span<const int32_t> ids,
                                DecoderOutput what, float* out) {
  std::lock_guard lock(mutex_);
  if (auto st = enter(&ctx); !st.ok()) return st;
  const Stack& stack = *decoder_;
  const int64_t e = stack.host->sizes.embed_dim;
  const auto total = static_cast<int64_t>(ids.size());
  absl::StatusOr<Tensor> x = scratch(total, e);
  absl::StatusOr<Tensor> normed = scratch(total, e);
  if (!x.ok()) return x.status();
  if (!normed.ok()) return normed.status();
  float* xs = x->data<float>();
  float* xn = normed->data<float>();
  if (auto st = embed(stack, ids, xs); !st.ok()) return st;  // checks every id before any cache changes
  for (int64_t l = 0; l < static_cast<int64_t>(stack.layers.size()); ++l) {
    const Layer& layer = stack.layers[static_cast<size_t>(l)];
    if (auto st = norm(layer.self_attn_norm, total, xs, xn); !st.ok()) return st;
    if (auto st = self_attention_cached(ctx, layer.self_attn, views, l, total, xn, xs); !st.ok()) return st;
    if (layer.cross_attn) {
      for (size_t c = 0; c < chunks.size(); ++c) {
        const Sequence& seq = *chunks[c].sequence;
        auto st = cross_attention(*layer.cross_attn, views[c].rows, xs + views[c].row_begin * e,
                                  seq.cross_keys_[static_cast<size_t>(l)],
                                  seq.cross_values_[static_cast<size_t>(l)]);
        if (!st.ok()) return st;
      }
    }
    if (auto st = feed_forward(layer.ffn, total, xs); !st.ok()) return st;
  }
  if (auto st = norm(stack.final_norm, total, xs, xn); !st.ok()) return st;
  return write_output(views, total, xn, what, out);
}

// The requested rows, copied to the host (the copies wait for the queued work, and report its errors).
absl::Status CudaGraph::write_output(std::span<const SequenceChunk> views, int64_t total, const float* xn,
                                     DecoderOutput what, float* out) {
  const int64_t e = decoder_->host->sizes.embed_dim;
  const int64_t vocab = model_.vocab_size();
  const size_t fb = sizeof(float);
  auto copy_rows = [&](float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t cols,
                       int64_t rows) {
    return to_status(
        cudaMemcpy2D(dst, static_cast<size_t>(dst_stride) * fb, src, static_cast<size_t>(src_stride) * fb,
                     static_cast<size_t>(cols) * fb, static_cast<size_t>(rows), cudaMemcpyDeviceToHost),
        "copying the outputs to the host");
  };
  if (what == DecoderOutput::kHidden) return copy_rows(out, e, xn, e, e, total);
  const float* rows = xn;
  int64_t count = total;
  absl::StatusOr<Tensor> last;
  if (what == DecoderOutput::kLastLogits) {
    // The last row of each chunk, gathered so that one product serves the whole batch.
    count = static_cast<int64_t>(views.size());
    last = scratch(count, e);
    if (!last.ok()) return last.status();
    for (int64_t c = 0; c < count; ++c) {
      const SequenceChunk& v = views[static_cast<size_t>(c)];
      auto st = to_status(cudaMemcpyAsync(last->data<float>() + c * e, xn + (v.row_begin + v.rows - 1) * e,
                                          static_cast<size_t>(e) * fb, cudaMemcpyDeviceToDevice, nullptr),
                          "gathering the last rows");
      if (!st.ok()) return st;
    }
    rows = last->data<float>();
  }
  absl::StatusOr<Tensor> logits = scratch(count, vocab);
  if (!logits.ok()) return logits.status();
  if (auto st = linear(lm_head_, count, rows, e, logits->data<float>(), vocab); !st.ok()) return st;
  if (what != DecoderOutput::kHiddenAndLogits)
    return copy_rows(out, vocab, logits->data<float>(), vocab, vocab, count);
  const int64_t stride = e + vocab;
  if (auto st = copy_rows(out, stride, xn, e, e, total); !st.ok()) return st;
  return copy_rows(out + e, stride, logits->data<float>(), vocab, vocab, total);
}

absl::Status CudaGraph::encode_device(const ExecContext& ctx, std::span<const int32_t> ids, int64_t begin,
                                      int64_t end, int64_t block, const DeviceBlockCallback& on_block) {
  const Stack& stack = *encoder_;
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t e = stack.host->sizes.embed_dim;
  absl::StatusOr<Tensor> x = scratch(block, e);
  absl::StatusOr<Tensor> normed = scratch(block, e);
  if (!x.ok()) return x.status();
  if (!normed.ok()) return normed.status();
  float* xs = x->data<float>();
  float* xn = normed->data<float>();
  for (int64_t first = begin; first < end; first += block) {
    const int64_t rows = std::min(block, n - first);
    auto st = embed(stack, ids.subspan(static_cast<size_t>(first), static_cast<size_t>(rows)), xs);
    if (!st.ok()) return st;
    for (const Layer& layer : stack.layers) {
      if (st = norm(layer.self_attn_norm, rows, xs, xn); !st.ok()) return st;
      if (st = self_attention_block(ctx, layer.self_attn, rows, first, xn, xs); !st.ok()) return st;
      if (st = feed_forward(layer.ffn, rows, xs); !st.ok()) return st;
    }
    if (st = norm(stack.final_norm, rows, xs, xn); !st.ok()) return st;
    if (st = on_block(first, rows, xn); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status CudaGraph::encode(const ExecContext& ctx, std::span<const int32_t> ids, int64_t begin,
                               int64_t end, int64_t block, const LongNetModel::BlockCallback& on_block) {
  std::lock_guard lock(mutex_);
  if (auto st = enter(&ctx); !st.ok()) return st;
  const int64_t e = encoder_->host->sizes.embed_dim;
  std::vector<float> host(static_cast<size_t>(std::min(block, end - begin) * e));
  return encode_device(ctx, ids, begin, end, block, [&](int64_t first, int64_t rows, const float* hidden) {
    const size_t bytes = static_cast<size_t>(rows * e) * sizeof(float);
    auto st = to_status(cudaMemcpy(host.data(), hidden, bytes, cudaMemcpyDeviceToHost),
                        "copying encoder states to the host");
    if (!st.ok()) return st;
    return on_block(first, rows, host.data());
  });
}

absl::Status CudaGraph::encode_into(const ExecContext& ctx, std::span<const int32_t> ids, int64_t begin,
                                    int64_t end, int64_t block, float* out) {
  std::lock_guard lock(mutex_);
  if (auto st = enter(&ctx); !st.ok()) return st;
  const int64_t e = encoder_->host->sizes.embed_dim;
  auto st = encode_device(ctx, ids, begin, end, block, [&](int64_t first, int64_t rows, const float* hidden) {
    return to_status(cudaMemcpyAsync(out + first * e, hidden, static_cast<size_t>(rows * e) * sizeof(float),
                                     cudaMemcpyDeviceToDevice, nullptr),
                     "keeping encoder states");
  });
  if (!st.ok()) return st;
  return to_status(cudaStreamSynchronize(nullptr), "encoding the source");
}

absl::Status CudaGraph::project_cross_memory(const ExecContext& ctx, const float* memory, int64_t rows,
                                             std::vector<Tensor>* keys, std::vector<Tensor>* values) {
  std::lock_guard lock(mutex_);
  if (auto st = enter(&ctx); !st.ok()) return st;
  const int64_t e = encoder_->host->sizes.embed_dim;
  const int64_t de = decoder_->host->sizes.embed_dim;
  const int64_t shape[] = {rows, de};
  for (const Layer& layer : decoder_->layers) {
    // The sequence keeps these: they come from the pool caches live in, like the caches themselves.
    absl::StatusOr<Tensor> k = Tensor::empty(shape, DType::kF32, device_);
    absl::StatusOr<Tensor> v = Tensor::empty(shape, DType::kF32, device_);
    if (!k.ok()) return k.status();
    if (!v.ok()) return v.status();
    if (auto st = linear(layer.cross_attn->k_proj, rows, memory, e, k->data<float>(), de); !st.ok())
      return st;
    if (auto st = linear(layer.cross_attn->v_proj, rows, memory, e, v->data<float>(), de); !st.ok())
      return st;
    keys->push_back(*std::move(k));
    values->push_back(*std::move(v));
  }
  return to_status(cudaStreamSynchronize(nullptr), "projecting the cross-attention memory");
}

}  // namespace longnet::model

#endif  // LONGNET_WITH_CUDA
