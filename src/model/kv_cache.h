// Per-sequence KV cache with an optional rolling buffer (Mistral sliding-window attention).
//
// Layout per layer and KV head: k and v, each [capacity, head_dim] IEEE half (uint16_t bits, round
// to nearest even from the f32 activations, as llama.cpp's default f16 cache). Position p lives in slot
// p % capacity. With a sliding window W, capacity = W and memory is bounded however long the sequence
// runs; without one, capacity = the maximum number of positions the sequence may reach.
// Head-major, so that the keys (and values) one attention work item reads, one KV head's positions,
// are one contiguous run that the hardware prefetchers stream. With position-major rows (a position's
// heads side by side) a head's rows were kv_dim halves apart: attend() over 7B-shaped heads took
// 13-17% longer at 560 and 4096 positions (2 threads, from DRAM), and a q4_0 7B decode step 3% longer
// at ~560 positions and 7% at ~3100 (the two layouts alternating step by step in one process).
// n_past() is the number of positions written so far (the next position to write).
#pragma once

#include <cstdint>
#include <vector>

#include "model/model.h"
#include "util/huge_vector.h"

namespace wai::model {

class KvCache {
 public:
  // window: 0 = full attention (capacity = max_positions); > 0: capacity = min(window, max_positions).
  KvCache(const Config& cfg, int64_t max_positions);

  int64_t capacity() const { return capacity_; }
  int64_t window() const { return window_; }
  int64_t n_past() const { return n_past_; }
  int64_t max_positions() const { return max_positions_; }
  int64_t kv_dim() const { return kv_dim_; }
  int64_t n_kv_heads() const { return n_kv_heads_; }
  int64_t head_dim() const { return head_dim_; }
  int64_t n_layers() const { return n_layers_; }
  int64_t bytes() const;  // of the k and v arrays: 2 * n_layers * capacity * kv_dim * 2
  void clear() { n_past_ = 0; }

  // The head_dim halves of (layer, slot, KV head); a head's slots are consecutive runs of head_dim.
  uint16_t* k(int64_t layer, int64_t slot, int64_t head) { return &k_[offset(layer, slot, head)]; }
  uint16_t* v(int64_t layer, int64_t slot, int64_t head) { return &v_[offset(layer, slot, head)]; }
  const uint16_t* k(int64_t layer, int64_t slot, int64_t head) const { return &k_[offset(layer, slot, head)]; }
  const uint16_t* v(int64_t layer, int64_t slot, int64_t head) const { return &v_[offset(layer, slot, head)]; }

  void advance(int64_t n) { n_past_ += n; }  // called by the forward pass after a chunk is written

 private:
  size_t offset(int64_t layer, int64_t slot, int64_t head) const {
    return static_cast<size_t>(((layer * n_kv_heads_ + head) * capacity_ + slot) * head_dim_);
  }

  int64_t window_, capacity_, max_positions_, kv_dim_, n_kv_heads_, head_dim_, n_layers_;
  int64_t n_past_ = 0;
  // In huge pages: a long head run spans many 4 KiB pages, whose TLB misses showed at thousands of
  // positions (util/huge_pages.h).
  HugeVector<uint16_t> k_, v_;
};

}  // namespace wai::model
