#pragma once

#include <map>
#include <mutex>

#include "longnet/model/memory_pool.h"

// An Allocator that hands out blocks of another one and records the peak of the bytes it has out at
// once: warm-up runs a worst-case step through it to learn how much activation memory a step needs.
namespace longnet::server {

class PeakTrackingAllocator final : public model::Allocator {
 public:
  explicit PeakTrackingAllocator(model::Allocator& inner) : inner_(inner) {}
  ~PeakTrackingAllocator() override = default;

  size_t peak_bytes() const;

  model::Device device() const override { return inner_.device(); }
  absl::StatusOr<model::PoolBuffer> allocate(size_t bytes) override;
  bool can_allocate(size_t bytes) const override { return inner_.can_allocate(bytes); }
  size_t block_size(size_t bytes) const override { return inner_.block_size(bytes); }
  model::PoolStats stats() const override { return inner_.stats(); }

 private:
  void release_cached(size_t target_cached_bytes) override { inner_.trim(target_cached_bytes); }
  void deallocate(void* data, size_t block_bytes) noexcept override;

  model::Allocator& inner_;
  mutable std::mutex mutex_;
  std::map<void*, model::PoolBuffer> live_;
  size_t out_bytes_ = 0;
  size_t peak_bytes_ = 0;
};

}  // namespace longnet::server
