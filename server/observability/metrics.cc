#include "observability/metrics.h"

#include "observability/metrics_http.h"

#include <fmt/format.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <exception>
#include <mutex>
#include <vector>

namespace longnet::server {
namespace {

using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;

// Long contexts are slow by nature: request latencies go from milliseconds up to ten minutes.
const Histogram::BucketBoundaries& latency_buckets() {
  static const Histogram::BucketBoundaries buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                      2.5,   5,    10,    30,   60,  120,  300, 600};
  return buckets;
}

const Histogram::BucketBoundaries& inter_token_buckets() {
  static const Histogram::BucketBoundaries buckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25,  0.5,    1,     2.5,  5,     10};
  return buckets;
}

const Histogram::BucketBoundaries& step_buckets() {
  static const Histogram::BucketBoundaries buckets = {0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032,
                                                      0.064,  0.125, 0.25,  0.5,   1,     2,     4};
  return buckets;
}

Histogram::BucketBoundaries powers_of_two(int largest_exponent) {
  Histogram::BucketBoundaries buckets;
  for (int e = 0; e <= largest_exponent; ++e)
    buckets.push_back(static_cast<double>(int64_t{1} << e));
  return buckets;
}

// A time from a caller's clock arithmetic: never let a negative (or NaN) value lower a histogram's sum.
double clamp_seconds(double seconds) {
  return seconds >= 0 ? seconds : 0.0;
}

Gauge& gauge(prometheus::Registry& registry, const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}

Counter& counter(prometheus::Registry& registry, const std::string& name, const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

Histogram& histogram(prometheus::Registry& registry, const std::string& name, const std::string& help,
                     const Histogram::BucketBoundaries& buckets) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry).Add({}, buckets);
}

}  // namespace

struct Metrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();

  prometheus::Family<Counter>& requests = prometheus::BuildCounter()
                                              .Name("longnet_requests_total")
                                              .Help("Finished RPCs by method and gRPC status code.")
                                              .Register(*registry);
  prometheus::Family<Histogram>& request_duration =
      prometheus::BuildHistogram()
          .Name("longnet_request_duration_seconds")
          .Help("RPC duration from arrival to the last response, by method.")
          .Register(*registry);
  Histogram& time_to_first_token =
      histogram(*registry, "longnet_time_to_first_token_seconds",
                "Generation: time from arrival to the first generated token.", latency_buckets());
  Histogram& inter_token_latency = histogram(
      *registry, "longnet_inter_token_latency_seconds",
      "Generation: time between consecutive generated tokens of one request.", inter_token_buckets());
  Histogram& queue_time = histogram(*registry, "longnet_queue_time_seconds",
                                    "Time requests wait in the queue before admission.", latency_buckets());
  Gauge& queue_requests =
      gauge(*registry, "longnet_queue_depth_requests", "Requests waiting in the queue (not yet admitted).");
  Gauge& queue_tokens = gauge(*registry, "longnet_queue_depth_tokens",
                              "Prompt and document tokens of the requests waiting in the queue.");
  prometheus::Family<Gauge>& running_family =
      prometheus::BuildGauge()
          .Name("longnet_running_requests")
          .Help("Requests admitted and being processed, by kind (generation, encode).")
          .Register(*registry);
  Gauge& running_generations = running_family.Add({{"kind", "generation"}});
  Gauge& running_encodes = running_family.Add({{"kind", "encode"}});
  Counter& prompt_tokens =
      counter(*registry, "longnet_prompt_tokens_total", "Prompt tokens of admitted generation requests.");
  Counter& generated_tokens = counter(*registry, "longnet_generated_tokens_total", "Tokens generated.");
  Counter& encoded_tokens = counter(*registry, "longnet_encoded_tokens_total", "Document tokens encoded.");
  Histogram& batch_sequences =
      histogram(*registry, "longnet_batch_sequences",
                "Sequences in each engine step (its count is the steps taken).", powers_of_two(10));
  Histogram& batch_tokens =
      histogram(*registry, "longnet_batch_tokens",
                "Tokens processed in each engine step (prefill chunks plus decodes).", powers_of_two(17));
  Histogram& step_duration =
      histogram(*registry, "longnet_step_duration_seconds",
                "Wall time of each engine step (forward passes and sampling of its batch).", step_buckets());
  Gauge& memory_in_use = gauge(*registry, "longnet_memory_pool_in_use_bytes",
                               "Memory pool bytes handed out (weights, KV caches, activations).");
  Gauge& memory_cached =
      gauge(*registry, "longnet_memory_pool_cached_bytes", "Memory pool bytes held free for reuse.");
  Gauge& memory_budget =
      gauge(*registry, "longnet_memory_pool_budget_bytes", "The memory pool's budget (--memory-budget-mb).");
  Gauge& memory_high_water = gauge(*registry, "longnet_memory_pool_high_water_bytes",
                                   "Most memory pool bytes in use at once since start.");
  Gauge& kv_cache = gauge(*registry, "longnet_kv_cache_bytes", "Bytes of KV caches of running sequences.");
  Gauge& activation_reserve = gauge(*registry, "longnet_activation_reserve_bytes",
                                    "Bytes reserved for the activations of engine steps.");
  Gauge& ready = gauge(*registry, "longnet_ready", "1 when the model is loaded, warmed up and not draining.");
  Gauge& draining = gauge(*registry, "longnet_draining", "1 after SIGTERM, while in-flight calls finish.");
  prometheus::Family<Gauge>& build_info_family =
      prometheus::BuildGauge()
          .Name("longnet_build_info")
          .Help("Always 1; the labels tell the server version, device and model.")
          .Register(*registry);

  std::mutex build_info_mutex;
  Gauge* build_info = nullptr;  // guarded by build_info_mutex

  mutable std::mutex endpoint_mutex;
  std::unique_ptr<MetricsHttpServer> endpoint;  // guarded by endpoint_mutex
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}

