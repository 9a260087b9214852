#include "model/kv/kv_cache.h"

#include <algorithm>
#include <string>

#include "util/error.h"

namespace wai::model {

namespace {
int64_t blocks_for(int64_t positions, int64_t block) { return (positions + block - 1) / block; }
}  // namespace

KvCache::KvCache(const Config& cfg, int64_t max_positions)
    : block_(KvPool::kDefaultBlockSize), window_(cfg.sliding_window), max_positions_(max_positions) {
  if (max_positions <= 0) invalid("kv cache: max_positions must be positive, got " + std::to_string(max_positions));
  if (window_ < 0) invalid("kv cache: negative sliding window");
  own_ = std::make_unique<KvPool>(cfg, blocks_for(max_positions, block_), block_);
  pool_ = own_.get();
}

KvCache::KvCache(KvPool& pool, int64_t window, int64_t max_positions)
    : pool_(&pool), block_(pool.block_size()), window_(window), max_positions_(max_positions) {
  if (max_positions <= 0) invalid("kv cache: max_positions must be positive, got " + std::to_string(max_positions));
  if (window_ < 0) invalid("kv cache: negative sliding window");
}

KvCache::~KvCache() { clear(); }

int64_t KvCache::reserved() const { return static_cast<int64_t>(table_.size()) * block_ - n_past_; }

int64_t KvCache::reserve(int64_t n) {
  if (n < 0 || n_past_ + n > max_positions_)
    invalid("kv cache: cannot reserve " + std::to_string(n) + " positions after " + std::to_string(n_past_) +
            " (limit " + std::to_string(max_positions_) + ")");
  if (window_ > 0) release_below(lowest_visible(n_past_));
  const size_t need = static_cast<size_t>(blocks_for(n_past_ + n, block_));
  while (table_.size() < need) {
    const int32_t b = pool_->alloc();
    if (b < 0) break;
    table_.push_back(b);
    ++held_;
  }
  return std::min(n, reserved());
}

void KvCache::advance(int64_t n) {
  if (n < 0 || n > reserved())
    fail(ErrorKind::kInternal, "kv cache: advance by " + std::to_string(n) + " past the reserved blocks");
  n_past_ += n;
}

void KvCache::release_below(int64_t pos) {
  const int64_t first_kept = pos / block_;  // the block holding `pos` stays
  for (; released_ < first_kept && released_ < static_cast<int64_t>(table_.size()); ++released_) {
    int32_t& b = table_[static_cast<size_t>(released_)];
    if (b >= 0) {
      pool_->release(b);
      --held_;
      b = -1;
    }
  }
}

void KvCache::clear() {
  for (size_t i = table_.size(); i-- > 0;)
    if (table_[i] >= 0) pool_->release(table_[i]);
  table_.clear();
  held_ = 0;
  released_ = 0;
  n_past_ = 0;
}

void KvCache::adopt(std::span<const int32_t> blocks, int64_t n) {
  if (!table_.empty() || n_past_ != 0) fail(ErrorKind::kInternal, "kv cache: adopt() on a sequence that has started");
  if (n < 0 || n > static_cast<int64_t>(blocks.size()) * block_ || blocks_for(n, block_) != static_cast<int64_t>(blocks.size()) ||
      n > max_positions_)
    fail(ErrorKind::kInternal, "kv cache: adopt() of " + std::to_string(blocks.size()) + " blocks for " +
                                   std::to_string(n) + " positions");
  for (int32_t b : blocks) {
    if (b >= 0) {
      pool_->retain(b);
      ++held_;
    }
    table_.push_back(b);
  }
  n_past_ = n;
  released_ = 0;
  while (released_ < static_cast<int64_t>(table_.size()) && table_[static_cast<size_t>(released_)] < 0) ++released_;
  if (window_ > 0) release_below(lowest_visible(n_past_));
  // Every block a later query can see must be there.
  for (int64_t i = lowest_visible(n_past_) / block_; i < static_cast<int64_t>(table_.size()); ++i)
    if (table_[static_cast<size_t>(i)] < 0)
      fail(ErrorKind::kInternal, "kv cache: adopt() without block " + std::to_string(i) + ", which the window still sees");
}

void KvCache::replace_block(int64_t i, int32_t b) {
  if (i < 0 || i >= static_cast<int64_t>(table_.size()) || table_[static_cast<size_t>(i)] < 0 || b < 0)
    fail(ErrorKind::kInternal, "kv cache: replace_block(" + std::to_string(i) + ")");
  pool_->release(table_[static_cast<size_t>(i)]);
  table_[static_cast<size_t>(i)] = b;
}

}  // namespace wai::model
