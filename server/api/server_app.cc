#include "api/server_app.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <ctime>
#include <utility>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>

#include "absl/strings/str_cat.h"
#include "api/encoding_service.h"
#include "api/generation_service.h"
#include "api/info_service.h"
#include "api/tokenizer_service.h"
#include "grpc/health/v1/health.pb.h"
#include "longnet/model/default_model.h"
#include "longnet/model/device_select.h"
#if defined(LONGNET_WITH_CUDA)
#include "longnet/model/cuda_memory_pool.h"
#endif
#include "observability/logging.h"
#include "observability/metrics.h"
#include "security/auth.h"
#include "security/tls.h"

namespace longnet::server {
namespace {

constexpr const char* kServiceNames[] = {"longnet.v1.GenerationService", "longnet.v1.EncodingService",
                                         "longnet.v1.TokenizerService", "longnet.v1.InfoService"};

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

std::string listen_address(const std::string& host, int port) {
  const bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
  return ipv6 ? "[" + host + "]:" + std::to_string(port) : host + ":" + std::to_string(port);
}

// Sync-server threads: every waiting or running request holds one while its handler waits on the engine,
// plus room for tokenizer and info calls. Past it gRPC answers RESOURCE_EXHAUSTED.
int handler_threads(const ServerConfig& config) {
  const int64_t wanted = config.max_queue_requests + config.max_batch_sequences + 32;
  return static_cast<int>(std::clamp<int64_t>(wanted, 64, 4096));
}

std::string model_name(const std::filesystem::path& dir) {
  std::filesystem::path p = dir;
  if (p.filename().empty()) p = p.parent_path();  // "models/demo/"
  return p.filename().string();
}

// The engine reports its queue, batches and memory through this.
class MetricsObserver final : public EngineObserver {
 public:
  explicit MetricsObserver(Metrics& metrics) : metrics_(metrics) {}
  void observe_batch(int64_t sequences, int64_t tokens, double seconds) override {
    metrics_.observe_batch(sequences, tokens, seconds);
  }
  void set_queue_depth(int64_t requests, int64_t tokens) override {
    metrics_.set_queue_depth(requests, tokens);
  }
  void set_running(int64_t generations, int64_t encodes) override {
    metrics_.set_running(generations, encodes);
  }
  void set_memory(size_t in_use, size_t cached, size_t budget, size_t high_water, size_t kv_cache_bytes,
                  size_t activation_reserve_bytes) override {
    metrics_.set_memory(in_use, cached, budget, high_water, kv_cache_bytes, activation_reserve_bytes);
  }

