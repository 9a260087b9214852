// Scaled dot-product attention of one query token's `group` query heads against the keys/values of
// the one KV head they share (grouped-query attention), with keys and values stored as IEEE half.
//
// Forward::attention calls attend() once per (token, kv head) work item. The key list is given as
// row pointers (one per key, in position order): the cached keys come from the sequence's KV blocks
// (paged: B consecutive rows per block) and the chunk's own from its f16 scratch, so both are just
// rows here. Each key and
// value row is read and converted once for the whole group.
//
// The AVX-512 path (avx512f + f16c, head_dim % 16 == 0) computes the scores of a block of 16 keys
// with one 16-lane partial sum per (head, key) and a transposing reduction that turns 16 such vectors
// into the 16 keys' scores at once (no horizontal sum per key), a vectorized exp, and keeps each
// head's output row in registers across all keys (o_h += p_hj * v_j). The portable path does the same
// arithmetic with scalar loops; CPUs with AVX2 and no AVX-512 take kernels/avx2/attention_avx2.cpp
// (8-lane chains, the same three phases). Each path computes a key's score, the softmax sum and the output in
// an order that depends only on the key's index in the list, never on how a sequence was chunked or
// whether a key was scored from its row or from KeyBlocks (bit-identical, tested), so decoding token
// by token and prefilling in chunks give bit-identical attention.
#pragma once

#include <cstdint>

namespace wai::model::attn {

// Keys whose scores attend() takes from a transposed f32 copy instead of their rows: prefill
// transposes a chunk's own keys once per (layer, kv head, sequence), and all the chunk's tokens share
// the copy, so the scores of a 16-key block are 16-lane FMAs with q broadcast: no per-key conversion
// or lane shuffling (the same additions as the row path, on whole vectors of 16 keys). Block b holds
// keys 16b .. 16b+15 as [hd][16] floats at blocks + b * hd * 16. An item's keys first ..
// first+count-1 of the copy are its last `count` keys (k_rows lists them too: the portable path reads
// those). count = 0: rows only (decode).
struct KeyBlocks {
  const float* blocks = nullptr;
  int64_t first = 0, count = 0;
};

// Whether attend() reads KeyBlocks at all (the AVX-512 path, 16 <= hd <= 256, hd % 16 == 0); without
// it there is no point in building them.
bool uses_key_blocks(int64_t hd);

// Floats of a transposed copy of n keys: ceil(n / 16) blocks of hd * 16.
inline int64_t key_blocks_floats(int64_t n, int64_t hd) { return (n + 15) / 16 * hd * 16; }

// out = the KeyBlocks layout of n key rows, row i at base + rows[i] * row_stride (hd halves each);
// lanes past n are zero.
void transpose_keys(const uint16_t* base, const int32_t* rows, int64_t n, int64_t row_stride, int64_t hd, float* out);

// Floats of per-thread scratch attend() needs for up to max_keys keys.
int64_t scratch_floats(int64_t group, int64_t head_dim, int64_t max_keys);

// out[h*hd .. (h+1)*hd) = sum_j softmax_j(scale * q_h . k_j) v_j for h < group, j < nk (nk >= 1).
// q: [group, hd] f32; k_rows[j], v_rows[j]: hd halves each; out: [group, hd] f32 (overwritten);
// scratch: scratch_floats(group, hd, >= nk) floats; kb: see KeyBlocks (kb.count <= nk). No allocation.
void attend(const float* q, int64_t group, int64_t hd, const uint16_t* const* k_rows, const uint16_t* const* v_rows,
            int64_t nk, float scale, float* scratch, float* out, const KeyBlocks& kb = {});

}  // namespace wai::model::attn
