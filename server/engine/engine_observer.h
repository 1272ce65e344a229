#pragma once

#include <cstddef>
#include <cstdint>

// What the engine reports as it runs, for metrics. Called from the engine thread (and once from the
// thread that creates the engine); implementations must be thread-safe.
namespace longnet::server {

class EngineObserver {
 public:
  virtual ~EngineObserver() = default;
  // One step: sequences in it (an encode chunk counts as one), decoder/encoder tokens run, and its wall
  // time in seconds (the model's forward passes and sampling).
  virtual void observe_batch(int64_t sequences, int64_t tokens, double seconds) = 0;
  virtual void set_queue_depth(int64_t requests, int64_t tokens) = 0;
  virtual void set_running(int64_t generations, int64_t encodes) = 0;
  virtual void set_memory(size_t in_use, size_t cached, size_t budget, size_t high_water,
                          size_t kv_cache_bytes, size_t activation_reserve_bytes) = 0;
};

}  // namespace longnet::server
