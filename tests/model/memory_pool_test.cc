#include "longnet/model/memory_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace longnet::model {
namespace {

PoolBuffer must_allocate(Allocator& pool, size_t bytes) {
  absl::StatusOr<PoolBuffer> buffer = pool.allocate(bytes);
  EXPECT_TRUE(buffer.ok()) << buffer.status();
  return buffer.ok() ? *std::move(buffer) : PoolBuffer();
}

bool aligned(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % MemoryPool::kAlignment == 0;
}

TEST(MemoryPoolTest, SizeClasses) {
  EXPECT_EQ(MemoryPool::size_class(0), 0u);
  EXPECT_EQ(MemoryPool::size_class(1), 64u);
  EXPECT_EQ(MemoryPool::size_class(64), 64u);
  EXPECT_EQ(MemoryPool::size_class(65), 128u);
  EXPECT_EQ(MemoryPool::size_class(256), 256u);
  EXPECT_EQ(MemoryPool::size_class(257), 320u);
  EXPECT_EQ(MemoryPool::size_class(512), 512u);
  EXPECT_EQ(MemoryPool::size_class(513), 640u);
  EXPECT_EQ(MemoryPool::size_class(1000), 1024u);
  EXPECT_EQ(MemoryPool::size_class(1025), 1280u);
  EXPECT_EQ(MemoryPool::size_class(3000), 3072u);
  EXPECT_EQ(MemoryPool::size_class((size_t{64} << 20) - 1), size_t{64} << 20);
  EXPECT_EQ(MemoryPool::size_class((size_t{64} << 20) + 1), size_t{66} << 20);
  EXPECT_EQ(MemoryPool::size_class(size_t{100} << 20), size_t{100} << 20);
}

TEST(MemoryPoolTest, SizeClassesCoverRequestsWithBoundedWaste) {
  size_t previous = 0;
  for (size_t bytes = 1; bytes < (size_t{1} << 28); bytes += 1 + bytes / 7) {
    const size_t block = MemoryPool::size_class(bytes);
    ASSERT_GE(block, bytes);
    ASSERT_EQ(block % MemoryPool::kAlignment, 0u) << bytes;
    ASSERT_GE(block, previous) << bytes;  // monotone
    if (bytes > MemoryPool::kSmallClassLimit) {
      ASSERT_LE(block - bytes, bytes / 4) << bytes;
    }
    previous = block;
  }
}

TEST(MemoryPoolTest, BlocksAre64ByteAlignedAndWritable) {
  MemoryPool pool;
  std::vector<PoolBuffer> buffers;
  for (size_t bytes = 1; bytes < 300'000; bytes = bytes * 3 / 2 + 1) {
    buffers.push_back(must_allocate(pool, bytes));
    PoolBuffer& b = buffers.back();
    ASSERT_FALSE(b.empty());
    EXPECT_TRUE(aligned(b.data())) << bytes;
    EXPECT_EQ(b.size(), bytes);
    EXPECT_EQ(b.block_bytes(), MemoryPool::size_class(bytes));
    std::memset(b.data(), 0xAB, b.block_bytes());  // the whole block is ours (ASan checks)
  }
  buffers.clear();
  // Cached blocks handed out again are aligned too.
  for (size_t bytes = 1; bytes < 300'000; bytes = bytes * 3 / 2 + 1) {
    PoolBuffer b = must_allocate(pool, bytes);
    EXPECT_TRUE(aligned(b.data())) << bytes;
  }
}

// Blocks of 2 MiB and more are mapped on their own at 2 MiB borders (huge-page candidates): the whole
// block is writable, cached and handed out again like any other, and trim returns mixed small and huge
// blocks each the way it came (ASan and the kernel catch a wrong length or a free of a mapping).
TEST(MemoryPoolTest, HugeBlocksAre2MiBAlignedAndComeAndGoLikeOthers) {
  MemoryPool pool;
  const size_t sizes[] = {MemoryPool::kHugePage - 64, MemoryPool::kHugePage, MemoryPool::kHugePage + 1,
                          (size_t{5} << 20) + 123, size_t{70} << 20};
  std::vector<void*> first;
  std::vector<void*> again;
  for (int round = 0; round < 2; ++round) {
    std::vector<PoolBuffer> buffers;
    for (size_t bytes : sizes) {
      buffers.push_back(must_allocate(pool, bytes));
      PoolBuffer& b = buffers.back();
      ASSERT_FALSE(b.empty());
      const auto address = reinterpret_cast<uintptr_t>(b.data());
      if (b.block_bytes() >= MemoryPool::kHugePage) {
        EXPECT_EQ(address % MemoryPool::kHugePage, 0u) << bytes;
      } else {
        EXPECT_TRUE(aligned(b.data())) << bytes;
      }
      std::memset(b.data(), 0x5A, b.block_bytes());
      (round == 0 ? first : again).push_back(b.data());
    }
  }
  // The second round took the first round's blocks from the cache (two requests share the 2 MiB class).
  std::ranges::sort(first);
  std::ranges::sort(again);
  EXPECT_EQ(again, first);
  EXPECT_EQ(pool.stats().in_use_bytes, 0u);
  EXPECT_GT(pool.stats().cached_bytes, 0u);
  pool.trim();
  EXPECT_EQ(pool.stats().cached_bytes, 0u);
  PoolBuffer fresh = must_allocate(pool, size_t{5} << 20);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(fresh.data()) % MemoryPool::kHugePage, 0u);
}

