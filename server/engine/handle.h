#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "request.h"

// The two ends of one request: the engine thread publishes events, the caller's thread (a gRPC handler)
// waits for them. The engine never blocks on a caller; a caller that wants the request gone calls
// cancel() and the engine drops it (and frees its memory) at its next step.
namespace longnet::server {

// Everything published since the last take(), plus the end when it came.
template <typename Event, typename Outcome>
struct Update {
  std::vector<Event> events;
  bool done = false;
  absl::Status status;  // when done: OK, or why the request failed
  FinishReason reason = FinishReason::kNone;
  Outcome outcome{};  // when done and OK
  StageTimes times;   // when done
};

template <typename Event, typename Outcome>
class Handle {
 public:
  using UpdateType = Update<Event, Outcome>;

  // --- caller side ---
  // Waits until something is published or `until` passes; returns what was published (possibly nothing).
  UpdateType take(Clock::time_point until) {
    std::unique_lock lock(mutex_);
    cv_.wait_until(lock, until, [&] { return !pending_.events.empty() || pending_.done; });
    UpdateType out = std::move(pending_);
    pending_ = UpdateType{};
    pending_bytes_ = 0;
    return out;
  }
  // Ends the request: `why` is the status it finishes with (CANCELLED, DEADLINE_EXCEEDED, ...), or OK with
  // `reason` to end a generation normally (a stop sequence matched). Idempotent; the first call wins.
  void cancel(absl::Status why, FinishReason reason = FinishReason::kCancelled) {
    std::lock_guard lock(mutex_);
    if (cancel_requested_.load()) return;
    cancel_status_ = std::move(why);
    cancel_reason_ = reason;
    cancel_requested_.store(true);
  }

  // --- engine side ---
  bool cancel_requested() const { return cancel_requested_.load(std::memory_order_relaxed); }
  std::pair<absl::Status, FinishReason> cancellation() const {
    std::lock_guard lock(mutex_);
    return {cancel_status_, cancel_reason_};
  }
  void publish(Event event, size_t bytes = 0) {
    {
      std::lock_guard lock(mutex_);
      pending_.events.push_back(std::move(event));
      pending_bytes_ += bytes;
    }
    cv_.notify_all();
  }
  // Bytes published and not yet taken: the engine pauses a request whose reader lags too far behind.
  size_t pending_bytes() const {
    std::lock_guard lock(mutex_);
    return pending_bytes_;
  }
  void finish(absl::Status status, FinishReason reason, Outcome outcome, StageTimes times) {
    {
      std::lock_guard lock(mutex_);
      pending_.done = true;
      pending_.status = std::move(status);
      pending_.reason = reason;
      pending_.outcome = std::move(outcome);
      pending_.times = times;
    }
    cv_.notify_all();
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  UpdateType pending_;
  size_t pending_bytes_ = 0;
  std::atomic<bool> cancel_requested_{false};
  absl::Status cancel_status_;
  FinishReason cancel_reason_ = FinishReason::kCancelled;
};

struct Empty {};
using GenerationHandle = Handle<TokenEvent, Empty>;
using EncodeHandle = Handle<TokenRows, EncodeOutcome>;

}  // namespace longnet::server
