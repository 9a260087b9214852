// The paged KV cache's parts on their own (model/kv/): the block pool (allocation, reference counts,
// the LRU order of cached blocks, eviction), a sequence's block table (reservation, the sliding
// window's release, adoption of shared blocks) and the prefix index (chained keys, full and partial
// matches, copy-on-write sources, windows, namespaces, forgetting evicted blocks).
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "model/kv/kv_cache.h"
#include "model/kv/kv_pool.h"
#include "model/kv/prefix_index.h"
#include "model/model.h"
#include "util/error.h"

namespace wai::model {
namespace {

// The fields the KV structures read.
Config kv_config(int64_t layers = 2, int64_t window = 0) {
  Config c;
  c.n_layers = layers;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.sliding_window = window;
  return c;
}

std::vector<int32_t> iota_tokens(int n, int32_t from = 1) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), from);
  return t;
}

// ---- KvPool ---------------------------------------------------------------------------------------

TEST(ModelKvPool, SizesAndLayoutAreDisjoint) {
  const Config c = kv_config(3);
  KvPool pool(c, 5, 4);
  EXPECT_EQ(KvPool::block_bytes(c, 4), int64_t(2 * 3 * 2 * 8 * 4 * 2));  // K+V, layers, heads, dim, positions, half
  EXPECT_EQ(pool.budget_bytes(), 5 * pool.block_bytes());
  // Every (layer, block, head) run of block_size * head_dim halves is its own, in K and in V alike.
  const int64_t run = 4 * 8;
  std::vector<int> seen(static_cast<size_t>(pool.budget_bytes() / 2 / 2), 0);
  const uint16_t* base = pool.k(0, 0, 0);
  for (int64_t l = 0; l < 3; ++l)
    for (int32_t b = 0; b < 5; ++b)
      for (int64_t h = 0; h < 2; ++h) {
        EXPECT_EQ(pool.v(l, b, h) - pool.v(0, 0, 0), pool.k(l, b, h) - base);
        for (int64_t i = 0; i < run; ++i) ++seen[static_cast<size_t>(pool.k(l, b, h) - base + i)];
      }
  for (int n : seen) ASSERT_EQ(n, 1);
  // One layer's blocks lie together.
  EXPECT_EQ(pool.k(1, 0, 0) - base, 5 * 2 * run);
  EXPECT_THROW(KvPool(c, 0, 4), Error);
  EXPECT_THROW(KvPool(c, 4, 0), Error);
}

TEST(ModelKvPool, AllocUntilEmptyThenReuseFreedFirst) {
  KvPool pool(kv_config(), 3, 4);
  std::set<int32_t> got;
  for (int i = 0; i < 3; ++i) got.insert(pool.alloc());
  EXPECT_EQ(got, (std::set<int32_t>{0, 1, 2}));
  EXPECT_EQ(pool.alloc(), -1);
  EXPECT_EQ(pool.in_use(), 3);
  EXPECT_EQ(pool.available(), 0);
  pool.release(1);
  EXPECT_EQ(pool.available(), 1);
  EXPECT_EQ(pool.alloc(), 1);
  EXPECT_THROW(pool.release(7), Error);
}

TEST(ModelKvPool, ReferenceCountsKeepSharedBlocks) {
  KvPool pool(kv_config(), 2, 4);
  const int32_t a = pool.alloc();
  pool.retain(a);
  EXPECT_EQ(pool.refs(a), 2);
  pool.release(a);
  EXPECT_EQ(pool.in_use(), 1);
  pool.release(a);
  EXPECT_EQ(pool.in_use(), 0);
  EXPECT_THROW(pool.release(a), Error);  // released more often than held
}

