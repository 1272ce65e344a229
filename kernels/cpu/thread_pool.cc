#include "longnet/kernels/thread_pool.h"

#include <cstdlib>
#include <string>

namespace longnet::kernels {
namespace {

thread_local bool tls_inside_pool_task = false;
thread_local int tls_thread_index = 0;  // the index of the running task's thread, for nested loops

int default_thread_count() {
  if (const char* env = std::getenv("LONGNET_THREADS"); env != nullptr && *env != '\0') {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until done() holds or `limit` has passed; true when done() held.
template <typename Done>
bool spin_until(Done&& done, std::chrono::microseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return done();
  }
}

}  // namespace

struct ThreadPool::Job {
  const std::function<void(int64_t, int)>* fn = nullptr;
  int64_t num_tasks = 0;
  std::atomic<int64_t> next{0};            // the next task to hand out
  std::atomic<int64_t> finished{0};        // tasks that have returned
  std::atomic<bool> caller_asleep{false};  // the caller sleeps on done_ until finished == num_tasks
};

ThreadPool::ThreadPool(int num_threads) {
  const int n = num_threads > 0 ? num_threads : default_thread_count();
  workers_.reserve(static_cast<size_t>(n - 1));
  for (int t = 1; t < n; ++t)
    workers_.emplace_back([this, t] { worker_main(t); });
}

ThreadPool::~ThreadPool() {
  stopping_.store(true);
  { std::lock_guard lock(mutex_); }
  wake_.notify_all();
  for (auto& w : workers_)
    w.join();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool;
  return pool;
}

void ThreadPool::run_tasks(Job& job, int thread) {
  const bool was_inside = tls_inside_pool_task;
  tls_inside_pool_task = true;
  tls_thread_index = thread;
  for (int64_t task = job.next.fetch_add(1); task < job.num_tasks; task = job.next.fetch_add(1)) {
    (*job.fn)(task, thread);
    if (job.finished.fetch_add(1) + 1 == job.num_tasks && job.caller_asleep.load()) {
      // The last task of the loop, and the caller gave up spinning: wake it. Taking the lock orders
      // this after the caller's check of `finished`, so the notification cannot be lost.
      std::lock_guard lock(mutex_);
      done_.notify_all();
    }
  }
  tls_inside_pool_task = was_inside;
}

void ThreadPool::worker_main(int thread) {
  uint64_t seen = 0;
  for (;;) {
    const auto news = [&] { return stopping_.load() || generation_.load() != seen; };
    if (!spin_until(news, kIdleSpin)) {
      std::unique_lock lock(mutex_);
      // Counted before the check, so a caller that starts a loop after it sees a sleeper to wake.
      sleeping_workers_.fetch_add(1);
      wake_.wait(lock, news);
      sleeping_workers_.fetch_sub(1);
    }
    if (stopping_.load()) return;
    seen = generation_.load();
    // Counted before job_ is read: the caller clears job_ and then waits for this count to drop, so a
    // worker either sees null or keeps the caller's Job alive until it lets go.
    active_workers_.fetch_add(1);
    if (Job* job = job_.load(); job != nullptr) run_tasks(*job, thread);
    active_workers_.fetch_sub(1);
  }
}

void ThreadPool::wait_for_tasks(Job& job) {
  const auto all_finished = [&] { return job.finished.load() == job.num_tasks; };
  if (spin_until(all_finished, kIdleSpin)) return;
  std::unique_lock lock(mutex_);
  job.caller_asleep.store(true);
  done_.wait(lock, all_finished);
}

void ThreadPool::parallel_for(int64_t num_tasks, const std::function<void(int64_t, int)>& fn) {
  if (num_tasks <= 0) return;
  if (workers_.empty() || num_tasks == 1 || tls_inside_pool_task) {
    // Inline: a nested loop keeps the thread index of the task that started it, so per-thread
    // scratch indexed by `thread` stays private to this thread.
    const int thread = tls_inside_pool_task ? tls_thread_index : 0;
    const bool was_inside = tls_inside_pool_task;
    tls_inside_pool_task = true;
    for (int64_t task = 0; task < num_tasks; ++task)
      fn(task, thread);
    tls_inside_pool_task = was_inside;
    return;
  }
  std::lock_guard loop_lock(loop_mutex_);
  Job job;
  job.fn = &fn;
  job.num_tasks = num_tasks;
  job_.store(&job);
  generation_.fetch_add(1);
  if (sleeping_workers_.load() > 0) {
    // A worker counted as sleeping may be between its count and its wait: the lock waits that out.
    { std::lock_guard lock(mutex_); }
    wake_.notify_all();
  }
  run_tasks(job, 0);
  wait_for_tasks(job);
  job_.store(nullptr);
  // Workers that read job_ before it was cleared may still be leaving run_tasks: wait until they have.
  const auto released = [&] { return active_workers_.load() == 0; };
  while (!spin_until(released, kIdleSpin))
    std::this_thread::yield();
}

}  // namespace longnet::kernels
