// One sequence's KV cache: a block table into a KvPool (kv_pool.h). Logical block i holds positions
// [i * B, (i + 1) * B), B = the pool's block size; table entry i names its pool block, or -1 where a
// sliding window made the block unneeded (released) or it is not reserved yet.
//
// Sliding window W (Mistral): a query at position p sees keys p - W < j <= p. Blocks wholly below
// n_past - W + 1 are released at the next reserve() (not at once: the engine indexes a step's full
// blocks after the step, before they go), so a running sequence holds at most ceil((W - 1) / B) + 1
// blocks plus those of the chunk being prefilled: memory stays bounded by the window however long the
// sequence runs. Without a window every block stays until clear().
//
// Shared prefixes: adopt() starts a sequence on blocks another sequence computed (the engine finds
// them in the prefix index); the sequence then writes only its own later positions, into blocks it
// allocated. Blocks are never written while shared: a sequence that continues inside a cached block
// gets a copy first (the engine's copy-on-write, KvPool::copy_positions).
//
// n_past() is the number of positions written so far (the next position to write).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/kv/kv_pool.h"
#include "model/model.h"

namespace wai::model {

class KvCache {
 public:
  // A cache with a pool of its own, for one sequence of up to max_positions (the CLI, benchmarks and
  // tests). The pool reserves address space for max_positions; RAM is committed only for blocks
  // written, and with a window released blocks are reused, so it stays bounded by the window.
  KvCache(const Config& cfg, int64_t max_positions);
  // A sequence in a shared pool (the engine). window: 0 = full attention.
  KvCache(KvPool& pool, int64_t window, int64_t max_positions);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int64_t window() const { return window_; }
  int64_t n_past() const { return n_past_; }
  int64_t max_positions() const { return max_positions_; }
  int64_t block_size() const { return block_; }
  int64_t n_layers() const { return pool_->n_layers(); }
  int64_t n_kv_heads() const { return pool_->n_kv_heads(); }
  int64_t head_dim() const { return pool_->head_dim(); }
  int64_t kv_dim() const { return pool_->n_kv_heads() * pool_->head_dim(); }
  int64_t held_blocks() const { return held_; }
  int64_t bytes() const { return held_ * pool_->block_bytes(); }  // of the blocks this sequence holds
  KvPool& pool() { return *pool_; }
  const KvPool& pool() const { return *pool_; }

  // The first position a query at `pos` attends to.
  int64_t lowest_visible(int64_t pos) const { return window_ > 0 && pos - window_ + 1 > 0 ? pos - window_ + 1 : 0; }

  // The pool block holding position pos (-1 if none).
  int32_t block_of(int64_t pos) const {
    const size_t i = static_cast<size_t>(pos / block_);
    return i < table_.size() ? table_[i] : -1;
  }
  std::span<const int32_t> blocks() const { return table_; }

  // The head_dim halves of (layer, position, KV head); the position's block must be held. Positions
  // of one block are consecutive runs of head_dim.
  const uint16_t* k(int64_t layer, int64_t pos, int64_t head) const {
    return pool_->k(layer, block_of(pos), head) + (pos % block_) * head_dim();
  }
  const uint16_t* v(int64_t layer, int64_t pos, int64_t head) const {
    return pool_->v(layer, block_of(pos), head) + (pos % block_) * head_dim();
  }
  uint16_t* k(int64_t layer, int64_t pos, int64_t head) { return pool_->k(layer, block_of(pos), head) + (pos % block_) * head_dim(); }
  uint16_t* v(int64_t layer, int64_t pos, int64_t head) { return pool_->v(layer, block_of(pos), head) + (pos % block_) * head_dim(); }

  // Makes blocks exist for positions [n_past, n_past + n) (n_past + n <= max_positions); returns how
  // many of those positions have a block (< n only when the pool ran out; blocks taken stay held).
  int64_t reserve(int64_t n);
  // Positions from n_past on that already have a block.
  int64_t reserved() const;
  // n_past += n (those positions written: the forward pass calls it after a chunk).
  void advance(int64_t n);
  // With a window: releases the blocks no query from n_past on can see (reserve() does it first).
  void release_unseen() {
    if (window_ > 0) release_below(lowest_visible(n_past_));
  }
  // Releases every block (last block first, so that a prefix's head outlives its tail in the pool's
  // queue) and starts over at position 0.
  void clear();
  // Starts an empty sequence on cached blocks: table entry i = blocks[i] (-1: not needed, below the
  // window), a reference taken on each; n_past = n (n <= blocks.size() * B; blocks past n_past's
  // block are not allowed).
  void adopt(std::span<const int32_t> blocks, int64_t n);
  // Replaces the block of logical index i (held by this sequence) with `b`, whose reference the caller
  // hands over; the old block is released. For copy-on-write.
  void replace_block(int64_t i, int32_t b);

 private:
  void release_below(int64_t pos);

  std::unique_ptr<KvPool> own_;
  KvPool* pool_;
  int64_t block_, window_, max_positions_;
  int64_t n_past_ = 0;
  int64_t released_ = 0;  // table entries below this were released by the window (or never held)
  int64_t held_ = 0;
  std::vector<int32_t> table_;
};

}  // namespace wai::model
