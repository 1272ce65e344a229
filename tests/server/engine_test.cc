#include "engine/engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <thread>

#include "longnet/kernels/thread_pool.h"
#include "support/random_model.h"

// The engine on small random models: its results against the model run by hand (no engine), and its
// scheduling: batching, chunked prefill interleaved with decode, queue limits, admission, cancellation
// and deadlines returning memory, shutdown.
namespace longnet::server {
namespace {

using kernels::DilatedBranch;
using namespace std::chrono_literals;

std::vector<int32_t> random_ids(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids)
    id = static_cast<int32_t>(rng() % 256);
  return ids;
}

struct Fixture {
  explicit Fixture(model::ModelType type = model::ModelType::kDecoder, size_t budget = 0,
                   std::vector<DilatedBranch> branches = {DilatedBranch{16, 1}, DilatedBranch{64, 4}})
      : pool(budget) {
    model = testing::random_model(testing::small_config(type, 32, 2, 2, std::move(branches)), pool);
  }
  std::unique_ptr<Engine> engine(EngineLimits limits = {}, EngineObserver* observer = nullptr) {
    auto e = Engine::create(*model, {&threads, &pool}, limits, observer);
    EXPECT_TRUE(e.ok()) << e.status();
    EXPECT_TRUE((*e)->warm_up().ok());
    return *std::move(e);
  }
  model::MemoryPool pool;
  kernels::ThreadPool threads{2};
  std::unique_ptr<model::LongNetModel> model;
};

// Drains a handle to its end (10 s at most).
template <typename H>
typename H::UpdateType drain(H& handle,
                             std::vector<decltype(typename H::UpdateType{}.events)>* all = nullptr) {
  typename H::UpdateType last;
  const auto give_up = Clock::now() + 10s;
  while (Clock::now() < give_up) {
    auto u = handle.take(Clock::now() + 100ms);
    if (all != nullptr && !u.events.empty()) all->push_back(u.events);
    if (u.done) return u;
  }
  ADD_FAILURE() << "request did not finish within 10 s";
  return last;
}

std::vector<int32_t> generated_ids(GenerationHandle& h, absl::Status* status = nullptr,
                                   FinishReason* reason = nullptr) {
  std::vector<int32_t> ids;
  const auto give_up = Clock::now() + 10s;
  while (Clock::now() < give_up) {
    auto u = h.take(Clock::now() + 100ms);
    for (const TokenEvent& e : u.events)
      ids.push_back(e.id);
    if (u.done) {
      if (status) *status = u.status;
      if (reason) *reason = u.reason;
      return ids;
    }
  }
  ADD_FAILURE() << "generation did not finish within 10 s";
  return ids;
}

// What the engine must produce: the model run by hand, prefill then one decode step per token.
std::vector<int32_t> offline_generate(Fixture& f, const std::vector<int32_t>& prompt, int64_t max_new,
                                      const model::SamplingParams& params,
                                      const std::vector<int32_t>& source = {}) {
  const model::ExecContext ctx{&f.threads, &f.pool};
  auto seq = f.model->start_sequence(ctx, source);
  EXPECT_TRUE(seq.ok());
  const int64_t vocab = f.model->vocab_size();
  std::vector<float> logits(static_cast<size_t>(vocab));
  const model::DecodeChunk c{seq->get(), prompt};
  EXPECT_TRUE(f.model->forward(ctx, {&c, 1}, model::DecoderOutput::kLastLogits, logits.data()).ok());
  auto sampler = model::Sampler::create(params);
  std::vector<int32_t> history = prompt;
  std::vector<int32_t> out;
  for (int64_t i = 0; i < max_new; ++i) {
    auto next = sampler->sample(logits, history);
    EXPECT_TRUE(next.ok());
    if (sampler->is_stop(*next)) break;
    history.push_back(*next);
    out.push_back(*next);
    const model::DecodeChunk d{seq->get(), std::span<const int32_t>(&history.back(), 1)};
    EXPECT_TRUE(f.model->forward(ctx, {&d, 1}, model::DecoderOutput::kLastLogits, logits.data()).ok());
  }
  return out;
}

GenerationJob job_for(std::vector<int32_t> prompt, int64_t max_new, uint64_t seed, float temperature) {
  GenerationJob job;
  job.prompt_ids = std::move(prompt);
  job.max_new_tokens = max_new;
  job.sampling.seed = seed;
  job.sampling.temperature = temperature;
  job.sampling.stop_ids = {257};
  job.eos_id = 257;
  return job;
}

// A generation that only ends when cancelled (no stop ids; the random model would otherwise hit eos).
GenerationJob endless(std::vector<int32_t> prompt) {
  GenerationJob job = job_for(std::move(prompt), 1000000, 1, 1.0f);
  job.sampling.stop_ids.clear();
  job.eos_id = -1;
  return job;
}

TEST(Engine, GenerationEqualsTheModelRunByHand) {
  Fixture f;
  auto engine = f.engine();
  const std::vector<int32_t> prompt = random_ids(40, 3);
  for (float temperature : {0.0f, 0.8f}) {
    GenerationJob job = job_for(prompt, 30, 11, temperature);
    const std::vector<int32_t> want = offline_generate(f, prompt, 30, job.sampling);
    auto h = engine->submit(job);
    ASSERT_TRUE(h.ok()) << h.status();
    absl::Status status;
    FinishReason reason;
    EXPECT_EQ(generated_ids(**h, &status, &reason), want) << "temperature " << temperature;
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_EQ(reason, want.size() == 30 ? FinishReason::kLength : FinishReason::kEos);
  }
}

TEST(Engine, ConcurrentGenerationsEachEqualTheirSoloRun) {
  Fixture f;
  auto engine = f.engine({.max_batch_tokens = 48});
  std::vector<std::vector<int32_t>> want;
  std::vector<std::shared_ptr<GenerationHandle>> handles;
  for (uint32_t i = 0; i < 6; ++i) {
    // Prompt lengths around the step budget: prefill chunks share steps with other sequences' decodes.
    GenerationJob job = job_for(random_ids(10 + 20 * i, 100 + i), 20, 7 + i, 0.9f);
    want.push_back(offline_generate(f, job.prompt_ids, 20, job.sampling));
    auto h = engine->submit(job);
    ASSERT_TRUE(h.ok()) << h.status();
    handles.push_back(*h);
  }
  for (size_t i = 0; i < handles.size(); ++i)
    EXPECT_EQ(generated_ids(*handles[i]), want[i]) << "request " << i;
}

TEST(Engine, LongPromptIsPrefilledInChunksBetweenOtherDecodeSteps) {
  Fixture f;
  auto engine = f.engine({.max_batch_tokens = 32});
  // A generation runs; a 4,000-token prompt arrives; the first keeps getting a token every step while the
  // long one is prefilled 32 - 1 tokens per step (about 130 steps; prefilled at once, it would get one).
  auto short_h = engine->submit(endless(random_ids(8, 1)));
  ASSERT_TRUE(short_h.ok());
  ASSERT_FALSE((*short_h)->take(Clock::now() + 5s).events.empty());
  auto long_h = engine->submit(job_for(random_ids(4000, 2), 2, 1, 0.0f));
  ASSERT_TRUE(long_h.ok());
  // Tokens of the first taken while the long request is still running (checked before each take).
  int during = 0;
  GenerationHandle::UpdateType long_end;
  const auto give_up = Clock::now() + 10s;
  while (Clock::now() < give_up) {
    long_end = (*long_h)->take(Clock::now());
    if (long_end.done) break;
    during += static_cast<int>((*short_h)->take(Clock::now() + 20ms).events.size());
  }
  ASSERT_TRUE(long_end.done) << "the long request did not finish within 10 s";
  ASSERT_TRUE(long_end.status.ok()) << long_end.status;
  (*short_h)->cancel(absl::CancelledError("test done"));
  drain(**short_h);
  EXPECT_GT(during, 10) << "the short generation stalled while the long prompt was prefilled";
}

// The steps the engine reports: how many, and the largest.
class StepRecorder : public EngineObserver {
 public:
  void observe_batch(int64_t, int64_t tokens, double) override {
    ++steps_;
    int64_t seen = largest_.load();
    while (tokens > seen && !largest_.compare_exchange_weak(seen, tokens)) {
    }
  }
  void set_queue_depth(int64_t, int64_t) override {}
  void set_running(int64_t, int64_t) override {}
  void set_memory(size_t, size_t, size_t, size_t, size_t, size_t) override {}
  int64_t largest_step_tokens() const { return largest_.load(); }
  int64_t steps() const { return steps_.load(); }

