#include "longnet/model/memory_pool.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstdint>
#include <cstdlib>
#include <utility>

#include <sys/mman.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace longnet::model {

PoolBuffer::PoolBuffer(PoolBuffer&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      block_bytes_(std::exchange(other.block_bytes_, 0)) {}

PoolBuffer& PoolBuffer::operator=(PoolBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    owner_ = std::exchange(other.owner_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    block_bytes_ = std::exchange(other.block_bytes_, 0);
  }
  return *this;
}

void PoolBuffer::reset() {
  if (data_ != nullptr) owner_->deallocate(data_, block_bytes_);
  owner_ = nullptr;
  data_ = nullptr;
  size_ = 0;
  block_bytes_ = 0;
}

namespace {

size_t round_up(size_t bytes, size_t step) {
  return (bytes + step - 1) / step * step;
}

}  // namespace

size_t MemoryPool::size_class(size_t bytes) {
  if (bytes == 0) return 0;
  if (bytes <= kSmallClassLimit) return round_up(bytes, kAlignment);
  if (bytes >= kHugeThreshold) return round_up(bytes, kHugePage);
  // bytes lies in (2^k, 2^(k+1)] with 2^k = bit_floor(bytes - 1) >= 256, so the step is >= 64.
  return round_up(bytes, std::bit_floor(bytes - 1) / 4);
}

MemoryPool::~MemoryPool() {
  assert(stats_.in_use_bytes == 0 && "a PoolBuffer outlived its MemoryPool");
  free_list(unlink_cached_locked(0));
}

absl::StatusOr<PoolBuffer> MemoryPool::allocate(size_t bytes) {
  if (bytes == 0) return PoolBuffer();
  FreeBlock* evicted = nullptr;
  const size_t block = bytes <= kMaxRequestBytes ? size_class(bytes) : 0;
  {
    std::lock_guard lock(mutex_);
    if (block == 0) {
      ++stats_.refusals;
      return absl::ResourceExhaustedError(absl::StrCat("memory pool: request of ", bytes,
                                                       " bytes exceeds the largest request (",
                                                       kMaxRequestBytes, " bytes)"));
    }
    if (auto it = cache_.find(block); it != cache_.end()) {
      FreeBlock* hit = it->second;
      if (hit->next == nullptr) {
        cache_.erase(it);
      } else {
        it->second = hit->next;
      }
      stats_.cached_bytes -= block;
      stats_.in_use_bytes += block;
      stats_.high_water_bytes = std::max(stats_.high_water_bytes, stats_.in_use_bytes);
      ++stats_.allocations;
      ++stats_.cache_hits;
      return make_buffer(hit, bytes, block);
    }
    const size_t budget = stats_.budget_bytes;
    if (budget != 0) {
      // Dropping the cache can make room only up to the bytes that live buffers leave free.
      if (block > budget || stats_.in_use_bytes > budget - block) {
        ++stats_.refusals;
        return absl::ResourceExhaustedError(
            absl::StrCat("memory pool: cannot allocate ", bytes, " bytes (block of ", block,
                         " bytes): ", stats_.in_use_bytes, " bytes in use, budget ", budget, " bytes"));
      }
      const size_t room_for_cache = budget - block - stats_.in_use_bytes;
      if (stats_.cached_bytes > room_for_cache) evicted = unlink_cached_locked(room_for_cache);
    }
    // Reserve the block before calling the system allocator outside the lock, so that concurrent
    // requests cannot jointly pass the budget.
    stats_.in_use_bytes += block;
  }
  free_list(evicted);

  void* data = system_allocate(block);
  if (data == nullptr) {
    // The system is short of memory: what we cache may be what it lacks.
    trim();
    data = system_allocate(block);
  }
  std::lock_guard lock(mutex_);
  if (data == nullptr) {
    stats_.in_use_bytes -= block;
    ++stats_.refusals;
    return absl::ResourceExhaustedError(absl::StrCat(
        "memory pool: the system could not provide ", block, " bytes for a request of ", bytes,
        " bytes: ", stats_.in_use_bytes, " bytes in use, budget ", stats_.budget_bytes, " bytes"));
  }
  stats_.high_water_bytes = std::max(stats_.high_water_bytes, stats_.in_use_bytes);
  ++stats_.allocations;
  ++stats_.cache_misses;
  return make_buffer(data, bytes, block);
}

bool MemoryPool::can_allocate(size_t bytes) const {
  if (bytes == 0) return true;
  if (bytes > kMaxRequestBytes) return false;
  const size_t block = size_class(bytes);
  std::lock_guard lock(mutex_);
  if (stats_.budget_bytes == 0 || cache_.contains(block)) return true;
  return block <= stats_.budget_bytes && stats_.in_use_bytes <= stats_.budget_bytes - block;
}

PoolStats MemoryPool::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void MemoryPool::release_cached(size_t target_cached_bytes) {
  FreeBlock* evicted = nullptr;
  {
    std::lock_guard lock(mutex_);
    evicted = unlink_cached_locked(target_cached_bytes);
  }
  free_list(evicted);
}

void MemoryPool::deallocate(void* data, size_t block_bytes) noexcept {
  std::lock_guard lock(mutex_);
  // The first bytes of a free block hold its list link and class; blocks are >= 64 bytes, 64-byte aligned.
  auto* freed = static_cast<FreeBlock*>(data);
  FreeBlock*& head = cache_[block_bytes];
  freed->next = head;
  freed->bytes = block_bytes;
  head = freed;
  stats_.in_use_bytes -= block_bytes;
  stats_.cached_bytes += block_bytes;
}

MemoryPool::FreeBlock* MemoryPool::unlink_cached_locked(size_t target) {
  FreeBlock* evicted = nullptr;
  while (stats_.cached_bytes > target && !cache_.empty()) {
    auto it = std::prev(cache_.end());
    const size_t class_bytes = it->first;
    FreeBlock* block = it->second;
    if (block->next == nullptr) {
      cache_.erase(it);
    } else {
      it->second = block->next;
    }
    stats_.cached_bytes -= class_bytes;
    block->next = evicted;
    evicted = block;
  }
  return evicted;
}

void MemoryPool::free_list(FreeBlock* list) {
  while (list != nullptr) {
    FreeBlock* next = list->next;
    system_free(list, list->bytes);
    list = next;
  }
}

void* MemoryPool::system_allocate(size_t block) {
  if (block < kHugePage) return std::aligned_alloc(kAlignment, block);
  // Map one huge page more than needed, then unmap what lies before the first 2 MiB border and after the
  // block's last huge page.
  const size_t length = round_up(block, kHugePage);
  void* mapped =
      ::mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<uintptr_t>(mapped);
  const uintptr_t aligned = round_up(start, kHugePage);
  if (aligned > start) ::munmap(mapped, aligned - start);
  ::munmap(reinterpret_cast<void*>(aligned + length), start + kHugePage - aligned);  // never empty
  void* data = reinterpret_cast<void*>(aligned);
  // Advice only: without THP (or with it off) the block stays in 4 KiB pages and works the same.
  (void)::madvise(data, length, MADV_HUGEPAGE);
  return data;
}

void MemoryPool::system_free(void* data, size_t block) {
  if (block < kHugePage) {
    std::free(data);
  } else {
    ::munmap(data, round_up(block, kHugePage));
  }
}

}  // namespace longnet::model
