// attend(): see attention.h. Layout of the scratch (floats): [kTmp] the AVX-512 path's per-(head, key)
// partial sums of one 16-key block, [hd] the portable path's converted row, [group] its 1/sum per
// head, then the scores [group, nk] (row h at h * nk).
#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/attend_avx2.h"
#include "kernels/cpu.h"
#include "kernels/quant.h"
#include "model/vec.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/avx512_math.h"
#if !defined(__clang__)
// GCC 12 warns falsely about the _mm512_undefined_* inside its own intrinsic headers (as kernels/ does).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace wai::model::attn {
namespace {

constexpr int kScoreHeads = 8;                    // query heads per score tile (<= 16 accumulators)
constexpr int64_t kTmp = kScoreHeads * 16 * 16;   // [head, key in block, lane]

// ---- Portable: the same three phases with scalar loops. ----

void attend_portable(const float* q, int64_t group, int64_t hd, const uint16_t* const* k_rows,
                     const uint16_t* const* v_rows, int64_t nk, float scale, float* scratch, float* out) {
  float* row = scratch + kTmp;
  float* inv = row + hd;
  float* sc = inv + group;
  for (int64_t j = 0; j < nk; ++j) {
    for (int64_t d = 0; d < hd; ++d) row[d] = kernels::f16_to_f32(k_rows[j][d]);
    for (int64_t h = 0; h < group; ++h) {
      const float* qh = q + h * hd;
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // four partial sums: fewer dependent adds
      int64_t d = 0;
      for (; d + 4 <= hd; d += 4) {
        s0 += qh[d] * row[d];
        s1 += qh[d + 1] * row[d + 1];
        s2 += qh[d + 2] * row[d + 2];
        s3 += qh[d + 3] * row[d + 3];
      }
      for (; d < hd; ++d) s0 += qh[d] * row[d];
      sc[h * nk + j] = ((s0 + s1) + (s2 + s3)) * scale;
    }
  }
  for (int64_t h = 0; h < group; ++h) {
    float* s = sc + h * nk;
    const float mx = *std::max_element(s, s + nk);
    double sum = 0.0;
    for (int64_t j = 0; j < nk; ++j) {
      s[j] = std::exp(s[j] - mx);
      sum += s[j];
    }
    inv[h] = static_cast<float>(1.0 / sum);  // applied to the output at the end, as the AVX-512 path does
  }
  std::fill(out, out + group * hd, 0.0f);
  for (int64_t j = 0; j < nk; ++j) {
    for (int64_t d = 0; d < hd; ++d) row[d] = kernels::f16_to_f32(v_rows[j][d]);
    for (int64_t h = 0; h < group; ++h) {
      const float p = sc[h * nk + j];
      float* o = out + h * hd;
      for (int64_t d = 0; d < hd; ++d) o[d] += p * row[d];
    }
  }
  for (int64_t h = 0; h < group; ++h)
    for (int64_t d = 0; d < hd; ++d) out[h * hd + d] *= inv[h];
}

#if defined(__x86_64__)
#define WAI_AVX512 __attribute__((target("avx512f,f16c")))

WAI_AVX512 inline __m512 load_half(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// combine(a, b): lanes with `m` clear hold a's pairwise sums (lane i + lane i^s), lanes with `m` set b's.
template <int S>
WAI_AVX512 inline __m512 combine(__m512 a, __m512 b, __mmask16 m) {
  const __m512 t1 = _mm512_mask_blend_ps(m, a, b);
  __m512 t2 = _mm512_mask_blend_ps(m, b, a);
  if constexpr (S == 8) t2 = _mm512_shuffle_f32x4(t2, t2, 0x4E);  // swap 256-bit halves
  if constexpr (S == 4) t2 = _mm512_shuffle_f32x4(t2, t2, 0xB1);  // swap 128-bit lanes in each half
  if constexpr (S == 2) t2 = _mm512_permute_ps(t2, 0x4E);         // swap float pairs in each 128
  if constexpr (S == 1) t2 = _mm512_permute_ps(t2, 0xB1);         // swap adjacent floats
  return _mm512_add_ps(t1, t2);
}

// t: 16 vectors of 16 partial sums; returns lane j = the sum of vector j's 16 lanes. Every lane goes
// through the same addition tree, so a key's score does not depend on its place in the block.
WAI_AVX512 inline __m512 reduce16(const float* t) {
  __m512 x[8], y[4], z[2];
  for (int k = 0; k < 8; ++k) x[k] = combine<8>(_mm512_loadu_ps(t + 16 * k), _mm512_loadu_ps(t + 16 * (k + 8)), 0xFF00);
  for (int k = 0; k < 4; ++k) y[k] = combine<4>(x[k], x[k + 4], 0xF0F0);
  for (int k = 0; k < 2; ++k) z[k] = combine<2>(y[k], y[k + 2], 0xCCCC);
  return combine<1>(z[0], z[1], 0xAAAA);
}

using kernels::exp_ps;  // e^x for the softmax (x <= 0 there: the upper clamp never applies)

WAI_AVX512 inline __mmask16 first_lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : n <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << n) - 1);
}