// The HTTP server (declared after the registry) stops its thread before the metrics go away.
Metrics::~Metrics() = default;

absl::Status Metrics::serve(const std::string& host, int port) {
  std::lock_guard<std::mutex> lock(impl_->endpoint_mutex);
  if (impl_->endpoint) {
    return absl::FailedPreconditionError(
        fmt::format("metrics endpoint: already serving on port {}, cannot also serve {}:{}",
                    impl_->endpoint->port(), host, port));
  }
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        fmt::format("metrics endpoint: port {} is out of range 0..65535", port));
  }
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
      MetricsHttpServer::start(host, port, [this] { return render(); });
  if (!server.ok()) return server.status();
  impl_->endpoint = *std::move(server);
  return absl::OkStatus();
}

int Metrics::bound_port() const {
  std::lock_guard<std::mutex> lock(impl_->endpoint_mutex);
  return impl_->endpoint ? impl_->endpoint->port() : 0;
}

std::string Metrics::render() const {
  return prometheus::TextSerializer().Serialize(impl_->registry->Collect());
}

void Metrics::count_request(std::string_view rpc, std::string_view code, double seconds) {
  const std::string rpc_label(rpc);
  impl_->requests.Add({{"rpc", rpc_label}, {"code", std::string(code)}}).Increment();
  impl_->request_duration.Add({{"rpc", rpc_label}}, latency_buckets()).Observe(clamp_seconds(seconds));
}

void Metrics::observe_time_to_first_token(double seconds) {
  impl_->time_to_first_token.Observe(clamp_seconds(seconds));
}

void Metrics::observe_inter_token_latency(double seconds) {
  impl_->inter_token_latency.Observe(clamp_seconds(seconds));
}

void Metrics::observe_queue_time(double seconds) {
  impl_->queue_time.Observe(clamp_seconds(seconds));
}

void Metrics::set_queue_depth(int64_t requests, int64_t tokens) {
  impl_->queue_requests.Set(static_cast<double>(requests));
  impl_->queue_tokens.Set(static_cast<double>(tokens));
}

void Metrics::set_running(int64_t generations, int64_t encodes) {
  impl_->running_generations.Set(static_cast<double>(generations));
  impl_->running_encodes.Set(static_cast<double>(encodes));
}

void Metrics::add_prompt_tokens(int64_t n) {
  if (n > 0) impl_->prompt_tokens.Increment(static_cast<double>(n));
}

void Metrics::add_generated_tokens(int64_t n) {
  if (n > 0) impl_->generated_tokens.Increment(static_cast<double>(n));
}

void Metrics::add_encoded_tokens(int64_t n) {
  if (n > 0) impl_->encoded_tokens.Increment(static_cast<double>(n));
}

void Metrics::observe_batch(int64_t sequences, int64_t tokens, double seconds) {
  impl_->batch_sequences.Observe(static_cast<double>(sequences));
  impl_->batch_tokens.Observe(static_cast<double>(tokens));
  impl_->step_duration.Observe(std::max(0.0, seconds));
}

void Metrics::set_memory(size_t in_use, size_t cached, size_t budget, size_t high_water,
                         size_t kv_cache_bytes, size_t activation_reserve_bytes) {
  impl_->memory_in_use.Set(static_cast<double>(in_use));
  impl_->memory_cached.Set(static_cast<double>(cached));
  impl_->memory_budget.Set(static_cast<double>(budget));
  impl_->memory_high_water.Set(static_cast<double>(high_water));
  impl_->kv_cache.Set(static_cast<double>(kv_cache_bytes));
  impl_->activation_reserve.Set(static_cast<double>(activation_reserve_bytes));
}

void Metrics::set_ready(bool ready) {
  impl_->ready.Set(ready ? 1 : 0);
}

void Metrics::set_draining(bool draining) {
  impl_->draining.Set(draining ? 1 : 0);
}

void Metrics::set_build_info(std::string_view version, std::string_view device, std::string_view model) {
  std::lock_guard<std::mutex> lock(impl_->build_info_mutex);
  if (impl_->build_info != nullptr) impl_->build_info_family.Remove(impl_->build_info);
  impl_->build_info = &impl_->build_info_family.Add(
      {{"version", std::string(version)}, {"device", std::string(device)}, {"model", std::string(model)}});
  impl_->build_info->Set(1);
}

}  // namespace longnet::server
