// q4_K and q6_K weights against q8_K activations for small batches (batched decode, 2..15 rows) with
// AVX-512 VNNI, in the layout of gemm_vnni_batch.cpp: a register holds one dword (4 quants) of 16 weight rows
// and each activation row's matching dword is broadcast into vpdpbusd, so every lane sums a whole
// 32-element sub-block of its row; no horizontal sums.
//
// Per super-block (256 elements, 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit sub-block scales and
// mins, 128 bytes of nibbles) of 16 rows:
//   - the 16 rows' scale bytes are loaded transposed (lane i = row i) and unpacked to sc_j, m_j with
//     ggml's mask-and-shift recipe, lane-parallel; d and dmin come with one vpgatherdd;
//   - per 64-element chunk c, 32 bytes of each row transposed to 8 dword registers give sub-block 2c
//     (low nibbles) and 2c + 1 (high nibbles); per sub-block j and activation row t, 8 vpdpbusd sum
//     q * x in int32 and acc[t] += f32(sum) * (d * sc_j) * d_x[t];
//   - the mins: acc[t] -= d_x[t] * sum_j (dmin * m_j) * (sum of x over sub-block j) (the bsums).
// q6_K (group_q6k) works the same way per 16-element sub-block (its scales are per 16): the 6-bit
// quants are assembled from the transposed low-bit and high-bit bytes, 4 vpdpbusd per sub-block.
//
// Numerics: the same terms as ggml_vec_dot_q4_K_q8_K / _q6_K_q8_K (exact int32 sub-block sums, q8_K activations);
// ggml adds sc_j * sum_j in int32 before one conversion, here each sub-block is scaled in f32: a few
// ulp of each term, well inside the tests' bounds.
//
// Compiled for AVX-512 only; nothing here may run before choose_gemm checked the CPU, and it uses
// no std:: templates (see gemm_vnni_q8.cpp).
#include "kernels/isa_target.h"
WAI_ISA_BEGIN("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma,avx2")
#include <immintrin.h>

#include "kernels/avx512_quant.h"
#include "kernels/batch16.h"
#include "kernels/blocks.h"
#include "kernels/gemm.h"

namespace wai::kernels {
namespace {

constexpr int kRows = kGroupRows;

// One q8_K super-block of one activation row, block-major: act[b * n + t].
struct ActBlock {
  int8_t q[kQKK];     // ggml's q8_K quants
  float d;            // ggml's q8_K d
  float bsum[8];      // sum of q over each 32-element sub-block (q4_K's mins)
  int32_t corr[16];   // -32 * sum of q over each 16-element sub-block (q6_K stores q + 32)
};

size_t act_bytes(DType, int64_t n, int64_t cols) { return static_cast<size_t>(n * (cols / kQKK)) * sizeof(ActBlock); }

void prepare(DType, const float* x, int64_t n, int64_t cols, int64_t t0, int64_t t1, uint8_t* buf) {
  const int64_t nb = cols / kQKK;
  ActBlock* act = reinterpret_cast<ActBlock*>(buf);
  for (int64_t t = t0; t < t1; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      BlockQ8K q;
      quantize_q8_K_block_avx512(x + t * cols + b * kQKK, &q);
      ActBlock& o = act[b * n + t];
      __builtin_memcpy(o.q, q.qs, kQKK);
      o.d = q.d;
      for (int j = 0; j < 8; ++j) o.bsum[j] = static_cast<float>(q.bsums[2 * j] + q.bsums[2 * j + 1]);
      for (int j = 0; j < 16; ++j) o.corr[j] = -32 * q.bsums[j];
    }
}

// Scales and mins of sub-block j (0..7) of the 16 rows, from the transposed scale dwords u[0..2]
// (ggml's utmp[0..2]): sc[j], m[j] as f32 lanes.
inline void unpack_scales(const __m512i (&u)[4], __m512 (&sc)[8], __m512 (&mn)[8]) {
  const __m512i k1 = _mm512_set1_epi32(0x3f3f3f3f), k2 = _mm512_set1_epi32(0x0f0f0f0f), k3 = _mm512_set1_epi32(0x03030303);
  // utmp[3] = ((utmp[2] >> 4) & kmask2) | (((utmp[1] >> 6) & kmask3) << 4)
  const __m512i u3 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u[2], 4), k2),
                                     _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u[1], 6), k3), 4));
  const __m512i u2 = _mm512_and_si512(u[1], k1);  // uaux
  // utmp[1] = (utmp[2] & kmask2) | (((utmp[0] >> 6) & kmask3) << 4)
  const __m512i u1 = _mm512_or_si512(_mm512_and_si512(u[2], k2), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u[0], 6), k3), 4));
  const __m512i u0 = _mm512_and_si512(u[0], k1);
  const __m512i byte = _mm512_set1_epi32(0xFF);
  for (int k = 0; k < 4; ++k) {
    const __m512i sh = _mm512_set1_epi32(8 * k);  // (a variable count: srlv, not the immediate form)
    sc[k] = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srlv_epi32(u0, sh), byte));
    sc[4 + k] = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srlv_epi32(u1, sh), byte));
    mn[k] = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srlv_epi32(u2, sh), byte));
    mn[4 + k] = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srlv_epi32(u3, sh), byte));
  }
}

