// One encode step: the next chunk of one admitted document. Decoder models run the document as one
// sequence through the bounded KV cache (chunked prefill, hidden states and/or logits of every row);
// encoder models run whole encoder blocks (no segment crosses one), so memory stays bounded either way.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine_impl.h"
#include "longnet/model/log_probs.h"

namespace longnet::server {
namespace {

bool decoder_only(const model::LongNetModel& m) {
  return m.has_decoder() && !m.has_encoder();
}

bool needs_hidden(const EncodeJob& job) {
  return job.pooling != Pooling::kNone || job.return_token_states;
}

// Output of one chunk: at most this many bytes of hidden states and logits at once.
constexpr int64_t kChunkOutputBytes = int64_t{64} << 20;

}  // namespace

size_t Engine::Impl::encode_cache_bytes(int64_t tokens) const {
  return decoder_only(model_) ? model_.sequence_cache_bytes(tokens) : 0;
}

int64_t Engine::Impl::encode_rows_cap() const {
  const int64_t per_row = model_.output_dim(decoder_only(model_) ? model::DecoderOutput::kHiddenAndLogits
                                                                 : model::DecoderOutput::kHidden);
  return std::max<int64_t>(1, kChunkOutputBytes / (per_row * static_cast<int64_t>(sizeof(float))));
}

absl::Status Engine::Impl::start_encode(const model::ExecContext& ctx, EncodeWork& w) {
  const int64_t n = static_cast<int64_t>(w.job.ids.size());
  if (decoder_only(model_)) {
    absl::StatusOr<std::unique_ptr<model::Sequence>> seq = model_.start_sequence(ctx, {}, n);
    if (!seq.ok()) return seq.status();
    w.sequence = *std::move(seq);
  }
  w.pooler.emplace(w.job.pooling, w.job.normalize, model_.output_dim(model::DecoderOutput::kHidden), n);
  return absl::OkStatus();
}

void Engine::Impl::finish(EncodeWork& w, absl::Status status) {
  EncodeOutcome outcome;
  if (w.sequence != nullptr) {
    kv_cache_bytes_ -= w.cache_bytes;
    w.sequence.reset();
  }
  if (status.ok()) {
    const std::vector<double> pooled = w.pooler->result();
    outcome.pooled.assign(pooled.begin(), pooled.end());
    outcome.log_likelihood = w.log_likelihood;
    outcome.scored_tokens = w.job.score ? static_cast<int64_t>(w.job.ids.size()) - 1 : 0;
    outcome.tokens = static_cast<int64_t>(w.job.ids.size());
    w.times.prefilled = since(w.accepted);
  }
  w.times.finished = since(w.accepted);
  w.handle->finish(std::move(status), FinishReason::kNone, std::move(outcome), w.times);
}

absl::Status Engine::Impl::encode_chunk(const model::ExecContext& ctx, EncodeWork& w, int64_t budget) {
  const EncodeJob& job = w.job;
  const int64_t n = static_cast<int64_t>(job.ids.size());
  const int64_t dim = model_.output_dim(model::DecoderOutput::kHidden);
  const std::span<const int32_t> ids(job.ids);
  TokenRows event;
  event.first = w.done;

  if (!decoder_only(model_)) {
    // Encoder: whole blocks; a document whose block is all of it runs in one go.
    const int64_t block = model_.encoder_block_length(n);
    const int64_t rows =
        block >= n
            ? n
            : std::min(n - w.done, block * std::max<int64_t>(1, std::min(budget, encode_rows_cap()) / block));
    absl::Status st = model_.encode(ctx, ids.subspan(static_cast<size_t>(w.done), static_cast<size_t>(rows)),
                                    [&](int64_t first, int64_t r, const float* hidden) {
                                      w.pooler->add(w.done + first, r, hidden, dim);
                                      if (job.return_token_states)
                                        event.states.insert(event.states.end(), hidden, hidden + r * dim);
                                      return absl::OkStatus();
                                    });
    if (!st.ok()) return st;
    event.rows = rows;
    w.done += rows;
  } else {
    const int64_t rows = std::min({n - w.done, budget, encode_rows_cap()});
    const bool hidden = needs_hidden(job);
    const model::DecoderOutput what = hidden && job.score ? model::DecoderOutput::kHiddenAndLogits
                                      : job.score         ? model::DecoderOutput::kLogits
                                                          : model::DecoderOutput::kHidden;
    const int64_t stride = model_.output_dim(what);
    const int64_t logits_offset = what == model::DecoderOutput::kHiddenAndLogits ? dim : 0;
    absl::StatusOr<model::Tensor> out = model::scratch(ctx, rows, stride);
    if (!out.ok()) return out.status();
    const model::DecodeChunk chunk{w.sequence.get(),
                                   ids.subspan(static_cast<size_t>(w.done), static_cast<size_t>(rows))};
    if (absl::Status st = model_.forward(ctx, {&chunk, 1}, what, out->data<float>()); !st.ok()) return st;
    const float* o = out->data<float>();
    if (hidden) w.pooler->add(w.done, rows, o, stride);
    if (job.return_token_states) {
      event.states.resize(static_cast<size_t>(rows * dim));
      for (int64_t r = 0; r < rows; ++r)
        std::copy_n(o + r * stride, dim, event.states.data() + r * dim);
    }
    if (job.score) {
      const size_t vocab = static_cast<size_t>(model_.vocab_size());
      if (job.return_token_logprobs) event.logprobs.push_back(w.done == 0 ? 0.0f : w.next_logprob);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t target = w.done + r + 1;  // row r predicts the token after it
        if (target >= n) break;
        const std::span<const float> row(o + r * stride + logits_offset, vocab);
        const double lp = model::log_probability(row, ids[static_cast<size_t>(target)]);
        w.log_likelihood += lp;
        if (r + 1 < rows) {
          if (job.return_token_logprobs) event.logprobs.push_back(static_cast<float>(lp));
        } else {
          w.next_logprob = static_cast<float>(lp);
        }
      }
    }
    event.rows = rows;
    w.done += rows;
  }
  if (job.return_token_states || job.return_token_logprobs) {
    const size_t bytes = (event.states.size() + event.logprobs.size()) * sizeof(float);
    w.handle->publish(std::move(event), bytes);
  }
  return absl::OkStatus();
}

int64_t Engine::Impl::encode_step(int64_t budget) {
  // The oldest encode whose reader keeps up; it then goes to the back (round robin).
  auto it = std::find_if(encoding_.begin(), encoding_.end(), [&](const std::unique_ptr<EncodeWork>& w) {
    return w->handle->pending_bytes() < limits_.max_pending_bytes;
  });
  if (it == encoding_.end()) return 0;
  std::unique_ptr<EncodeWork> w = std::move(*it);
  encoding_.erase(it);
  const int64_t before = w->done;
  absl::Status st = encode_chunk(context_, *w, budget);
  const int64_t tokens = w->done - before;
  if (!st.ok()) {
    finish(*w, st);
  } else if (w->done >= static_cast<int64_t>(w->job.ids.size())) {
    finish(*w, absl::OkStatus());
  } else {
    encoding_.push_back(std::move(w));
  }
  return std::max<int64_t>(tokens, 1);
}

}  // namespace longnet::server
