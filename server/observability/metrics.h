#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "engine/engine_observer.h"

// The server's Prometheus metrics (prometheus-cpp, a registry of its own), served as text on HTTP /metrics.
// Every name starts with longnet_ and carries its unit (_seconds, _bytes, _total); docs/server.md lists
// them. All methods are thread-safe.
namespace longnet::server {

class Metrics final : public EngineObserver {
 public:
  Metrics();
  ~Metrics() override;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Starts the HTTP endpoint: text exposition at http://host:port/metrics. Port 0 picks a free port (see
  // bound_port). Unavailable naming the address when it cannot listen (port taken, bad address);
  // FailedPrecondition when already serving.
  absl::Status serve(const std::string& host, int port);
  // The port actually bound (the chosen one when serve was given 0); 0 before serve succeeds.
  int bound_port() const;
  // The exposition text of every metric (tests, and a debug aid).
  std::string render() const;

  // longnet_requests_total{rpc,code} and longnet_request_duration_seconds{rpc}.
  void count_request(std::string_view rpc, std::string_view code, double seconds);
  void observe_time_to_first_token(double seconds);
  void observe_inter_token_latency(double seconds);
  void observe_queue_time(double seconds);
  void set_queue_depth(int64_t requests, int64_t tokens) override;
  void set_running(int64_t generations, int64_t encodes) override;
  void add_prompt_tokens(int64_t n);
  void add_generated_tokens(int64_t n);
  void add_encoded_tokens(int64_t n);
  void observe_batch(int64_t sequences, int64_t tokens, double seconds) override;  // per engine step
  void set_memory(size_t in_use, size_t cached, size_t budget, size_t high_water, size_t kv_cache_bytes,
                  size_t activation_reserve_bytes) override;
  void set_ready(bool ready);
  void set_draining(bool draining);
  // longnet_build_info{version,device,model} = 1; a later call replaces the labels.
  void set_build_info(std::string_view version, std::string_view device, std::string_view model);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longnet::server
