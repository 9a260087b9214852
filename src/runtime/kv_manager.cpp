#include "runtime/kv_manager.h"

#include <algorithm>
#include <fstream>
#include <string>

#include "runtime/engine.h"
#include "util/error.h"

namespace wai::runtime {

namespace {

int64_t blocks_for(int64_t positions, int64_t block) { return (positions + block - 1) / block; }

int64_t mem_available_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (f >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return 0;
}

}  // namespace

// (declared in engine.h, beside EngineOptions)
int64_t default_kv_cache_bytes(const model::Config& cfg, const EngineOptions& opts, int64_t ctx) {
  const int64_t B = std::max(1, opts.kv_block_size);
  const int64_t block = model::KvPool::block_bytes(cfg, B);
  int64_t per_seq = blocks_for(ctx, B);
  if (cfg.sliding_window > 0)
    per_seq = std::min(per_seq, blocks_for(cfg.sliding_window - 1, B) + 1 + blocks_for(std::max(opts.batch_size, 1), B));
  const int64_t one = per_seq * block;
  int64_t want = 2 * std::max(opts.parallel, 1) * one;
  const int64_t avail = mem_available_bytes();
  if (avail > 0) want = std::min(want, avail / 2);
  return std::max(want, one);
}

using model::BlockKey;
using model::PrefixIndex;

KvManager::KvManager(const model::Config& cfg, int64_t n_blocks, int64_t block_size, bool prefix_cache, int64_t ctx)
    : pool_(cfg, n_blocks, block_size), window_(cfg.sliding_window), ctx_(ctx) {
  if (prefix_cache) index_.emplace(pool_);
}

int64_t KvManager::blocks_to_prefill(int64_t from, int64_t to) const {
  const int64_t B = pool_.block_size();
  const int64_t all = (to + B - 1) / B - from / B;
  if (window_ <= 0) return all;
  return std::min(all, (window_ - 1 + B - 1) / B + 2);
}

model::PrefixMatch KvManager::match(std::span<const int32_t> tokens, int64_t limit, uint64_t ns) const {
  if (!index_) return {};
  return index_->match(PrefixIndex::root(ns), tokens, limit, window_);
}

int64_t KvManager::idle_blocks(const model::PrefixMatch& m) const {
  int64_t n = 0;
  for (int32_t b : m.blocks)
    if (b >= 0 && pool_.refs(b) == 0) ++n;
  return n;
}

int64_t KvManager::begin(model::KvCache& cache, const model::PrefixMatch& m, std::vector<BlockKey>& keys) {
  keys.clear();
  if (m.n_cached <= 0) return 0;
  std::vector<int32_t> blocks = m.blocks;
  int64_t n = static_cast<int64_t>(blocks.size()) * pool_.block_size();
  int32_t copy = -1;
  if (m.copy_n > 0) {
    // Hold what we reuse first, so that the allocation below cannot evict it.
    for (int32_t b : m.blocks)
      if (b >= 0) pool_.retain(b);
    pool_.retain(m.copy_src);
    copy = pool_.alloc();
    if (copy >= 0) {
      pool_.copy_positions(copy, m.copy_src, m.copy_n);
      blocks.push_back(copy);
      n += m.copy_n;
    }
    pool_.release(m.copy_src);
    for (int32_t b : m.blocks)
      if (b >= 0) pool_.release(b);
  }
  if (n > 0) cache.adopt(blocks, n);
  if (copy >= 0) pool_.release(copy);  // the cache holds it now
  keys = m.keys;
  return n;
}

void KvManager::index_full(const model::KvCache& cache, std::span<const int32_t> tokens, uint64_t ns,
                           std::vector<BlockKey>& keys) {
  if (!index_) return;
  const int64_t B = pool_.block_size();
  const int64_t whole = cache.n_past() / B;
  for (int64_t i = static_cast<int64_t>(keys.size()); i < whole; ++i) {
    const BlockKey parent = i > 0 ? keys[static_cast<size_t>(i - 1)] : PrefixIndex::root(ns);
    auto blk = tokens.subspan(static_cast<size_t>(i * B), static_cast<size_t>(B));
    keys.push_back(PrefixIndex::chain(parent, blk));
    const int32_t b = cache.blocks()[static_cast<size_t>(i)];
    if (b >= 0) index_->add(parent, blk, b);
  }
}

void KvManager::index_tail(const model::KvCache& cache, std::span<const int32_t> tokens, uint64_t ns,
                           const std::vector<BlockKey>& keys) {
  if (!index_) return;
  const int64_t B = pool_.block_size();
  const int64_t i = cache.n_past() / B, r = cache.n_past() % B;
  if (r == 0 || static_cast<int64_t>(keys.size()) != i) return;
  const int32_t b = cache.block_of(i * B);
  if (b < 0) return;
  const BlockKey parent = i > 0 ? keys[static_cast<size_t>(i - 1)] : PrefixIndex::root(ns);
  index_->add(parent, tokens.subspan(static_cast<size_t>(i * B), static_cast<size_t>(r)), b);
}

}  // namespace wai::runtime
