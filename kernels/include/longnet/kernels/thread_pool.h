#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace longnet::kernels {

// A fixed set of worker threads that run one parallel loop at a time. The calling thread takes part in
// the loop, so a pool of N threads owns N-1 workers. Tasks are handed out dynamically (an atomic
// counter), which keeps uneven tasks (short last segments, causal triangles) balanced.
//
// Hand-off: a model step is dozens of short loops, so waking a sleeping thread for each (a futex call
// and a reschedule, tens of microseconds in a VM) would cost as much as the work. A worker that has
// finished a loop therefore watches for the next one for kIdleSpin before it sleeps on a condition
// variable, and the caller watches its loop's last tasks finish for as long before it sleeps.
class ThreadPool {
 public:
  // num_threads <= 0 means: the LONGNET_THREADS environment variable if set, else the hardware count.
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(task, thread) for every task in [0, num_tasks) and returns when all have finished.
  // `thread` is in [0, num_threads()) and identifies per-thread scratch space. Loops started from
  // inside a task, or while another thread's loop runs, wait for their turn or run inline (nested).
  void parallel_for(int64_t num_tasks, const std::function<void(int64_t task, int thread)>& fn);

  // The process-wide pool used when a kernel is given none.
  static ThreadPool& global();

  // How long an idle thread watches for work before it sleeps.
  static constexpr std::chrono::microseconds kIdleSpin{100};

 private:
  struct Job;
  void worker_main(int thread);
  void run_tasks(Job& job, int thread);
  void wait_for_tasks(Job& job);  // the caller's wait for the tasks other threads still run

  std::vector<std::thread> workers_;
  std::mutex loop_mutex_;  // one loop at a time
  std::mutex mutex_;       // guards the sleeps on wake_ and done_
  std::condition_variable wake_;
  std::condition_variable done_;
  std::atomic<Job*> job_{nullptr};        // the running loop, null between loops
  std::atomic<uint64_t> generation_{0};   // counts loops started, so a worker sees a new one
  std::atomic<int> active_workers_{0};    // workers that may hold job_'s pointer
  std::atomic<int> sleeping_workers_{0};  // workers asleep on wake_ (or about to be)
  std::atomic<bool> stopping_{false};
};

}  // namespace longnet::kernels