TEST(MemoryPoolTest, ZeroBytesGivesAnEmptyBufferAndNoStats) {
  MemoryPool pool(128);
  PoolBuffer b = must_allocate(pool, 0);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.data(), nullptr);
  EXPECT_EQ(b.size(), 0u);
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.allocations, 0u);
  EXPECT_EQ(s.in_use_bytes, 0u);
  EXPECT_TRUE(pool.can_allocate(0));
}

TEST(MemoryPoolTest, FreedBlockIsReusedForTheSameClass) {
  MemoryPool pool;
  PoolBuffer first = must_allocate(pool, 1000);
  void* const address = first.data();
  first.reset();
  EXPECT_EQ(pool.stats().cached_bytes, 1024u);

  PoolBuffer second = must_allocate(pool, 1020);  // same class (1024)
  EXPECT_EQ(second.data(), address);
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.cache_hits, 1u);
  EXPECT_EQ(s.cache_misses, 1u);
  EXPECT_EQ(s.cached_bytes, 0u);
  EXPECT_EQ(s.in_use_bytes, 1024u);
}

TEST(MemoryPoolTest, OtherClassesDoNotReuse) {
  MemoryPool pool;
  must_allocate(pool, 1000).reset();
  PoolBuffer other = must_allocate(pool, 2000);
  EXPECT_EQ(pool.stats().cache_hits, 0u);
  EXPECT_EQ(pool.stats().cache_misses, 2u);
  EXPECT_EQ(pool.stats().cached_bytes, 1024u);
}

TEST(MemoryPoolTest, MostRecentlyFreedBlockIsReusedFirst) {
  MemoryPool pool;
  PoolBuffer a = must_allocate(pool, 500);
  PoolBuffer b = must_allocate(pool, 500);
  void* const b_address = b.data();
  void* const a_address = a.data();
  a.reset();
  b.reset();
  EXPECT_EQ(must_allocate(pool, 500).data(), b_address);
  PoolBuffer again_b = must_allocate(pool, 500);
  PoolBuffer again_a = must_allocate(pool, 500);
  EXPECT_EQ(again_b.data(), b_address);
  EXPECT_EQ(again_a.data(), a_address);
}

TEST(MemoryPoolTest, StatisticsAreExactAfterASequence) {
  MemoryPool pool(1 << 20);
  PoolBuffer a = must_allocate(pool, 100);   // 128
  PoolBuffer b = must_allocate(pool, 300);   // 320
  PoolBuffer c = must_allocate(pool, 5000);  // 5120
  b.reset();
  PoolBuffer d = must_allocate(pool, 290);  // hit on b's block
  a.reset();
  c.reset();
  PoolBuffer e = must_allocate(pool, 4100);  // 5120: hit on c's block
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.in_use_bytes, 320u + 5120u);
  EXPECT_EQ(s.cached_bytes, 128u);
  EXPECT_EQ(s.high_water_bytes, 128u + 320u + 5120u);
  EXPECT_EQ(s.budget_bytes, 1u << 20);
  EXPECT_EQ(s.allocations, 5u);
  EXPECT_EQ(s.cache_hits, 2u);
  EXPECT_EQ(s.cache_misses, 3u);
  EXPECT_EQ(s.refusals, 0u);
}

TEST(MemoryPoolTest, HighWaterKeepsThePeak) {
  MemoryPool pool;
  {
    PoolBuffer a = must_allocate(pool, 4096);
    PoolBuffer b = must_allocate(pool, 4096);
  }
  PoolBuffer c = must_allocate(pool, 64);
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.in_use_bytes, 64u);
  EXPECT_EQ(s.high_water_bytes, 8192u);
}