// Free blocks go first; then cached ones, least recently released first. The evict hook sees each
// evicted block after the pool stopped counting it as cached.
TEST(ModelKvPool, EvictsCachedBlocksLeastRecentlyUsedFirst) {
  KvPool pool(kv_config(), 4, 4);
  std::vector<int32_t> evicted;
  pool.set_evict_hook([&](int32_t b) {
    EXPECT_FALSE(pool.is_cached(b));
    evicted.push_back(b);
  });
  std::vector<int32_t> b(4);
  for (auto& x : b) x = pool.alloc();
  for (int32_t x : b) pool.set_cached(x, true);
  // Released in the order 2, 0, 3: that is the LRU order. Block 1 is released uncached: free.
  pool.release(b[2]);
  pool.release(b[0]);
  pool.release(b[3]);
  pool.set_cached(b[1], false);
  pool.release(b[1]);
  EXPECT_EQ(pool.cached(), 3);
  EXPECT_EQ(pool.in_use(), 0);
  EXPECT_EQ(pool.alloc(), b[1]);  // free first, no eviction
  EXPECT_TRUE(evicted.empty());
  // A hit on block 2 takes it off the queue; released again it becomes the most recent.
  pool.retain(b[2]);
  EXPECT_EQ(pool.cached(), 2);
  pool.release(b[2]);
  EXPECT_EQ(pool.alloc(), b[0]);
  EXPECT_EQ(pool.alloc(), b[3]);
  EXPECT_EQ(pool.alloc(), b[2]);
  EXPECT_EQ(evicted, (std::vector<int32_t>{b[0], b[3], b[2]}));
  EXPECT_EQ(pool.evictions(), 3u);
  EXPECT_EQ(pool.cached(), 0);
  EXPECT_EQ(pool.alloc(), -1);
}

TEST(ModelKvPool, BlocksInUseAreNeverEvicted) {
  KvPool pool(kv_config(), 2, 4);
  int calls = 0;
  pool.set_evict_hook([&](int32_t) { ++calls; });
  const int32_t a = pool.alloc(), b = pool.alloc();
  pool.set_cached(a, true);
  pool.set_cached(b, true);
  pool.release(b);
  EXPECT_EQ(pool.alloc(), b);  // the idle cached one
  EXPECT_EQ(pool.alloc(), -1);  // a is held: not taken although cached
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(pool.refs(a), 1);
}

TEST(ModelKvPool, CopyPositionsCopiesEveryLayerAndHead) {
  const Config c = kv_config(2);
  KvPool pool(c, 2, 4);
  const int32_t src = pool.alloc(), dst = pool.alloc();
  for (int64_t l = 0; l < 2; ++l)
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < 4 * 8; ++i) {
        pool.k(l, src, h)[i] = static_cast<uint16_t>(1000 + l * 100 + h * 50 + i);
        pool.v(l, src, h)[i] = static_cast<uint16_t>(2000 + l * 100 + h * 50 + i);
        pool.k(l, dst, h)[i] = pool.v(l, dst, h)[i] = 7;
      }
  pool.copy_positions(dst, src, 3);
  for (int64_t l = 0; l < 2; ++l)
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < 4 * 8; ++i) {
        const bool copied = i < 3 * 8;
        EXPECT_EQ(pool.k(l, dst, h)[i], copied ? pool.k(l, src, h)[i] : 7);
        EXPECT_EQ(pool.v(l, dst, h)[i], copied ? pool.v(l, src, h)[i] : 7);
      }
  EXPECT_THROW(pool.copy_positions(dst, src, 5), Error);
}

// ---- KvCache --------------------------------------------------------------------------------------

TEST(ModelKvCache, ReservesBlocksAndMapsPositions) {
  const Config c = kv_config();
  KvPool pool(c, 10, 4);
  KvCache kv(pool, 0, 100);
  EXPECT_EQ(kv.reserve(6), 6);
  EXPECT_EQ(kv.held_blocks(), 2);
  EXPECT_EQ(kv.reserved(), 8);
  kv.advance(6);
  EXPECT_EQ(kv.n_past(), 6);
  EXPECT_EQ(kv.reserved(), 2);
  EXPECT_THROW(kv.advance(3), Error);
  // Positions within a block are consecutive head_dim runs of its (layer, head) run.
  EXPECT_EQ(kv.k(1, 5, 1), pool.k(1, kv.block_of(5), 1) + 1 * 8);
  EXPECT_EQ(kv.v(0, 4, 0), pool.v(0, kv.block_of(4), 0));
  EXPECT_EQ(kv.bytes(), 2 * pool.block_bytes());
  EXPECT_THROW(kv.reserve(95), Error);  // past max_positions
  kv.clear();
  EXPECT_EQ(pool.in_use(), 0);
  EXPECT_EQ(kv.n_past(), 0);
}

TEST(ModelKvCache, ReserveStopsWhenThePoolRunsDry) {
  KvPool pool(kv_config(), 2, 4);
  KvCache a(pool, 0, 100), b(pool, 0, 100);
  EXPECT_EQ(a.reserve(5), 5);  // two blocks
  EXPECT_EQ(b.reserve(3), 0);
  a.clear();
  EXPECT_EQ(b.reserve(10), 8);  // what two blocks hold
  EXPECT_EQ(b.held_blocks(), 2);
}