 private:
  std::atomic<int64_t> largest_{0};
  std::atomic<int64_t> steps_{0};
};

// An encoder-decoder's long source is encoded a block per step here (64 positions; the budget leaves less),
// as a long prompt is prefilled in chunks: no step runs more than a block and the decode tokens, a running
// generation keeps getting tokens meanwhile, and the long request's tokens equal the model run by hand.
TEST(Engine, LongSourceIsEncodedInBlocksBetweenOtherDecodeSteps) {
  Fixture f(model::ModelType::kEncoderDecoder);
  ASSERT_EQ(f.model->encoder_block_length(4000), 64);
  StepRecorder steps;
  auto engine = f.engine({.max_batch_tokens = 32}, &steps);
  GenerationJob running = endless(random_ids(4, 1));
  running.source_ids = random_ids(8, 2);
  auto short_h = engine->submit(std::move(running));
  ASSERT_TRUE(short_h.ok()) << short_h.status();
  ASSERT_FALSE((*short_h)->take(Clock::now() + 5s).events.empty());
  GenerationJob long_job = job_for(random_ids(3, 3), 4, 1, 0.0f);
  long_job.source_ids = random_ids(4000, 4);
  const std::vector<int32_t> want =
      offline_generate(f, long_job.prompt_ids, 4, long_job.sampling, long_job.source_ids);
  const int64_t steps_before = steps.steps();
  auto long_h = engine->submit(std::move(long_job));
  ASSERT_TRUE(long_h.ok()) << long_h.status();
  int during = 0;
  std::vector<int32_t> got;
  GenerationHandle::UpdateType long_update;
  const auto give_up = Clock::now() + 10s;
  while (Clock::now() < give_up) {
    long_update = (*long_h)->take(Clock::now());
    for (const TokenEvent& e : long_update.events)
      got.push_back(e.id);
    if (long_update.done) break;
    during += static_cast<int>((*short_h)->take(Clock::now() + 20ms).events.size());
  }
  ASSERT_TRUE(long_update.done) << "the long-source request did not finish within 10 s";
  ASSERT_TRUE(long_update.status.ok()) << long_update.status;
  EXPECT_EQ(got, want);
  // 4,000 positions are 63 blocks, one per step; encoded at admission, they would take none.
  EXPECT_GE(steps.steps() - steps_before, 63) << "the source was not spread over steps";
  (*short_h)->cancel(absl::CancelledError("test done"));
  drain(**short_h);
  EXPECT_GT(during, 10) << "the running generation stalled while the long source was encoded";
  EXPECT_LE(steps.largest_step_tokens(), 64 + 1) << "a step ran more than one encoder block";
}

TEST(Engine, FullQueueIsRefusedAtOnceAndOversizedRequestsNeverQueue) {
  Fixture f;
  auto engine = f.engine({.max_queue_requests = 1, .max_queue_tokens = 1000, .max_batch_sequences = 1});
  auto running = engine->submit(endless(random_ids(8, 1)));
  ASSERT_TRUE(running.ok());
  ASSERT_FALSE((*running)->take(Clock::now() + 5s).events.empty());  // admitted and generating
  auto queued = engine->submit(job_for(random_ids(8, 2), 5, 1, 1.0f));
  ASSERT_TRUE(queued.ok());
  auto refused = engine->submit(job_for(random_ids(8, 3), 5, 1, 1.0f));
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("max_queue_requests"), std::string::npos);
  auto too_big = engine->submit(job_for(random_ids(1001, 4), 5, 1, 1.0f));
  ASSERT_EQ(too_big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_big.status().message().find("max_queue_tokens"), std::string::npos);
  (*running)->cancel(absl::CancelledError("test"));
  EXPECT_EQ(drain(**running).status.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(drain(**queued).status.ok());  // admitted once the first left
}

TEST(Engine, QueuedTokensAreBounded) {
  Fixture f;
  auto engine = f.engine({.max_queue_tokens = 100, .max_batch_sequences = 1});
  auto running = engine->submit(endless(random_ids(8, 1)));
  ASSERT_TRUE(running.ok());
  ASSERT_FALSE((*running)->take(Clock::now() + 5s).events.empty());
  ASSERT_TRUE(engine->submit(job_for(random_ids(60, 2), 5, 1, 1.0f)).ok());
  auto refused = engine->submit(job_for(random_ids(60, 3), 5, 1, 1.0f));
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("max_queue_tokens"), std::string::npos);
  engine->stop();
}

