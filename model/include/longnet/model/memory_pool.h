#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

#include "absl/status/statusor.h"
#include "longnet/model/dtype.h"

namespace longnet::model {

// Figures every device allocator reports (and the server exports as metrics). Byte counts are of whole
// blocks, i.e. requests rounded up to their size class, because that is what the budget is charged.
struct PoolStats {
  size_t in_use_bytes = 0;      // held by live buffers
  size_t cached_bytes = 0;      // freed, kept for reuse
  size_t high_water_bytes = 0;  // peak of in_use_bytes
  size_t budget_bytes = 0;      // limit on in_use + cached; 0 = unlimited
  uint64_t allocations = 0;     // successful non-empty allocations (= cache_hits + cache_misses)
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
  uint64_t refusals = 0;  // requests answered with ResourceExhausted
};

class Allocator;

// Owns one block of an Allocator and gives it back on destruction. Move-only. The allocator must outlive
// every buffer it handed out. A default-constructed (or zero-byte) buffer is empty: data() == nullptr.
class PoolBuffer {
 public:
  PoolBuffer() = default;
  PoolBuffer(PoolBuffer&& other) noexcept;
  PoolBuffer& operator=(PoolBuffer&& other) noexcept;
  PoolBuffer(const PoolBuffer&) = delete;
  PoolBuffer& operator=(const PoolBuffer&) = delete;
  ~PoolBuffer() { reset(); }

  void* data() const { return data_; }
  size_t size() const { return size_; }                // bytes requested
  size_t block_bytes() const { return block_bytes_; }  // bytes reserved (>= size)
  bool empty() const { return data_ == nullptr; }
  void reset();  // returns the block now

 private:
  friend class Allocator;
  PoolBuffer(Allocator* owner, void* data, size_t size, size_t block_bytes)
      : owner_(owner), data_(data), size_(size), block_bytes_(block_bytes) {}

  Allocator* owner_ = nullptr;
  void* data_ = nullptr;
  size_t size_ = 0;
  size_t block_bytes_ = 0;
};

// One per device. The interface is what the engine needs for admission control and metrics, so a CUDA
// pool (stream-ordered, cudaMallocAsync) can sit behind it as well as the CPU MemoryPool. Thread-safe.
class Allocator {
 public:
  virtual ~Allocator() = default;
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;

  virtual Device device() const = 0;

  // Never aborts and never throws: a request beyond the budget (after dropping cached blocks) or beyond
  // what the system gives is refused with ResourceExhausted. Zero bytes yields an empty buffer and
  // touches no statistics.
  virtual absl::StatusOr<PoolBuffer> allocate(size_t bytes) = 0;

  // Whether allocate(bytes) would succeed now as far as the budget is concerned (dropping cached blocks
  // if needed). Only advisory under concurrency: another thread may take the room first.
  virtual bool can_allocate(size_t bytes) const = 0;

  // The bytes a request of `bytes` is charged (its size class). Admission sums these for a set of buffers.
  virtual size_t block_size(size_t bytes) const = 0;

  virtual PoolStats stats() const = 0;

  // Gives cached blocks back to the system until at most `target_cached_bytes` stay cached.
  void trim(size_t target_cached_bytes = 0) { release_cached(target_cached_bytes); }

 protected:
  Allocator() = default;
  // `requested` is what the caller asked for, `reserved` the block it was charged.
  PoolBuffer make_buffer(void* data, size_t requested, size_t reserved) {
    return {this, data, requested, reserved};
  }

 private:
  friend class PoolBuffer;
  virtual void release_cached(size_t target_cached_bytes) = 0;
  virtual void deallocate(void* data, size_t block_bytes) noexcept = 0;
};

// The CPU pool: 64-byte aligned blocks in size classes, freed blocks cached per class and reused
// most-recently-freed first, and a byte budget over in-use + cached bytes.
//
// Size classes: up to 256 bytes, multiples of 64; above that, each power-of-two range (2^k, 2^(k+1)] is
// split into 4 steps of 2^(k-2); from 64 MiB on, multiples of 2 MiB, so big requests waste little.
// A request reuses only a cached block of its own class.
//
// Blocks of 2 MiB and more (weight panels, KV caches, a long prompt's activations) are mapped on their own,
// 2 MiB aligned, and advised as transparent huge pages (MADV_HUGEPAGE; the kernel decides, and with THP
// off they stay 4 KiB pages). A step reads such blocks from end to end: with 4 KiB pages every page is a
// TLB miss and a restart of the hardware prefetcher, which stops at page borders.
class MemoryPool final : public Allocator {
 public:
  static constexpr size_t kAlignment = 64;
  static constexpr size_t kSmallClassLimit = 256;
  static constexpr size_t kHugeThreshold = size_t{64} << 20;
  static constexpr size_t kHugePage = size_t{2} << 20;
  static constexpr size_t kMaxRequestBytes = size_t{1} << 48;  // keeps class arithmetic from overflowing

  explicit MemoryPool(size_t budget_bytes = 0) { stats_.budget_bytes = budget_bytes; }
  // Frees the cache. Buffers still alive at this point are a bug (checked in debug builds).
  ~MemoryPool() override;

  static size_t size_class(size_t bytes);

  Device device() const override { return Device::cpu(); }
  absl::StatusOr<PoolBuffer> allocate(size_t bytes) override;
  bool can_allocate(size_t bytes) const override;
  size_t block_size(size_t bytes) const override { return size_class(bytes); }
  PoolStats stats() const override;

 private:
  // Cached blocks form an intrusive LIFO list per class (the link lives in the free block itself), so
  // giving a block back never allocates.
  struct FreeBlock {
    FreeBlock* next;
    size_t bytes;  // the block's class, for giving it back to the system
  };

  void release_cached(size_t target_cached_bytes) override;
  void deallocate(void* data, size_t block_bytes) noexcept override;
  // Unlinks cached blocks, largest classes first, until at most `target` bytes stay cached; returns the
  // unlinked blocks as one list so the caller frees them after dropping the lock.
  FreeBlock* unlink_cached_locked(size_t target);
  static void free_list(FreeBlock* list);
  // A block of `block` bytes from the system (nullptr when it has none), and its return.
  static void* system_allocate(size_t block);
  static void system_free(void* data, size_t block);

  mutable std::mutex mutex_;
  std::map<size_t, FreeBlock*> cache_;  // class bytes -> non-empty list
  PoolStats stats_;
};

}  // namespace longnet::model
