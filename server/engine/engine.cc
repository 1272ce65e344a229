#include "engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine_impl.h"
#include "peak_allocator.h"

namespace longnet::server {
namespace {

absl::Status shutting_down() {
  return absl::UnavailableError("server shutting down");
}

std::string mib(size_t bytes) {
  return absl::StrCat(bytes / (1024 * 1024), ".", (bytes % (1024 * 1024)) * 10 / (1024 * 1024), " MiB");
}

template <typename Work>
void finish_refused(Work& w, const absl::Status& status) {
  w.handle->finish(status, FinishReason::kNone, {}, w.times);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Engine: the facade.

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() {
  stop();
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::create(const model::LongNetModel& model,
                                                       model::ExecContext context, EngineLimits limits,
                                                       EngineObserver* metrics) {
  if (context.pool == nullptr || context.allocator == nullptr)
    return absl::InvalidArgumentError("engine: the execution context needs a thread pool and an allocator");
  if (limits.max_queue_requests < 1 || limits.max_queue_tokens < 1 || limits.max_batch_sequences < 1 ||
      limits.max_batch_tokens < 1 || limits.encode_chunk_tokens < 1) {
    return absl::InvalidArgumentError("engine: every queue and batch limit must be >= 1");
  }
  return std::unique_ptr<Engine>(new Engine(std::make_unique<Impl>(model, context, limits, metrics)));
}

absl::Status Engine::warm_up() {
  return impl_->warm_up();
}
absl::StatusOr<std::shared_ptr<GenerationHandle>> Engine::submit(GenerationJob job) {
  return impl_->submit(std::move(job));
}
absl::StatusOr<std::shared_ptr<EncodeHandle>> Engine::submit(EncodeJob job) {
  return impl_->submit(std::move(job));
}
void Engine::stop() {
  impl_->stop();
}
EngineStats Engine::stats() const {
  return impl_->stats();
}
const EngineLimits& Engine::limits() const {
  return impl_->limits();
}
const model::LongNetModel& Engine::model() const {
  return impl_->model();
}

// ---------------------------------------------------------------------------------------------------------
// The queue, admission and the thread.

Engine::Impl::Impl(const model::LongNetModel& model, model::ExecContext context, EngineLimits limits,
                   EngineObserver* metrics)
    : model_(model), context_(context), limits_(limits), metrics_(metrics) {
  weights_bytes_ = memory().stats().in_use_bytes;
  publish_stats();
  thread_ = std::thread([this] { run(); });
}

Engine::Impl::~Impl() {
  stop();
}

model::ExecContext Engine::Impl::tracking(model::Allocator& tracker) const {
  if (model_.device().is_cuda()) return {context_.pool, context_.allocator, &tracker};
  return {context_.pool, &tracker};
}

absl::Status Engine::Impl::warm_up() {
  // The worst step the engine runs: a full token budget of decoder rows (plus, separately, a full encode
  // chunk), through an allocator that records the peak of what the step holds at once.
  PeakTrackingAllocator tracker(memory());
  const model::ExecContext tracked = tracking(tracker);
  size_t peak = 0;
  if (model_.has_decoder()) {
    const int64_t rows = limits_.max_batch_tokens;
    std::vector<int32_t> source;
    if (model_.has_encoder()) source.assign(static_cast<size_t>(std::min<int64_t>(rows, 64)), 0);
    absl::StatusOr<std::unique_ptr<model::Sequence>> seq = model_.start_sequence(context_, source, rows);
    if (!seq.ok())
      return absl::Status(seq.status().code(), absl::StrCat("warm-up: ", seq.status().message()));
    const std::vector<int32_t> ids(static_cast<size_t>(rows), 0);
    const model::DecodeChunk chunk{seq->get(), ids};
    absl::StatusOr<model::Tensor> logits = model::scratch(tracked, 1, model_.vocab_size());
    if (!logits.ok()) return logits.status();
    absl::Status st =
        model_.forward(tracked, {&chunk, 1}, model::DecoderOutput::kLastLogits, logits->data<float>());
    if (!st.ok()) return absl::Status(st.code(), absl::StrCat("warm-up: ", st.message()));
    peak = std::max(peak, tracker.peak_bytes());
  }
  {
    // An encode chunk (decoder models: hidden states and logits of every row).
    EncodeJob job;
    job.ids.assign(static_cast<size_t>(limits_.encode_chunk_tokens), 0);
    job.score = model_.has_decoder() && !model_.has_encoder();
    job.pooling = Pooling::kMean;
    EncodeWork w;
    w.cache_bytes = encode_cache_bytes(static_cast<int64_t>(job.ids.size()));
    w.job = std::move(job);
    w.handle = std::make_shared<EncodeHandle>();
    PeakTrackingAllocator encode_tracker(memory());
    const model::ExecContext encode_tracked = tracking(encode_tracker);
    absl::Status st = start_encode(encode_tracked, w);
    if (st.ok()) st = encode_chunk(encode_tracked, w, limits_.encode_chunk_tokens);
    w.sequence.reset();
    if (!st.ok()) return absl::Status(st.code(), absl::StrCat("warm-up (encode): ", st.message()));
    peak = std::max(peak, encode_tracker.peak_bytes() - std::min(encode_tracker.peak_bytes(), w.cache_bytes));
  }
  {
    std::lock_guard lock(mutex_);
    // A quarter on top: steps of many short chunks allocate a little per chunk beyond one long chunk.
    activation_reserve_ = peak + peak / 4;
  }
  const model::PoolStats pool = memory().stats();
  if (pool.budget_bytes > 0 && weights_bytes_ + activation_reserve_ > pool.budget_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("memory budget ", mib(pool.budget_bytes), " cannot hold the model (",
                     mib(weights_bytes_), ") and one step's activations (", mib(activation_reserve_),
                     "): raise the budget or lower the ", "per-step token budget"));
  }
  publish_stats();
  return absl::OkStatus();
}

size_t Engine::Impl::free_bytes_for_admission() const {
  const model::PoolStats pool = memory().stats();
  if (pool.budget_bytes == 0) return SIZE_MAX;
  const size_t used = pool.in_use_bytes + activation_reserve_;
  return used >= pool.budget_bytes ? 0 : pool.budget_bytes - used;
}

absl::Status Engine::Impl::accept(Queued& q, Clock::time_point deadline) {
  if (q.tokens > limits_.max_queue_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request has ", q.tokens, " tokens; max_queue_tokens is ", limits_.max_queue_tokens));
  }
  const size_t budget = memory().stats().budget_bytes;
  size_t reserve;
  {
    std::lock_guard lock(mutex_);
    reserve = activation_reserve_;
  }
  const size_t needed = memory().block_size(q.cache_bytes);
  if (budget > 0 && weights_bytes_ + reserve + needed > budget) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request needs ", mib(needed), " of KV cache; the memory budget (", mib(budget), ") leaves ",
        mib(budget > weights_bytes_ + reserve ? budget - weights_bytes_ - reserve : 0),
        " beside the model and one step's activations (memory_budget_bytes)"));
  }
  if (deadline <= Clock::now()) return absl::DeadlineExceededError("deadline passed before queueing");
  return absl::OkStatus();
}

