#include "api/request_loop.h"

#include <algorithm>

namespace longnet::server {

absl::Status cancel_status(CallEnd why) {
  switch (why) {
    case CallEnd::kClientGone:
      return absl::CancelledError("client went away");
    case CallEnd::kDeadline:
      return absl::DeadlineExceededError("deadline exceeded");
    case CallEnd::kClientCancelled:
    case CallEnd::kNone:
      break;
  }
  return absl::CancelledError("client cancelled");
}

grpc::Status call_status(CallEnd why, const absl::Status& status) {
  switch (why) {
    case CallEnd::kClientCancelled:
      return {grpc::StatusCode::CANCELLED, "client cancelled"};
    case CallEnd::kClientGone:
      return {grpc::StatusCode::CANCELLED, "client went away"};
    case CallEnd::kDeadline:
      return {grpc::StatusCode::DEADLINE_EXCEEDED, "deadline exceeded"};
    case CallEnd::kNone:
      break;
  }
  return to_grpc(status);
}

CallEnd check_call(grpc::ServerContext& context, Clock::time_point deadline) {
  if (Clock::now() >= deadline) return CallEnd::kDeadline;
  if (context.IsCancelled()) return CallEnd::kClientCancelled;
  return CallEnd::kNone;
}

v1::Timings timings_from(const StageTimes& times, Clock::time_point accepted) {
  v1::Timings t;
  const double total = std::chrono::duration<double>(Clock::now() - accepted).count();
  if (times.admitted >= 0) t.set_queue_seconds(times.admitted);
  if (times.prefilled >= 0)
    t.set_prefill_seconds(std::max(0.0, times.prefilled - std::max(0.0, times.admitted)));
  if (times.first_token >= 0) {
    t.set_time_to_first_token_seconds(times.first_token);
    if (times.finished >= 0) t.set_decode_seconds(std::max(0.0, times.finished - times.first_token));
  }
  t.set_total_seconds(std::max(total, times.finished));
  return t;
}

}  // namespace longnet::server
