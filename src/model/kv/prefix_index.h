// Which pool blocks hold the K/V of which token prefixes, so that a request reuses what an earlier one
// computed (automatic prefix caching).
//
// A full block is identified by a chained hash: key(block i) = H(key(block i - 1), its B tokens), with
// key(-1) = root(namespace); the namespace separates what must never be shared (another LoRA
// adapter's K/V differ for the same tokens; the pool is per model already). The key thus stands for
// every token from position 0 to the block's end. Why a hash chain and not a radix tree: with a
// sliding window a sequence holds only its last W/B blocks and releases the earlier ones, which the
// pool then evicts first; a tree would have to keep their nodes to identify the later blocks, while a
// chained key identifies a block by itself, and a hit needs only the blocks the window still sees.
// Keys are 128 bits (two independent 64-bit hashes); an entry also keeps its tokens and its parent's
// key, and a lookup compares the tokens, so a collision would need both hashes to collide.
//
// Partial blocks (fewer than B tokens: the last block of a finished sequence) are kept too, found
// only as children of their parent key; a request that continues inside one (or inside a full block
// it shares only the beginning of) copies the positions it shares into a block of its own.
//
// Blocks enter the index when a sequence has written them; the pool marks them cached and evicts
// them least recently used (the index then forgets them through the pool's evict hook).
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "model/kv/kv_pool.h"

namespace wai::model {

struct BlockKey {
  uint64_t a = 0, b = 0;
  bool operator==(const BlockKey&) const = default;
};

struct BlockKeyHash {
  size_t operator()(const BlockKey& k) const { return static_cast<size_t>(k.a ^ (k.b * 0x9e3779b97f4a7c15ull)); }
};

// The longest reusable prefix of a token sequence: see PrefixIndex::match.
struct PrefixMatch {
  std::vector<int32_t> blocks;  // logical block i -> pool block (-1: below the window, not needed);
                                // size = n_full (whole blocks reused as they are)
  int64_t n_cached = 0;         // positions reused: n_full * B + copy_n
  int32_t copy_src = -1;        // block to copy positions [0, copy_n) from into logical block n_full
  int64_t copy_n = 0;
  std::vector<BlockKey> keys;   // key of each whole block reused (blocks' order)
};

class PrefixIndex {
 public:
  // Installs the pool's evict hook; the pool must outlive the index.
  explicit PrefixIndex(KvPool& pool);
  ~PrefixIndex();
  PrefixIndex(const PrefixIndex&) = delete;
  PrefixIndex& operator=(const PrefixIndex&) = delete;

  static BlockKey root(uint64_t ns);
  static BlockKey chain(const BlockKey& parent, std::span<const int32_t> tokens);

  // Registers block b (held by the caller) as holding `tokens` (B of them: a full block, indexed
  // under chain(parent, tokens); fewer: a partial block) after the prefix `parent`. Returns false
  // (and changes nothing) when the index already has a block for that content or b is already
  // registered.
  bool add(const BlockKey& parent, std::span<const int32_t> tokens, int32_t b);

  // The pool block indexed under a full block's key, or -1.
  int32_t find(const BlockKey& key, std::span<const int32_t> tokens) const;

  // The longest prefix of `tokens` (at most `limit` positions) whose K/V the index holds, for a
  // sequence with window `window` (0: full attention): whole blocks from the start, then the longest
  // common beginning with one of the next block's registered candidates. With a window, only the
  // blocks the first new position can see need to be present.
  PrefixMatch match(const BlockKey& root, std::span<const int32_t> tokens, int64_t limit, int64_t window) const;

  size_t size() const { return n_entries_; }

 private:
  struct Entry {
    bool used = false;
    BlockKey key;     // full blocks: their chained key
    BlockKey parent;
    std::vector<int32_t> tokens;
  };
  void forget(int32_t b);

  KvPool& pool_;
  int64_t B_;
  std::vector<Entry> entries_;                                            // by pool block
  std::unordered_map<BlockKey, int32_t, BlockKeyHash> full_;              // key -> block
  std::unordered_map<BlockKey, std::vector<int32_t>, BlockKeyHash> kids_;  // parent key -> blocks after it
  size_t n_entries_ = 0;
};

}  // namespace wai::model