// Window W = 6, blocks of 4: a query at p sees p-5..p, so the blocks wholly below n_past - 5 go at the
// next reserve(), and however long the sequence runs it holds at most ceil((W - 1) / B) + 1 blocks
// plus the chunk's.
TEST(ModelKvCache, SlidingWindowReleasesWhatNoQuerySees) {
  KvPool pool(kv_config(2, 6), 4, 4);
  KvCache kv(pool, 6, 1000);
  for (int64_t p = 0; p < 200; ++p) {
    ASSERT_EQ(kv.reserve(1), 1) << "at " << p;
    EXPECT_LE(kv.held_blocks(), 3);
    for (int64_t q = kv.lowest_visible(p); q <= p; ++q) ASSERT_GE(kv.block_of(q), 0) << p << " " << q;
    kv.advance(1);
  }
  EXPECT_EQ(kv.lowest_visible(10), 5);
  EXPECT_EQ(kv.lowest_visible(3), 0);
  kv.clear();
  EXPECT_EQ(pool.in_use(), 0);
}

TEST(ModelKvCache, AdoptSharesBlocksAndClearReleasesLastFirst) {
  KvPool pool(kv_config(), 6, 4);
  KvCache a(pool, 0, 100);
  a.reserve(10);
  a.advance(10);
  const std::vector<int32_t> blocks(a.blocks().begin(), a.blocks().end());
  KvCache b(pool, 0, 100);
  b.adopt(std::span<const int32_t>(blocks.data(), 2), 8);
  EXPECT_EQ(b.n_past(), 8);
  EXPECT_EQ(pool.refs(blocks[0]), 2);
  EXPECT_EQ(pool.refs(blocks[2]), 1);
  EXPECT_EQ(b.k(0, 5, 1), a.k(0, 5, 1));  // the same memory, no copy
  EXPECT_EQ(b.reserve(1), 1);
  EXPECT_NE(b.block_of(8), a.block_of(8));  // its own block for its own positions
  EXPECT_THROW(b.adopt(blocks, 10), Error);  // already started
  // Cached blocks released by clear(): the last block first, so the prefix's head is the most recent.
  for (int32_t x : blocks) pool.set_cached(x, true);
  b.clear();
  a.clear();
  std::vector<int32_t> order;
  pool.set_evict_hook([&](int32_t x) { order.push_back(x); });
  while (pool.alloc() >= 0) {
  }
  EXPECT_EQ(order, (std::vector<int32_t>{blocks[2], blocks[1], blocks[0]}));
}

TEST(ModelKvCache, AdoptWithWindowNeedsOnlyVisibleBlocks) {
  KvPool pool(kv_config(2, 6), 6, 4);
  KvCache a(pool, 0, 100);
  a.reserve(16);
  a.advance(16);
  std::vector<int32_t> blocks(a.blocks().begin(), a.blocks().end());
  blocks[0] = blocks[1] = -1;  // positions 0..7: below what position 16 sees (11..16)
  KvCache b(pool, 6, 100);
  b.adopt(blocks, 16);
  EXPECT_EQ(b.held_blocks(), 2);
  blocks[2] = -1;
  KvCache c(pool, 6, 100);
  EXPECT_THROW(c.adopt(blocks, 16), Error);  // block 2 holds 8..11: position 11 is still seen
}

// ---- PrefixIndex ----------------------------------------------------------------------------------

// Computes `tokens` into a fresh sequence and indexes its blocks (full ones, then the partial tail),
// as the engine does; returns the sequence's block table.
std::vector<int32_t> compute_and_index(KvPool& pool, PrefixIndex& idx, const std::vector<int32_t>& tokens,
                                       uint64_t ns = 0) {
  const int64_t B = pool.block_size();
  KvCache kv(pool, 0, 1000);
  EXPECT_EQ(kv.reserve(static_cast<int64_t>(tokens.size())), static_cast<int64_t>(tokens.size()));
  kv.advance(static_cast<int64_t>(tokens.size()));
  BlockKey parent = PrefixIndex::root(ns);
  const std::span<const int32_t> t(tokens);
  size_t i = 0;
  for (; (i + 1) * B <= tokens.size(); ++i) {
    auto blk = t.subspan(i * B, static_cast<size_t>(B));
    idx.add(parent, blk, kv.blocks()[i]);
    parent = PrefixIndex::chain(parent, blk);
  }
  if (i * B < tokens.size()) idx.add(parent, t.subspan(i * B), kv.blocks()[i]);
  return {kv.blocks().begin(), kv.blocks().end()};  // kv's destructor releases; the blocks stay cached
}

