#include "model/kv/kv_pool.h"

#include <cstring>
#include <new>
#include <string>

#include "util/error.h"
#include "util/huge_pages.h"

namespace wai::model {

int64_t KvPool::block_bytes(const Config& cfg, int64_t block_size) {
  return 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * block_size * static_cast<int64_t>(sizeof(uint16_t));
}

KvPool::KvPool(const Config& cfg, int64_t n_blocks, int64_t block_size)
    : n_blocks_(n_blocks),
      block_size_(block_size),
      n_layers_(cfg.n_layers),
      n_kv_heads_(cfg.n_kv_heads),
      head_dim_(cfg.head_dim),
      block_bytes_(block_bytes(cfg, block_size)) {
  if (n_blocks < 1) invalid("kv pool: needs at least one block, got " + std::to_string(n_blocks));
  if (n_blocks > INT32_MAX) invalid("kv pool: too many blocks (" + std::to_string(n_blocks) + ")");
  if (block_size < 1) invalid("kv pool: block size must be positive, got " + std::to_string(block_size));
  if (n_layers_ < 1 || n_kv_heads_ < 1 || head_dim_ < 1) invalid("kv pool: the model has no KV heads");
  const size_t half = static_cast<size_t>(budget_bytes() / 2);
  try {
    // Not zeroed: the pages stay uncommitted until a block is first written (attention reads only
    // positions that were written).
    k_ = static_cast<uint16_t*>(huge_alloc(half));
    v_ = static_cast<uint16_t*>(huge_alloc(half));
  } catch (const std::bad_alloc&) {
    huge_free(k_);
    fail(ErrorKind::kResource, "kv pool: cannot reserve " + std::to_string(budget_bytes()) + " bytes for " +
                                   std::to_string(n_blocks) + " blocks");
  }
  const size_t n = static_cast<size_t>(n_blocks);
  refs_.assign(n, 0);
  cached_.assign(n, 0);
  prev_.assign(n, -1);
  next_.assign(n, -1);
  queued_.assign(n, 0);
  for (int32_t b = 0; b < static_cast<int32_t>(n); ++b) push_back(b);
}

KvPool::~KvPool() {
  huge_free(k_);
  huge_free(v_);
}

void KvPool::check(int32_t b) const {
  if (b < 0 || b >= n_blocks_) fail(ErrorKind::kInternal, "kv pool: no block " + std::to_string(b));
}

void KvPool::unlink(int32_t b) {
  const size_t i = static_cast<size_t>(b);
  if (!queued_[i]) return;
  if (prev_[i] >= 0) next_[static_cast<size_t>(prev_[i])] = next_[i];
  else head_ = next_[i];
  if (next_[i] >= 0) prev_[static_cast<size_t>(next_[i])] = prev_[i];
  else tail_ = prev_[i];
  prev_[i] = next_[i] = -1;
  queued_[i] = 0;
}

void KvPool::push_front(int32_t b) {
  const size_t i = static_cast<size_t>(b);
  prev_[i] = -1;
  next_[i] = head_;
  if (head_ >= 0) prev_[static_cast<size_t>(head_)] = b;
  else tail_ = b;
  head_ = b;
  queued_[i] = 1;
}

void KvPool::push_back(int32_t b) {
  const size_t i = static_cast<size_t>(b);
  next_[i] = -1;
  prev_[i] = tail_;
  if (tail_ >= 0) next_[static_cast<size_t>(tail_)] = b;
  else head_ = b;
  tail_ = b;
  queued_[i] = 1;
}

int32_t KvPool::alloc() {
  const int32_t b = head_;
  if (b < 0) return -1;
  unlink(b);
  const size_t i = static_cast<size_t>(b);
  const bool evicted = cached_[i] != 0;
  if (evicted) {
    cached_[i] = 0;
    --cached_idle_;
    ++evictions_;
  }
  refs_[i] = 1;
  ++in_use_;
  if (evicted && evict_hook_) evict_hook_(b);  // the index forgets it
  return b;
}

void KvPool::retain(int32_t b) {
  check(b);
  const size_t i = static_cast<size_t>(b);
  if (refs_[i]++ == 0) {
    unlink(b);
    ++in_use_;
    if (cached_[i]) --cached_idle_;
  }
}

void KvPool::release(int32_t b) {
  check(b);
  const size_t i = static_cast<size_t>(b);
  if (refs_[i] <= 0) fail(ErrorKind::kInternal, "kv pool: block " + std::to_string(b) + " released more often than held");
  if (--refs_[i] > 0) return;
  --in_use_;
  if (cached_[i]) {
    ++cached_idle_;
    push_back(b);
  } else {
    push_front(b);
  }
}

void KvPool::set_cached(int32_t b, bool cached) {
  check(b);
  const size_t i = static_cast<size_t>(b);
  if ((cached_[i] != 0) == cached) return;
  cached_[i] = cached ? 1 : 0;
  if (refs_[i] > 0) return;
  // An idle block changes kind: keep the queue's order (free first, then cached by age).
  unlink(b);
  if (cached) {
    ++cached_idle_;
    push_back(b);
  } else {
    --cached_idle_;
    push_front(b);
  }
}

void KvPool::copy_positions(int32_t dst, int32_t src, int64_t n) {
  check(dst);
  check(src);
  if (n < 0 || n > block_size_) fail(ErrorKind::kInternal, "kv pool: copy of " + std::to_string(n) + " positions");
  if (dst == src || n == 0) return;
  const size_t bytes = static_cast<size_t>(n * head_dim_) * sizeof(uint16_t);
  for (int64_t l = 0; l < n_layers_; ++l)
    for (int64_t h = 0; h < n_kv_heads_; ++h) {
      std::memcpy(k(l, dst, h), k(l, src, h), bytes);
      std::memcpy(v(l, dst, h), v(l, src, h), bytes);
    }
}

}  // namespace wai::model
