#include "longnet/model/model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "longnet/kernels/embedding.h"
#if defined(LONGNET_WITH_CUDA)
#include "longnet/model/cuda_graph.h"
#endif

namespace longnet::model {

namespace {
absl::Status lacks(const ModelConfig& config, const char* part, const char* consequence) {
  return absl::FailedPreconditionError(
      absl::StrCat(std::string(model_type_name(config.model_type)), " has no ", part, ": ", consequence));
}
}  // namespace

size_t Sequence::nbytes() const {
  size_t total = cache_.nbytes();
  for (const Tensor& t : cross_keys_)
    total += t.nbytes();
  for (const Tensor& t : cross_values_)
    total += t.nbytes();
  return total + encoder_output_.nbytes();
}

absl::StatusOr<std::unique_ptr<LongNetModel>> LongNetModel::load(const std::filesystem::path& dir,
                                                                 Allocator& allocator) {
  absl::StatusOr<ModelDirectory> directory = load_model_directory(dir, allocator);
  if (!directory.ok()) return directory.status();
  return assemble(*std::move(directory), allocator);
}

absl::StatusOr<std::unique_ptr<LongNetModel>> LongNetModel::assemble(ModelDirectory directory,
                                                                     Allocator& allocator) {
  std::unique_ptr<LongNetModel> model(new LongNetModel(std::move(directory)));
  const ModelConfig& config = model->dir_.config;
  const std::string head_prefix = config.model_type == ModelType::kEncoderDecoder ? "decoder." : "";
  const std::string head = absl::StrCat(
      head_prefix, config.share_decoder_input_output_embed ? "embed_tokens" : "output_projection", ".weight");
  // Every 2-D weight but the embedding tables is a Linear's; a tied LM head is the decoder's table.
  for (const ExpectedTensor& t : expected_tensors(config)) {
    const bool table = t.name.ends_with("embed_tokens.weight");
    const bool is_head = config.decoder.has_value() && t.name == head;
    if (t.shape.size() != 2 || (table && !is_head)) continue;
    if (absl::Status st = model->dir_.weights.pack_panels(t.name, allocator); !st.ok()) return st;
  }
  switch (config.model_type) {
    case ModelType::kDecoder:
      model->decoder_ = model->build_stack(*config.decoder, "", false);
      break;
    case ModelType::kEncoder:
      model->encoder_ = model->build_stack(*config.encoder, "", false);
      break;
    case ModelType::kEncoderDecoder:
      model->encoder_ = model->build_stack(*config.encoder, "encoder.", false);
      model->decoder_ = model->build_stack(*config.decoder, "decoder.", true);
      break;
  }
  if (model->decoder_) {
    model->lm_head_ =
        Linear::from(model->dir_.weights, head.substr(0, head.size() - std::string(".weight").size()),
                     /*has_bias=*/false);
  }
  return model;
}

absl::Status LongNetModel::to_cuda(Allocator& device) {
  if (!device.device().is_cuda()) {
    return absl::FailedPreconditionError(
        absl::StrCat("to_cuda: the allocator is on ", device.device().to_string(), ", not a CUDA device"));
  }
  if (cuda_) return absl::FailedPreconditionError("to_cuda: the model is on a CUDA device already");
#if defined(LONGNET_WITH_CUDA)
  absl::StatusOr<std::unique_ptr<CudaGraph>> graph = CudaGraph::create(*this, device);
  if (!graph.ok()) return graph.status();
  cuda_ = *std::move(graph);
  return absl::OkStatus();
#else
  return absl::FailedPreconditionError(
      "to_cuda: this build has no CUDA backend (configured with LONGNET_WITH_CUDA=OFF)");
#endif
}

Device LongNetModel::device() const {
#if defined(LONGNET_WITH_CUDA)
  if (cuda_) return cuda_->allocator().device();
#endif
  return Device::cpu();
}

Allocator& LongNetModel::cache_allocator(const ExecContext& ctx) const {
#if defined(LONGNET_WITH_CUDA)
  if (cuda_) return cuda_->allocator();
#endif
  return *ctx.allocator;
}

LongNetModel::Stack LongNetModel::build_stack(const StackConfig& sizes, const std::string& prefix,
                                              bool with_cross_attention) const {
  const ModelConfig& config = dir_.config;
  const ModelWeights& w = dir_.weights;
  Stack stack;
  stack.sizes = sizes;
  stack.embed_tokens = w.get(absl::StrCat(prefix, "embed_tokens.weight")).data<float>();
  stack.embed_scale =
      config.no_scale_embedding ? 1.0f : static_cast<float>(std::sqrt(static_cast<double>(sizes.embed_dim)));
  for (int64_t i = 0; i < sizes.layers; ++i) {
    const std::string layer = absl::StrCat(prefix, "layers.", i, ".");
    Layer l{Norm::from(w, absl::StrCat(layer, "self_attn_layer_norm"), config.layernorm_eps),
            DilatedSelfAttention::from(w, config, sizes, layer), std::nullopt,
            FeedForward::from(w, config, layer)};
    if (with_cross_attention) l.cross_attn = CrossAttention::from(w, config, sizes, layer);
    stack.layers.push_back(std::move(l));
  }
  stack.final_norm = Norm::from(w, absl::StrCat(prefix, "layer_norm"), config.layernorm_eps);
  return stack;
}

int64_t LongNetModel::output_dim(DecoderOutput what) const {
  const int64_t e = decoder_ ? decoder_->sizes.embed_dim : encoder_->sizes.embed_dim;
  if (what == DecoderOutput::kHidden) return e;
  if (what == DecoderOutput::kHiddenAndLogits) return e + vocab_size();
  return vocab_size();
}

absl::Status LongNetModel::embed(const ExecContext& ctx, const Stack& stack, std::span<const int32_t> ids,
                                 float* x) const {
  kernels::EmbeddingShape shape;
  shape.vocab_size = vocab_size();
  shape.dim = stack.sizes.embed_dim;
  shape.num_ids = static_cast<int64_t>(ids.size());
  shape.out_stride = stack.sizes.embed_dim;
  shape.table_dtype = DType::kF32;
  shape.scale = stack.embed_scale;
  return kernels::cpu::embedding(shape, stack.embed_tokens, ids.data(), x, *ctx.pool);
}

size_t LongNetModel::sequence_cache_bytes(int64_t max_positions) const {
  if (!decoder_) return 0;
  const StackConfig& s = decoder_->sizes;
  return DilatedKvCache::bytes_for(s.layers, s.attention_heads, s.head_dim(), dir_.config.branches,
                                   max_positions);
}

absl::StatusOr<std::unique_ptr<Sequence>> LongNetModel::start_sequence(const ExecContext& ctx,
                                                                       std::span<const int32_t> source_ids,
                                                                       int64_t max_positions) const {
  absl::StatusOr<std::unique_ptr<Sequence>> seq = start_sequence_deferred(ctx, source_ids, max_positions);
  if (!seq.ok()) return seq;
  while ((*seq)->source_pending() > 0) {
    absl::StatusOr<int64_t> encoded = encode_source(ctx, **seq, std::numeric_limits<int64_t>::max());
    if (!encoded.ok()) return encoded.status();
  }
  return seq;
}

absl::StatusOr<std::unique_ptr<Sequence>> LongNetModel::start_sequence_deferred(
    const ExecContext& ctx, std::span<const int32_t> source_ids, int64_t max_positions) const {
  if (!decoder_) {
    return absl::FailedPreconditionError(absl::StrCat(std::string(model_type_name(dir_.config.model_type)),
                                                      " has no decoder: it cannot generate"));
  }
  const StackConfig& s = decoder_->sizes;
  absl::StatusOr<DilatedKvCache> cache = DilatedKvCache::create(
      s.layers, s.attention_heads, s.head_dim(), dir_.config.branches, cache_allocator(ctx), max_positions);
  if (!cache.ok()) return cache.status();
  std::unique_ptr<Sequence> seq(new Sequence(*std::move(cache)));
  if (!encoder_) {
    if (!source_ids.empty()) return absl::InvalidArgumentError("source ids given to a decoder-only model");
    return seq;
  }
  if (source_ids.empty()) return absl::InvalidArgumentError("an encoder-decoder sequence needs source ids");
  // The encoder's final-LN output, the memory every decoder layer's cross-attention reads, is filled
  // block by block by encode_source and projected once complete.
  const int64_t shape[] = {static_cast<int64_t>(source_ids.size()), encoder_->sizes.embed_dim};
  absl::StatusOr<Tensor> output = Tensor::empty(shape, DType::kF32, cache_allocator(ctx));
  if (!output.ok()) return output.status();
  seq->encoder_output_ = *std::move(output);
  seq->source_ids_.assign(source_ids.begin(), source_ids.end());
  seq->source_pending_ = static_cast<int64_t>(source_ids.size());
  return seq;
}

absl::StatusOr<int64_t> LongNetModel::encode_source(const ExecContext& ctx, Sequence& sequence,
                                                    int64_t max_tokens) const {
  if (sequence.source_pending_ == 0) return 0;
  const std::span<const int32_t> ids = sequence.source_ids_;
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t begin = n - sequence.source_pending_;
  const int64_t block = encoder_block_length(n);
  const int64_t end = std::min(n, begin + std::max<int64_t>(1, max_tokens / block) * block);
  const int64_t e = encoder_->sizes.embed_dim;
  float* memory = sequence.encoder_output_.data<float>();
  absl::Status st;
#if defined(LONGNET_WITH_CUDA)
  if (cuda_) st = cuda_->encode_into(ctx, ids, begin, end, block, memory);
#endif
  if (!cuda_) {
    st = encode_range(ctx, ids, begin, end, [&](int64_t first, int64_t rows, const float* hidden) {
      std::copy_n(hidden, rows * e, memory + first * e);
      return absl::OkStatus();
    });
  }
  if (!st.ok()) return st;
  sequence.source_pending_ = n - end;
  if (end < n) return end - begin;
#if defined(LONGNET_WITH_CUDA)
  if (cuda_) st = cuda_->project_cross_memory(ctx, memory, n, &sequence.cross_keys_, &sequence.cross_values_);
#endif
  if (!cuda_) {
    for (const Layer& layer : decoder_->layers) {
      Tensor k, v;
      st = layer.cross_attn->project_memory(ctx, n, memory, &k, &v);
      if (!st.ok()) break;
      sequence.cross_keys_.push_back(std::move(k));
      sequence.cross_values_.push_back(std::move(v));
    }
  }
  if (!st.ok()) return st;
  sequence.encoder_output_ = Tensor();
  sequence.source_ids_ = {};
  return end - begin;
}

absl::Status LongNetModel::forward(const ExecContext& ctx, std::span<const DecodeChunk> chunks,
                                   DecoderOutput what, float* out) const {
  if (!decoder_) {
    return lacks(dir_.config, "decoder", "use encode()");
  }
  const Stack& stack = *decoder_;
  const int64_t e = stack.sizes.embed_dim;
  std::vector<SequenceChunk> views;
  std::vector<int32_t> ids;
  int64_t total = 0;
  for (const DecodeChunk& c : chunks) {
    if (c.sequence == nullptr) return absl::InvalidArgumentError("a chunk without a sequence");
    for (const DecodeChunk& other : chunks) {
      if (&other == &c) break;
      if (other.sequence == c.sequence)
        return absl::InvalidArgumentError("a sequence appears in two chunks of one forward()");
    }
    const int64_t rows = static_cast<int64_t>(c.ids.size());
    const int64_t first = c.sequence->length();
    const int64_t cap = c.sequence->cache_.max_positions();
    if (cap > 0 && first + rows > cap) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence of ", first + rows, " tokens exceeds its limit of ", cap, " positions"));
    }
    if (c.sequence->source_pending() > 0) {
      return absl::FailedPreconditionError(absl::StrCat("a sequence's source has ",
                                                        c.sequence->source_pending(),
                                                        " positions still to encode (encode_source)"));
    }
    if (what == DecoderOutput::kLastLogits && rows == 0) {
      return absl::InvalidArgumentError("last-row logits asked for a chunk with no tokens");
    }
    views.push_back(SequenceChunk{total, rows, first, &c.sequence->cache_});
    ids.insert(ids.end(), c.ids.begin(), c.ids.end());
    total += rows;
  }
  if (total == 0) return absl::OkStatus();
#if defined(LONGNET_WITH_CUDA)
  if (cuda_) {
    absl::Status st = cuda_->forward(ctx, chunks, views, ids, what, out);
    if (!st.ok()) return st;
    for (const DecodeChunk& c : chunks)
      c.sequence->cache_.advance(static_cast<int64_t>(c.ids.size()));
    return absl::OkStatus();
  }
#endif
  absl::StatusOr<Tensor> x = scratch(ctx, total, e);
  absl::StatusOr<Tensor> normed = scratch(ctx, total, e);
  if (!x.ok()) return x.status();
  if (!normed.ok()) return normed.status();
  float* xs = x->data<float>();
  float* xn = normed->data<float>();
  absl::Status st = embed(ctx, stack, ids, xs);  // checks every id before any cache changes
  if (!st.ok()) return st;