absl::Status Engine::Impl::enqueue(Queued q) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return shutting_down();
    if (static_cast<int64_t>(queue_.size()) >= limits_.max_queue_requests) {
      return absl::ResourceExhaustedError(absl::StrCat("queue full: ", queue_.size(),
                                                       " requests waiting (max_queue_requests is ",
                                                       limits_.max_queue_requests, "); retry later"));
    }
    if (queued_tokens_ + q.tokens > limits_.max_queue_tokens) {
      return absl::ResourceExhaustedError(
          absl::StrCat("queue full: ", queued_tokens_, " tokens waiting and the request has ", q.tokens,
                       " (max_queue_tokens is ", limits_.max_queue_tokens, "); retry later"));
    }
    queued_tokens_ += q.tokens;
    queue_.push_back(std::move(q));
    stats_.queued_requests = static_cast<int64_t>(queue_.size());
    stats_.queued_tokens = queued_tokens_;
  }
  wake_.notify_all();
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<GenerationHandle>> Engine::Impl::submit(GenerationJob job) {
  if (!model_.has_decoder())
    return absl::FailedPreconditionError("generation needs a model with a decoder; this one is an encoder");
  if (job.prompt_ids.empty()) return absl::InvalidArgumentError("prompt: no tokens");
  if (model_.has_encoder() && job.source_ids.empty())
    return absl::InvalidArgumentError("source: an encoder-decoder model needs a non-empty source");
  if (job.max_new_tokens < 1)
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens: must be >= 1, got ", job.max_new_tokens));
  if (absl::Status st = job.sampling.validate(model_.vocab_size()); !st.ok()) return st;

  auto w = std::make_unique<GenerationWork>();
  w->accepted = Clock::now();
  w->handle = std::make_shared<GenerationHandle>();
  const int64_t positions = static_cast<int64_t>(job.prompt_ids.size()) + job.max_new_tokens;
  w->cache_bytes = model_.sequence_cache_bytes(positions);
  Queued q;
  q.tokens = static_cast<int64_t>(job.prompt_ids.size() + job.source_ids.size());
  q.cache_bytes = w->cache_bytes;
  const Clock::time_point deadline = job.deadline;
  w->job = std::move(job);
  std::shared_ptr<GenerationHandle> handle = w->handle;
  q.work = std::move(w);
  if (absl::Status st = accept(q, deadline); !st.ok()) return st;
  if (absl::Status st = enqueue(std::move(q)); !st.ok()) return st;
  return handle;
}

