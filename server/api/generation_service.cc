#include "api/generation_service.h"

#include <optional>
#include <span>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "api/request_loop.h"
#include "api/status_map.h"
#include "api/stop_matcher.h"
#include "longnet/model/utf8.h"
#include "observability/metrics.h"

namespace longnet::server {
namespace {

// Where one generation's output goes: a unary response being filled, or a stream. Each call returns false
// when the client is gone (a failed stream write).
class GenerationSink {
 public:
  virtual ~GenerationSink() = default;
  // Echo only, before any token: the prompt's ids and text.
  virtual bool prompt(std::span<const int32_t> ids, std::string text) = 0;
  // One generated token and the text it released (possibly empty).
  virtual bool token(v1::GeneratedToken token, std::string text) = 0;
  // The tokens given since the last flush arrived together: send them (a stream writes one message for
  // them, so a client that lags behind gets tokens in small groups instead of a message per token).
  virtual bool flush() { return true; }
  virtual bool end(std::string text, v1::FinishReason reason, const v1::Usage& usage,
                   const v1::Timings& timings) = 0;
};

v1::FinishReason to_proto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case FinishReason::kEos:
      return v1::FINISH_REASON_EOS;
    case FinishReason::kStopToken:
      return v1::FINISH_REASON_STOP_TOKEN;
    case FinishReason::kStopSequence:
      return v1::FINISH_REASON_STOP_SEQUENCE;
    case FinishReason::kCancelled:
      return v1::FINISH_REASON_CANCELLED;
    case FinishReason::kNone:
      break;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

// A token's bytes as proto text: a piece of a character becomes U+FFFD (proto3 strings are UTF-8).
std::string token_text(const model::Tokenizer& tokenizer, int32_t id) {
  return model::sanitize_utf8(tokenizer.token_bytes(id));
}

// Runs one validated request through the engine into `sink`.
grpc::Status run_generation(ApiContext& api, CallGuard& guard, grpc::ServerContext& context,
                            const v1::GenerateRequest& request, uint64_t& seed_out, GenerationSink& sink) {
  const LoadedModel& loaded = api.loaded;
  if (absl::Status st = check_message_size(request.ByteSizeLong(), api.limits); !st.ok()) return to_grpc(st);
  if (absl::Status st = guard.adopt_request_id(request.request_id()); !st.ok()) return to_grpc(st);
  absl::StatusOr<GenerationPlan> plan =
      validate_generate(request, loaded.traits, api.limits, api.tokenize_fn());
  if (!plan.ok()) return to_grpc(plan.status());

  const uint64_t seed = plan->seed.value_or(random_u64());
  seed_out = seed;
  GenerationJob job = std::move(plan->job);
  job.sampling.seed = seed;
  job.request_id = guard.request_id();
  job.deadline = call_deadline(context);
  const Clock::time_point deadline = job.deadline;
  absl::StatusOr<std::shared_ptr<GenerationHandle>> submitted = loaded.engine->submit(std::move(job));
  if (!submitted.ok()) return to_grpc(submitted.status());
  GenerationHandle& handle = **submitted;
  const Clock::time_point accepted = Clock::now();
  Metrics* metrics = api.metrics;
  if (metrics != nullptr) metrics->add_prompt_tokens(plan->prompt_tokens);

  const model::Tokenizer& tokenizer = *loaded.tokenizer;
  RequestLoop<GenerationHandle> loop(handle, context, deadline);
  if (plan->echo) {
    std::string text = request.has_text() ? request.text() : tokenizer.decode(plan->prompt_ids);
    if (!sink.prompt(plan->prompt_ids, std::move(text))) loop.client_gone();
  }

  model::IncrementalDecoder decoder = tokenizer.incremental_decoder();
  StopMatcher matcher(plan->stop);
  int64_t generated = 0;
  std::optional<Clock::time_point> last_token;
  auto on_events = [&](std::vector<TokenEvent>& events) {
    const Clock::time_point now = Clock::now();
    if (!events.empty() && metrics != nullptr && !matcher.matched()) {
      if (!last_token) {
        metrics->observe_time_to_first_token(std::chrono::duration<double>(now - accepted).count());
      } else {
        // Tokens taken together arrived together: their gap is shared.
        const double gap =
            std::chrono::duration<double>(now - *last_token).count() / static_cast<double>(events.size());
        for (size_t i = 0; i < events.size(); ++i)
          metrics->observe_inter_token_latency(gap);
      }
    }
    if (!events.empty()) last_token = now;
    for (TokenEvent& event : events) {
      if (matcher.matched()) break;  // tokens the engine made before it saw the stop
      ++generated;
      v1::GeneratedToken token;
      token.set_id(event.id);
      token.set_text(token_text(tokenizer, event.id));
      if (plan->logprobs) token.set_logprob(event.logprob);
      for (const auto& [id, logprob] : event.top) {
        v1::TokenLogprob* alt = token.add_top_logprobs();
        alt->set_id(id);
        alt->set_text(token_text(tokenizer, id));
        alt->set_logprob(logprob);
      }
      StopMatcher::Result released = matcher.feed(decoder.feed(event.id));
      if (released.matched) handle.cancel(absl::OkStatus(), FinishReason::kStopSequence);
      if (!sink.token(std::move(token), std::move(released.text))) {
        loop.client_gone();
        return;
      }
    }
    if (!sink.flush()) loop.client_gone();
  };
  GenerationHandle::UpdateType last = loop.run(on_events);
  if (metrics != nullptr) {
    metrics->add_generated_tokens(generated);
    if (last.times.admitted >= 0) metrics->observe_queue_time(last.times.admitted);
  }
  guard.note(absl::StrCat("prompt_tokens=", plan->prompt_tokens, " generated_tokens=", generated));
  if (grpc::Status ended = loop.ending_status(last.status); !ended.ok()) return ended;

  FinishReason reason = last.reason;
  std::string tail;
  if (matcher.matched()) {
    reason = FinishReason::kStopSequence;
  } else {
    StopMatcher::Result released = matcher.feed(decoder.finish());
    tail = std::move(released.text);
    if (released.matched) {
      reason = FinishReason::kStopSequence;
    } else {
      tail += matcher.finish();
    }
  }
  v1::Usage usage;
  usage.set_prompt_tokens(static_cast<uint32_t>(plan->prompt_tokens));
  usage.set_generated_tokens(static_cast<uint32_t>(generated));
  const v1::Timings timings = timings_from(last.times, accepted);
  if (!sink.end(std::move(tail), to_proto(reason), usage, timings)) {
    return {grpc::StatusCode::CANCELLED, "client went away"};
  }
  return grpc::Status::OK;
}

class UnarySink final : public GenerationSink {
 public:
  explicit UnarySink(v1::GenerateResponse& response) : response_(response) {}
  bool prompt(std::span<const int32_t> ids, std::string text) override {
    response_.mutable_prompt_token_ids()->Add(ids.begin(), ids.end());
    response_.mutable_text()->append(text);
    return true;
  }
  bool token(v1::GeneratedToken token, std::string text) override {
    *response_.add_tokens() = std::move(token);
    response_.mutable_text()->append(text);
    return true;
  }
  bool end(std::string text, v1::FinishReason reason, const v1::Usage& usage,
           const v1::Timings& timings) override {
    response_.mutable_text()->append(text);
    response_.set_finish_reason(reason);
    *response_.mutable_usage() = usage;
    *response_.mutable_timings() = timings;
    return true;
  }

