#pragma once

#include <chrono>

#include <grpcpp/server_context.h>

#include "absl/status/status.h"
#include "api/status_map.h"
#include "engine/handle.h"
#include "longnet/v1/common.pb.h"

// The wait loop of a handler with a request in the engine: take what the engine published (waking at
// least every 50 ms), hand events on, and end the request when the client cancels, the call's deadline
// passes or a write fails. After a cancel it keeps taking until the engine reports the end, so the
// request's memory is back in the pool when the handler returns.
namespace longnet::server {

inline constexpr std::chrono::milliseconds kPollInterval{50};

// Why a handler ended a request from its side (kNone: it did not, the engine's status stands).
enum class CallEnd { kNone, kClientCancelled, kClientGone, kDeadline };

// What the engine is told when the handler cancels for `why` (not kNone).
absl::Status cancel_status(CallEnd why);
// The call's status: ours when this side ended the request, else the engine's (or the handler's own).
grpc::Status call_status(CallEnd why, const absl::Status& status);
// kDeadline once `deadline` has passed, kClientCancelled once the client cancelled, else kNone.
CallEnd check_call(grpc::ServerContext& context, Clock::time_point deadline);

template <typename HandleT>
class RequestLoop {
 public:
  RequestLoop(HandleT& handle, grpc::ServerContext& context, Clock::time_point deadline)
      : handle_(handle), context_(context), deadline_(deadline) {}

  // A write to the client failed: it is gone.
  void client_gone() { end(CallEnd::kClientGone); }
  // Whether events still matter (nobody cancelled the request from this side).
  bool active() const { return why_ == CallEnd::kNone; }

  // Calls on_events(std::vector<Event>&) with each non-empty batch while active; returns the last update
  // (done, status, reason, outcome, times).
  template <typename OnEvents>
  typename HandleT::UpdateType run(OnEvents&& on_events) {
    for (;;) {
      typename HandleT::UpdateType update = handle_.take(Clock::now() + kPollInterval);
      if (!update.events.empty() && active()) on_events(update.events);
      if (update.done) return update;
      if (!active()) continue;
      end(check_call(context_, deadline_));
    }
  }

  // The call's status given the engine's: ours when this side ended the request, else the engine's.
  grpc::Status ending_status(const absl::Status& engine_status) const {
    return call_status(why_, engine_status);
  }

 private:
  void end(CallEnd why) {
    if (why_ != CallEnd::kNone || why == CallEnd::kNone) return;
    why_ = why;
    handle_.cancel(cancel_status(why), FinishReason::kCancelled);
  }

  HandleT& handle_;
  grpc::ServerContext& context_;
  Clock::time_point deadline_;
  CallEnd why_ = CallEnd::kNone;
};

// Timings of a finished request from the engine's stage times (seconds since submit, negative = not
// reached); `accepted` is when the handler submitted it, for the total.
v1::Timings timings_from(const StageTimes& times, Clock::time_point accepted);

}  // namespace longnet::server
