#pragma once

#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <variant>
#include <vector>

#include "engine.h"
#include "longnet/model/pooling.h"
#include "longnet/model/sampling.h"

// The engine's inside: the queue shared with callers, and the admitted work that only the engine thread
// touches. engine.cc holds the thread, the queue and admission; generation.cc and encoding.cc one step
// of each kind of work.
namespace longnet::server {

// One admitted generation.
struct GenerationWork {
  GenerationJob job;
  std::shared_ptr<GenerationHandle> handle;
  Clock::time_point accepted;
  StageTimes times;
  std::unique_ptr<model::Sequence> sequence;
  std::optional<model::Sampler> sampler;
  std::vector<int32_t> history;  // prompt, then every generated token
  int64_t prefilled = 0;         // prompt tokens already run through the model
  int64_t generated = 0;
  bool decoding = false;  // the last history token is sampled and waits to be fed back
  size_t cache_bytes = 0;
};

// One admitted encode.
struct EncodeWork {
  EncodeJob job;
  std::shared_ptr<EncodeHandle> handle;
  Clock::time_point accepted;
  StageTimes times;
  std::unique_ptr<model::Sequence> sequence;  // decoder models: the document runs as one sequence
  std::optional<model::Pooler> pooler;
  int64_t done = 0;  // tokens encoded
  double log_likelihood = 0.0;
  float next_logprob = 0.0f;  // ln p of token `done`, predicted by the previous chunk's last row
  size_t cache_bytes = 0;
};

// A request waiting for admission.
struct Queued {
  std::variant<std::unique_ptr<GenerationWork>, std::unique_ptr<EncodeWork>> work;
  int64_t tokens = 0;
  size_t cache_bytes = 0;
};

class Engine::Impl {
 public:
  Impl(const model::LongNetModel& model, model::ExecContext context, EngineLimits limits,
       EngineObserver* metrics);
  ~Impl();

  absl::Status warm_up();
  absl::StatusOr<std::shared_ptr<GenerationHandle>> submit(GenerationJob job);
  absl::StatusOr<std::shared_ptr<EncodeHandle>> submit(EncodeJob job);
  void stop();
  EngineStats stats() const;

  const model::LongNetModel& model() const { return model_; }
  const EngineLimits& limits() const { return limits_; }

 private:
  // --- engine.cc ---
  void run();
  // Checks a request against the limits before queueing; fills its cache size.
  absl::Status accept(Queued& q, Clock::time_point deadline);
  absl::Status enqueue(Queued q);
  // Moves cancelled / expired requests out (queued and admitted), finishing them.
  void reap();
  // Admits queued requests in order while memory and the batch allow.
  void admit();
  bool admit_one(Queued& q);
  bool has_work() const;
  void publish_stats();
  double since(Clock::time_point accepted) const;
  size_t free_bytes_for_admission() const;
  // The pool the model's memory comes from -- weights, caches, a step's activations -- which the budget,
  // admission and the pool metrics are about: the device's pool once the model is on CUDA.
  model::Allocator& memory() const { return model_.cache_allocator(context_); }
  // The engine's context with the model's activations going through `tracker` (which wraps memory()).
  model::ExecContext tracking(model::Allocator& tracker) const;

  // --- generation.cc ---
  // One batched decoder forward (decode tokens + prefill chunks), then sampling. Returns tokens run.
  int64_t generation_step(int64_t& sequences);
  absl::Status start_generation(GenerationWork& w);
  // Samples the next token of `w` from `logits`; finishes it when it ends. False when it ended.
  bool sample_next(GenerationWork& w, std::span<const float> logits);
  void finish(GenerationWork& w, absl::Status status, FinishReason reason);

  // --- encoding.cc ---
  // One chunk of the oldest runnable encode (round robin); `budget` tokens at most. Returns tokens run.
  int64_t encode_step(int64_t budget);
  absl::Status start_encode(const model::ExecContext& ctx, EncodeWork& w);
  absl::Status encode_chunk(const model::ExecContext& ctx, EncodeWork& w, int64_t budget);
  void finish(EncodeWork& w, absl::Status status);
  size_t encode_cache_bytes(int64_t tokens) const;
  int64_t encode_rows_cap() const;  // rows per chunk such that the step's output stays within 64 MiB

  const model::LongNetModel& model_;
  model::ExecContext context_;
  EngineLimits limits_;
  EngineObserver* metrics_;
  size_t weights_bytes_ = 0;       // pool bytes in use when the engine started (the model)
  size_t activation_reserve_ = 0;  // measured by warm_up()

  // Shared with callers.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Queued> queue_;
  int64_t queued_tokens_ = 0;
  bool stopping_ = false;
  EngineStats stats_;

  // Engine thread only.
  std::list<std::unique_ptr<GenerationWork>> generating_;
  std::list<std::unique_ptr<EncodeWork>> encoding_;
  size_t kv_cache_bytes_ = 0;

  std::thread thread_;
};

}  // namespace longnet::server