  for (int64_t l = 0; l < static_cast<int64_t>(stack.layers.size()); ++l) {
    const Layer& layer = stack.layers[static_cast<size_t>(l)];
    layer.self_attn_norm.forward(total, xs, e, xn, e, *ctx.pool);
    st = layer.self_attn.forward_cached(ctx, views, l, xn, xs);
    if (!st.ok()) return st;
    if (layer.cross_attn) {
      for (size_t c = 0; c < chunks.size(); ++c) {
        const Sequence& seq = *chunks[c].sequence;
        st = layer.cross_attn->add_to(ctx, views[c].rows, xs + views[c].row_begin * e,
                                      seq.cross_keys_[static_cast<size_t>(l)],
                                      seq.cross_values_[static_cast<size_t>(l)]);
        if (!st.ok()) return st;
      }
    }
    st = layer.ffn.add_to(ctx, total, xs);
    if (!st.ok()) return st;
  }
  for (const DecodeChunk& c : chunks)
    c.sequence->cache_.advance(static_cast<int64_t>(c.ids.size()));

  stack.final_norm.forward(total, xs, e, xn, e, *ctx.pool);
  switch (what) {
    case DecoderOutput::kHidden:
      std::copy_n(xn, total * e, out);
      break;
    case DecoderOutput::kLogits:
      lm_head_.forward(total, xn, e, out, vocab_size(), *ctx.pool);
      break;
    case DecoderOutput::kHiddenAndLogits: {
      const int64_t stride = e + vocab_size();
      for (int64_t r = 0; r < total; ++r)
        std::copy_n(xn + r * e, e, out + r * stride);
      lm_head_.forward(total, xn, e, out + e, stride, *ctx.pool);
      break;
    }
    case DecoderOutput::kLastLogits:
      // The last row of each chunk, gathered so that one product serves the whole batch.
      for (size_t c = 0; c < views.size(); ++c) {
        const int64_t last = views[c].row_begin + views[c].rows - 1;
        if (last != static_cast<int64_t>(c)) std::copy_n(xn + last * e, e, xn + static_cast<int64_t>(c) * e);
      }
      lm_head_.forward(static_cast<int64_t>(views.size()), xn, e, out, vocab_size(), *ctx.pool);
      break;
  }
  return absl::OkStatus();
}

