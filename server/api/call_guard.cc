#include "api/call_guard.h"

#include <optional>
#include <random>
#include <utility>

#include "absl/strings/str_format.h"
#include "api/status_map.h"
#include "api/validation.h"
#include "observability/logging.h"
#include "observability/metrics.h"

namespace longnet::server {

void ServingState::set_phase(Phase phase) {
  {
    std::lock_guard lock(mutex_);
    phase_ = phase;
  }
  idle_.notify_all();
}

ServingState::Phase ServingState::phase() const {
  std::lock_guard lock(mutex_);
  return phase_;
}

int64_t ServingState::in_flight() const {
  std::lock_guard lock(mutex_);
  return in_flight_;
}

bool ServingState::wait_idle(std::chrono::duration<double> timeout) {
  std::unique_lock lock(mutex_);
  return idle_.wait_for(lock, timeout, [&] { return in_flight_ == 0; });
}

grpc::Status ServingState::enter() {
  std::lock_guard lock(mutex_);
  switch (phase_) {
    case Phase::kLoading:
      return {grpc::StatusCode::UNAVAILABLE, "model loading"};
    case Phase::kDraining:
      return {grpc::StatusCode::UNAVAILABLE, "server draining"};
    case Phase::kServing:
      break;
  }
  ++in_flight_;
  return grpc::Status::OK;
}

void ServingState::leave() {
  bool idle = false;
  {
    std::lock_guard lock(mutex_);
    idle = --in_flight_ == 0;
  }
  if (idle) idle_.notify_all();
}

uint64_t random_u64() {
  // One generator for the process (request ids are rare next to tokens).
  static std::mutex mutex;
  static std::mt19937_64 random{std::random_device{}()};
  std::lock_guard lock(mutex);
  return random();
}

std::string make_request_id() {
  return absl::StrFormat("req-%016x", random_u64());
}

Clock::time_point call_deadline(const grpc::ServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return Clock::time_point::max();
  const auto left = deadline - std::chrono::system_clock::now();
  // A deadline decades away is no deadline (and would overflow the steady clock).
  if (left > std::chrono::hours(24 * 365)) return Clock::time_point::max();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(left);
}

CallGuard::CallGuard(ServingState& state, const grpc::ServerContext& context, std::string_view rpc)
    : state_(state), rpc_(rpc), request_id_(make_request_id()), start_(Clock::now()) {
  admission_ = state_.enter();
  if (!admission_.ok()) return;
  counted_ = true;
  const auto& metadata = context.client_metadata();
  std::optional<std::string_view> authorization;
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    authorization = std::string_view(it->second.data(), it->second.size());
  }
  if (absl::Status auth = state_.keys_.check(authorization); !auth.ok()) admission_ = to_grpc(auth);
}

CallGuard::~CallGuard() {
  if (counted_) state_.leave();
}

absl::Status CallGuard::adopt_request_id(std::string_view client_id) {
  if (absl::Status st = validate_request_id(client_id); !st.ok()) return st;
  if (!client_id.empty()) request_id_.assign(client_id);
  return absl::OkStatus();
}

void CallGuard::note(std::string_view text) {
  if (!note_.empty()) note_ += ' ';
  note_.append(text);
}

grpc::Status CallGuard::finish(const grpc::Status& status) {
  if (finished_) return status;
  finished_ = true;
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  const std::string_view code = grpc_code_name(status.error_code());
  if (Metrics* metrics = state_.metrics()) metrics->count_request(rpc_, code, seconds);
  const bool server_fault = status.error_code() == grpc::StatusCode::INTERNAL ||
                            status.error_code() == grpc::StatusCode::UNKNOWN ||
                            status.error_code() == grpc::StatusCode::DATA_LOSS;
  const std::string message = status.ok() ? "" : absl::StrFormat(" message=\"%s\"", status.error_message());
  const std::string extra = note_.empty() ? "" : " " + note_;
  if (server_fault) {
    log_error(request_id_, "rpc={} code={} seconds={:.4f}{}{}", rpc_, code, seconds, extra, message);
  } else {
    log_info(request_id_, "rpc={} code={} seconds={:.4f}{}{}", rpc_, code, seconds, extra, message);
  }
  if (counted_) {
    counted_ = false;
    state_.leave();
  }
  return status;
}

}  // namespace longnet::server