// Fixed-order horizontal sum / max (a store and a loop: GCC 12's _mm512_reduce_* trips -Wuninitialized).
WAI_AVX512 inline float hsum(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  float s = 0.0f;
  for (float x : t) s += x;
  return s;
}
WAI_AVX512 inline float hmax(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  float m = t[0];
  for (float x : t) m = std::max(m, x);
  return m;
}

// Prefetches one row of `lines` cache lines (decode streams the cache from memory; prefill finds it
// in L2 and this costs next to nothing).
inline void prefetch_row(const uint16_t* p, int64_t lines) {
  for (int64_t l = 0; l < lines; ++l) _mm_prefetch(reinterpret_cast<const char*>(p + 32 * l), _MM_HINT_T0);
}

constexpr int64_t kAhead = 8;  // keys prefetched ahead

// sc[h * stride + j] = scale * q_h . k_j for NH heads (q: [NH, hd]), all nk keys, in blocks of 16 keys.
// KB keys at a time share each load of q (NH * KB accumulators, one 16-lane partial sum per (head,
// key)); a block's last step may reach past nk, and then repeats the last key (lanes never stored).
template <int NH>
WAI_AVX512 void scores_tile(const float* q, int64_t hd, const uint16_t* const* k_rows, int64_t nk, float scale,
                            float* sc, int64_t stride, float* tmp) {
  constexpr int KB = NH <= 4 ? 4 : 2;
  const int64_t cols = hd / 16, lines = hd / 32;
  const __m512 vs = _mm512_set1_ps(scale);
  for (int64_t j0 = 0; j0 < nk; j0 += 16) {
    const int64_t nb = std::min<int64_t>(16, nk - j0);
    for (int64_t jj = 0; jj < nb; jj += KB) {
      const uint16_t* k[KB];
      for (int b = 0; b < KB; ++b) {
        const int64_t j = std::min(j0 + jj + b, nk - 1);
        k[b] = k_rows[j];
        if (j + kAhead < nk) prefetch_row(k_rows[j + kAhead], lines);
      }
      __m512 acc[NH][KB];
      for (int h = 0; h < NH; ++h)
        for (int b = 0; b < KB; ++b) acc[h][b] = _mm512_setzero_ps();
      for (int64_t c = 0; c < cols; ++c) {
        __m512 kc[KB];
        for (int b = 0; b < KB; ++b) kc[b] = load_half(k[b] + 16 * c);
        for (int h = 0; h < NH; ++h) {
          const __m512 qc = _mm512_loadu_ps(q + h * hd + 16 * c);
          for (int b = 0; b < KB; ++b) acc[h][b] = _mm512_fmadd_ps(qc, kc[b], acc[h][b]);
        }
      }
      for (int h = 0; h < NH; ++h)
        for (int b = 0; b < KB; ++b) _mm512_storeu_ps(tmp + (h * 16 + jj + b) * 16, acc[h][b]);
    }
    // (Lanes nb..15 of the last block reduce stale partial sums; each lane only sums its own key's
    // vector, so they stay out of the stored scores.)
    for (int h = 0; h < NH; ++h)
      _mm512_mask_storeu_ps(sc + h * stride + j0, first_lanes(nb), _mm512_mul_ps(reduce16(tmp + h * 256), vs));
  }
}