 private:
  Metrics& metrics_;
};

// Threads that libraries start before main() (OpenBLAS starts its pool from a shared-library constructor)
// keep SIGTERM / SIGINT unblocked, so the kernel may deliver them there: a handler that only writes the
// signal number to a pipe (async-signal-safe) turns that into a wake-up of the watching thread, whichever
// thread ran it.
int signal_pipe[2] = {-1, -1};

void on_stop_signal(int signal) {
  const int saved = errno;
  const char byte = static_cast<char>(signal);
  [[maybe_unused]] const ssize_t n = ::write(signal_pipe[1], &byte, 1);
  errno = saved;
}

}  // namespace

void block_stop_signals() {
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (signal_pipe[0] < 0 && ::pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

ServerApp::ServerApp(ServerConfig config) : config_(std::move(config)) {}

ServerApp::~ServerApp() {
  signals_done_.store(true);
  if (signal_thread_.joinable()) signal_thread_.join();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

void ServerApp::watch_signals() {
  // This thread takes the signals our own threads block; the handler hands them over through the pipe.
  const sigset_t set = stop_signals();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  while (!signals_done_.load()) {
    pollfd fd{signal_pipe[0], POLLIN, 0};
    if (::poll(&fd, 1, 200) <= 0) continue;  // timeout or EINTR
    char byte = 0;
    if (::read(signal_pipe[0], &byte, 1) != 1) continue;
    const int signal = byte;
    if (stop_requested_.exchange(true)) {
      log_warn("-", "signal {} again: already shutting down", signal);
      continue;
    }
    log_info("-", "signal {} ({}): shutting down", signal, signal == SIGTERM ? "SIGTERM" : "SIGINT");
    { std::lock_guard lock(stop_mutex_); }
    stop_cv_.notify_all();
  }
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void ServerApp::set_health(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus("", serving);
  for (const char* name : kServiceNames) {
    const bool generation = std::string_view(name) == "longnet.v1.GenerationService";
    health->SetServingStatus(name, serving && (!generation || model_ == nullptr || model_->has_decoder()));
  }
}

int ServerApp::start_listening() {
  // Which device: `auto` takes a CUDA device when the build has the backend and the runtime reports one;
  // `cuda` without one is a configuration error. The model moves there once loaded (load_model).
  absl::StatusOr<model::DeviceRequest> request = model::parse_device_request(config_.device);
  if (!request.ok()) {
    log_error("-", "--device: {}", std::string(request.status().message()));
    return 2;
  }
  absl::StatusOr<model::DeviceChoice> choice = model::select_device(*request);
  if (!choice.ok()) {
    log_error("-", "--device {}: {}", config_.device, std::string(choice.status().message()));
    return 2;
  }
  log_info("-", "device: {}", choice->reason);
  device_choice_ = choice->device;
  device_ = device_choice_.to_string();

  ApiKeys keys = ApiKeys::none();
  if (!config_.api_key_file.empty()) {
    absl::StatusOr<ApiKeys> loaded = ApiKeys::load(config_.api_key_file);
    if (!loaded.ok()) {
      log_error("-", "--api-key-file: {}", std::string(loaded.status().message()));
      return 2;
    }
    keys = *std::move(loaded);
    log_info("-", "API keys on: {} keys from {}", keys.size(), config_.api_key_file);
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = make_server_credentials(config_);
  if (!credentials.ok()) {
    log_error("-", "TLS: {}", std::string(credentials.status().message()));
    return 2;
  }

  metrics_ = std::make_unique<Metrics>();
  metrics_->set_ready(false);
  if (config_.metrics_port == 0) {
    log_info("-", "metrics endpoint off (--metrics-port 0)");
  } else {
    if (absl::Status st = metrics_->serve(config_.metrics_host, config_.metrics_port); !st.ok()) {
      log_error("-", "metrics endpoint: {}", std::string(st.message()));
      return 1;
    }
    log_info("-", "metrics on http://{}/metrics",
             listen_address(config_.metrics_host, metrics_->bound_port()));
  }

  api_ = std::make_unique<ApiContext>(config_, std::move(keys), metrics_.get());
  generation_ = std::make_unique<GenerationService>(*api_);
  encoding_ = std::make_unique<EncodingService>(*api_);
  tokenizer_service_ = std::make_unique<TokenizerService>(*api_);
  info_ = std::make_unique<InfoService>(*api_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // gRPC's health service does not put grpc.health.v1's descriptors in the pool reflection reads; ours
  // (generated into longnet_proto) do, once linked in: grpcurl can then call Health/Check unaided.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::ServerBuilder builder;
  const std::string address = listen_address(config_.host, config_.port);
  int bound_port = 0;
  builder.AddListeningPort(address, *credentials, &bound_port);
  builder.RegisterService(generation_.get());
  builder.RegisterService(encoding_.get());
  builder.RegisterService(tokenizer_service_.get());
  builder.RegisterService(info_.get());
  // Messages up to 4 x max_message_bytes reach the handlers, which refuse those over max_message_bytes
  // naming the limit; beyond that gRPC itself answers RESOURCE_EXHAUSTED.
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<int64_t>(4 * config_.max_message_bytes, INT_MAX)));
  grpc::ResourceQuota quota("longnet-server");
  quota.SetMaxThreads(handler_threads(config_));
  builder.SetResourceQuota(quota);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || bound_port == 0) {
    log_error("-", "cannot listen on {} (address in use or not valid)", address);
    server_.reset();
    return 1;
  }
  set_health(false);
  log_info("-", "listening on {}", listen_address(config_.host, bound_port));
  return 0;
}

// The weights go to the device's own pool, under the same budget: from then on the engine's admission and
// the pool metrics are about the device's memory.
int ServerApp::move_model_to_device([[maybe_unused]] size_t budget) {
  if (!device_choice_.is_cuda()) return 0;
#if defined(LONGNET_WITH_CUDA)
  model::CudaMemoryPool::Options options;
  options.device = device_choice_.index;
  options.budget_bytes = budget;
  absl::StatusOr<std::unique_ptr<model::CudaMemoryPool>> pool = model::CudaMemoryPool::create(options);
  if (!pool.ok()) {
    log_error("-", "device {}: {}", device_, pool.status().ToString());
    return 1;
  }
  device_memory_ = *std::move(pool);
  if (absl::Status st = model_->to_cuda(*device_memory_); !st.ok()) {
    log_error("-", "moving the model to {} failed: {}", device_, st.ToString());
    return 1;
  }
  log_info("-", "model on {}: {} MiB of weights in device memory", device_,
           device_memory_->stats().in_use_bytes >> 20);
  return 0;
#else
  log_error("-", "device {}: this build has no CUDA backend", device_);  // select_device never picks it
  return 1;
#endif
}

int ServerApp::load_model() {
  std::filesystem::path dir = config_.model_dir;
  if (dir.empty()) {
    absl::StatusOr<std::filesystem::path> demo = model::find_demo_model();
    if (!demo.ok()) {
      log_error("-", "no --model given and the demo model is not found: {}",
                std::string(demo.status().message()));
      return 1;
    }
    dir = *demo;
  }
  const size_t budget = static_cast<size_t>(config_.memory_budget_mb) << 20;
  memory_ = std::make_unique<model::MemoryPool>(budget);
  threads_ = std::make_unique<kernels::ThreadPool>(config_.threads);
  log_info("-", "loading model {} (memory budget {} MiB, {} threads)", dir.string(), config_.memory_budget_mb,
           threads_->num_threads());
  const Clock::time_point start = Clock::now();
  absl::StatusOr<std::unique_ptr<model::LongNetModel>> loaded = model::LongNetModel::load(dir, *memory_);
  if (!loaded.ok()) {
    log_error("-", "loading the model failed: {}", loaded.status().ToString());
    return 1;
  }
  model_ = *std::move(loaded);
  if (int code = move_model_to_device(budget); code != 0) return code;
  absl::StatusOr<std::unique_ptr<model::Tokenizer>> tokenizer = model::load_tokenizer(model_->config(), dir);
  if (!tokenizer.ok()) {
    log_error("-", "loading the tokenizer failed: {}", tokenizer.status().ToString());
    return 1;
  }
  tokenizer_ = *std::move(tokenizer);
  const model::PoolStats pool = memory_->stats();
  log_info("-", "model loaded: {} ({}), vocab {}, {} MiB of weights, {:.2f} s", model_name(dir),
           model::model_type_name(model_->config().model_type), model_->vocab_size(), pool.in_use_bytes >> 20,
           std::chrono::duration<double>(Clock::now() - start).count());
  if (stop_requested()) return 0;

  observer_ = std::make_unique<MetricsObserver>(*metrics_);
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::create(
      *model_, model::ExecContext{threads_.get(), memory_.get()}, engine_limits(config_), observer_.get());
  if (!engine.ok()) {
    log_error("-", "starting the engine failed: {}", engine.status().ToString());
    return 1;
  }
  engine_ = *std::move(engine);
  const Clock::time_point warm = Clock::now();
  if (absl::Status st = engine_->warm_up(); !st.ok()) {
    log_error("-", "engine warm-up failed: {}", st.ToString());
    return 1;
  }
  log_info("-", "engine warmed up in {:.2f} s: {} MiB reserved for a step's activations",
           std::chrono::duration<double>(Clock::now() - warm).count(),
           engine_->stats().activation_reserve_bytes >> 20);

  LoadedModel& l = api_->loaded;
  l.model = model_.get();
  l.tokenizer = tokenizer_.get();
  l.engine = engine_.get();
  l.traits.type = model_->config().model_type;
  l.traits.vocab_size = model_->vocab_size();
  l.traits.bos_id = tokenizer_->bos_id();
  l.traits.eos_id = tokenizer_->eos_id();
  l.name = model_name(dir);
  l.device = device_;
  return 0;
}

void ServerApp::drain() {
  const int64_t running = api_->state.in_flight();
  log_info("-", "draining: health NOT_SERVING, new calls UNAVAILABLE; {} calls in flight, waiting up to {} s",
           running, config_.drain_timeout_seconds);
  api_->state.set_phase(ServingState::Phase::kDraining);
  set_health(false);
  metrics_->set_ready(false);
  metrics_->set_draining(true);
  if (!api_->state.wait_idle(std::chrono::duration<double>(config_.drain_timeout_seconds))) {
    log_warn("-",
             "drain timeout: {} calls still running; generations end with finish reason CANCELLED, the rest "
             "with UNAVAILABLE",
             api_->state.in_flight());
  } else {
    log_info("-", "drained: no call in flight");
  }
  if (engine_) engine_->stop();
  // Handlers return within a poll interval once their requests ended.
  api_->state.wait_idle(std::chrono::seconds(5));
  log_info("-", "stopping the gRPC server");
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_->Wait();
  log_info("-", "stopped");
}

int ServerApp::run() {
  log_info("-", "longnet-server {} starting", server_version());
  signal_thread_ = std::thread([this] { watch_signals(); });
  if (int code = start_listening(); code != 0) return code;
  const int loaded = load_model();
  if (loaded != 0 || stop_requested()) {
    if (loaded == 0) log_info("-", "stop requested while loading: exiting");
    if (engine_) engine_->stop();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_->Wait();
    return loaded;
  }
  api_->state.set_phase(ServingState::Phase::kServing);
  set_health(true);
  metrics_->set_build_info(server_version(), device_, api_->loaded.name);
  metrics_->set_ready(true);
  log_info("-", "ready: serving {} on {}{}", api_->loaded.name, device_,
           model_->has_decoder() ? "" : " (GenerationService NOT_SERVING: the model has no decoder)");
  {
    std::unique_lock lock(stop_mutex_);
    stop_cv_.wait(lock, [&] { return stop_requested(); });
  }
  drain();
  return 0;
}

}  // namespace longnet::server
