// The forward pass over a batch of tokens from several sequences.
//
// A Batch lists tokens in any order; entry i is token tokens[i] of sequence seq[i] at position pos[i].
// Within one sequence the positions in a batch must be consecutive and start at that sequence's
// caches[seq]->n_past(). Logits are produced for the entries with logits[i] != 0, in batch order.
//
// Attention semantics (mistral-reference.md §3): the query at position i sees the keys at positions
// j with i - W < j <= i (W = the cache window, or all j <= i without one). A chunk attends to the cached
// earlier positions plus itself; its k/v are written to the cache's blocks only after attention, so
// any chunking gives the same logits. The cache holds K and V as IEEE half; a chunk's own k/v are
// rounded to half right after RoPE, so a token attends to the same values whether its keys were
// decoded one at a time (from the cache) or are in its own chunk.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/kv/kv_cache.h"
#include "model/model.h"
#include "util/huge_vector.h"
#include "util/thread_pool.h"

namespace wai::model {

struct Batch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> pos;
  std::vector<int32_t> seq;      // index into `caches`
  std::vector<uint8_t> logits;   // 1: produce logits for this entry

  void add(int32_t token, int32_t position, int32_t sequence, bool want_logits) {
    tokens.push_back(token);
    pos.push_back(position);
    seq.push_back(sequence);
    logits.push_back(want_logits ? 1 : 0);
  }
  size_t size() const { return tokens.size(); }
  void clear() { tokens.clear(); pos.clear(); seq.clear(); logits.clear(); }
};

// Scratch buffers sized for a maximum batch; reuse one per thread of control.
class Forward {
 public:
  Forward(std::shared_ptr<const Model> model, ThreadPool& pool);

  // Runs the batch (split internally into chunks of at most max_chunk tokens when > 0), appends the
  // requested logits ([n_out, n_vocab] row-major) to `out`. Throws wai::Error (kInvalidInput) for a
  // token id out of range or positions that do not continue their cache.
  void run(const Batch& batch, std::span<KvCache* const> caches, std::vector<float>& out);

  const Model& model() const { return *model_; }

  // Tokens per internal chunk (the prefill batch size); <= 0: the whole batch in one chunk. Scratch
  // memory grows with the chunk (about n * (4 * dim + 3 * ff) floats), so keep it bounded.
  void set_max_chunk(int64_t n) { max_chunk_ = n; }
  int64_t max_chunk() const { return max_chunk_; }

 private:
  // Checks every entry (token range, sequence index, positions continuing each cache) before anything
  // is written, so a rejected batch leaves the caches untouched.
  void validate(const Batch& batch, std::span<KvCache* const> caches) const;
  // Entries [begin, end) of the batch: one pass through all layers, caches advanced at the end.
  void run_chunk(const Batch& batch, size_t begin, size_t end, std::span<KvCache* const> caches,
                 std::vector<float>& out);
  void attention(int64_t layer, size_t begin, size_t n, const Batch& batch, std::span<KvCache* const> caches);

  std::shared_ptr<const Model> model_;
  ThreadPool& pool_;
  int64_t max_chunk_ = 512;
  // scratch, [n, width] row-major for the n tokens of the current chunk
  // (huge pages: megabytes at prefill, written by the AMX kernel one 64-byte line per row of a token;
  // see util/huge_pages.h)
  HugeVector<float> x_, xn_, q_, k_, v_, att_, gate_, up_, ffo_;
  std::vector<uint16_t> k16_, v16_;             // [n, kv_dim]: the chunk's k/v as halves (cache format)
  std::vector<float> attn_scratch_;             // per pool thread: attn::scratch_floats(...)
  std::vector<const uint16_t*> krow_, vrow_;    // per pool thread: [max_keys] key/value row pointers
  std::vector<float> kt_;                       // [n_kv_heads, blocks]: chunk keys transposed (attn::KeyBlocks)
  std::vector<int64_t> kt_off_;                 // per sequence: its first block in kt_, -1: none
  std::vector<float> rope_;                     // [n, head_dim]: (cos, sin) per rotated pair
  std::vector<int64_t> n_past_;                 // per sequence, at the start of the chunk
  std::vector<std::vector<int32_t>> seq_rows_;  // per sequence: chunk rows in position order
};

}  // namespace wai::model
