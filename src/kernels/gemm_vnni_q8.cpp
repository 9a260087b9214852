// q4_0 / q8_0 weights against q8_0 activations with AVX-512 VNNI (vpdpbusd) and VBMI byte permutes,
// for decode (one activation row): a register tile of R weight rows; per "quad" of 4
// blocks (128 elements) two vpermt2b gather the 4 blocks' quants out of the 18- or 34-byte block
// records, one vpermw gathers their 4 f16 scales.
//
// Numerics: the activations hold ggml's q8_0 values (same d, same quants); per quad, 16 int32 lanes
// (4 per block) are converted to f32 and multiplied by their block's f16(d_w) * f16(d_x), as ggml's
// AVX kernels do, and accumulated in f32.
//
// This file is compiled for AVX-512; nothing in it may run before choose_gemm checked the CPU. It
// uses no std:: templates, so no AVX-512 instantiation can leak into other translation units.
// Everything below is compiled for this ISA (kernels/isa_target.h).
#include "kernels/isa_target.h"
WAI_ISA_BEGIN("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi,f16c,fma,avx2")
#include <immintrin.h>

#include <cstring>

#include "kernels/avx512_quant.h"
#include "kernels/blocks.h"
#include "kernels/gemm.h"
#include "kernels/quant.h"

namespace wai::kernels {
namespace {

// Prepared activations: per row, one Quad per 4 q8_0 blocks (missing blocks of the last quad zero).
struct Quad {
  int8_t lo[64];     // elements 0..15 of blocks 0, 1, 2, 3 (the order q4_0 low nibbles unpack to)
  int8_t hi[64];     // elements 16..31 of blocks 0, 1, 2, 3
  int32_t corr[16];  // -8 * (sum of the 4 lo and 4 hi quants of each int32 lane): vpdpbusd takes
                     // unsigned weights, q4_0 nibbles are q + 8 (q8_0 uses w + 128, corr * 16)
  float dx[16];      // f16(d_k) of block k = lane / 4
};
static_assert(sizeof(Quad) == 256);

inline int64_t quads_of(int64_t cols) { return (cols / kQK0 + 3) / 4; }

size_t act_bytes(DType, int64_t n, int64_t cols) { return static_cast<size_t>(n * quads_of(cols)) * sizeof(Quad); }

void prepare(DType, const float* x, int64_t, int64_t cols, int64_t t0, int64_t t1, uint8_t* buf) {
  const int64_t nb = cols / kQK0, nq = quads_of(cols);
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t t = t0; t < t1; ++t) {
    Quad* out = reinterpret_cast<Quad*>(buf) + t * nq;
    for (int64_t qd = 0; qd < nq; ++qd) {
      Quad& o = out[qd];
      alignas(16) float d[4];
      for (int k = 0; k < 4; ++k) {
        const int64_t b = 4 * qd + k;
        alignas(64) int8_t q[32] = {};
        d[k] = b < nb ? h2f(quantize_q8_0_block_avx512(x + t * cols + b * kQK0, q)) : 0.0f;
        std::memcpy(o.lo + 16 * k, q, 16);
        std::memcpy(o.hi + 16 * k, q + 16, 16);
      }
      __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_loadu_si512(o.lo));
      s = _mm512_dpbusd_epi32(s, ones, _mm512_loadu_si512(o.hi));
      _mm512_storeu_si512(o.corr, _mm512_mullo_epi32(s, _mm512_set1_epi32(-8)));
      const __m512 dv = _mm512_castps128_ps512(_mm_load_ps(d));
      _mm512_storeu_ps(o.dx, _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3), dv));
    }
  }
}

// Byte / word gather indices, built once.
struct Perm {
  __m512i q4_qs, q4_d;             // q4_0: quants of block k at 18k+2.., scale word 9k
  __m512i q8_lo, q8_hi, q8_d;      // q8_0: lo from (p, p+64), hi from (p+8, p+72), scale word 17k
  Perm() {
    alignas(64) uint8_t a[64], b[64], c[64];
    alignas(64) uint16_t d4[32], d8[32];
    for (int k = 0; k < 4; ++k)
      for (int j = 0; j < 16; ++j) {
        a[16 * k + j] = static_cast<uint8_t>(18 * k + 2 + j);
        b[16 * k + j] = static_cast<uint8_t>(34 * k + 2 + j);
        c[16 * k + j] = static_cast<uint8_t>(34 * k + 18 + j - 8);
      }
    for (int l = 0; l < 32; ++l) {
      d4[l] = static_cast<uint16_t>(9 * ((l / 4) % 4));
      d8[l] = static_cast<uint16_t>(17 * ((l / 4) % 4));
    }
    q4_qs = _mm512_load_si512(a);
    q8_lo = _mm512_load_si512(b);
    q8_hi = _mm512_load_si512(c);
    q4_d = _mm512_load_si512(d4);
    q8_d = _mm512_load_si512(d8);
  }
};

// Loads bytes [off, off + 64) of a record of `len` bytes, zero beyond len (never touches them).
inline __m512i load_upto(const uint8_t* p, int64_t off, int64_t len) {
  if (off + 64 <= len) return _mm512_loadu_si512(p + off);
  if (off >= len) return _mm512_setzero_si512();
  return _mm512_maskz_loadu_epi8((~__mmask64{0}) >> (64 - (len - off)), p + off);
}

