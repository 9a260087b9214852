// Regroups a model's q4_0 and q8_0 matrices into the q4x16 / q8x16 layouts (kernels/repack.h) on
// background threads, while the model already serves from GGUF's layout.
//
// Why in the background: the x16 kernels stream the weights ~20-35% faster in decode, but
// rewriting a 4 GB model takes 1-2 s, and the model must be ready to serve within a second of start.
// So a load maps the file and returns at once; this job then fills a second copy matrix by matrix
// (layer order, as a forward pass reads them) and publishes each through its MatRef's `repacked`
// slot (release store; matmul's acquire load picks it up at its next call, a call in flight finishes
// on the copy it started with). Once a matrix is published, its pages of the file mapping are
// dropped from the process (MADV_DONTNEED: a read-only file mapping re-reads them from the page cache
// if anything still touches them), so the resident size stays about one copy of the weights.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "kernels/matmul.h"

namespace wai::model {

class WeightRepack {
 public:
  // Points each matrix's `repacked` slot at this job's slots and starts `threads` threads (each takes
  // its share of every matrix's row groups; the last to finish a matrix publishes it). The MatRefs
  // must stay where they are for the job's life; release_source: the matrices are in a read-only
  // file mapping whose pages may be dropped once repacked.
  WeightRepack(const std::vector<kernels::MatRef*>& mats, bool release_source, int threads);
  ~WeightRepack();  // stops the threads between row groups and joins them
  WeightRepack(const WeightRepack&) = delete;
  WeightRepack& operator=(const WeightRepack&) = delete;

  void wait() const;                                  // until every matrix is published (or stopped)
  bool done() const { return done_.load(std::memory_order_acquire); }
  double seconds() const { return seconds_.load(); }  // wall time of the whole job, once done
  size_t bytes() const { return bytes_; }             // size of the repacked copy

 private:
  struct Item {
    kernels::MatRef src;
    std::atomic<const uint8_t*>* slot;
    size_t offset;  // in the copy
  };
  void run(int index);

  std::vector<Item> items_;
  std::unique_ptr<std::atomic<const uint8_t*>[]> slots_;
  uint8_t* copy_ = nullptr;
  size_t bytes_ = 0;
  bool release_source_ = false;
  std::unique_ptr<std::atomic<int>[]> pending_;  // per item: threads still working on it
  int n_threads_ = 1;
  std::atomic<int> running_{0};
  std::chrono::steady_clock::time_point start_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::atomic<double> seconds_{0.0};
  std::vector<std::thread> threads_;
};

}  // namespace wai::model
