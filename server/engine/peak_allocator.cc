#include "peak_allocator.h"

#include <algorithm>

namespace longnet::server {

size_t PeakTrackingAllocator::peak_bytes() const {
  std::lock_guard lock(mutex_);
  return peak_bytes_;
}

absl::StatusOr<model::PoolBuffer> PeakTrackingAllocator::allocate(size_t bytes) {
  absl::StatusOr<model::PoolBuffer> inner = inner_.allocate(bytes);
  if (!inner.ok() || inner->empty()) return inner;
  void* data = inner->data();
  const size_t block = inner->block_bytes();
  {
    std::lock_guard lock(mutex_);
    live_.emplace(data, *std::move(inner));
    out_bytes_ += block;
    peak_bytes_ = std::max(peak_bytes_, out_bytes_);
  }
  return make_buffer(data, bytes, block);
}

void PeakTrackingAllocator::deallocate(void* data, size_t block_bytes) noexcept {
  model::PoolBuffer inner;
  {
    std::lock_guard lock(mutex_);
    auto it = live_.find(data);
    if (it == live_.end()) return;
    inner = std::move(it->second);
    live_.erase(it);
    out_bytes_ -= block_bytes;
  }
  // `inner` goes back to the wrapped allocator here, outside the lock.
}

}  // namespace longnet::server