absl::Status LongNetModel::forward_chunked(const ExecContext& ctx, Sequence& sequence,
                                           std::span<const int32_t> ids, int64_t chunk, DecoderOutput what,
                                           const RowsCallback& on_rows) const {
  if (chunk <= 0)
    return absl::InvalidArgumentError(absl::StrCat("forward_chunked: chunk must be > 0, got ", chunk));
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t out_rows = what == DecoderOutput::kLastLogits ? 1 : std::min(chunk, n);
  absl::StatusOr<Tensor> out = scratch(ctx, std::max<int64_t>(out_rows, 1), output_dim(what));
  if (!out.ok()) return out.status();
  for (int64_t first = 0; first < n; first += chunk) {
    const int64_t rows = std::min(chunk, n - first);
    const DecodeChunk c{&sequence, ids.subspan(static_cast<size_t>(first), static_cast<size_t>(rows))};
    absl::Status st = forward(ctx, {&c, 1}, what, out->data<float>());
    if (!st.ok()) return st;
    st = on_rows(first, rows, out->data<float>());
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

int64_t LongNetModel::encoder_block_length(int64_t n) const {
  int64_t widest = 0;
  for (const auto& b : dir_.config.branches)
    widest = std::max(widest, b.segment_length);
  if (n <= widest) return n;
  for (const auto& b : dir_.config.branches) {
    if (widest % b.segment_length != 0) return n;
  }
  return widest;
}

absl::Status LongNetModel::encode(const ExecContext& ctx, std::span<const int32_t> ids,
                                  const BlockCallback& on_block) const {
  if (!encoder_) {
    return lacks(dir_.config, "encoder", "use forward()");
  }
  if (ids.empty()) return absl::InvalidArgumentError("encode: no tokens");
  return encode_range(ctx, ids, 0, static_cast<int64_t>(ids.size()), on_block);
}

absl::Status LongNetModel::encode_range(const ExecContext& ctx, std::span<const int32_t> ids, int64_t begin,
                                        int64_t end, const BlockCallback& on_block) const {
  const Stack& stack = *encoder_;
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t e = stack.sizes.embed_dim;
  const int64_t block = encoder_block_length(n);
#if defined(LONGNET_WITH_CUDA)
  if (cuda_) return cuda_->encode(ctx, ids, begin, end, block, on_block);
#endif
  absl::StatusOr<Tensor> x = scratch(ctx, block, e);
  absl::StatusOr<Tensor> normed = scratch(ctx, block, e);
  if (!x.ok()) return x.status();
  if (!normed.ok()) return normed.status();
  float* xs = x->data<float>();
  float* xn = normed->data<float>();
  for (int64_t first = begin; first < end; first += block) {
    const int64_t rows = std::min(block, n - first);
    absl::Status st =
        embed(ctx, stack, ids.subspan(static_cast<size_t>(first), static_cast<size_t>(rows)), xs);
    if (!st.ok()) return st;
    for (const Layer& layer : stack.layers) {
      layer.self_attn_norm.forward(rows, xs, e, xn, e, *ctx.pool);
      st = layer.self_attn.forward_block(ctx, rows, first, xn, xs);
      if (!st.ok()) return st;
      st = layer.ffn.add_to(ctx, rows, xs);
      if (!st.ok()) return st;
    }
    stack.final_norm.forward(rows, xs, e, xn, e, *ctx.pool);
    st = on_block(first, rows, xn);
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

}  // namespace longnet::model
