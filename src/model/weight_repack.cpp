#include "model/weight_repack.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include "format/dtype.h"
#include "kernels/repack.h"
#include "util/error.h"

namespace wai::model {
namespace {

constexpr int64_t kGroupsPerStep = 64;  // row groups per step (2-4 MiB on 7B shapes, ~1-3 ms)
// While a forward pass runs (kernels::matmuls_in_flight() > 0), each step is followed by a pause of
// this many times its own length: the repack then takes ~1/4 of the memory bandwidth it would (it
// streams two copies and the kernel zeroes a third, which slowed a first token right after the load
// ~2x even at nice 10), yet always progresses under a steady load.
constexpr int kBusyPauseFactor = 3;
constexpr std::chrono::milliseconds kMaxPause{20};  // (a step the scheduler stretched; and a prompt stop)

// The whole pages inside [p, p + n).
void drop_pages(const uint8_t* p, size_t n) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (e > b) (void)madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

}  // namespace

WeightRepack::WeightRepack(const std::vector<kernels::MatRef*>& mats, bool release_source, int threads)
    : release_source_(release_source), n_threads_(std::max(1, threads)) {
  slots_ = std::make_unique<std::atomic<const uint8_t*>[]>(mats.size());
  pending_ = std::make_unique<std::atomic<int>[]>(mats.size());
  for (size_t i = 0; i < mats.size(); ++i) {
    const kernels::MatRef& m = *mats[i];
    slots_[i].store(nullptr);
    pending_[i].store(n_threads_);
    items_.push_back({m, &slots_[i], bytes_});
    bytes_ += *row_bytes(m.type, m.cols) * static_cast<size_t>(m.rows);
  }
  if (bytes_ > 0) {
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      fail(ErrorKind::kResource, "model: cannot allocate " + std::to_string(bytes_) + " bytes for the repacked weights");
    (void)madvise(p, bytes_, MADV_HUGEPAGE);  // best effort, as for the weights copy
    copy_ = static_cast<uint8_t*>(p);
  }
  // Only now, with nothing left that can fail but starting threads, do the MatRefs learn of the slots.
  for (size_t i = 0; i < mats.size(); ++i) mats[i]->repacked = &slots_[i];
  start_ = std::chrono::steady_clock::now();
  running_.store(n_threads_);
  try {
    for (int t = 0; t < n_threads_; ++t) threads_.emplace_back([this, t] { run(t); });
  } catch (...) {  // (no thread: the slots stay empty, GGUF's layout serves)
    stop_.store(true);
    for (auto& t : threads_) t.join();
    for (auto* m : mats) m->repacked = nullptr;
    if (copy_) munmap(copy_, bytes_);
    throw;
  }
}

WeightRepack::~WeightRepack() {
  stop_.store(true);
  for (auto& t : threads_) t.join();
  if (copy_) munmap(copy_, bytes_);
}

void WeightRepack::wait() const {
  while (!done_.load(std::memory_order_acquire)) done_.wait(false, std::memory_order_acquire);
}

void WeightRepack::run(int index) {
  // Below the serving threads: while a request runs, the job takes what they leave (nice 10 weighs
  // ~1/10 of a normal thread); an idle server repacks at full speed.
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
  for (size_t k = 0; k < items_.size() && !stop_.load(std::memory_order_relaxed); ++k) {
    const Item& it = items_[k];
    uint8_t* dst = copy_ + it.offset;
    const int64_t groups = it.src.rows / kernels::kX16Rows;
    const int64_t g1 = groups * (index + 1) / n_threads_;
    for (int64_t g = groups * index / n_threads_; g < g1 && !stop_.load(std::memory_order_relaxed); g += kGroupsPerStep) {
      const auto s0 = std::chrono::steady_clock::now();
      kernels::repack_x16(it.src, dst, g, std::min(g1, g + kGroupsPerStep));
      if (kernels::matmuls_in_flight() > 0)
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
            (std::chrono::steady_clock::now() - s0) * kBusyPauseFactor, kMaxPause));
    }
    if (stop_.load()) break;
    if (pending_[k].fetch_sub(1, std::memory_order_acq_rel) == 1) {  // the last thread on this matrix
      it.slot->store(dst, std::memory_order_release);
      if (release_source_) drop_pages(it.src.data, *row_bytes(it.src.type, it.src.cols) * static_cast<size_t>(it.src.rows));
    }
  }
  if (running_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    seconds_.store(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    done_.store(true, std::memory_order_release);
    done_.notify_all();
  }
}

}  // namespace wai::model