// The tree node for stride D (16: the leaf, lane i's chain v_i; D < 16: node(i) + node(i + D) of
// stride 2D), for NH heads over one transposed block kt.
template <int NH, int D>
WAI_AVX512 inline void block_tree(const float* kt, const float* q, int64_t hd, int i, __m512* r) {
  if constexpr (D == 16) {
    for (int h = 0; h < NH; ++h) r[h] = _mm512_setzero_ps();
    for (int64_t c = 0; c < hd / 16; ++c) {
      const __m512 x = _mm512_loadu_ps(kt + 16 * (16 * c + i));
      for (int h = 0; h < NH; ++h) r[h] = _mm512_fmadd_ps(_mm512_set1_ps(q[h * hd + 16 * c + i]), x, r[h]);
    }
  } else {
    __m512 u[NH];
    block_tree<NH, 2 * D>(kt, q, hd, i, r);
    block_tree<NH, 2 * D>(kt, q, hd, i + D, u);
    for (int h = 0; h < NH; ++h) r[h] = _mm512_add_ps(r[h], u[h]);
  }
}

// sc[h * stride + c] = scale * q_h . key (first + c) for c < count, from the transposed blocks, one
// 16-key block at a time, NH <= 4 heads. Bit for bit the same sums as scores_tile (a key scores the
// same whether it was in the chunk or came from the cache, so decode equals chunked prefill exactly):
// v_l = the FMA chain over c = 0..7 of q[16c+l] k[16c+l] (scores_tile's lane l), then reduce16's tree
// ((P0+P4)+(P2+P6)) + ((P1+P5)+(P3+P7)) with P_i = v_i + v_(i+8), here on whole vectors of 16 keys.
template <int NH>
WAI_AVX512 void scores_blocks(const float* q, int64_t hd, const float* blocks, int64_t first, int64_t count, float scale,
                              float* sc, int64_t stride) {
  const __m512 vs = _mm512_set1_ps(scale);
  const int64_t b0 = first / 16, b1 = (first + count - 1) / 16;
  for (int64_t b = b0; b <= b1; ++b) {
    const float* kt = blocks + b * hd * 16;
    __m512 r[NH];
    block_tree<NH, 1>(kt, q, hd, 0, r);
    // Lanes lo .. hi-1 of the block are keys of this item; packed to sc[key - first].
    const int64_t base = 16 * b;
    const int64_t lo = std::max(first, base) - base, hi = std::min(first + count, base + 16) - base;
    const __mmask16 m = static_cast<__mmask16>(first_lanes(hi) & ~first_lanes(lo));
    for (int h = 0; h < NH; ++h)
      _mm512_mask_storeu_ps(sc + h * stride + base + lo - first, first_lanes(hi - lo),
                            _mm512_maskz_compress_ps(m, _mm512_mul_ps(r[h], vs)));
  }
}

// Softmax numerators in place: s[j] = e^(s[j] - max); returns the sum (16 lane sums, fixed order).
WAI_AVX512 float exp_row(float* s, int64_t nk) {
  __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < nk; j += 16) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, first_lanes(nk - j), s + j));
  const __m512 m = _mm512_set1_ps(hmax(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < nk; j += 16) {
    const __mmask16 k = first_lanes(nk - j);
    const __m512 e = _mm512_maskz_mov_ps(k, exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), m)));
    _mm512_mask_storeu_ps(s + j, k, e);
    sum = _mm512_add_ps(sum, e);
  }
  return hsum(sum);
}