absl::StatusOr<std::shared_ptr<EncodeHandle>> Engine::Impl::submit(EncodeJob job) {
  if (job.ids.empty()) return absl::InvalidArgumentError("document: no tokens");
  const bool decoder_only = model_.has_decoder() && !model_.has_encoder();
  if (job.score && !decoder_only)
    return absl::InvalidArgumentError("options.score: scoring needs a decoder-only model");
  if (job.return_token_logprobs && !job.score)
    return absl::InvalidArgumentError("options.return_token_logprobs: needs options.score");
  if (job.score && job.ids.size() < 2)
    return absl::InvalidArgumentError("document: scoring needs at least 2 tokens");
  auto w = std::make_unique<EncodeWork>();
  w->accepted = Clock::now();
  w->handle = std::make_shared<EncodeHandle>();
  w->cache_bytes = encode_cache_bytes(static_cast<int64_t>(job.ids.size()));
  Queued q;
  q.tokens = static_cast<int64_t>(job.ids.size());
  q.cache_bytes = w->cache_bytes;
  const Clock::time_point deadline = job.deadline;
  w->job = std::move(job);
  std::shared_ptr<EncodeHandle> handle = w->handle;
  q.work = std::move(w);
  if (absl::Status st = accept(q, deadline); !st.ok()) return st;
  if (absl::Status st = enqueue(std::move(q)); !st.ok()) return st;
  return handle;
}

void Engine::Impl::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  // The thread is gone: end whatever is left.
  std::deque<Queued> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(queue_);
    queued_tokens_ = 0;
  }
  for (Queued& q : left) {
    std::visit([](auto& w) { finish_refused(*w, shutting_down()); }, q.work);
  }
  // Running generations end normally with what they have (finish reason "cancelled"); queued requests
  // and encodes, which have no partial result, end with Unavailable.
  for (auto& w : generating_)
    finish(*w, absl::OkStatus(), FinishReason::kCancelled);
  generating_.clear();
  for (auto& w : encoding_)
    finish(*w, shutting_down());
  encoding_.clear();
  publish_stats();
}

double Engine::Impl::since(Clock::time_point accepted) const {
  return std::chrono::duration<double>(Clock::now() - accepted).count();
}

bool Engine::Impl::has_work() const {
  return !generating_.empty() || !encoding_.empty();
}