// The 4 weight blocks of quad `qd` as unsigned bytes in Quad lo/hi order, and their per-lane f32
// scales. `len` is the quad's byte length (shorter for a partial last quad).
template <bool kQ4>
inline void load_w(const Perm& pm, const uint8_t* p, int64_t len, __m512i* lo, __m512i* hi, __m512* scale) {
  if constexpr (kQ4) {
    const __m512i z0 = load_upto(p, 0, len), z1 = load_upto(p, 64, len);
    const __m512i qs = _mm512_permutex2var_epi8(z0, pm.q4_qs, z1);
    const __m512i m = _mm512_set1_epi8(0x0F);
    *lo = _mm512_and_si512(qs, m);
    *hi = _mm512_and_si512(_mm512_srli_epi16(qs, 4), m);
    *scale = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(pm.q4_d, z0)));
  } else {
    const __m512i z0 = load_upto(p, 0, len), z1 = load_upto(p, 64, len);
    const __m512i z2 = load_upto(p, 8, len), z3 = load_upto(p, 72, len);
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));  // w + 128, unsigned
    *lo = _mm512_xor_si512(_mm512_permutex2var_epi8(z0, pm.q8_lo, z1), bias);
    *hi = _mm512_xor_si512(_mm512_permutex2var_epi8(z2, pm.q8_hi, z3), bias);
    *scale = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi16(z0, pm.q8_d, z1)));
  }
}

// One quad (4 blocks, `len` bytes per weight row) of an R x T tile.
template <bool kQ4, int R, int T>
inline void quad_step(const Perm& pm, const uint8_t* w, size_t wstride, int64_t qd, int64_t len, const Quad* x, int64_t nq,
                      __m512 (&acc)[R][T]) {
  constexpr int64_t bs = kQ4 ? 18 : 34;
  __m512i lo[R], hi[R];
  __m512 sw[R];
  for (int r = 0; r < R; ++r) {
    const uint8_t* p = w + r * wstride + qd * 4 * bs;
    load_w<kQ4>(pm, p, len, &lo[r], &hi[r], &sw[r]);
  }
  // The R rows are contiguous and tiles walk them in order, so the thread's weights are one linear
  // stream: prefetch it ahead of this step's position in it (the R * 4 * bs bytes this step consumes).
  prefetch_stream(w + qd * (R * 4 * bs), R * 4 * bs);
  for (int t = 0; t < T; ++t) {
    const Quad& xq = x[t * nq + qd];
    __m512i corr = _mm512_loadu_si512(xq.corr);
    if constexpr (!kQ4) corr = _mm512_slli_epi32(corr, 4);  // -128 * sum for the +128 bias
    const __m512i xlo = _mm512_loadu_si512(xq.lo), xhi = _mm512_loadu_si512(xq.hi);
    const __m512 dx = _mm512_loadu_ps(xq.dx);
    for (int r = 0; r < R; ++r) {
      const __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(corr, lo[r], xlo), hi[r], xhi);
      acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(sw[r], dx), acc[r][t]);
    }
  }
}

template <bool kQ4, int R, int T>
void tile(const Perm& pm, const uint8_t* w, size_t wstride, int64_t nb, const Quad* x, int64_t nq, float* y, int64_t ldy) {
  constexpr int64_t bs = kQ4 ? 18 : 34;
  __m512 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  const int64_t full = nb / 4;
  for (int64_t qd = 0; qd < full; ++qd) quad_step<kQ4, R, T>(pm, w, wstride, qd, 4 * bs, x, nq, acc);  // constant len
  if (full < nq) quad_step<kQ4, R, T>(pm, w, wstride, full, (nb - 4 * full) * bs, x, nq, acc);
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
}

// Every activation row on its own (T = 1): batches of 2..15 rows go to gemm_vnni_batch.cpp, which
// shares each weight load among them far better than register tiles of this layout could.
template <bool kQ4, int R>
void tile_rows(const Perm& pm, const uint8_t* w, size_t wstride, int64_t nb, const Quad* x, int64_t nq, int64_t n,
               float* y, int64_t ldy) {
  for (int64_t t = 0; t < n; ++t) tile<kQ4, R, 1>(pm, w, wstride, nb, x + t * nq, nq, y + t * ldy, ldy);
}

template <bool kQ4>
void run_type(const GemmArgs& a, int64_t r0, int64_t r1) {
  static const Perm pm;
  const int64_t nb = a.w.cols / kQK0, nq = quads_of(a.w.cols);
  const size_t wstride = static_cast<size_t>(nb) * (kQ4 ? 18 : 34);
  const Quad* x = reinterpret_cast<const Quad*>(a.xq);
  // Activation rows are walked in chunks so that a chunk of prepared activations stays in L2 while
  // every weight row of this thread's range streams past it.
  const int64_t chunk = 64;
  for (int64_t t0 = 0; t0 < a.n; t0 += chunk) {
    const int64_t nt = a.n - t0 < chunk ? a.n - t0 : chunk;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4)
      tile_rows<kQ4, 4>(pm, a.w.data + r * wstride, wstride, nb, x + t0 * nq, nq, nt, a.y + t0 * a.ldy + r, a.ldy);
    for (; r < r1; ++r)
      tile_rows<kQ4, 1>(pm, a.w.data + r * wstride, wstride, nb, x + t0 * nq, nq, nt, a.y + t0 * a.ldy + r, a.ldy);
  }
}

void run(const GemmArgs& a, int64_t r0, int64_t r1) {
  if (a.w.type == DType::Q4_0) run_type<true>(a, r0, r1);
  else run_type<false>(a, r0, r1);
}

}  // namespace

const GemmKernel kGemmVnniQ8 = {"avx512-vnni", 4, 1, act_bytes, prepare, run};

}  // namespace wai::kernels

WAI_ISA_END