// Polls the pool until its in-use bytes come back to `baseline` (the engine frees at its next step).
bool returns_to(const model::MemoryPool& pool, size_t baseline) {
  const auto give_up = Clock::now() + 5s;
  while (Clock::now() < give_up) {
    if (pool.stats().in_use_bytes == baseline) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

TEST(Engine, CancellingReturnsTheCacheToThePool) {
  Fixture f;
  auto engine = f.engine();
  const size_t baseline = f.pool.stats().in_use_bytes;
  auto h = engine->submit(endless(random_ids(300, 1)));
  ASSERT_TRUE(h.ok());
  ASSERT_FALSE((*h)->take(Clock::now() + 5s).events.empty());
  EXPECT_GT(f.pool.stats().in_use_bytes, baseline);
  EXPECT_GT(engine->stats().kv_cache_bytes, 0u);
  (*h)->cancel(absl::CancelledError("client cancelled"));
  auto end = drain(**h);
  EXPECT_EQ(end.status.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(returns_to(f.pool, baseline)) << f.pool.stats().in_use_bytes << " vs " << baseline;
  // The engine's figures follow at the end of its step.
  const auto give_up = Clock::now() + 5s;
  while (engine->stats().kv_cache_bytes != 0 && Clock::now() < give_up)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(engine->stats().kv_cache_bytes, 0u);
}

TEST(Engine, DeadlineEndsTheRequestAndFreesItsMemory) {
  Fixture f;
  auto engine = f.engine();
  const size_t baseline = f.pool.stats().in_use_bytes;
  GenerationJob job = endless(random_ids(20, 1));
  job.sampling.stop_ids.clear();
  job.deadline = Clock::now() + 200ms;
  auto h = engine->submit(job);
  ASSERT_TRUE(h.ok());
  auto end = drain(**h);
  EXPECT_EQ(end.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(returns_to(f.pool, baseline));
}

TEST(Engine, StopSequenceCancellationEndsNormally) {
  Fixture f;
  auto engine = f.engine();
  auto h = engine->submit(endless(random_ids(20, 1)));
  ASSERT_TRUE(h.ok());
  ASSERT_FALSE((*h)->take(Clock::now() + 5s).events.empty());
  (*h)->cancel(absl::OkStatus(), FinishReason::kStopSequence);
  auto end = drain(**h);
  EXPECT_TRUE(end.status.ok());
  EXPECT_EQ(end.reason, FinishReason::kStopSequence);
}

TEST(Engine, RequestThatCanNeverFitIsInvalidArgumentNamingTheBudget) {
  // A budget that holds the model and a step, but not the cache of a long sequence: a dense branch over
  // 65,536 tokens keeps every key of a sequence up to that length (2 layers x 2 x 32 floats per token).
  Fixture f(model::ModelType::kDecoder, 3 << 20, {DilatedBranch{16, 1}, DilatedBranch{65536, 1}});
  auto engine = f.engine({.max_batch_tokens = 16, .encode_chunk_tokens = 16});
  auto h = engine->submit(job_for(random_ids(100000, 1), 10, 1, 1.0f));
  ASSERT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument) << h.status();
  EXPECT_NE(h.status().message().find("memory_budget"), std::string::npos) << h.status();
  EXPECT_TRUE(engine->submit(job_for(random_ids(10, 1), 5, 1, 1.0f)).ok());
}

TEST(Engine, StopEndsRunningGenerationsAsCancelledAndTheRestWithUnavailable) {
  Fixture f;
  auto engine = f.engine({.max_batch_sequences = 1});
  auto a = engine->submit(endless(random_ids(8, 1)));
  auto b = engine->submit(endless(random_ids(8, 2)));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_FALSE((*a)->take(Clock::now() + 5s).events.empty());  // a runs, b waits (one sequence at a time)
  engine->stop();
  auto end_a = drain(**a);
  EXPECT_TRUE(end_a.status.ok()) << end_a.status;
  EXPECT_EQ(end_a.reason, FinishReason::kCancelled);
  EXPECT_EQ(drain(**b).status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(engine->submit(job_for(random_ids(8, 2), 1, 1, 1.0f)).status().code(),
            absl::StatusCode::kUnavailable);
}

// The document run by hand: hidden states and logits of every row in one call per 500 tokens.
struct Offline {
  std::vector<double> mean;
  double log_likelihood = 0;
  std::vector<float> logprobs;
};

Offline offline_encode(Fixture& f, const std::vector<int32_t>& ids) {
  const model::ExecContext ctx{&f.threads, &f.pool};
  auto seq = f.model->start_sequence(ctx);
  const int64_t e = f.model->output_dim(model::DecoderOutput::kHidden);
  const int64_t stride = f.model->output_dim(model::DecoderOutput::kHiddenAndLogits);
  Offline out;
  out.mean.assign(static_cast<size_t>(e), 0.0);
  out.logprobs.assign(ids.size(), 0.0f);
  std::vector<float> prev_row;
  EXPECT_TRUE(f.model
                  ->forward_chunked(ctx, **seq, ids, 500, model::DecoderOutput::kHiddenAndLogits,
                                    [&](int64_t first, int64_t rows, const float* o) {
                                      for (int64_t r = 0; r < rows; ++r) {
                                        for (int64_t d = 0; d < e; ++d)
                                          out.mean[static_cast<size_t>(d)] += o[r * stride + d];
                                        const size_t target = static_cast<size_t>(first + r + 1);
                                        if (target >= ids.size()) continue;
                                        const float* logits = o + r * stride + e;
                                        double max = logits[0];
                                        for (int64_t v = 1; v < stride - e; ++v)
                                          max = std::max(max, static_cast<double>(logits[v]));
                                        double sum = 0;
                                        for (int64_t v = 0; v < stride - e; ++v)
                                          sum += std::exp(logits[v] - max);
                                        const double lp = logits[ids[target]] - max - std::log(sum);
                                        out.log_likelihood += lp;
                                        out.logprobs[target] = static_cast<float>(lp);
                                      }
                                      return absl::OkStatus();
                                    })
                  .ok());
  for (double& v : out.mean)
    v /= static_cast<double>(ids.size());
  return out;
}

TEST(Engine, EncodePoolsScoresAndStreamsRowsLikeTheModelRunByHand) {
  Fixture f;
  auto engine = f.engine({.max_batch_tokens = 64, .encode_chunk_tokens = 300});
  const std::vector<int32_t> ids = random_ids(1234, 9);
  const Offline want = offline_encode(f, ids);
  EncodeJob job;
  job.ids = ids;
  job.score = true;
  job.return_token_states = true;
  job.return_token_logprobs = true;
  auto h = engine->submit(job);
  ASSERT_TRUE(h.ok()) << h.status();
  std::vector<std::vector<TokenRows>> chunks;
  auto end = drain(**h, &chunks);
  ASSERT_TRUE(end.status.ok()) << end.status;
  ASSERT_EQ(end.outcome.pooled.size(), want.mean.size());
  for (size_t d = 0; d < want.mean.size(); ++d)
    EXPECT_NEAR(end.outcome.pooled[d], want.mean[d], 1e-5) << d;
  EXPECT_NEAR(end.outcome.log_likelihood, want.log_likelihood, 1e-3 * std::abs(want.log_likelihood) + 1e-3);
  EXPECT_EQ(end.outcome.scored_tokens, 1233);
  int64_t next = 0;
  for (const auto& events : chunks) {
    for (const TokenRows& rows : events) {
      ASSERT_EQ(rows.first, next);
      ASSERT_EQ(rows.states.size(), static_cast<size_t>(rows.rows * 32));
      ASSERT_EQ(rows.logprobs.size(), static_cast<size_t>(rows.rows));
      for (int64_t r = 0; r < rows.rows; ++r)
        EXPECT_NEAR(rows.logprobs[static_cast<size_t>(r)], want.logprobs[static_cast<size_t>(rows.first + r)],
                    1e-4);
      next += rows.rows;
    }
  }
  EXPECT_EQ(next, 1234);
}

TEST(Engine, EncoderModelEncodesBlockByBlockLikeEncode) {
  Fixture f(model::ModelType::kEncoder);
  auto engine = f.engine({.encode_chunk_tokens = 128});
  const std::vector<int32_t> ids = random_ids(640, 5);  // 10 blocks of 64
  std::vector<double> want(32, 0.0);
  ASSERT_TRUE(f.model
                  ->encode({&f.threads, &f.pool}, ids,
                           [&](int64_t, int64_t rows, const float* h) {
                             for (int64_t r = 0; r < rows; ++r)
                               for (int64_t d = 0; d < 32; ++d)
                                 want[static_cast<size_t>(d)] += h[r * 32 + d];
                             return absl::OkStatus();
                           })
                  .ok());
  EncodeJob job;
  job.ids = ids;
  job.pooling = Pooling::kMean;
  auto h = engine->submit(job);
  ASSERT_TRUE(h.ok()) << h.status();
  auto end = drain(**h);
  ASSERT_TRUE(end.status.ok()) << end.status;
  for (size_t d = 0; d < 32; ++d)
    EXPECT_NEAR(end.outcome.pooled[d], want[d] / 640.0, 1e-5);
  EXPECT_EQ(engine->submit(job_for({1, 2}, 1, 1, 1.0f)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace longnet::server
