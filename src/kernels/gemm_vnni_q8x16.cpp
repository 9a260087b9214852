// q8_0 weights in the q8x16 layout (kernels/repack.h) against q8_0 activations with AVX-512 VNNI,
// for 1..15 activation rows: decode (one row) and batched decode.
//
// gemm_vnni_q4x16.cpp's kernel for q8_0: a 544-byte record holds one block of 16 rows as the 8
// registers the transposing batch kernel (gemm_vnni_batch.cpp) builds with 32 loads and 40 shuffles,
// and the 16 rows' scales side by side; the weights are made unsigned for vpdpbusd by flipping their
// sign bit (w + 128, undone by the activations' -128 * sum(q) correction), as there. One thread's rows
// are one linear stream. Activation dwords enter vpdpbusd as embedded broadcasts (dpbusd_bcst), as
// in gemm_vnni_q4x16.cpp: 8 rows 9% faster (7B q8_0 batched decode, alternating), one row unchanged.
//
// Numerics: the same integer sums and f32 operations in the same block order as group<false, T> of
// gemm_vnni_batch.cpp: bit-identical to it for every row count.
//
// Compiled for AVX-512 only; nothing here may run before choose_gemm checked the CPU, and it uses
// no std:: templates (see gemm_vnni_q8.cpp).
#include "kernels/isa_target.h"
WAI_ISA_BEGIN("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma,avx2")
#include <immintrin.h>

#include "kernels/act_blocks.h"
#include "kernels/avx512_quant.h"
#include "kernels/batch16.h"
#include "kernels/blocks.h"
#include "kernels/gemm.h"
#include "kernels/repack.h"

namespace wai::kernels {
namespace {

constexpr int kRows = kGroupRows;

template <int T>
void group_q8x16(const uint8_t* rec, int64_t nb, const ActBlock* act, int64_t n, float* y, int64_t ldy) {
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b, rec += kQ8x16RecordBytes) {
    prefetch_stream(rec, kQ8x16RecordBytes);
    const ActBlock* a = act + b * n;
    __m512i s[T];
    for (int t = 0; t < T; ++t) s[t] = _mm512_set1_epi32(a[t].corr);
    for (int j = 0; j < 8; ++j) {
      const __m512i w = _mm512_xor_si512(_mm512_loadu_si512(rec + 32 + 64 * j), bias);
      for (int t = 0; t < T; ++t) {
        s[t] = dpbusd_bcst(s[t], w, a[t].q + 4 * j);
      }
    }
    const __m512 sw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec)));
    for (int t = 0; t < T; ++t)
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), _mm512_mul_ps(sw, _mm512_set1_ps(a[t].d)), acc[t]);
  }
  store_group(acc, kRows, y, ldy);
}

void run_q8x16(const GemmArgs& a, int64_t r0, int64_t r1) {
  const ActBlock* act = reinterpret_cast<const ActBlock*>(a.xq);
  const int64_t nrec = a.w.cols / kQ8x16Cols;
  for_each_x16_group(a, r0, r1, nrec, kQ8x16RecordBytes, [&](const uint8_t* rec, int64_t r, int64_t t0, int64_t t1) {
    with_rows(t1 - t0, [&](auto T) { group_q8x16<decltype(T)::value>(rec, nrec, act + t0, a.n, a.y + t0 * a.ldy + r, a.ldy); });
  });
}

}  // namespace

const GemmKernel kGemmVnniQ8x16 = {"avx512-vnni-q8x16", kRows, 1, act_bytes, prepare, run_q8x16};

}  // namespace wai::kernels

WAI_ISA_END
