// model::attn::attend() for CPUs with AVX2 + FMA + F16C and no AVX-512 (see model/attention.h for the
// contract): one query token's `group` heads against the keys and values (IEEE half rows) of the KV
// head they share.
//
//   scores: two keys at a time, each row converted once for all heads; per (head, key) one 8-lane FMA
//           chain over head_dim, then ggml's hsum order (high half + low half, then pairs): 2 x NH
//           independent chains keep both FMA pipes busy.
//   softmax: max, e^(s - max) by a degree-7 polynomial on 8 lanes (the AVX-512 path's, with 2^n put
//           into the exponent bits), the sum as 8 lane sums over keys then one fixed reduction.
//   output: o_h = sum_j p_hj v_j in key order, in column tiles of 32 floats per head (4 heads x 4
//           registers), each v row converted once per tile; times 1 / sum at the end.
// Every key's score, the softmax sum and each output element are computed in an order that depends
// only on the keys' indices, never on how a sequence was chunked: decode and chunked prefill give
// bit-identical attention, as on the other paths. head_dim % 8 == 0.
//
// Compiled for AVX2/FMA/F16C; called only when the CPU has them. No std:: templates.
#include "kernels/isa_target.h"
WAI_ISA_BEGIN("avx2,fma,f16c")
#include <immintrin.h>

#include "kernels/attend_avx2.h"
#include "kernels/avx2/avx2_math.h"

namespace wai::kernels {
namespace {

inline __m256 load_half8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// e^x for x <= 0 (clamped below at -87.3: e^x < 1.2e-38 and -inf stays finite): x = n ln2 + r,
// |r| <= ln2/2, e^r by its degree-7 Taylor polynomial, times 2^n through the exponent bits.
inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(0.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// sc[h * nk + j] = scale * q_h . k_j for NH heads, keys two at a time (the second of a pair past nk
// repeats the last key; its score is not stored).
template <int NH>
void scores(const float* q, int64_t hd, const uint16_t* const* k_rows, int64_t nk, float scale, float* sc,
            int64_t stride) {
  for (int64_t j = 0; j < nk; j += 2) {
    const uint16_t* k0 = k_rows[j];
    const uint16_t* k1 = k_rows[j + 1 < nk ? j + 1 : j];
    __m256 a0[NH], a1[NH];
    for (int h = 0; h < NH; ++h) a0[h] = a1[h] = _mm256_setzero_ps();
    for (int64_t c = 0; c < hd; c += 8) {
      const __m256 x0 = load_half8(k0 + c), x1 = load_half8(k1 + c);
      for (int h = 0; h < NH; ++h) {
        const __m256 qc = _mm256_loadu_ps(q + h * hd + c);
        a0[h] = _mm256_fmadd_ps(qc, x0, a0[h]);
        a1[h] = _mm256_fmadd_ps(qc, x1, a1[h]);
      }
    }
    for (int h = 0; h < NH; ++h) {
      sc[h * stride + j] = hsum8(a0[h]) * scale;
      if (j + 1 < nk) sc[h * stride + j + 1] = hsum8(a1[h]) * scale;
    }
  }
}

// s[j] = e^(s[j] - max) for j < nk; returns 1 / sum.
float softmax_row(float* s, int64_t nk) {
  __m256 mx = _mm256_set1_ps(-3.0e38f);
  int64_t j = 0;
  for (; j + 8 <= nk; j += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + j));
  float m = hmax8(mx);
  for (; j < nk; ++j) m = s[j] > m ? s[j] : m;
  const __m256 vm = _mm256_set1_ps(m);
  __m256 sum = _mm256_setzero_ps();
  for (j = 0; j + 8 <= nk; j += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
    _mm256_storeu_ps(s + j, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (j < nk) {  // the tail through a padded copy: same polynomial, lanes past nk add zero
    alignas(32) float t[8];
    for (int i = 0; i < 8; ++i) t[i] = j + i < nk ? s[j + i] - m : -100.0f;
    __m256 e = exp8(_mm256_load_ps(t));
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(nk - j)), idx));
    e = _mm256_and_ps(e, keep);
    _mm256_store_ps(t, e);
    for (int64_t i = 0; j + i < nk; ++i) s[j + i] = t[i];
    sum = _mm256_add_ps(sum, e);
  }
  return 1.0f / hsum8(sum);
}

// out[h * hd + c0 .. c0 + 8 NC) = inv[h] * sum_j p[h * stride + j] v_j[c0 ..], NH heads.
template <int NH, int NC>
void pv_tile(const float* p, int64_t stride, int64_t hd, const uint16_t* const* v_rows, int64_t nk, const float* inv,
             float* out, int64_t c0) {
  __m256 acc[NH][NC];
  for (int h = 0; h < NH; ++h)
    for (int c = 0; c < NC; ++c) acc[h][c] = _mm256_setzero_ps();
  for (int64_t j = 0; j < nk; ++j) {
    const uint16_t* v = v_rows[j] + c0;
    __m256 vv[NC];
    for (int c = 0; c < NC; ++c) vv[c] = load_half8(v + 8 * c);
    for (int h = 0; h < NH; ++h) {
      const __m256 ph = _mm256_broadcast_ss(p + h * stride + j);
      for (int c = 0; c < NC; ++c) acc[h][c] = _mm256_fmadd_ps(ph, vv[c], acc[h][c]);
    }
  }
  for (int h = 0; h < NH; ++h)
    for (int c = 0; c < NC; ++c)
      _mm256_storeu_ps(out + h * hd + c0 + 8 * c, _mm256_mul_ps(acc[h][c], _mm256_set1_ps(inv[h])));
}

template <int NH>
void pv(const float* p, int64_t stride, int64_t hd, const uint16_t* const* v_rows, int64_t nk, const float* inv,
        float* out) {
  int64_t c0 = 0;
  for (; c0 + 32 <= hd; c0 += 32) pv_tile<NH, 4>(p, stride, hd, v_rows, nk, inv, out, c0);
  for (; c0 < hd; c0 += 8) pv_tile<NH, 1>(p, stride, hd, v_rows, nk, inv, out, c0);
}

template <int NH>
void heads(const float* q, int64_t hd, const uint16_t* const* k_rows, const uint16_t* const* v_rows, int64_t nk,
           float scale, float* sc, float* out) {
  scores<NH>(q, hd, k_rows, nk, scale, sc, nk);
  float inv[NH];
  for (int h = 0; h < NH; ++h) inv[h] = softmax_row(sc + h * nk, nk);
  pv<NH>(sc, nk, hd, v_rows, nk, inv, out);
}

}  // namespace

void attend_avx2(const float* q, int64_t group, int64_t hd, const uint16_t* const* k_rows,
                 const uint16_t* const* v_rows, int64_t nk, float scale, float* sc, float* out) {
  for (int64_t h0 = 0; h0 < group; h0 += 4) {
    const float* qh = q + h0 * hd;
    float* s = sc + h0 * nk;
    float* o = out + h0 * hd;
    switch (group - h0 < 4 ? group - h0 : 4) {
      case 1: heads<1>(qh, hd, k_rows, v_rows, nk, scale, s, o); break;
      case 2: heads<2>(qh, hd, k_rows, v_rows, nk, scale, s, o); break;
      case 3: heads<3>(qh, hd, k_rows, v_rows, nk, scale, s, o); break;
      default: heads<4>(qh, hd, k_rows, v_rows, nk, scale, s, o); break;
    }
  }
}

}  // namespace wai::kernels

WAI_ISA_END
