// q4_0 / q8_0 weights against q8_0 activations with AVX-512 VNNI (vpdpbusd), for any batch size:
// a register tile of R weight rows x T activation rows reuses each unpacked weight pair of blocks
// across T activation rows and each activation load across R weight rows.
//
// Numerics: the activations hold ggml's q8_0 values (same d, same quants); each 64-element pair of
// blocks yields 16 int32 lanes, 8 per block, converted to f32 and multiplied by that block's
// f16(d_w) * f16(d_x) (as ggml's AVX kernels do), accumulated in f32.
//
// This file is compiled for AVX-512; nothing in it may run before choose_gemm checked the CPU. It
// uses no std:: templates, so no AVX-512 instantiation can leak into other translation units.
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma,avx2")
// GCC 12 warns falsely about the _mm512_undefined_* inside its own intrinsic headers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "kernels/avx512_quant.h"
#include "kernels/blocks.h"
#include "kernels/gemm.h"
#include "kernels/quant.h"

namespace wai::kernels {
namespace {

// Prepared activations: per row, one Pair per two q8_0 blocks A, B (the last B zero when the block
// count is odd).
struct Pair {
  int8_t qs[64];     // A0..15, B0..15, A16..31, B16..31 (the order q4_0 nibbles unpack to)
  int32_t corr[16];  // -8 * (sum of the 4 quants of each int32 lane): vpdpbusd takes unsigned weights
  float dx[16];      // f16(d_A) x4, f16(d_B) x4, f16(d_A) x4, f16(d_B) x4
};
static_assert(sizeof(Pair) == 192);

inline int64_t pairs_of(int64_t cols) { return (cols / kQK0 + 1) / 2; }

size_t act_bytes(DType, int64_t n, int64_t cols) { return static_cast<size_t>(n * pairs_of(cols)) * sizeof(Pair); }

void prepare(DType, const float* x, int64_t, int64_t cols, int64_t t0, int64_t t1, uint8_t* buf) {
  const int64_t nb = cols / kQK0, np = pairs_of(cols);
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t t = t0; t < t1; ++t) {
    Pair* out = reinterpret_cast<Pair*>(buf) + t * np;
    for (int64_t p = 0; p < np; ++p) {
      const int64_t b = 2 * p;
      alignas(64) int8_t q[2][32];
      uint16_t d[2] = {0, 0};
      d[0] = quantize_q8_0_block_avx512(x + t * cols + b * kQK0, q[0]);
      if (b + 1 < nb) d[1] = quantize_q8_0_block_avx512(x + t * cols + (b + 1) * kQK0, q[1]);
      else std::memset(q[1], 0, 32);
      Pair& o = out[p];
      for (int h = 0; h < 2; ++h)  // h: first / second half of each block
        for (int k = 0; k < 2; ++k) std::memcpy(o.qs + 32 * h + 16 * k, q[k] + 16 * h, 16);
      // -8 * (sum of each 4 quants): vpdpbusd of 1s (unsigned) with the quants (signed).
      const __m512i sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_loadu_si512(o.qs));
      _mm512_storeu_si512(o.corr, _mm512_mullo_epi32(sums, _mm512_set1_epi32(-8)));
      const float da = f16_to_f32(d[0]), db = f16_to_f32(d[1]);
      _mm512_storeu_ps(o.dx, _mm512_mask_blend_ps(0xF0F0, _mm512_set1_ps(da), _mm512_set1_ps(db)));
    }
  }
}

// The two weight blocks of pair p as 64 unsigned bytes in Pair::qs order, and their per-lane f32
// scales. `full` is false for a lone last block (the B half then multiplies zero activations).
template <bool kQ4>
inline __m512i load_w(const uint8_t* row, int64_t p, bool full, __m512* scale) {
  const int64_t bs = kQ4 ? 18 : 34;
  const uint8_t* a = row + 2 * p * bs;
  const uint8_t* b = a + bs;
  uint16_t da, db = 0;
  std::memcpy(&da, a, 2);
  if (full) std::memcpy(&db, b, 2);
  const __m256i h = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(da | (static_cast<uint32_t>(db) << 16))),
                                        _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 0, 1, 0, 1, 0, 1,
                                                         0, 1, 2, 3, 2, 3, 2, 3, 2, 3));
  *scale = _mm512_cvtph_ps(h);
  if constexpr (kQ4) {
    const __m128i qa = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + 2));
    const __m128i qb = full ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2)) : _mm_setzero_si128();
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(qa), qb, 1);
    const __m256i m = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  } else {
    const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 2));
    const __m256i qb = full ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2)) : _mm256_setzero_si256();
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(qa), qb, 1);
    z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
    return _mm512_xor_si512(z, _mm512_set1_epi8(static_cast<char>(0x80)));  // w + 128, unsigned
  }
}

