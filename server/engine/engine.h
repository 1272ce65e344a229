#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "engine_observer.h"
#include "handle.h"
#include "longnet/model/layers.h"
#include "longnet/model/model.h"
#include "request.h"

// The serving engine: one thread owns the model and runs steps. Each step
//   1. drops cancelled and expired requests (their KV caches go back to the pool at once),
//   2. admits queued requests in arrival order while the memory pool can hold their cache next to the
//      step's activations (measured by warm_up) and the batch has room,
//   3. runs one batched decoder forward: one decode token of every generating sequence plus prefill
//      chunks of admitted prompts, FIFO, under the per-step token budget (chunked prefill interleaved
//      with decode, so one long prompt does not stall the others), then samples,
//   4. runs one chunk of the oldest admitted encode request (round robin), sized by what the budget left
//      while anything generates, else by encode_chunk_tokens.
// Callers talk to it through submit() and the returned handle; nothing here knows gRPC.
namespace longnet::server {

struct EngineLimits {
  int64_t max_queue_requests = 256;     // waiting (not yet admitted) requests
  int64_t max_queue_tokens = 1 << 22;   // their prompt / document tokens
  int64_t max_batch_sequences = 64;     // admitted requests (generating + encoding)
  int64_t max_batch_tokens = 512;       // decoder tokens per step
  int64_t encode_chunk_tokens = 2048;   // encode chunk when nothing generates
  size_t max_pending_bytes = 64 << 20;  // an encode request pauses while its reader lags this far behind
};

struct EngineStats {
  int64_t queued_requests = 0;
  int64_t queued_tokens = 0;
  int64_t running_generations = 0;
  int64_t running_encodes = 0;
  size_t kv_cache_bytes = 0;            // caches of admitted requests
  size_t activation_reserve_bytes = 0;  // what warm_up measured for one full step
  model::PoolStats pool;
};

class Engine {
 public:
  // `model`, `tokenizer`-free: the engine works on ids. The context's pool and allocator, the model and
  // `metrics` (may be null; the server passes its Metrics) must outlive the engine. The engine thread starts
  // at once; warm_up() before serving.
  static absl::StatusOr<std::unique_ptr<Engine>> create(const model::LongNetModel& model,
                                                        model::ExecContext context, EngineLimits limits,
                                                        EngineObserver* metrics);
  ~Engine();  // stop()s

  // Runs the worst step the engine admits (a full prefill budget) on a scratch sequence and records the
  // activation memory it needed; admission keeps that much free from then on. Call once, before submit().
  absl::Status warm_up();

  // Queues a request. Errors, with nothing queued:
  //   InvalidArgument: it can never run (its cache and a step's activations exceed the memory budget, or
  //     it is larger than max_queue_tokens), naming the limit;
  //   ResourceExhausted: the queue is full now (requests or tokens), naming which;
  //   Unavailable: the engine is stopping;
  //   FailedPrecondition: the model has no decoder (generation) / nothing to encode with.
  absl::StatusOr<std::shared_ptr<GenerationHandle>> submit(GenerationJob job);
  absl::StatusOr<std::shared_ptr<EncodeHandle>> submit(EncodeJob job);

  // Ends every request and joins the thread: running generations finish with OK and FinishReason::
  // kCancelled (their tokens so far stand), the rest with Unavailable("server shutting down"). Idempotent.
  void stop();

  EngineStats stats() const;
  const EngineLimits& limits() const;
  const model::LongNetModel& model() const;

  class Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace longnet::server
