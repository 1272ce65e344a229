#pragma once

// The CUDA device's Allocator (memory_pool.h): the driver's stream-ordered pool (cudaMallocAsync on a
// cudaMemPool_t of our own, with a release threshold) behind the same budget, refusals and PoolStats as
// the CPU MemoryPool, so admission control treats both devices alike. CUDA builds only.
#if defined(LONGNET_WITH_CUDA)

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "absl/status/statusor.h"
#include "longnet/model/memory_pool.h"

namespace longnet::model {

class CudaMemoryPool final : public Allocator {
 public:
  // Requests are charged in multiples of this (cudaMallocAsync's own alignment), so block_size() is exact
  // arithmetic the engine can sum ahead of time.
  static constexpr size_t kGranularity = 256;
  static constexpr size_t kMaxRequestBytes = size_t{1} << 48;

  struct Options {
    int device = 0;
    size_t budget_bytes = 0;  // limit on in-use + cached bytes; 0 = unlimited (what the device has)
    // Freed memory the pool keeps reserved across stream synchronisations instead of returning it to the
    // driver; the default keeps everything, like the CPU pool, until trim() or budget pressure.
    size_t release_threshold_bytes = SIZE_MAX;
    // The cudaStream_t that allocations and frees are ordered on (nullptr = the legacy default stream).
    // Buffers used on another stream need that stream synchronised with this one first.
    void* stream = nullptr;
  };

  // FailedPrecondition without a device (the runtime's reason, as kernels::cuda::device_count says it),
  // or when the device has no memory-pool support; never an abort.
  static absl::StatusOr<std::unique_ptr<CudaMemoryPool>> create(const Options& options);
  // Waits for the stream, then destroys the pool. Buffers still alive at this point are a bug.
  ~CudaMemoryPool() override;

  static size_t size_class(size_t bytes) { return (bytes + kGranularity - 1) / kGranularity * kGranularity; }

  Device device() const override { return Device::cuda(device_); }
  absl::StatusOr<PoolBuffer> allocate(size_t bytes) override;
  bool can_allocate(size_t bytes) const override;
  size_t block_size(size_t bytes) const override { return size_class(bytes); }
  // cached_bytes is what the driver holds reserved beyond the live buffers (cudaMemPoolAttrReservedMemCurrent
  // less cudaMemPoolAttrUsedMemCurrent); cache_hits are allocations that did not grow the reservation.
  PoolStats stats() const override;

 private:
  struct Impl;
  CudaMemoryPool(int device, std::unique_ptr<Impl> impl);
  void release_cached(size_t target_cached_bytes) override;
  void deallocate(void* data, size_t block_bytes) noexcept override;

  int device_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longnet::model

#endif  // LONGNET_WITH_CUDA
