// q4_0 / q8_0 weights against q8_0 activations for small batches (batched decode, 2..15 rows) with
// AVX-512 VNNI, in a layout where no lane ever needs a horizontal sum or a per-lane rescale.
//
// The matrix-vector kernel (gemm_vnni_q8.cpp) keeps each weight row's blocks side by side in the
// lanes of a register, so every (row, activation, block) triple costs two vpdpbusd plus a convert, a
// scale product and an FMA, and only 128 of its multiply-adds share them. Here a register instead
// holds the same 4 quants (one dword) of 16 different weight rows: the 16 rows' 32-quant blocks are
// transposed on the fly (16 loads, 12 inserts, 8 unpacks per block for q4_0, twice that for q8_0),
// and one activation's dword is broadcast from memory into vpdpbusd. Each lane then sums a whole
// block of its row in int32 after 8 vpdpbusd, so the convert / scale / FMA is paid once per 16
// rows x 32 quants, and the 16 results of an activation row are stored without a reduction.
// Per 16 rows x 8 activations x 32 quants: 64 vpdpbusd against ~50 shuffles, masks, converts and FMAs,
// all on the two 512-bit ports (vpdpbusd issues on both, like the FMAs: ~2 per cycle measured).
// Measured (bench/kernels, 7B shapes, 8 rows, 2 threads, weights from DRAM): 270-390 GFLOP/s, 1.3-1.5x
// the time of one row where the register tiles of the matrix-vector kernel took 3-3.4x.
//
// Numerics: the activations hold ggml's q8_0 values (same d, same quants); each block's int32 dot
// product is exact, converted to f32 and multiplied by f16(d_w) * f16(d_x) as ggml does; the f32 sum
// over blocks runs in block order (ggml's AVX kernels sum 8 lanes and reduce: same terms, another order).
//
// Compiled for AVX-512 only; nothing here may run before choose_gemm checked the CPU, and it uses
// no std:: templates (see gemm_vnni_q8.cpp).
#include "kernels/isa_target.h"
WAI_ISA_BEGIN("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma,avx2")
#include <immintrin.h>

#include "kernels/avx512_quant.h"
#include "kernels/act_blocks.h"
#include "kernels/batch16.h"
#include "kernels/blocks.h"
#include "kernels/gemm.h"

namespace wai::kernels {
namespace {

constexpr int kRows = kGroupRows;

// Block b of 16 rows as 8 registers of unsigned quants (w[g] lane i = elements 4g..4g+3 of row i)
// and the 16 rows' f32 scales.
template <bool kQ4>
inline void load_block(const uint8_t* const (&p)[kRows], __m512i (&w)[8]) {
  if constexpr (kQ4) {
    __m512i t[4];
    load_transpose16(p, 2, t);
    const __m512i m = _mm512_set1_epi8(0x0F);
    for (int d = 0; d < 4; ++d) {
      w[d] = _mm512_and_si512(t[d], m);                             // low nibbles: elements 0..15
      w[4 + d] = _mm512_and_si512(_mm512_srli_epi16(t[d], 4), m);  // high nibbles: elements 16..31
    }
  } else {
    __m512i lo[4], hi[4];
    load_transpose16(p, 2, lo);
    load_transpose16(p, 18, hi);
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));  // w + 128, unsigned
    for (int d = 0; d < 4; ++d) {
      w[d] = _mm512_xor_si512(lo[d], bias);
      w[4 + d] = _mm512_xor_si512(hi[d], bias);
    }
  }
}

// y[t, r0 + i] for i < valid (16 rows starting at w) and T activation rows starting at act + t0.
template <bool kQ4, int T>
void group(const uint8_t* w, size_t stride, int64_t nb, int valid, const ActBlock* act, int64_t n, float* y, int64_t ldy,
           const char* pf) {
  constexpr int64_t bs = kQ4 ? 18 : 34;
  const uint8_t* p[kRows];
  group_rows(w, stride, valid, p);
  // One vpgatherdd per block fetches the 16 f16 scales that open the records. (A scalar pre-pass that
  // copied them block-major per group cost ~15% more.)
  const __m512i gidx = gather_index(valid, stride);
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  // Lines of the next group to prefetch (into L2, see prefetch_stream) per block step, so that the
  // next 16 rows (contiguous, 16 * stride bytes) are in cache when this group ends: the streams of
  // the 16 rows are too many and too short for the hardware prefetcher.
  constexpr int kLines = (kRows * bs + 63) / 64;
  for (int64_t b = 0; b < nb; ++b) {
    for (int k = 0; k < kLines; ++k) _mm_prefetch(pf + (b * kLines + k) * 64, _MM_HINT_T1);
    __m512i wq[8];
    load_block<kQ4>(p, wq);
    const __m512 sw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_i32gather_epi32(gidx, w + b * bs, 1)));
    for (int i = 0; i < kRows; ++i) p[i] += bs;
    const ActBlock* a = act + b * n;
    __m512i s[T];
    for (int t = 0; t < T; ++t) s[t] = _mm512_set1_epi32(a[t].corr);
    for (int g = 0; g < 8; ++g)
      for (int t = 0; t < T; ++t) {
        int32_t xd;
        __builtin_memcpy(&xd, a[t].q + 4 * g, 4);
        s[t] = _mm512_dpbusd_epi32(s[t], wq[g], _mm512_set1_epi32(xd));
      }
    for (int t = 0; t < T; ++t)
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), _mm512_mul_ps(sw, _mm512_set1_ps(a[t].d)), acc[t]);
  }
  store_group(acc, valid, y, ldy);
}

template <bool kQ4>
void run_type(const GemmArgs& a, int64_t r0, int64_t r1) {
  const int64_t nb = a.w.cols / kQK0;
  const size_t stride = static_cast<size_t>(nb) * (kQ4 ? 18 : 34);
  const ActBlock* act = reinterpret_cast<const ActBlock*>(a.xq);
  for_each_group(a, r0, r1, stride, [&](const uint8_t* w, int64_t r, int valid, int64_t t0, int64_t t1, const char* pf) {
    with_rows(t1 - t0, [&](auto T) {
      group<kQ4, decltype(T)::value>(w, stride, nb, valid, act + t0, a.n, a.y + t0 * a.ldy + r, a.ldy, pf);
    });
  });
}

void run(const GemmArgs& a, int64_t r0, int64_t r1) {
  if (a.w.type == DType::Q4_0) run_type<true>(a, r0, r1);
  else run_type<false>(a, r0, r1);
}

}  // namespace

const GemmKernel kGemmVnniBatch = {"avx512-vnni-batch", kRows, 1, act_bytes, prepare, run};

}  // namespace wai::kernels

WAI_ISA_END
