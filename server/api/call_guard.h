#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include <grpcpp/server_context.h>

#include "absl/status/status.h"
#include "engine/request.h"
#include "security/auth.h"

// What every longnet.v1 handler runs first and last. Health and reflection are gRPC's own services and
// never pass through here, so probes stay answered while the model loads or the server drains.
namespace longnet::server {

class Metrics;

// The server's phase and its in-flight calls, shared by every handler.
class ServingState {
 public:
  enum class Phase { kLoading, kServing, kDraining };

  ServingState(ApiKeys keys, Metrics* metrics) : keys_(std::move(keys)), metrics_(metrics) {}

  void set_phase(Phase phase);
  Phase phase() const;
  int64_t in_flight() const;
  // Waits until no admitted call is running or `timeout` passed; true when idle.
  bool wait_idle(std::chrono::duration<double> timeout);

  Metrics* metrics() const { return metrics_; }

 private:
  friend class CallGuard;
  // Admits a call (and counts it) in the serving phase; UNAVAILABLE otherwise.
  grpc::Status enter();
  void leave();

  mutable std::mutex mutex_;
  std::condition_variable idle_;
  Phase phase_ = Phase::kLoading;
  int64_t in_flight_ = 0;
  ApiKeys keys_;
  Metrics* metrics_;
};

// One call's prologue and epilogue:
//   CallGuard guard(state, context, "Generate");
//   if (!guard.admitted()) return guard.finish(guard.admission());
//   ... return guard.finish(status);
// Admission refuses with UNAVAILABLE while loading ("model loading") or draining ("server draining") and
// with UNAUTHENTICATED when API keys are on and the `authorization` metadata does not carry one. The call
// gets a request id (generated; adopt_request_id replaces it with the client's). finish() writes one log
// line (rpc, code, seconds, and the message of a failure) and counts the call in the metrics.
class CallGuard {
 public:
  CallGuard(ServingState& state, const grpc::ServerContext& context, std::string_view rpc);
  ~CallGuard();
  CallGuard(const CallGuard&) = delete;
  CallGuard& operator=(const CallGuard&) = delete;

  bool admitted() const { return admission_.ok(); }
  const grpc::Status& admission() const { return admission_; }

  // InvalidArgument for an id over 128 characters or outside printable ASCII; empty keeps the generated one.
  absl::Status adopt_request_id(std::string_view client_id);
  const std::string& request_id() const { return request_id_; }
  std::string_view rpc() const { return rpc_; }
  Clock::time_point start() const { return start_; }

  // Extra text for the access log line (token counts, ...).
  void note(std::string_view text);

  grpc::Status finish(const grpc::Status& status);

 private:
  ServingState& state_;
  std::string rpc_;
  std::string request_id_;
  std::string note_;
  Clock::time_point start_;
  grpc::Status admission_;
  bool counted_ = false;  // entered the in-flight count
  bool finished_ = false;
};

// The call's deadline on the steady clock (Clock::time_point::max() when it has none).
Clock::time_point call_deadline(const grpc::ServerContext& context);

// 64 random bits (seeds, request ids).
uint64_t random_u64();

// A new request id: "req-" and 16 hex digits.
std::string make_request_id();

}  // namespace longnet::server