// out[h, c0*16 .. (c0+NC)*16) over every column tile: sum_j p[h * stride + j] v_j, times inv[h]; the
// NH x NC accumulators stay in registers across all keys.
template <int NH, int NC>
WAI_AVX512 void pv_tile(const float* p, int64_t stride, int64_t hd, const uint16_t* const* v_rows, int64_t nk,
                        const float* inv, float* out) {
  const int64_t cols = hd / 16;
  for (int64_t c0 = 0; c0 < cols; c0 += NC) {
    __m512 acc[NH][NC];
    for (int h = 0; h < NH; ++h)
      for (int c = 0; c < NC; ++c) acc[h][c] = _mm512_setzero_ps();
    for (int64_t j = 0; j < nk; ++j) {
      if (j + kAhead < nk) prefetch_row(v_rows[j + kAhead] + 16 * c0, (NC + 1) / 2);
      const uint16_t* v = v_rows[j] + 16 * c0;
      __m512 vv[NC];
      for (int c = 0; c < NC; ++c) vv[c] = load_half(v + 16 * c);
      for (int h = 0; h < NH; ++h) {
        const __m512 ph = _mm512_set1_ps(p[h * stride + j]);
        for (int c = 0; c < NC; ++c) acc[h][c] = _mm512_fmadd_ps(ph, vv[c], acc[h][c]);
      }
    }
    for (int h = 0; h < NH; ++h)
      for (int c = 0; c < NC; ++c)
        _mm512_storeu_ps(out + h * hd + 16 * (c0 + c), _mm512_mul_ps(acc[h][c], _mm512_set1_ps(inv[h])));
  }
}

template <int NH>
WAI_AVX512 void pv_heads(const float* p, int64_t stride, int64_t hd, const uint16_t* const* v_rows, int64_t nk,
                         const float* inv, float* out) {
  // Widest column tile that divides the row and keeps NH * NC <= 16 accumulators.
  const int64_t cols = hd / 16;
  constexpr int kMax = 16 / NH >= 8 ? 8 : 16 / NH >= 4 ? 4 : 16 / NH >= 2 ? 2 : 1;
  if (kMax >= 8 && cols % 8 == 0) return pv_tile<NH, (kMax >= 8 ? 8 : 1)>(p, stride, hd, v_rows, nk, inv, out);
  if (kMax >= 4 && cols % 4 == 0) return pv_tile<NH, (kMax >= 4 ? 4 : 1)>(p, stride, hd, v_rows, nk, inv, out);
  if (kMax >= 2 && cols % 2 == 0) return pv_tile<NH, (kMax >= 2 ? 2 : 1)>(p, stride, hd, v_rows, nk, inv, out);
  pv_tile<NH, 1>(p, stride, hd, v_rows, nk, inv, out);
}

