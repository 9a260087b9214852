// A fixed pool of worker threads for data-parallel kernels. Explicit context: callers pass a
// ThreadPool& down; there is no global pool.
//
// parallel_for(n, fn) calls fn(begin, end) over [0, n) split into contiguous ranges (long ones
// first, then shorter, taken in order by whichever thread is free: a thread slowed by another process
// does not hold up the call), and returns when all are done. Workers spin briefly on an
// atomic epoch before sleeping (std::atomic::wait), so the per-call overhead is a few microseconds when
// called back-to-back (one call per matmul in a forward pass).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace wai {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads >= 1; the caller counts as one
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // fn(thread_index, n_threads): each thread runs once; the body partitions work itself.
  void run(const std::function<void(int, int)>& fn);

  // Splits [0, n) into contiguous chunks (multiples of `grain` except the last), each run by some
  // thread; which thread runs which chunk is not fixed. Chunks shrink as the range runs out (guided
  // scheduling), so the threads finish close together.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> threads_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint64_t> epoch_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace wai