 private:
  v1::GenerateResponse& response_;
};

class StreamSink final : public GenerationSink {
 public:
  StreamSink(grpc::ServerWriter<v1::GenerateStreamResponse>& writer, const CallGuard& guard,
             const uint64_t& seed)
      : writer_(writer), guard_(guard), seed_(seed) {}
  bool prompt(std::span<const int32_t> ids, std::string text) override {
    v1::GenerateStreamResponse message = start();
    message.mutable_prompt_token_ids()->Add(ids.begin(), ids.end());
    message.set_text(std::move(text));
    return writer_.Write(message);
  }
  bool token(v1::GeneratedToken token, std::string text) override {
    if (!pending_) pending_ = start();
    *pending_->add_tokens() = std::move(token);
    pending_->mutable_text()->append(text);
    return true;
  }
  bool flush() override {
    if (!pending_) return true;
    const bool ok = writer_.Write(*pending_);
    pending_.reset();
    return ok;
  }
  bool end(std::string text, v1::FinishReason reason, const v1::Usage& usage,
           const v1::Timings& timings) override {
    if (!flush()) return false;
    v1::GenerateStreamResponse message = start();
    message.set_text(std::move(text));
    message.set_finish_reason(reason);
    *message.mutable_usage() = usage;
    *message.mutable_timings() = timings;
    return writer_.Write(message);
  }

 private:
  v1::GenerateStreamResponse start() const {
    v1::GenerateStreamResponse message;
    message.set_request_id(guard_.request_id());
    message.set_seed(seed_);
    return message;
  }

  grpc::ServerWriter<v1::GenerateStreamResponse>& writer_;
  const CallGuard& guard_;
  const uint64_t& seed_;
  std::optional<v1::GenerateStreamResponse> pending_;
};

}  // namespace

grpc::Status GenerationService::Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                                         v1::GenerateResponse* response) {
  CallGuard guard(api_.state, *context, "Generate");
  if (!guard.admitted()) return guard.finish(guard.admission());
  UnarySink sink(*response);
  uint64_t seed = 0;
  grpc::Status status = run_generation(api_, guard, *context, *request, seed, sink);
  response->set_request_id(guard.request_id());
  response->set_seed(seed);
  return guard.finish(status);
}

grpc::Status GenerationService::GenerateStream(grpc::ServerContext* context,
                                               const v1::GenerateRequest* request,
                                               grpc::ServerWriter<v1::GenerateStreamResponse>* writer) {
  CallGuard guard(api_.state, *context, "GenerateStream");
  if (!guard.admitted()) return guard.finish(guard.admission());
  uint64_t seed = 0;
  StreamSink sink(*writer, guard, seed);
  return guard.finish(run_generation(api_, guard, *context, *request, seed, sink));
}

}  // namespace longnet::server