void Engine::Impl::reap() {
  const Clock::time_point now = Clock::now();
  auto ended = [&](auto& handle, Clock::time_point deadline, absl::Status& why, FinishReason& reason) {
    if (handle.cancel_requested()) {
      std::tie(why, reason) = handle.cancellation();
      return true;
    }
    if (deadline <= now) {
      why = absl::DeadlineExceededError("deadline exceeded");
      reason = FinishReason::kCancelled;
      return true;
    }
    return false;
  };
  {
    std::lock_guard lock(mutex_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      absl::Status why;
      FinishReason reason = FinishReason::kNone;
      const bool gone = std::visit(
          [&](auto& w) {
            if (!ended(*w->handle, w->job.deadline, why, reason)) return false;
            w->handle->finish(why, reason, {}, w->times);
            return true;
          },
          it->work);
      if (gone) {
        queued_tokens_ -= it->tokens;
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto it = generating_.begin(); it != generating_.end();) {
    absl::Status why;
    FinishReason reason = FinishReason::kNone;
    if (ended(*(*it)->handle, (*it)->job.deadline, why, reason)) {
      finish(**it, why, reason);
      it = generating_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = encoding_.begin(); it != encoding_.end();) {
    absl::Status why;
    FinishReason reason = FinishReason::kNone;
    if (ended(*(*it)->handle, (*it)->job.deadline, why, reason)) {
      finish(**it, why.ok() ? absl::CancelledError("cancelled") : why);
      it = encoding_.erase(it);
    } else {
      ++it;
    }
  }
}

bool Engine::Impl::admit_one(Queued& q) {
  if (static_cast<int64_t>(generating_.size() + encoding_.size()) >= limits_.max_batch_sequences)
    return false;
  if (memory().block_size(q.cache_bytes) > free_bytes_for_admission()) return false;
  return true;
}

void Engine::Impl::admit() {
  while (true) {
    Queued q;
    {
      std::lock_guard lock(mutex_);
      if (queue_.empty() || !admit_one(queue_.front())) return;
      q = std::move(queue_.front());
      queue_.pop_front();
      queued_tokens_ -= q.tokens;
    }
    if (auto* g = std::get_if<std::unique_ptr<GenerationWork>>(&q.work)) {
      GenerationWork& w = **g;
      w.times.admitted = since(w.accepted);
      if (absl::Status st = start_generation(w); !st.ok()) {
        finish(w, st, FinishReason::kNone);
        continue;
      }
      generating_.push_back(std::move(*g));
    } else {
      auto& e = std::get<std::unique_ptr<EncodeWork>>(q.work);
      e->times.admitted = since(e->accepted);
      if (absl::Status st = start_encode(context_, *e); !st.ok()) {
        finish(*e, st);
        continue;
      }
      kv_cache_bytes_ += e->cache_bytes;
      encoding_.push_back(std::move(e));
    }
  }
}

void Engine::Impl::run() {
  while (true) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || has_work(); });
      if (stopping_) return;
    }
    reap();
    admit();
    publish_stats();  // the queue and the caches as they are for this step
    const Clock::time_point step_start = Clock::now();
    int64_t sequences = 0;
    const int64_t generated_tokens = generation_step(sequences);
    // Encoding gets what the step budget left while anything generates, else a whole encode chunk.
    const int64_t budget = generating_.empty()
                               ? limits_.encode_chunk_tokens
                               : std::max<int64_t>(limits_.max_batch_tokens - generated_tokens, 64);
    const int64_t encoded_tokens = encode_step(budget);
    if (metrics_ != nullptr && (generated_tokens > 0 || encoded_tokens > 0)) {
      metrics_->observe_batch(sequences + (encoded_tokens > 0 ? 1 : 0), generated_tokens + encoded_tokens,
                              std::chrono::duration<double>(Clock::now() - step_start).count());
    }
    publish_stats();
    if (generated_tokens == 0 && encoded_tokens == 0) {
      // Nothing could run (encodes paused on slow readers, or the queue head waits for memory that
      // nothing running will free): refuse a head that can never be admitted now, else wait a little.
      std::unique_lock lock(mutex_);
      if (!has_work() && !queue_.empty() && !admit_one(queue_.front())) {
        Queued q = std::move(queue_.front());
        queue_.pop_front();
        queued_tokens_ -= q.tokens;
        lock.unlock();
        const absl::Status full = absl::ResourceExhaustedError(
            "the memory pool cannot hold this request's KV cache now (memory_budget_bytes); retry later");
        std::visit([&](auto& w) { finish_refused(*w, full); }, q.work);
        continue;
      }
      wake_.wait_for(lock, std::chrono::milliseconds(2));
    }
  }
}

void Engine::Impl::publish_stats() {
  EngineStats s;
  {
    std::lock_guard lock(mutex_);
    s.queued_requests = static_cast<int64_t>(queue_.size());
    s.queued_tokens = queued_tokens_;
    s.activation_reserve_bytes = activation_reserve_;
  }
  s.running_generations = static_cast<int64_t>(generating_.size());
  s.running_encodes = static_cast<int64_t>(encoding_.size());
  s.kv_cache_bytes = kv_cache_bytes_;
  s.pool = memory().stats();
  if (metrics_ != nullptr) {
    metrics_->set_queue_depth(s.queued_requests, s.queued_tokens);
    metrics_->set_running(s.running_generations, s.running_encodes);
    metrics_->set_memory(s.pool.in_use_bytes, s.pool.cached_bytes, s.pool.budget_bytes,
                         s.pool.high_water_bytes, s.kv_cache_bytes, s.activation_reserve_bytes);
  }
  std::lock_guard lock(mutex_);
  stats_ = s;
}

EngineStats Engine::Impl::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace longnet::server