template <bool kQ4, int R, int T>
void tile(const uint8_t* w, size_t wstride, const Pair* x, int64_t np, bool last_full, float* y, int64_t ldy) {
  __m512 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  for (int64_t p = 0; p < np; ++p) {
    const bool full = p + 1 < np || last_full;
    __m512i wv[R];
    __m512 sw[R];
    for (int r = 0; r < R; ++r) {
      wv[r] = load_w<kQ4>(w + r * wstride, p, full, &sw[r]);
      if (R > 1 && p + 4 < np) _mm_prefetch(reinterpret_cast<const char*>(w + r * wstride + (2 * p + 8) * (kQ4 ? 18 : 34)), _MM_HINT_T0);
    }
    for (int t = 0; t < T; ++t) {
      const Pair& xp = x[t * np + p];
      const __m512i xq = _mm512_loadu_si512(xp.qs);
      __m512i corr = _mm512_loadu_si512(xp.corr);
      if constexpr (!kQ4) corr = _mm512_slli_epi32(corr, 4);  // -128 * sum for the +128 bias
      const __m512 dx = _mm512_loadu_ps(xp.dx);
      for (int r = 0; r < R; ++r) {
        const __m512i s = _mm512_dpbusd_epi32(corr, wv[r], xq);
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(sw[r], dx), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
}

template <bool kQ4, int R>
void tile_rows(const uint8_t* w, size_t wstride, const Pair* x, int64_t np, bool last_full, int64_t n, float* y,
               int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) tile<kQ4, R, 4>(w, wstride, x + t * np, np, last_full, y + t * ldy, ldy);
  switch (n - t) {
    case 3: tile<kQ4, R, 3>(w, wstride, x + t * np, np, last_full, y + t * ldy, ldy); break;
    case 2: tile<kQ4, R, 2>(w, wstride, x + t * np, np, last_full, y + t * ldy, ldy); break;
    case 1: tile<kQ4, R, 1>(w, wstride, x + t * np, np, last_full, y + t * ldy, ldy); break;
    default: break;
  }
}

template <bool kQ4>
void run_type(const GemmArgs& a, int64_t r0, int64_t r1) {
  const size_t wstride = static_cast<size_t>(a.w.cols / kQK0) * (kQ4 ? 18 : 34);
  const int64_t np = pairs_of(a.w.cols);
  const bool last_full = (a.w.cols / kQK0) % 2 == 0;
  const Pair* x = reinterpret_cast<const Pair*>(a.xq);
  int64_t r = r0;
  // Activation rows are walked in chunks so that a chunk of prepared activations stays in L2 while
  // every weight row of this thread's range streams past it.
  const int64_t chunk = a.n <= 64 ? a.n : 64;
  for (int64_t t0 = 0; t0 < a.n; t0 += chunk) {
    const int64_t nt = a.n - t0 < chunk ? a.n - t0 : chunk;
    for (r = r0; r + 4 <= r1; r += 4)
      tile_rows<kQ4, 4>(a.w.data + r * wstride, wstride, x + t0 * np, np, last_full, nt, a.y + t0 * a.ldy + r, a.ldy);
    for (; r < r1; ++r)
      tile_rows<kQ4, 1>(a.w.data + r * wstride, wstride, x + t0 * np, np, last_full, nt, a.y + t0 * a.ldy + r, a.ldy);
  }
}

void run(const GemmArgs& a, int64_t r0, int64_t r1) {
  if (a.w.type == DType::Q4_0) run_type<true>(a, r0, r1);
  else run_type<false>(a, r0, r1);
}

}  // namespace

const GemmKernel kGemmVnniQ8 = {"avx512-vnni", 4, 1, act_bytes, prepare, run};

}  // namespace wai::kernels