TEST(ModelPrefixIndex, KeysChainEverythingBefore) {
  const std::vector<int32_t> x = {1, 2, 3, 4}, y = {5, 6, 7, 8};
  const BlockKey r0 = PrefixIndex::root(0), r1 = PrefixIndex::root(1);
  EXPECT_NE(r0, r1);
  EXPECT_EQ(PrefixIndex::chain(r0, x), PrefixIndex::chain(r0, x));
  EXPECT_NE(PrefixIndex::chain(r0, x), PrefixIndex::chain(r1, x));
  // The same block after different prefixes has different keys.
  EXPECT_NE(PrefixIndex::chain(PrefixIndex::chain(r0, x), y), PrefixIndex::chain(PrefixIndex::chain(r0, y), y));
  EXPECT_NE(PrefixIndex::chain(r0, x), PrefixIndex::chain(r0, std::vector<int32_t>{1, 2, 3}));
}

TEST(ModelPrefixIndex, MatchesWholeBlocksThenCopiesThePartialOne) {
  KvPool pool(kv_config(), 16, 4);
  PrefixIndex idx(pool);
  const auto prompt = iota_tokens(10);  // blocks [1..4] [5..8], tail [9 10]
  const auto blocks = compute_and_index(pool, idx, prompt);
  EXPECT_EQ(idx.size(), 3u);
  EXPECT_EQ(pool.cached(), 3);
  EXPECT_EQ(pool.in_use(), 0);

  // The same prompt plus more: whole blocks, then positions 8, 9 copied from the tail block.
  auto longer = prompt;
  longer.insert(longer.end(), {11, 12, 13});
  PrefixMatch m = idx.match(PrefixIndex::root(0), longer, 100, 0);
  EXPECT_EQ(m.n_cached, 10);
  EXPECT_EQ(m.blocks, (std::vector<int32_t>{blocks[0], blocks[1]}));
  EXPECT_EQ(m.copy_src, blocks[2]);
  EXPECT_EQ(m.copy_n, 2);
  ASSERT_EQ(m.keys.size(), 2u);

  // Diverging inside the second block: one whole block, then the shared beginning of the second.
  auto fork = prompt;
  fork[6] = 99;
  m = idx.match(PrefixIndex::root(0), fork, 100, 0);
  EXPECT_EQ(m.n_cached, 6);
  EXPECT_EQ(m.blocks, (std::vector<int32_t>{blocks[0]}));
  EXPECT_EQ(m.copy_src, blocks[1]);
  EXPECT_EQ(m.copy_n, 2);

  // limit cuts the match (the engine keeps one position to compute logits from).
  m = idx.match(PrefixIndex::root(0), prompt, 9, 0);
  EXPECT_EQ(m.n_cached, 9);
  EXPECT_EQ(m.copy_n, 1);
  m = idx.match(PrefixIndex::root(0), prompt, 8, 0);
  EXPECT_EQ(m.n_cached, 8);
  EXPECT_EQ(m.copy_n, 0);
  EXPECT_EQ(m.copy_src, -1);

  // Another first block: nothing (full attention needs every block from position 0).
  auto other = prompt;
  other[0] = 77;
  EXPECT_EQ(idx.match(PrefixIndex::root(0), other, 100, 0).n_cached, 0);
  // Another namespace (a LoRA adapter): nothing.
  EXPECT_EQ(idx.match(PrefixIndex::root(5), prompt, 100, 0).n_cached, 0);
}

