// Per-sequence KV cache with an optional rolling buffer (Mistral sliding-window attention).
//
// Layout per layer: k and v, each [capacity, n_kv_heads * head_dim] IEEE half (uint16_t bits, round
// to nearest even from the f32 activations, as llama.cpp's default f16 cache). Position p lives in slot
// p % capacity. With a sliding window W, capacity = W and memory is bounded however long the sequence
// runs; without one, capacity = the maximum number of positions the sequence may reach.
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
  int64_t n_layers() const { return n_layers_; }
  int64_t bytes() const;  // of the k and v arrays: 2 * n_layers * capacity * kv_dim * 2
  void clear() { n_past_ = 0; }

  // The kv_dim halves of (layer, slot); heads are consecutive runs of head_dim.
  uint16_t* k(int64_t layer, int64_t slot) { return &k_[(layer * capacity_ + slot) * kv_dim_]; }
  uint16_t* v(int64_t layer, int64_t slot) { return &v_[(layer * capacity_ + slot) * kv_dim_]; }
  const uint16_t* k(int64_t layer, int64_t slot) const { return &k_[(layer * capacity_ + slot) * kv_dim_]; }
  const uint16_t* v(int64_t layer, int64_t slot) const { return &v_[(layer * capacity_ + slot) * kv_dim_]; }

  void advance(int64_t n) { n_past_ += n; }  // called by the forward pass after a chunk is written

 private:
  int64_t window_, capacity_, max_positions_, kv_dim_, n_layers_;
  int64_t n_past_ = 0;
  // In huge pages: attention walks a head's rows kv_dim halves apart, one 4 KiB page per two
  // positions, which at thousands of positions missed the TLB on most rows (util/huge_pages.h).
  HugeVector<uint16_t> k_, v_;
};

}  // namespace wai::model