TEST(MemoryPoolTest, RefusesBeyondTheBudgetAndStaysUsable) {
  MemoryPool pool(4096);
  PoolBuffer a = must_allocate(pool, 3000);  // 3072
  absl::StatusOr<PoolBuffer> refused = pool.allocate(2000);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  const std::string message(refused.status().message());
  EXPECT_NE(message.find("2000"), std::string::npos) << message;  // requested
  EXPECT_NE(message.find("3072"), std::string::npos) << message;  // in use
  EXPECT_NE(message.find("4096"), std::string::npos) << message;  // budget
  EXPECT_EQ(pool.stats().refusals, 1u);
  EXPECT_EQ(pool.stats().in_use_bytes, 3072u);

  PoolBuffer b = must_allocate(pool, 1000);  // 1024 still fits exactly
  EXPECT_EQ(pool.stats().in_use_bytes, 4096u);
  a.reset();
  PoolBuffer c = must_allocate(pool, 2000);
  EXPECT_FALSE(c.empty());
}

TEST(MemoryPoolTest, RequestLargerThanTheBudgetIsRefused) {
  MemoryPool pool(1000);
  absl::StatusOr<PoolBuffer> refused = pool.allocate(1001);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(pool.can_allocate(1001));
}

TEST(MemoryPoolTest, AbsurdRequestsAreRefusedNotAborted) {
  MemoryPool pool;
  for (size_t bytes : {MemoryPool::kMaxRequestBytes + 1, SIZE_MAX}) {
    absl::StatusOr<PoolBuffer> refused = pool.allocate(bytes);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_NE(refused.status().message().find(std::to_string(bytes)), std::string::npos);
    EXPECT_FALSE(pool.can_allocate(bytes));
  }
  EXPECT_EQ(pool.stats().refusals, 2u);
}

TEST(MemoryPoolTest, CachedBlocksAreDroppedToMakeRoom) {
  MemoryPool pool(4096);
  must_allocate(pool, 3000).reset();  // 3072 cached
  EXPECT_TRUE(pool.can_allocate(2000));
  PoolBuffer b = must_allocate(pool, 2000);  // fits only without the cached 3072
  EXPECT_FALSE(b.empty());
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.cached_bytes, 0u);
  EXPECT_EQ(s.in_use_bytes, 2048u);
  EXPECT_EQ(s.refusals, 0u);
}

TEST(MemoryPoolTest, OnlyAsManyCachedBlocksAsNeededAreDroppedLargestFirst) {
  MemoryPool pool(8192);
  {
    PoolBuffer a = must_allocate(pool, 4096);
    PoolBuffer b = must_allocate(pool, 1024);
    PoolBuffer c = must_allocate(pool, 1024);
  }
  ASSERT_EQ(pool.stats().cached_bytes, 6144u);
  PoolBuffer d = must_allocate(pool, 3000);  // 3072: needs cached <= 5120, so the 4096 block goes
  PoolStats s = pool.stats();
  EXPECT_EQ(s.cached_bytes, 2048u);
  EXPECT_EQ(s.in_use_bytes, 3072u);
  // The two 1024 blocks are still there to be hit.
  PoolBuffer e = must_allocate(pool, 1024);
  EXPECT_EQ(pool.stats().cache_hits, 1u);
}

TEST(MemoryPoolTest, UselessRefusalKeepsTheCache) {
  MemoryPool pool(4096);
  PoolBuffer a = must_allocate(pool, 3000);  // 3072 in use
  must_allocate(pool, 1000).reset();         // 1024 cached
  EXPECT_FALSE(pool.can_allocate(2000));
  EXPECT_FALSE(pool.allocate(2000).ok());  // cannot fit even with an empty cache
  EXPECT_EQ(pool.stats().cached_bytes, 1024u);
}

TEST(MemoryPoolTest, CanAllocateFollowsTheBudget) {
  MemoryPool pool(4096);
  EXPECT_TRUE(pool.can_allocate(4096));
  EXPECT_FALSE(pool.can_allocate(4097));
  PoolBuffer a = must_allocate(pool, 4096);
  EXPECT_FALSE(pool.can_allocate(1));
  a.reset();
  EXPECT_TRUE(pool.can_allocate(4000));  // a cache hit on the same class
  EXPECT_TRUE(pool.can_allocate(64));    // after dropping the cache
  MemoryPool unlimited;
  EXPECT_TRUE(unlimited.can_allocate(size_t{1} << 40));
}

TEST(MemoryPoolTest, TrimReleasesCachedBlocks) {
  MemoryPool pool;
  {
    PoolBuffer a = must_allocate(pool, 8192);
    PoolBuffer b = must_allocate(pool, 2048);
    PoolBuffer c = must_allocate(pool, 512);
  }
  PoolBuffer live = must_allocate(pool, 100);
  ASSERT_EQ(pool.stats().cached_bytes, 8192u + 2048u + 512u);
  pool.trim(3000);  // largest first: 8192 goes, 2048 + 512 stay
  EXPECT_EQ(pool.stats().cached_bytes, 2048u + 512u);
  pool.trim();
  EXPECT_EQ(pool.stats().cached_bytes, 0u);
  EXPECT_EQ(pool.stats().in_use_bytes, 128u);
  must_allocate(pool, 2048);
  EXPECT_EQ(pool.stats().cache_hits, 0u);
}