TEST(ModelPrefixIndex, DuplicatesKeepTheFirstBlock) {
  KvPool pool(kv_config(), 16, 4);
  PrefixIndex idx(pool);
  const auto prompt = iota_tokens(6);
  const auto a = compute_and_index(pool, idx, prompt);
  const auto b = compute_and_index(pool, idx, prompt);
  EXPECT_EQ(idx.size(), 2u);  // one full block, one partial
  EXPECT_FALSE(pool.is_cached(b[0]));
  EXPECT_FALSE(pool.is_cached(b[1]));
  const PrefixMatch m = idx.match(PrefixIndex::root(0), prompt, 100, 0);
  EXPECT_EQ(m.blocks, (std::vector<int32_t>{a[0]}));
  EXPECT_EQ(m.copy_src, a[1]);
  // A shorter partial content already covered by a registered one is not added either.
  const BlockKey k0 = PrefixIndex::chain(PrefixIndex::root(0), std::span<const int32_t>(prompt.data(), 4));
  const int32_t spare = pool.alloc();
  EXPECT_FALSE(idx.add(k0, std::vector<int32_t>{5}, spare));
  EXPECT_TRUE(idx.add(k0, std::vector<int32_t>{6}, spare));
  pool.release(spare);
}

TEST(ModelPrefixIndex, EvictedBlocksAreForgotten) {
  KvPool pool(kv_config(), 3, 4);
  PrefixIndex idx(pool);
  const auto prompt = iota_tokens(12);
  compute_and_index(pool, idx, prompt);
  EXPECT_EQ(idx.match(PrefixIndex::root(0), prompt, 100, 0).n_cached, 12);
  // Taking one block evicts the least recently released: the last block (clear() releases it first).
  const int32_t x = pool.alloc();
  EXPECT_EQ(idx.size(), 2u);
  EXPECT_EQ(idx.match(PrefixIndex::root(0), prompt, 100, 0).n_cached, 8);
  pool.alloc();
  pool.alloc();
  EXPECT_EQ(idx.size(), 0u);
  EXPECT_EQ(idx.match(PrefixIndex::root(0), prompt, 100, 0).n_cached, 0);
  pool.release(x);
}

// With window W a hit needs only the blocks the first new position sees; earlier ones may be gone.
TEST(ModelPrefixIndex, WindowedMatchNeedsOnlyVisibleBlocks) {
  const auto prompt = iota_tokens(20);  // 5 full blocks of 4
  auto longer = prompt;
  longer.push_back(21);
  {
    // The tail evicted first (clear() released it first): the longest prefix whose visible blocks
    // are all there. Position 12 sees 7..12: blocks 1 and 2.
    KvPool pool(kv_config(2, 6), 5, 4);
    PrefixIndex idx(pool);
    compute_and_index(pool, idx, prompt);
    const int32_t e1 = pool.alloc(), e2 = pool.alloc();  // evicts positions 16..19, then 12..15
    EXPECT_EQ(idx.size(), 3u);
    const PrefixMatch m = idx.match(PrefixIndex::root(0), longer, 100, 6);
    EXPECT_EQ(m.n_cached, 12);
    EXPECT_EQ(m.blocks.size(), 3u);
    EXPECT_EQ(m.blocks[0], -1);  // below the window: not needed
    pool.release(e1);
    pool.release(e2);
  }
  {
    // The head evicted, the tail kept: with a window the tail suffices (position 20 sees 15..20).
    KvPool pool(kv_config(2, 6), 5, 4);
    PrefixIndex idx(pool);
    const auto b = compute_and_index(pool, idx, prompt);
    pool.retain(b[3]);
    pool.retain(b[4]);
    const int32_t f1 = pool.alloc(), f2 = pool.alloc(), f3 = pool.alloc();  // evicts blocks 2, 1, 0
    EXPECT_EQ(idx.size(), 2u);
    const PrefixMatch m = idx.match(PrefixIndex::root(0), longer, 100, 6);
    EXPECT_EQ(m.n_cached, 20);
    EXPECT_EQ(m.blocks, (std::vector<int32_t>{-1, -1, -1, b[3], b[4]}));
    EXPECT_EQ(m.keys.size(), 5u);  // keys for every block, present or not: the chain continues
    // Without a window nothing is usable.
    EXPECT_EQ(idx.match(PrefixIndex::root(0), longer, 100, 0).n_cached, 0);
    for (int32_t x : {b[3], b[4], f1, f2, f3}) pool.release(x);
  }
}

TEST(ModelPrefixIndex, DestructorUncachesItsBlocks) {
  KvPool pool(kv_config(), 4, 4);
  {
    PrefixIndex idx(pool);
    compute_and_index(pool, idx, iota_tokens(8));
    EXPECT_EQ(pool.cached(), 2);
  }
  EXPECT_EQ(pool.cached(), 0);
  EXPECT_EQ(pool.available(), 4);
}

}  // namespace
}  // namespace wai::model
