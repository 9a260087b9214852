// The engine's KV memory policy over the model layer's mechanisms (model/kv/): the pool's budget,
// how many blocks a sequence needs, starting a sequence on a cached prefix (with copy-on-write of a
// block it continues inside), and indexing what sequences compute so later requests can reuse it.
// Loop thread only, like the engine's slots.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "model/kv/kv_cache.h"
#include "model/kv/kv_pool.h"
#include "model/kv/prefix_index.h"
#include "model/model.h"

namespace wai::runtime {

struct EngineOptions;

class KvManager {
 public:
  // n_blocks from the budget (at least one); the pool is per engine, so per model.
  KvManager(const model::Config& cfg, int64_t n_blocks, int64_t block_size, bool prefix_cache, int64_t ctx);

  model::KvPool& pool() { return pool_; }
  const model::KvPool& pool() const { return pool_; }
  bool prefix_cache() const { return index_.has_value(); }
  int64_t window() const { return window_; }

  std::unique_ptr<model::KvCache> new_cache() { return std::make_unique<model::KvCache>(pool_, window_, ctx_); }

  // Blocks a sequence that holds positions [0, from) (from a cached prefix) must allocate to prefill
  // up to `to`: every block up to `to` without a window; with one, at most the window's blocks plus
  // one to make progress in (prefill chunks shrink to the blocks there are).
  int64_t blocks_to_prefill(int64_t from, int64_t to) const;

  // The longest cached prefix of tokens (at most `limit` positions) in namespace ns; empty when the
  // prefix cache is off.
  model::PrefixMatch match(std::span<const int32_t> tokens, int64_t limit, uint64_t ns) const;
  // Idle cached blocks that starting on `m` takes off the pool's queue (they stop being available).
  int64_t idle_blocks(const model::PrefixMatch& m) const;
  // Starts an empty `cache` on m: adopts its blocks and, when m ends inside a block, a private copy of
  // that block's shared positions. Returns the positions reused (m.n_cached, or fewer, at a block
  // boundary, when no block is left for the copy); `keys` gets the keys of the whole blocks reused.
  int64_t begin(model::KvCache& cache, const model::PrefixMatch& m, std::vector<model::BlockKey>& keys);

  // Indexes the whole blocks among positions [0, n_past) not indexed yet (keys.size() of them are),
  // appending their keys. tokens[p] = the token at position p.
  void index_full(const model::KvCache& cache, std::span<const int32_t> tokens, uint64_t ns,
                  std::vector<model::BlockKey>& keys);
  // Indexes the partial last block before the sequence lets go of it (a follow-up request may
  // continue inside it: it copies the shared positions).
  void index_tail(const model::KvCache& cache, std::span<const int32_t> tokens, uint64_t ns,
                  const std::vector<model::BlockKey>& keys);

 private:
  model::KvPool pool_;
  std::optional<model::PrefixIndex> index_;
  int64_t window_, ctx_;
};

}  // namespace wai::runtime