TEST(MemoryPoolTest, BuffersMoveAndReturnOnce) {
  MemoryPool pool;
  PoolBuffer a = must_allocate(pool, 256);
  void* const address = a.data();
  PoolBuffer b(std::move(a));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_EQ(b.data(), address);
  PoolBuffer c = must_allocate(pool, 512);
  c = std::move(b);  // c's old block goes back now
  EXPECT_EQ(c.data(), address);
  PoolStats s = pool.stats();
  EXPECT_EQ(s.in_use_bytes, 256u);
  EXPECT_EQ(s.cached_bytes, 512u);
  c.reset();
  c.reset();
  s = pool.stats();
  EXPECT_EQ(s.in_use_bytes, 0u);
  EXPECT_EQ(s.cached_bytes, 768u);
}

TEST(MemoryPoolTest, WorksThroughTheAllocatorInterface) {
  MemoryPool pool(1024);
  Allocator& allocator = pool;
  EXPECT_EQ(allocator.device(), Device::cpu());
  EXPECT_EQ(allocator.block_size(300), 320u);
  must_allocate(allocator, 300).reset();
  allocator.trim();
  EXPECT_EQ(allocator.stats().cached_bytes, 0u);
  EXPECT_EQ(allocator.stats().allocations, 1u);
}

// Each thread keeps a few live buffers, stamps each with its own tag and checks the stamp on release, so
// a block handed to two owners at once shows up as a corrupted stamp.
void hammer(Allocator& pool, size_t budget, unsigned seed, int ops, std::atomic<int>& failures) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> size_of(1, 20'000);
  std::vector<std::pair<PoolBuffer, uint64_t>> live;
  auto release_one = [&](size_t i) {
    uint64_t stamp = 0;
    std::memcpy(&stamp, live[i].first.data(), sizeof stamp);
    if (stamp != live[i].second) failures.fetch_add(1);
    live[i] = std::move(live.back());
    live.pop_back();
  };
  for (int op = 0; op < ops; ++op) {
    if (!live.empty() && (live.size() >= 16 || rng() % 2 == 0)) {
      release_one(rng() % live.size());
      continue;
    }
    absl::StatusOr<PoolBuffer> buffer = pool.allocate(size_of(rng));
    if (!buffer.ok()) {
      if (buffer.status().code() != absl::StatusCode::kResourceExhausted) failures.fetch_add(1);
      continue;
    }
    const uint64_t stamp = (uint64_t{seed} << 32) | static_cast<uint32_t>(op);
    std::memcpy(buffer->data(), &stamp, sizeof stamp);
    live.emplace_back(*std::move(buffer), stamp);
    const PoolStats s = pool.stats();
    if (budget != 0 && s.in_use_bytes + s.cached_bytes > budget) failures.fetch_add(1);
    if (op % 997 == 0) pool.trim(s.cached_bytes / 2);
  }
  while (!live.empty())
    release_one(live.size() - 1);
}

void run_concurrently(size_t budget) {
  MemoryPool pool(budget);
  std::atomic<int> failures{0};
  constexpr int kThreads = 8;
  constexpr int kOps = 5000;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back(hammer, std::ref(pool), budget, static_cast<unsigned>(t + 1), kOps,
                         std::ref(failures));
  }
  for (std::thread& t : threads)
    t.join();
  EXPECT_EQ(failures.load(), 0);
  const PoolStats s = pool.stats();
  EXPECT_EQ(s.in_use_bytes, 0u);
  EXPECT_EQ(s.allocations, s.cache_hits + s.cache_misses);
  EXPECT_GT(s.cache_hits, 0u);
  EXPECT_GT(s.high_water_bytes, 0u);
  if (budget != 0) {
    EXPECT_LE(s.high_water_bytes, budget);
    EXPECT_LE(s.cached_bytes, budget);
    EXPECT_GT(s.refusals, 0u);  // a thread alone often holds more than 64 KiB
  } else {
    EXPECT_EQ(s.refusals, 0u);
  }
  pool.trim();
  EXPECT_EQ(pool.stats().cached_bytes, 0u);
}

TEST(MemoryPoolTest, ConcurrentUseWithoutBudget) {
  run_concurrently(0);
}

TEST(MemoryPoolTest, ConcurrentUseUnderABudget) {
  run_concurrently(64 << 10);
}

}  // namespace
}  // namespace longnet::model
