#include "util/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__)
#include <immintrin.h>
#define WAI_PAUSE() _mm_pause()
#else
#define WAI_PAUSE() ((void)0)
#endif

namespace wai {
namespace {
// ~2000 pauses is a few microseconds: enough to catch back-to-back calls on an idle core. The yields
// that follow keep latency low while giving the core away when it is oversubscribed (tests running in
// parallel, a busy machine), where pure spinning slows everyone down by orders of magnitude.
constexpr int kSpinPause = 2000;
constexpr int kSpinYield = 2000;
// parallel_for's shortest chunk is 1 / (threads * this) of the range: short enough that the threads
// finish close together, long enough that per-chunk costs (an atomic, a kernel's warm-up at the start
// of a range) stay small. Measured on 7B decode: 16-64 equally good, 8 and 128 slower.
constexpr int64_t kMinChunksPerThread = 32;
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  epoch_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    // Spin a little (the next parallel call usually follows within microseconds), then yield the core
    // (when threads outnumber cores, the thread we wait for may need it), then sleep.
    uint64_t e = epoch_.load(std::memory_order_acquire);
    for (int spin = 0; e == seen && spin < kSpinPause + kSpinYield; ++spin) {
      if (spin < kSpinPause) WAI_PAUSE(); else std::this_thread::yield();
      e = epoch_.load(std::memory_order_acquire);
    }
    while (e == seen) {
      epoch_.wait(seen, std::memory_order_acquire);
      e = epoch_.load(std::memory_order_acquire);
    }
    seen = e;
    if (stop_.load(std::memory_order_acquire)) return;
    (*job_)(index, n_threads_);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  if (n_threads_ == 1) {
    fn(0, 1);
    return;
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_release);
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  epoch_.notify_all();
  fn(0, n_threads_);
  int p = pending_.load(std::memory_order_acquire);
  for (int spin = 0; p != 0 && spin < kSpinPause + kSpinYield; ++spin) {
    if (spin < kSpinPause) WAI_PAUSE(); else std::this_thread::yield();
    p = pending_.load(std::memory_order_acquire);
  }
  while (p != 0) {
    pending_.wait(p, std::memory_order_acquire);
    p = pending_.load(std::memory_order_acquire);
  }
  job_ = nullptr;
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t units = (n + grain - 1) / grain;
  const int nt = static_cast<int>(std::min<int64_t>(n_threads_, units));
  if (nt <= 1) {
    fn(0, n);
    return;
  }
  // Guided self-scheduling: each take is a contiguous chunk of what is left / (2 * threads), at least
  // units / (threads * kMinChunksPerThread), from one atomic cursor. The first chunks are long (a kernel
  // streams its weight rows in order, and pays its warm-up per chunk), the last ones short, so the
  // threads finish within a short chunk of each other: with a fixed four chunks per thread the
  // thread left without work waited on average half a long chunk at the end of every call (7B decode,
  // the two schemes alternating token by token in one process: guided 3-5% faster).
  const int64_t min_take = std::max<int64_t>(1, units / (static_cast<int64_t>(nt) * kMinChunksPerThread));
  std::atomic<int64_t> next{0};
  run([&](int t, int) {
    if (t >= nt) return;
    int64_t at = next.load(std::memory_order_relaxed);
    while (at < units) {
      const int64_t take = std::min(units - at, std::max(min_take, (units - at) / (2 * static_cast<int64_t>(nt))));
      if (!next.compare_exchange_weak(at, at + take, std::memory_order_relaxed)) continue;  // (at reloaded)
      fn(at * grain, std::min(n, (at + take) * grain));
      at = next.load(std::memory_order_relaxed);
    }
  });
}

}  // namespace wai