WAI_AVX512 void attend_avx512(const float* q, int64_t group, int64_t hd, const uint16_t* const* k_rows,
                              const uint16_t* const* v_rows, int64_t nk, float scale, float* scratch, float* out,
                              const KeyBlocks& kb) {
  float* tmp = scratch;
  float* sc = scratch + kTmp + hd + group;
  const int64_t n_rows = nk - kb.count;  // keys scored from their rows; the rest from kb
  for (int64_t h0 = 0; h0 < group; h0 += kScoreHeads) {
    const float* qh = q + h0 * hd;
    float* s = sc + h0 * nk;
    if (n_rows > 0) {
      switch (std::min<int64_t>(kScoreHeads, group - h0)) {
        case 1: scores_tile<1>(qh, hd, k_rows, n_rows, scale, s, nk, tmp); break;
        case 2: scores_tile<2>(qh, hd, k_rows, n_rows, scale, s, nk, tmp); break;
        case 3: scores_tile<3>(qh, hd, k_rows, n_rows, scale, s, nk, tmp); break;
        case 4: scores_tile<4>(qh, hd, k_rows, n_rows, scale, s, nk, tmp); break;
        case 5: scores_tile<5>(qh, hd, k_rows, n_rows, scale, s, nk, tmp); break;
        case 6: scores_tile<6>(qh, hd, k_rows, n_rows, scale, s, nk, tmp); break;
        case 7: scores_tile<7>(qh, hd, k_rows, n_rows, scale, s, nk, tmp); break;
        default: scores_tile<8>(qh, hd, k_rows, n_rows, scale, s, nk, tmp); break;
      }
    }
    if (kb.count > 0) {
      for (int64_t g0 = h0; g0 < std::min<int64_t>(group, h0 + kScoreHeads); g0 += 4) {  // tiles of <= 4 heads
        const float* qg = q + g0 * hd;
        float* sb = sc + g0 * nk + n_rows;
        switch (std::min<int64_t>(4, group - g0)) {
          case 1: scores_blocks<1>(qg, hd, kb.blocks, kb.first, kb.count, scale, sb, nk); break;
          case 2: scores_blocks<2>(qg, hd, kb.blocks, kb.first, kb.count, scale, sb, nk); break;
          case 3: scores_blocks<3>(qg, hd, kb.blocks, kb.first, kb.count, scale, sb, nk); break;
          default: scores_blocks<4>(qg, hd, kb.blocks, kb.first, kb.count, scale, sb, nk); break;
        }
      }
    }
  }
  float inv[4];
  for (int64_t h0 = 0; h0 < group; h0 += 4) {
    const int64_t nh = std::min<int64_t>(4, group - h0);
    for (int64_t h = 0; h < nh; ++h) inv[h] = 1.0f / exp_row(sc + (h0 + h) * nk, nk);
    const float* p = sc + h0 * nk;
    float* o = out + h0 * hd;
    switch (nh) {
      case 1: pv_heads<1>(p, nk, hd, v_rows, nk, inv, o); break;
      case 2: pv_heads<2>(p, nk, hd, v_rows, nk, inv, o); break;
      case 3: pv_heads<3>(p, nk, hd, v_rows, nk, inv, o); break;
      default: pv_heads<4>(p, nk, hd, v_rows, nk, inv, o); break;
    }
  }
}
#undef WAI_AVX512
#endif

}  // namespace

bool uses_key_blocks(int64_t hd) {
#if defined(__x86_64__)
  const kernels::CpuFeatures& f = kernels::cpu_features();
  return f.avx512f && f.f16c && hd % 16 == 0 && hd >= 16 && hd <= 256;
#else
  (void)hd;
  return false;
#endif
}

void transpose_keys(const uint16_t* base, const int32_t* rows, int64_t n, int64_t row_stride, int64_t hd, float* out) {
  std::fill(out, out + key_blocks_floats(n, hd), 0.0f);
  float row[256];  // (hd <= 256 where blocks are used; checked by the caller through uses_key_blocks)
  for (int64_t i = 0; i < n; ++i) {
    vec::from_f16(base + rows[i] * row_stride, row, hd);
    float* o = out + (i / 16) * hd * 16 + i % 16;
    for (int64_t d = 0; d < hd; ++d) o[d * 16] = row[d];
  }
}

int64_t scratch_floats(int64_t group, int64_t head_dim, int64_t max_keys) {
  return kTmp + head_dim + group + group * std::max<int64_t>(max_keys, 1);
}

void attend(const float* q, int64_t group, int64_t hd, const uint16_t* const* k_rows, const uint16_t* const* v_rows,
            int64_t nk, float scale, float* scratch, float* out, const KeyBlocks& kb) {
#if defined(__x86_64__)
  const kernels::CpuFeatures& f = kernels::cpu_features();
  if (f.avx512f && f.f16c && hd % 16 == 0) {
    const bool blocks = kb.count > 0 && uses_key_blocks(hd);
    return attend_avx512(q, group, hd, k_rows, v_rows, nk, scale, scratch, out, blocks ? kb : KeyBlocks{});
  }
  if (!f.avx512f && f.avx2_kernels() && hd % 8 == 0)
    return kernels::attend_avx2(q, group, hd, k_rows, v_rows, nk, scale, scratch + kTmp + hd + group, out);
#endif
  attend_portable(q, group, hd, k_rows, v_rows, nk, scale, scratch, out);
}

}  // namespace wai::model::attn
