#include "model/kv/prefix_index.h"

#include <algorithm>

#include "util/error.h"

namespace wai::model {

namespace {

// Two independent 64-bit streams over the same words (multiply-xorshift rounds with different odd
// constants and seeds, finished with murmur3's fmix64).
uint64_t fmix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

struct Hasher {
  uint64_t a, b;
  void word(uint64_t w) {
    a = (a ^ w) * 0x100000001b3ull;
    a ^= a >> 31;
    b = (b + w + 0x632be59bd9b4e019ull) * 0x9e3779b97f4a7c15ull;
    b ^= b >> 29;
  }
  BlockKey done() const { return {fmix(a), fmix(b ^ 0x5851f42d4c957f2dull)}; }
};

}  // namespace

PrefixIndex::PrefixIndex(KvPool& pool) : pool_(pool), B_(pool.block_size()) {
  entries_.resize(static_cast<size_t>(pool.n_blocks()));
  pool_.set_evict_hook([this](int32_t b) { forget(b); });
}

PrefixIndex::~PrefixIndex() {
  pool_.set_evict_hook({});
  for (size_t b = 0; b < entries_.size(); ++b)
    if (entries_[b].used) pool_.set_cached(static_cast<int32_t>(b), false);
}

BlockKey PrefixIndex::root(uint64_t ns) {
  Hasher h{0xcbf29ce484222325ull, 0x6a09e667f3bcc908ull};
  h.word(0x7761692d726f6f74ull);  // "wai-root"
  h.word(ns);
  return h.done();
}

BlockKey PrefixIndex::chain(const BlockKey& parent, std::span<const int32_t> tokens) {
  Hasher h{parent.a, parent.b};
  h.word(tokens.size());
  for (int32_t t : tokens) h.word(static_cast<uint32_t>(t));
  return h.done();
}

bool PrefixIndex::add(const BlockKey& parent, std::span<const int32_t> tokens, int32_t b) {
  if (b < 0 || b >= pool_.n_blocks()) fail(ErrorKind::kInternal, "prefix index: no block " + std::to_string(b));
  if (tokens.empty() || static_cast<int64_t>(tokens.size()) > B_)
    fail(ErrorKind::kInternal, "prefix index: a block of " + std::to_string(tokens.size()) + " tokens");
  Entry& e = entries_[static_cast<size_t>(b)];
  if (e.used) return false;
  const bool full = static_cast<int64_t>(tokens.size()) == B_;
  BlockKey key{};
  if (full) {
    key = chain(parent, tokens);
    if (full_.count(key)) return false;  // another block holds this content already
  } else {
    for (int32_t c : kids_[parent]) {  // the same partial content twice: keep the first
      const Entry& o = entries_[static_cast<size_t>(c)];
      if (o.tokens.size() >= tokens.size() && std::equal(tokens.begin(), tokens.end(), o.tokens.begin())) return false;
    }
  }
  e.used = true;
  e.key = key;
  e.parent = parent;
  e.tokens.assign(tokens.begin(), tokens.end());
  if (full) full_[key] = b;
  kids_[parent].push_back(b);
  ++n_entries_;
  pool_.set_cached(b, true);
  return true;
}

void PrefixIndex::forget(int32_t b) {
  Entry& e = entries_[static_cast<size_t>(b)];
  if (!e.used) return;
  if (static_cast<int64_t>(e.tokens.size()) == B_) full_.erase(e.key);
  auto it = kids_.find(e.parent);
  if (it != kids_.end()) {
    auto& v = it->second;
    v.erase(std::remove(v.begin(), v.end(), b), v.end());
    if (v.empty()) kids_.erase(it);
  }
  e = Entry{};
  --n_entries_;
}

int32_t PrefixIndex::find(const BlockKey& key, std::span<const int32_t> tokens) const {
  auto it = full_.find(key);
  if (it == full_.end()) return -1;
  const Entry& e = entries_[static_cast<size_t>(it->second)];
  if (!std::equal(tokens.begin(), tokens.end(), e.tokens.begin(), e.tokens.end())) return -1;
  return it->second;
}

PrefixMatch PrefixIndex::match(const BlockKey& root, std::span<const int32_t> tokens, int64_t limit,
                               int64_t window) const {
  const int64_t N = static_cast<int64_t>(tokens.size());
  limit = std::min(limit, N);
  PrefixMatch none;
  if (limit <= 0 || n_entries_ == 0) return none;
  const int64_t n_whole = N / B_;
  std::vector<BlockKey> keys(static_cast<size_t>(n_whole));
  std::vector<int32_t> present(static_cast<size_t>(n_whole), -1);
  int64_t first_missing = n_whole;
  BlockKey k = root;
  for (int64_t i = 0; i < n_whole; ++i) {
    auto blk = tokens.subspan(static_cast<size_t>(i * B_), static_cast<size_t>(B_));
    k = chain(k, blk);
    keys[static_cast<size_t>(i)] = k;
    present[static_cast<size_t>(i)] = find(k, blk);
    if (present[static_cast<size_t>(i)] < 0 && first_missing == n_whole) first_missing = i;
  }
  auto lowest = [&](int64_t pos) { return window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0; };
  // Full attention needs every block from 0: nothing past the first missing one can be used.
  for (int64_t kb = window > 0 ? n_whole : first_missing; kb >= 0; --kb) {
    // The longest common beginning of the next block with one registered after the kb whole blocks.
    int64_t r = 0;
    int32_t ext = -1;
    if (kb * B_ < N) {
      auto it = kids_.find(kb > 0 ? keys[static_cast<size_t>(kb - 1)] : root);
      if (it != kids_.end()) {
        auto want = tokens.subspan(static_cast<size_t>(kb * B_), static_cast<size_t>(std::min(B_, N - kb * B_)));
        for (int32_t c : it->second) {
          const auto& t = entries_[static_cast<size_t>(c)].tokens;
          const auto n = static_cast<int64_t>(std::mismatch(want.begin(), want.end(), t.begin(), t.end()).first - want.begin());
          if (n > r) r = n, ext = c;
        }
      }
    }
    const int64_t P = std::min(kb * B_ + r, limit);
    if (P <= 0) continue;
    const int64_t n_full = P / B_, copy_n = P % B_;
    const int32_t src = copy_n == 0 ? -1 : n_full < kb ? present[static_cast<size_t>(n_full)] : ext;
    bool ok = copy_n == 0 || src >= 0;
    const int64_t lo = lowest(P) / B_;
    for (int64_t i = lo; ok && i < n_full; ++i) ok = present[static_cast<size_t>(i)] >= 0;
    if (!ok) continue;
    PrefixMatch m;
    m.n_cached = P;
    m.copy_src = src;
    m.copy_n = copy_n;
    m.blocks.assign(static_cast<size_t>(n_full), -1);
    for (int64_t i = lo; i < n_full; ++i) m.blocks[static_cast<size_t>(i)] = present[static_cast<size_t>(i)];
    m.keys.assign(keys.begin(), keys.begin() + n_full);
    return m;
  }
  return none;
}

}  // namespace wai::model
