#include "longnet/kernels/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace longnet::kernels {
namespace {

TEST(ThreadPool, RunsEveryTaskExactlyOnceWithValidThreadIndices) {
  ThreadPool pool(3);
  ASSERT_EQ(pool.num_threads(), 3);
  for (int64_t n : {0, 1, 2, 7, 1000}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    std::atomic<bool> bad_thread{false};
    pool.parallel_for(n, [&](int64_t task, int thread) {
      hits[static_cast<size_t>(task)].fetch_add(1);
      if (thread < 0 || thread >= 3) bad_thread = true;
    });
    for (int64_t i = 0; i < n; ++i)
      EXPECT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "n=" << n << " task " << i;
    EXPECT_FALSE(bad_thread.load());
  }
}

TEST(ThreadPool, NestedLoopsRunInlineOnTheSameThread) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  std::atomic<bool> thread_changed{false};
  pool.parallel_for(8, [&](int64_t, int outer_thread) {
    pool.parallel_for(10, [&](int64_t inner, int inner_thread) {
      sum += inner;
      if (inner_thread != outer_thread) thread_changed = true;
    });
  });
  EXPECT_EQ(sum.load(), 8 * 45);
  EXPECT_FALSE(thread_changed.load());
}

TEST(ThreadPool, LoopsFromSeveralCallerThreadsAllComplete) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  callers.reserve(4);
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int rep = 0; rep < 200; ++rep)
        pool.parallel_for(16, [&](int64_t, int) { total.fetch_add(1); });
    });
  }
  for (auto& t : callers)
    t.join();
  EXPECT_EQ(total.load(), 4 * 200 * 16);
}

// Loops far enough apart that the workers have stopped spinning and sleep, and loops back to back that
// find them spinning: both hand-offs run every task, and a long task makes the caller sleep, not spin,
// until it is done.
TEST(ThreadPool, WakesSleepingWorkersAndWaitsForLongTasks) {
  ThreadPool pool(3);
  for (int rep = 0; rep < 20; ++rep) {
    std::atomic<int> ran{0};
    pool.parallel_for(6, [&](int64_t task, int) {
      if (rep % 5 == 0 && task == 5) std::this_thread::sleep_for(ThreadPool::kIdleSpin * 3);
      ran.fetch_add(1);
    });
    EXPECT_EQ(ran.load(), 6) << "rep " << rep;
    if (rep % 2 == 0) std::this_thread::sleep_for(ThreadPool::kIdleSpin * 4);
  }
}

}  // namespace
}  // namespace longnet::kernels
