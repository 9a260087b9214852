// q4_0 / q8_0 weights (GGUF's row layout) against q8_0 activations with AVX2 + FMA, for CPUs without
// AVX-512 (Zen 2/3, Haswell..Alder Lake): decode (one activation row) and prefill / batches alike.
//
// Each block's integer dot product is ggml's AVX2 one: the weight's 32 quants as signed bytes (q4_0:
// nibble - 8), vpsignb moves the weight's sign onto the activation (|w| * sign(w) * x = w * x, so the
// unsigned x signed vpmaddubsw never saturates: |pair| <= 2 * 128 * 127), vpmaddwd with ones sums
// pairs into 8 int32 lanes, exact; the lanes are converted to f32 and FMA'd into 8 f32 accumulators
// with d = f16(d_w) * f16(d_x), block after block; the 8 lanes are reduced at the end as ggml's
// hsum_float_8 does. Same terms and order as llama.cpp's AVX2 ggml_vec_dot_q4_0_q8_0 / q8_0_q8_0.
//
// Register tiles: R weight rows x T activation rows share each loaded block (the weight's unpacked
// quants and |w| serve T activations, an activation block serves R rows). Every output is computed
// by the same instruction sequence whatever the tile, so results do not depend on the batch size or
// on which rows share a tile (a request gives the same tokens alone or batched, cached or not).
// Activations are walked in chunks of kChunk rows so that a chunk's blocks (kChunk x cols / 32 x 40
// bytes: 320 KiB at 4096 columns) stay in L2 while every weight row passes over them.
//
// Compiled for AVX2/FMA/F16C; choose_gemm calls it only when the CPU has them. No std:: templates
// (see gemm_vnni_q8.cpp).
#include "kernels/isa_target.h"
WAI_ISA_BEGIN("avx2,fma,f16c")
#include <immintrin.h>

#include "kernels/avx2/act_q8.h"
#include "kernels/avx2/avx2_math.h"
#include "kernels/blocks.h"
#include "kernels/gemm.h"
#include "kernels/quant.h"

namespace wai::kernels {
namespace {

constexpr int64_t kChunk = 64;  // activation rows per pass over the weights

// The 32 quants of a block as signed bytes.
template <bool kQ4>
inline __m256i load_quants(const uint8_t* blk) {
  if constexpr (kQ4) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
    const __m128i m = _mm_set1_epi8(0x0F);
    const __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m), _mm_and_si128(raw, m));
    return _mm256_sub_epi8(u, _mm256_set1_epi8(8));
  } else {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  }
}

// y[t * ldy + i] for R weight rows starting at w (row stride `stride`) and T activation rows whose
// blocks start at act (block b of row t at act[b * n + t]).
template <bool kQ4, int R, int T>
void tile(const uint8_t* w, size_t stride, int64_t nb, const Act* act, int64_t n, float* y, int64_t ldy) {
  constexpr int64_t bs = kQ4 ? 18 : 34;
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    const Act* a = act + b * n;
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = w + static_cast<size_t>(r) * stride + b * bs;
      const __m256i wq = load_quants<kQ4>(blk);
      const __m256i aw = _mm256_sign_epi8(wq, wq);  // |w|
      uint16_t dh;
      __builtin_memcpy(&dh, blk, 2);
      const float dw = _cvtsh_ss(dh);
      for (int t = 0; t < T; ++t) {
        const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t].q));
        const __m256i p16 = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xq, wq));
        const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
        acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * a[t].d), p, acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) y[t * ldy + r] = hsum8(acc[r][t]);
}

template <bool kQ4, int R>
void rows(const uint8_t* w, size_t stride, int64_t nb, const Act* act, int64_t n, int64_t t0, int64_t t1, float* y,
          int64_t ldy) {
  int64_t t = t0;
  for (; t + 4 <= t1; t += 4) tile<kQ4, R, 4>(w, stride, nb, act + t, n, y + t * ldy, ldy);
  switch (t1 - t) {
    case 3: tile<kQ4, R, 3>(w, stride, nb, act + t, n, y + t * ldy, ldy); break;
    case 2: tile<kQ4, R, 2>(w, stride, nb, act + t, n, y + t * ldy, ldy); break;
    case 1: tile<kQ4, R, 1>(w, stride, nb, act + t, n, y + t * ldy, ldy); break;
    default: break;
  }
}

template <bool kQ4>
void run_type(const GemmArgs& a, int64_t r0, int64_t r1) {
  const int64_t nb = a.w.cols / kQK0;
  const size_t stride = static_cast<size_t>(nb) * (kQ4 ? 18 : 34);
  const Act* act = reinterpret_cast<const Act*>(a.xq);
  for (int64_t t0 = 0; t0 < a.n; t0 += kChunk) {
    const int64_t t1 = t0 + kChunk < a.n ? t0 + kChunk : a.n;
    // One activation row (decode): 4 weight rows per tile; more: 2 rows x 4 activations.
    const bool wide = t1 - t0 == 1;
    int64_t r = r0;
    if (wide)
      for (; r + 4 <= r1; r += 4) rows<kQ4, 4>(a.w.data + r * stride, stride, nb, act, a.n, t0, t1, a.y + r, a.ldy);
    for (; r + 2 <= r1; r += 2) rows<kQ4, 2>(a.w.data + r * stride, stride, nb, act, a.n, t0, t1, a.y + r, a.ldy);
    for (; r < r1; ++r) rows<kQ4, 1>(a.w.data + r * stride, stride, nb, act, a.n, t0, t1, a.y + r, a.ldy);
  }
}

void run(const GemmArgs& a, int64_t r0, int64_t r1) {
  if (a.w.type == DType::Q4_0) run_type<true>(a, r0, r1);
  else run_type<false>(a, r0, r1);
}

}  // namespace

const GemmKernel kGemmAvx2Q0 = {"avx2-q0", 4, 1, act_bytes, prepare, run};

}  // namespace wai::kernels

WAI_ISA_END
