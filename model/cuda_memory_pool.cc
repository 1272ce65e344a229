#if defined(LONGNET_WITH_CUDA)  // model/ globs every source; this one is CUDA-only

#include "longnet/model/cuda_memory_pool.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "longnet/kernels/cuda_device.h"

namespace longnet::model {

using kernels::cuda::to_status;

struct CudaMemoryPool::Impl {
  cudaMemPool_t pool = nullptr;
  cudaStream_t stream = nullptr;
  mutable std::mutex mutex;
  PoolStats stats;  // in_use_bytes, high water, counters; cached_bytes is read from the driver

  uint64_t attribute(cudaMemPoolAttr attr) const {
    uint64_t value = 0;
    if (cudaMemPoolGetAttribute(pool, attr, &value) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return value;
  }
  // Reserved bytes the live buffers do not use: what a trim could give back.
  size_t cached_locked() const {
    const uint64_t reserved = attribute(cudaMemPoolAttrReservedMemCurrent);
    const uint64_t used = attribute(cudaMemPoolAttrUsedMemCurrent);
    return reserved > used ? static_cast<size_t>(reserved - used) : 0;
  }
  // Lets the driver drop reserved memory until at most `keep` bytes stay reserved. Frees are stream-ordered:
  // memory freed by work still queued is released once the stream gets there, so synchronise first.
  void trim_locked(size_t keep) const {
    (void)cudaStreamSynchronize(stream);
    (void)cudaMemPoolTrimTo(pool, keep);
    (void)cudaGetLastError();
  }
};

CudaMemoryPool::CudaMemoryPool(int device, std::unique_ptr<Impl> impl)
    : device_(device), impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<CudaMemoryPool>> CudaMemoryPool::create(const Options& options) {
  absl::StatusOr<int> count = kernels::cuda::device_count();
  if (!count.ok()) return count.status();
  if (options.device < 0 || options.device >= *count) {
    return absl::InvalidArgumentError(absl::StrCat("cuda memory pool: device ", options.device,
                                                   " is not one of the ", *count, " CUDA devices"));
  }
  int supported = 0;
  if (auto st = to_status(cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, options.device),
                          "cudaDeviceGetAttribute(cudaDevAttrMemoryPoolsSupported)");
      !st.ok())
    return st;
  if (supported == 0) {
    return absl::FailedPreconditionError(absl::StrCat("cuda memory pool: device ", options.device,
                                                      " does not support stream-ordered memory pools"));
  }
  auto impl = std::make_unique<Impl>();
  impl->stream = static_cast<cudaStream_t>(options.stream);
  impl->stats.budget_bytes = options.budget_bytes;
  cudaMemPoolProps props{};
  props.allocType = cudaMemAllocationTypePinned;
  props.handleTypes = cudaMemHandleTypeNone;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = options.device;
  if (auto st = to_status(cudaMemPoolCreate(&impl->pool, &props), "cudaMemPoolCreate"); !st.ok()) return st;
  // With a budget, never keep more than the budget reserved across synchronisations.
  uint64_t threshold = options.release_threshold_bytes;
  if (options.budget_bytes != 0) threshold = std::min<uint64_t>(threshold, options.budget_bytes);
  if (auto st = to_status(cudaMemPoolSetAttribute(impl->pool, cudaMemPoolAttrReleaseThreshold, &threshold),
                          "cudaMemPoolSetAttribute(cudaMemPoolAttrReleaseThreshold)");
      !st.ok()) {
    (void)cudaMemPoolDestroy(impl->pool);
    return st;
  }
  return std::unique_ptr<CudaMemoryPool>(new CudaMemoryPool(options.device, std::move(impl)));
}

CudaMemoryPool::~CudaMemoryPool() {
  (void)cudaStreamSynchronize(impl_->stream);
  (void)cudaMemPoolDestroy(impl_->pool);
  (void)cudaGetLastError();
}

absl::StatusOr<PoolBuffer> CudaMemoryPool::allocate(size_t bytes) {
  if (bytes == 0) return PoolBuffer();
  std::lock_guard lock(impl_->mutex);
  PoolStats& stats = impl_->stats;
  if (bytes > kMaxRequestBytes) {
    ++stats.refusals;
    return absl::ResourceExhaustedError(absl::StrCat("cuda memory pool: request of ", bytes,
                                                     " bytes exceeds the largest request (", kMaxRequestBytes,
                                                     " bytes)"));
  }
  const size_t block = size_class(bytes);
  const size_t budget = stats.budget_bytes;
  if (budget != 0) {
    if (block > budget || stats.in_use_bytes > budget - block) {
      ++stats.refusals;
      return absl::ResourceExhaustedError(
          absl::StrCat("cuda memory pool: cannot allocate ", bytes, " bytes (block of ", block,
                       " bytes): ", stats.in_use_bytes, " bytes in use, budget ", budget, " bytes"));
    }
    // Cached memory counts against the budget: give back what the new block needs room for.
    const size_t room_for_cache = budget - block - stats.in_use_bytes;
    if (impl_->cached_locked() > room_for_cache) impl_->trim_locked(stats.in_use_bytes + room_for_cache);
  }
  const uint64_t reserved_before = impl_->attribute(cudaMemPoolAttrReservedMemCurrent);
  void* data = nullptr;
  cudaError_t error = cudaMallocFromPoolAsync(&data, block, impl_->pool, impl_->stream);
  if (error == cudaErrorMemoryAllocation) {  // what we cache may be what the device lacks
    (void)cudaGetLastError();
    impl_->trim_locked(0);
    error = cudaMallocFromPoolAsync(&data, block, impl_->pool, impl_->stream);
  }
  if (error != cudaSuccess) {
    (void)cudaGetLastError();  // not sticky: keep it out of later launch checks
    ++stats.refusals;
    const absl::Status cause = to_status(error, "cudaMallocFromPoolAsync");
    return absl::ResourceExhaustedError(absl::StrCat(
        "cuda memory pool: the device could not provide ", block, " bytes for a request of ", bytes,
        " bytes: ", stats.in_use_bytes, " bytes in use, budget ", budget, " bytes (", cause.message(), ")"));
  }
  const bool hit = impl_->attribute(cudaMemPoolAttrReservedMemCurrent) <= reserved_before;
  stats.in_use_bytes += block;
  stats.high_water_bytes = std::max(stats.high_water_bytes, stats.in_use_bytes);
  ++stats.allocations;
  ++(hit ? stats.cache_hits : stats.cache_misses);
  return make_buffer(data, bytes, block);
}

bool CudaMemoryPool::can_allocate(size_t bytes) const {
  if (bytes == 0) return true;
  if (bytes > kMaxRequestBytes) return false;
  const size_t block = size_class(bytes);
  std::lock_guard lock(impl_->mutex);
  const PoolStats& stats = impl_->stats;
  if (stats.budget_bytes == 0) return true;
  return block <= stats.budget_bytes && stats.in_use_bytes <= stats.budget_bytes - block;
}

PoolStats CudaMemoryPool::stats() const {
  std::lock_guard lock(impl_->mutex);
  PoolStats stats = impl_->stats;
  stats.cached_bytes = impl_->cached_locked();
  return stats;
}

void CudaMemoryPool::release_cached(size_t target_cached_bytes) {
  std::lock_guard lock(impl_->mutex);
  impl_->trim_locked(impl_->stats.in_use_bytes + target_cached_bytes);
}

void CudaMemoryPool::deallocate(void* data, size_t block_bytes) noexcept {
  std::lock_guard lock(impl_->mutex);
  // Stream-ordered: the memory is reusable by this stream's later work at once, by the device after
  // the work queued before this point has run.
  if (cudaFreeAsync(data, impl_->stream) != cudaSuccess) (void)cudaGetLastError();
  impl_->stats.in_use_bytes -= block_bytes;
}

}  // namespace longnet::model

#endif  // LONGNET_WITH_CUDA
