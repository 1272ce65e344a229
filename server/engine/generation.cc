// One generation step: every decoding sequence's next token, then encoder-decoder sources encoded a few
// blocks at a time and prefill chunks of admitted prompts in what the step's token budget leaves, the
// tokens and chunks in one batched decoder forward, then sampling.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine_impl.h"
#include "longnet/model/log_probs.h"

namespace longnet::server {

absl::Status Engine::Impl::start_generation(GenerationWork& w) {
  const int64_t positions = static_cast<int64_t>(w.job.prompt_ids.size()) + w.job.max_new_tokens;
  // An encoder-decoder's source is encoded by generation_step, under the step budget like a prefill.
  absl::StatusOr<std::unique_ptr<model::Sequence>> seq =
      model_.start_sequence_deferred(context_, w.job.source_ids, positions);
  if (!seq.ok()) return seq.status();
  absl::StatusOr<model::Sampler> sampler = model::Sampler::create(w.job.sampling);
  if (!sampler.ok()) return sampler.status();
  w.sequence = *std::move(seq);
  w.sampler.emplace(*std::move(sampler));
  w.history = w.job.prompt_ids;
  w.history.reserve(w.history.size() + static_cast<size_t>(w.job.max_new_tokens));
  kv_cache_bytes_ += w.cache_bytes;
  return absl::OkStatus();
}

void Engine::Impl::finish(GenerationWork& w, absl::Status status, FinishReason reason) {
  if (w.sequence != nullptr) {
    kv_cache_bytes_ -= w.cache_bytes;
    w.sequence.reset();  // the cache goes back to the pool now
  }
  w.times.finished = since(w.accepted);
  w.handle->finish(std::move(status), reason, {}, w.times);
}

bool Engine::Impl::sample_next(GenerationWork& w, std::span<const float> logits) {
  absl::StatusOr<int32_t> next = w.sampler->sample(logits, w.history);
  if (!next.ok()) {
    finish(w, next.status(), FinishReason::kNone);
    return false;
  }
  if (w.times.first_token < 0) w.times.first_token = since(w.accepted);
  if (w.sampler->is_stop(*next)) {
    finish(w, absl::OkStatus(), *next == w.job.eos_id ? FinishReason::kEos : FinishReason::kStopToken);
    return false;
  }
  TokenEvent event;
  event.id = *next;
  if (w.job.logprobs || w.job.top_logprobs > 0) {
    event.logprob = static_cast<float>(model::log_probability(logits, *next));
    if (w.job.top_logprobs > 0) event.top = model::top_log_probabilities(logits, w.job.top_logprobs);
  }
  w.handle->publish(std::move(event));
  w.history.push_back(*next);
  ++w.generated;
  if (w.generated >= w.job.max_new_tokens) {
    finish(w, absl::OkStatus(), FinishReason::kLength);
    return false;
  }
  w.decoding = true;
  return true;
}

int64_t Engine::Impl::generation_step(int64_t& sequences) {
  sequences = 0;
  if (generating_.empty()) return 0;
  struct Planned {
    GenerationWork* work;
    int64_t rows;
    bool samples;  // decode, or the prompt's last chunk
  };
  std::vector<Planned> plan;
  std::vector<model::DecodeChunk> chunks;
  int64_t tokens = 0;
  // Decode tokens first: every running sequence advances by one each step.
  for (auto& w : generating_) {
    if (!w->decoding) continue;
    plan.push_back({w.get(), 1, true});
    chunks.push_back({w->sequence.get(), std::span<const int32_t>(&w->history.back(), 1)});
    ++tokens;
  }
  // Then sources and prefill chunks, oldest first, in what the budget leaves (at least one piece of work
  // per step). A source's encoder blocks run here, before the batch; its prompt is prefilled in a later
  // step once the whole source is encoded.
  for (auto& w : generating_) {
    if (w->decoding) continue;
    int64_t budget = limits_.max_batch_tokens - tokens;
    if (budget <= 0) {
      if (tokens > 0) break;
      budget = 1;
    }
    if (w->sequence->source_pending() > 0) {
      absl::StatusOr<int64_t> encoded = model_.encode_source(context_, *w->sequence, budget);
      if (!encoded.ok()) {
        finish(*w, encoded.status(), FinishReason::kNone);
        w->handle.reset();  // removed below
        continue;
      }
      tokens += *encoded;
      continue;
    }
    const int64_t left = static_cast<int64_t>(w->job.prompt_ids.size()) - w->prefilled;
    const int64_t rows = std::min(left, budget);
    plan.push_back({w.get(), rows, rows == left});
    chunks.push_back(
        {w->sequence.get(), std::span<const int32_t>(w->job.prompt_ids)
                                .subspan(static_cast<size_t>(w->prefilled), static_cast<size_t>(rows))});
    tokens += rows;
  }
  // Sequences whose source failed to encode are finished: out before anything else looks at them.
  generating_.remove_if([](const std::unique_ptr<GenerationWork>& w) { return w->handle == nullptr; });
  if (chunks.empty()) return tokens;

  const int64_t vocab = model_.vocab_size();
  absl::StatusOr<model::Tensor> logits = model::scratch(context_, static_cast<int64_t>(chunks.size()), vocab);
  absl::Status st = logits.status();
  if (st.ok())
    st = model_.forward(context_, chunks, model::DecoderOutput::kLastLogits, logits->data<float>());
  if (!st.ok()) {
    // The caches of every sequence in the step are now undefined: they all end with the error.
    for (const Planned& p : plan)
      p.work->handle->cancel(st, FinishReason::kNone);
    reap();
    return tokens;
  }
  sequences = static_cast<int64_t>(plan.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    GenerationWork& w = *plan[i].work;
    if (!w.decoding) {
      w.prefilled += plan[i].rows;
      if (!plan[i].samples) continue;
      w.times.prefilled = since(w.accepted);
    }
    const std::span<const float> row(logits->data<float>() + static_cast<int64_t>(i) * vocab,
                                     static_cast<size_t>(vocab));
    if (!sample_next(w, row)) w.handle.reset();  // finished: marked for removal below
  }
  generating_.remove_if([](const std::unique_ptr<GenerationWork>& w) { return w->handle == nullptr; });
  return tokens;
}

}  // namespace longnet::server