// q4_K: y[t, r0 + i] for i < valid (16 rows starting at w) and T activation rows starting at act.
template <int T>
void group_q4k(const uint8_t* w, size_t stride, int64_t nb, int valid, const ActBlock* act, int64_t n, float* y, int64_t ldy,
               const char* pf) {
  constexpr int64_t kBs = sizeof(BlockQ4K);
  const uint8_t* p[kRows];
  group_rows(w, stride, valid, p);
  const __m512i gidx = gather_index(valid, stride);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  constexpr int kLines = (kRows * kBs + 63) / 64;  // next group's lines per super-block (see gemm_vnni_batch.cpp)
  for (int64_t b = 0; b < nb; ++b) {
    for (int k = 0; k < kLines; ++k) _mm_prefetch(pf + (b * kLines + k) * 64, _MM_HINT_T1);
    const ActBlock* a = act + b * n;
    // d (low half) and dmin (high half) of the 16 rows' super-blocks.
    const __m512i dd = _mm512_i32gather_epi32(gidx, w + b * kBs, 1);
    const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
    const __m512 dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
    __m512 ds[8];
    {
      __m512i u[4];
      load_transpose16(p, 4, u);  // bytes 4..19: the 12 scale bytes (u[3]: quants, unused)
      __m512 mn[8];
      unpack_scales(u, ds, mn);
      // The mins: acc[t] -= d_x[t] * sum_j dmin * m_j * bsum_j[t].
      for (int j = 0; j < 8; ++j) mn[j] = _mm512_mul_ps(mn[j], dmin);
      for (int t = 0; t < T; ++t) {
        __m512 s = _mm512_mul_ps(mn[0], _mm512_set1_ps(a[t].bsum[0]));
        for (int j = 1; j < 8; ++j) s = _mm512_fmadd_ps(mn[j], _mm512_set1_ps(a[t].bsum[j]), s);
        acc[t] = _mm512_fnmadd_ps(s, _mm512_set1_ps(a[t].d), acc[t]);
      }
      for (int j = 0; j < 8; ++j) ds[j] = _mm512_mul_ps(ds[j], d);
    }
    for (int c = 0; c < 4; ++c) {
      __m512i raw[8];
      {
        __m512i lo[4], hi[4];
        load_transpose16(p, 16 + 32 * c, lo);
        load_transpose16(p, 32 + 32 * c, hi);
        for (int k = 0; k < 4; ++k) raw[k] = lo[k], raw[4 + k] = hi[k];
      }
      for (int h = 0; h < 2; ++h) {
        const int j = 2 * c + h;
        __m512i wq[8];
        for (int g = 0; g < 8; ++g) wq[g] = h ? _mm512_and_si512(_mm512_srli_epi16(raw[g], 4), m4) : _mm512_and_si512(raw[g], m4);
        __m512i s[T];
        for (int t = 0; t < T; ++t) s[t] = _mm512_setzero_si512();
        for (int g = 0; g < 8; ++g)
          for (int t = 0; t < T; ++t) {
            int32_t xd;
            __builtin_memcpy(&xd, a[t].q + 32 * j + 4 * g, 4);
            s[t] = _mm512_dpbusd_epi32(s[t], wq[g], _mm512_set1_epi32(xd));
          }
        for (int t = 0; t < T; ++t)
          acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), _mm512_mul_ps(ds[j], _mm512_set1_ps(a[t].d)), acc[t]);
      }
    }
    for (int i = 0; i < kRows; ++i) p[i] += kBs;
  }
  store_group(acc, valid, y, ldy);
}

