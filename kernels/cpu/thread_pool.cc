#include "longnet/kernels/thread_pool.h"

#include <atomic>
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

}  // namespace

struct ThreadPool::Job {
  const std::function<void(int64_t, int)>* fn = nullptr;
  int64_t num_tasks = 0;
  std::atomic<int64_t> next{0};
};

ThreadPool::ThreadPool(int num_threads) {
  const int n = num_threads > 0 ? num_threads : default_thread_count();
  workers_.reserve(static_cast<size_t>(n - 1));
  for (int t = 1; t < n; ++t)
    workers_.emplace_back([this, t] { worker_main(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
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
  }
  tls_inside_pool_task = was_inside;
}

void ThreadPool::worker_main(int thread) {
  uint64_t seen = 0;
  for (;;) {
    Job* job = nullptr;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      job = job_;
      if (job == nullptr) continue;  // woke after that loop had already finished
      ++active_workers_;
    }
    run_tasks(*job, thread);
    {
      std::lock_guard lock(mutex_);
      --active_workers_;
    }
    done_.notify_all();
  }
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
  {
    std::lock_guard lock(mutex_);
    job_ = &job;
    ++generation_;
  }
  wake_.notify_all();
  run_tasks(job, 0);
  std::unique_lock lock(mutex_);
  // Workers that woke for this generation hold a pointer to `job`: wait until all have let go.
  done_.wait(lock, [&] { return active_workers_ == 0 && job.next.load() >= num_tasks; });
  job_ = nullptr;
}

}  // namespace longnet::kernels
