// Scaled dot-product attention of one query token's `group` query heads against the keys/values of
// the one KV head they share (grouped-query attention), with keys and values stored as IEEE half.
//
// Forward::attention calls attend() once per (token, kv head) work item. The key list is given as
// row pointers (one per key, in position order): the cached keys come from the rolling buffer (slot
// j % capacity) and the chunk's own from its f16 scratch, so both are just rows here. Each key and
// value row is read and converted once for the whole group.
//
// The AVX-512 path (avx512f + f16c, head_dim % 16 == 0) computes the scores of a block of 16 keys
// with one 16-lane partial sum per (head, key) and a transposing reduction that turns 16 such vectors
// into the 16 keys' scores at once (no horizontal sum per key), a vectorized exp, and keeps each
// head's output row in registers across all keys (o_h += p_hj * v_j). The portable path does the same
// arithmetic with scalar loops. Both compute each key's score, the softmax sum and the output in an
// order that depends only on the key's index in the list, never on how a sequence was chunked, so
// decoding token by token and prefilling in chunks give bit-identical attention.
#pragma once

#include <cstdint>

namespace wai::model::attn {

// Floats of per-thread scratch attend() needs for up to max_keys keys.
int64_t scratch_floats(int64_t group, int64_t head_dim, int64_t max_keys);

// out[h*hd .. (h+1)*hd) = sum_j softmax_j(scale * q_h . k_j) v_j for h < group, j < nk (nk >= 1).
// q: [group, hd] f32; k_rows[j], v_rows[j]: hd halves each; out: [group, hd] f32 (overwritten);
// scratch: scratch_floats(group, hd, >= nk) floats. No allocation.
void attend(const float* q, int64_t group, int64_t hd, const uint16_t* const* k_rows, const uint16_t* const* v_rows,
            int64_t nk, float scale, float* scratch, float* out);

}  // namespace wai::model::attn
