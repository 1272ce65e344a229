#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "api/api_context.h"
#include "config/server_config.h"
#include "engine/engine.h"
#include "longnet/kernels/thread_pool.h"
#include "longnet/model/memory_pool.h"
#include "longnet/model/model.h"
#include "longnet/model/tokenizer.h"

// longnet-server's lifecycle:
//   1. device check (the model graph runs on the CPU in this version), API keys, TLS credentials, metrics;
//   2. the gRPC server starts at once with health NOT_SERVING (every service and ""), reflection on, and
//      every longnet.v1 call answered UNAVAILABLE "model loading";
//   3. the model loads into the memory pool (its budget is --memory-budget-mb), the engine starts and warms
//      up; then health SERVING (GenerationService only for models with a decoder);
//   4. SIGTERM / SIGINT: health NOT_SERVING, new calls UNAVAILABLE "server draining", in-flight calls get up
//      to --drain-timeout to finish, the engine stops (ending the rest with UNAVAILABLE), the gRPC server
//      shuts down, exit 0.
namespace longnet::server {

class Metrics;
class GenerationService;
class EncodingService;
class TokenizerService;
class InfoService;

// Blocks SIGTERM and SIGINT in the calling thread and so in every thread started after it, and installs a
// handler that only passes them (through a pipe) to ServerApp's signal thread, which keeps them unblocked:
// threads that libraries started before main() may still be the ones the kernel picks. Call first thing
// in main().
void block_stop_signals();

class ServerApp {
 public:
  explicit ServerApp(ServerConfig config);
  ~ServerApp();
  ServerApp(const ServerApp&) = delete;
  ServerApp& operator=(const ServerApp&) = delete;

  // Runs until SIGTERM / SIGINT; returns the exit code: 0 after a clean drain, 1 when the model, the engine
  // or a port fails, 2 for a configuration the server refuses (device, keys, TLS files).
  int run();

 private:
  int start_listening();                    // 0, or an exit code
  int load_model();                         // 0, or an exit code
  int move_model_to_device(size_t budget);  // 0, or an exit code
  void set_health(bool serving);
  void drain();
  void watch_signals();
  bool stop_requested() const { return stop_requested_.load(); }

  ServerConfig config_;
  model::Device device_choice_ = model::Device::cpu();
  std::string device_ = "cpu";  // device_choice_ as the logs and InfoService say it

  // Declared in the order they are built; destroyed in reverse: the gRPC server first (no handler runs
  // any more), then the engine, the model and last the pool that held their memory.
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<model::MemoryPool> memory_;
  std::unique_ptr<model::Allocator> device_memory_;  // a CudaMemoryPool when the model runs on CUDA
  std::unique_ptr<kernels::ThreadPool> threads_;
  std::unique_ptr<model::LongNetModel> model_;
  std::unique_ptr<model::Tokenizer> tokenizer_;
  std::unique_ptr<EngineObserver> observer_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<ApiContext> api_;
  std::unique_ptr<GenerationService> generation_;
  std::unique_ptr<EncodingService> encoding_;
  std::unique_ptr<TokenizerService> tokenizer_service_;
  std::unique_ptr<InfoService> info_;
  std::unique_ptr<grpc::Server> server_;

  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> signals_done_{false};
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  std::thread signal_thread_;
};

}  // namespace longnet::server
