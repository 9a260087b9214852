// One pool of fixed-size KV blocks per loaded model: the paged KV cache (vLLM's PagedAttention
// memory model). A block holds the keys and values of `block_size` consecutive positions of one
// sequence, for every layer and KV head, as IEEE halves. Sequences map their positions to blocks
// through block tables (kv_cache.h); the prefix index (prefix_index.h) lets sequences that begin
// with the same tokens share the blocks of that beginning.
//
// Layout: K and V are two arrays of [layer][block][kv head][position in block][head_dim] halves, so
// one attention work item (a layer, a KV head) reads each block's keys as one contiguous run of
// block_size * head_dim halves (4 KiB for Mistral's 16 x 128, one page: the unit the hardware
// prefetchers stream within), and one layer's blocks lie together (fewer TLB entries per layer).
//
// Block states:
//   free    refs 0, holds nothing useful;
//   in use  refs > 0 (held by running sequences; never evicted);
//   cached  refs 0, but the prefix index knows its content (set_cached): kept until the pool needs
//           room, then evicted least recently released first.
// Free and cached blocks wait in one queue: free ones at the front, cached ones appended at the back
// when released, so alloc() takes a free block first, then the least recently used cached one.
//
// Memory is reserved once at the budget and committed by the OS page by page as blocks are first
// written, so an unused budget costs address space, not RAM. Not thread-safe: the engine's loop
// thread owns the pool (stats are published through the engine).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/model.h"

namespace wai::model {

class KvPool {
 public:
  static constexpr int64_t kDefaultBlockSize = 16;

  // n_blocks >= 1, block_size >= 1. Throws wai::Error (kResource) when the memory cannot be reserved.
  KvPool(const Config& cfg, int64_t n_blocks, int64_t block_size = kDefaultBlockSize);
  ~KvPool();
  KvPool(const KvPool&) = delete;
  KvPool& operator=(const KvPool&) = delete;

  // Bytes of one block: K and V of block_size positions for every layer and KV head.
  static int64_t block_bytes(const Config& cfg, int64_t block_size);

  int64_t n_blocks() const { return n_blocks_; }
  int64_t block_size() const { return block_size_; }
  int64_t block_bytes() const { return block_bytes_; }
  int64_t budget_bytes() const { return n_blocks_ * block_bytes_; }
  int64_t n_layers() const { return n_layers_; }
  int64_t n_kv_heads() const { return n_kv_heads_; }
  int64_t head_dim() const { return head_dim_; }

  int64_t in_use() const { return in_use_; }                    // blocks with refs > 0
  int64_t cached() const { return cached_idle_; }               // refs 0, kept for the prefix index
  int64_t available() const { return n_blocks_ - in_use_; }     // what alloc() can still hand out
  uint64_t evictions() const { return evictions_; }

  // A block to write, refs 1: a free one, else the least recently used cached one, evicted (the evict
  // hook runs first so the index forgets it). -1 when every block is in use.
  int32_t alloc();
  // One more reference. A cached block waiting in the queue leaves it (a prefix hit).
  void retain(int32_t b);
  // One reference less. At 0 the block joins the queue: at the back when cached (most recently used),
  // at the front when not (free, taken first).
  void release(int32_t b);
  int32_t refs(int32_t b) const { return refs_[static_cast<size_t>(b)]; }

  // Whether the prefix index holds block b (its content may be reused). Clearing it on an idle block
  // moves the block to the front of the queue.
  void set_cached(int32_t b, bool cached);
  bool is_cached(int32_t b) const { return cached_[static_cast<size_t>(b)] != 0; }
  // Called with a cached block just before alloc() evicts it.
  void set_evict_hook(std::function<void(int32_t)> hook) { evict_hook_ = std::move(hook); }

  // The block_size * head_dim halves of (layer, block, KV head): position i of the block at + i * head_dim.
  uint16_t* k(int64_t layer, int32_t b, int64_t head) { return k_ + offset(layer, b, head); }
  uint16_t* v(int64_t layer, int32_t b, int64_t head) { return v_ + offset(layer, b, head); }
  const uint16_t* k(int64_t layer, int32_t b, int64_t head) const { return k_ + offset(layer, b, head); }
  const uint16_t* v(int64_t layer, int32_t b, int64_t head) const { return v_ + offset(layer, b, head); }

  // Copies positions [0, n) of block src into block dst, every layer and head (copy-on-write of a
  // shared block that a sequence continues inside).
  void copy_positions(int32_t dst, int32_t src, int64_t n);

 private:
  size_t offset(int64_t layer, int32_t b, int64_t head) const {
    return static_cast<size_t>(((layer * n_blocks_ + b) * n_kv_heads_ + head) * block_size_ * head_dim_);
  }
  void unlink(int32_t b);
  void push_front(int32_t b);
  void push_back(int32_t b);
  void check(int32_t b) const;

  int64_t n_blocks_, block_size_, n_layers_, n_kv_heads_, head_dim_, block_bytes_;
  uint16_t* k_ = nullptr;  // huge_alloc'd, [layer][block][head][pos][head_dim]
  uint16_t* v_ = nullptr;
  std::vector<int32_t> refs_;
  std::vector<uint8_t> cached_;
  // The queue of blocks with refs 0, as a doubly linked list over block ids (-1 ends it).
  std::vector<int32_t> prev_, next_;
  std::vector<uint8_t> queued_;
  int32_t head_ = -1, tail_ = -1;
  int64_t in_use_ = 0, cached_idle_ = 0;
  uint64_t evictions_ = 0;
  std::function<void(int32_t)> evict_hook_;
};

}  // namespace wai::model