// q6_K (210-byte super-blocks: ql[128] low 4 bits, qh[64] high 2 bits, int8 scales[16] per 16
// elements, f16 d), as ggml's dequantize_row_q6_K orders them: element 128 h + 32 k + l takes the
// low (k < 2) or high nibble of ql[64 h + 32 (k & 1) + l] and bits 2k, 2k + 1 of qh[32 h + l], scale
// scales[8 h + 2 k + l / 16]. Per 16-element sub-block and activation row: 4 vpdpbusd from -32 * (sum
// of its x) (the quants are stored + 32), then acc += f32(sum) * d * scale * d_x.
template <int T>
void group_q6k(const uint8_t* w, size_t stride, int64_t nb, int valid, const ActBlock* act, int64_t n, float* y, int64_t ldy,
               const char* pf) {
  constexpr int64_t kBs = sizeof(BlockQ6K);
  const uint8_t* p[kRows];
  group_rows(w, stride, valid, p);
  const __m512i gidx = gather_index(valid, stride);
  const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x03);
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  constexpr int kLines = (kRows * kBs + 63) / 64;
  alignas(64) float ds[16][kRows];  // d * scale of sub-block s, lane = row
  for (int64_t b = 0; b < nb; ++b) {
    for (int k = 0; k < kLines; ++k) _mm_prefetch(pf + (b * kLines + k) * 64, _MM_HINT_T1);
    const ActBlock* a = act + b * n;
    {
      // d: the high half of the dword at 206 (the last 2 bytes of qh, then d), inside the record.
      const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_i32gather_epi32(gidx, w + b * kBs + 206, 1), 16)));
      __m512i sc[4];
      load_transpose16(p, 192, sc);  // sc[c] lane i = scales 4c..4c+3 of row i
      for (int j = 0; j < 16; ++j) {
        // byte j % 4 of the dword, sign-extended (variable counts: sllv / srav)
        const __m512i v = _mm512_srav_epi32(_mm512_sllv_epi32(sc[j / 4], _mm512_set1_epi32(24 - 8 * (j % 4))), _mm512_set1_epi32(24));
        _mm512_store_ps(ds[j], _mm512_mul_ps(_mm512_cvtepi32_ps(v), d));
      }
    }
    for (int h = 0; h < 2; ++h)
      for (int i = 0; i < 2; ++i) {
        __m512i qh[4];
        load_transpose16(p, 128 + 32 * h + 16 * i, qh);
        for (int kk = 0; kk < 2; ++kk) {
          __m512i ql[4];
          load_transpose16(p, 64 * h + 32 * kk + 16 * i, ql);
          for (int k = kk; k < 4; k += 2) {
            const int sb = 8 * h + 2 * k + i;           // sub-block (scale index)
            const int e0 = 128 * h + 32 * k + 16 * i;  // its first element
            __m512i wq[4];
            for (int g = 0; g < 4; ++g) {
              const __m512i nib = k < 2 ? _mm512_and_si512(ql[g], m4) : _mm512_and_si512(_mm512_srli_epi16(ql[g], 4), m4);
              const __m512i hb = _mm512_and_si512(_mm512_srlv_epi16(qh[g], _mm512_set1_epi16(static_cast<short>(2 * k))), m2);
              wq[g] = _mm512_or_si512(nib, _mm512_slli_epi16(hb, 4));
            }
            __m512i s[T];
            for (int t = 0; t < T; ++t) s[t] = _mm512_set1_epi32(a[t].corr[sb]);
            for (int g = 0; g < 4; ++g)
              for (int t = 0; t < T; ++t) {
                int32_t xd;
                __builtin_memcpy(&xd, a[t].q + e0 + 4 * g, 4);
                s[t] = _mm512_dpbusd_epi32(s[t], wq[g], _mm512_set1_epi32(xd));
              }
            const __m512 dsv = _mm512_load_ps(ds[sb]);
            for (int t = 0; t < T; ++t)
              acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), _mm512_mul_ps(dsv, _mm512_set1_ps(a[t].d)), acc[t]);
          }
        }
      }
    for (int r = 0; r < kRows; ++r) p[r] += kBs;
  }
  store_group(acc, valid, y, ldy);
}

template <bool kQ4K>
void run_type(const GemmArgs& a, int64_t r0, int64_t r1) {
  const int64_t nb = a.w.cols / kQKK;
  const size_t stride = static_cast<size_t>(nb) * (kQ4K ? sizeof(BlockQ4K) : sizeof(BlockQ6K));
  const ActBlock* act = reinterpret_cast<const ActBlock*>(a.xq);
  for_each_group(a, r0, r1, stride, [&](const uint8_t* w, int64_t r, int valid, int64_t t0, int64_t t1, const char* pf) {
    with_rows(t1 - t0, [&](auto T) {
      constexpr int kT = decltype(T)::value;
      if constexpr (kQ4K) group_q4k<kT>(w, stride, nb, valid, act + t0, a.n, a.y + t0 * a.ldy + r, a.ldy, pf);
      else group_q6k<kT>(w, stride, nb, valid, act + t0, a.n, a.y + t0 * a.ldy + r, a.ldy, pf);
    });
  });
}

void run(const GemmArgs& a, int64_t r0, int64_t r1) {
  if (a.w.type == DType::Q4_K) run_type<true>(a, r0, r1);
  else run_type<false>(a, r0, r1);
}

}  // namespace

const GemmKernel kGemmVnniKBatch = {"avx512-vnni-k-batch", kRows, 1, act_bytes, prepare, run};

}  // namespace wai::kernels

WAI_ISA_END
