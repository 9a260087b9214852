// q4_0 weights in the q4x16 layout (kernels/repack.h) against q8_0 activations with AVX-512 VNNI,
// for 1..15 activation rows: decode (one row) and batched decode.
//
// The products of gemm_vnni_batch.cpp (one register holds one dword of 16 weight rows, each
// activation dword broadcast into vpdpbusd) on the repacked layout: a record already holds those
// registers (q[j] & 0x0F: block 2p, q[j] >> 4: block 2p + 1) and the 16 rows' scales side by side, so
// a block costs 4 loads and 8 mask / shift operations where the transposing kernel spends 16 loads,
// 20 shuffles and a gather, and each thread reads its rows as one linear stream. Measured
// (wai-bench-kernels --q4x16, 7B shapes, weights from DRAM, 2 threads, the two layouts alternating):
// one row 17-38% faster than the matrix-vector kernel on GGUF's layout (25-27 GB/s of the ~26 GB/s
// read probe), 8 rows 7-33% faster than the transposing batch kernel.
//
// Batched decode is bound by the vector ports and the front end (8 rows: 128 vpdpbusd per record),
// so the code generation matters: the loops over j and the activation rows are unrolled outright
// (#pragma GCC unroll; left to itself g++ kept the j loop rolled and moved the 16 integer accumulators
// between registers on every pass: 16% faster unrolled), and each activation dword feeds vpdpbusd as an
// embedded broadcast (dpbusd_bcst: one fused uop where g++ emits a separate vpbroadcastd: 128 uops
// fewer per record, another 7-12%). Measured on 8 sequences of the 7B q4_0 model, the versions
// alternating step by step in one process; one row unchanged (memory bound).
//
// Numerics: the same integer sums and the same f32 operations in the same block order as
// gemm_vnni_batch.cpp's group<true, T>: bit-identical to it for every row count.
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
void group_q4x16(const uint8_t* rec, int64_t np, const ActBlock* act, int64_t n, float* y, int64_t ldy) {
  const __m512i m = _mm512_set1_epi8(0x0F);
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t p = 0; p < np; ++p, rec += kQ4x16RecordBytes) {
    prefetch_stream(rec, kQ4x16RecordBytes);
    const ActBlock* a0 = act + 2 * p * n;
    const ActBlock* a1 = a0 + n;
    __m512i s0[T], s1[T];
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      s0[t] = _mm512_set1_epi32(a0[t].corr);
      s1[t] = _mm512_set1_epi32(a1[t].corr);
    }
#pragma GCC unroll 16
    for (int j = 0; j < 8; ++j) {
      const __m512i z = _mm512_loadu_si512(rec + 64 + 64 * j);
      const __m512i lo = _mm512_and_si512(z, m), hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m);
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        s0[t] = dpbusd_bcst(s0[t], lo, a0[t].q + 4 * j);
        s1[t] = dpbusd_bcst(s1[t], hi, a1[t].q + 4 * j);
      }
    }
    const __m512 sw0 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec)));
    const __m512 sw1 = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 32)));
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t)
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0[t]), _mm512_mul_ps(sw0, _mm512_set1_ps(a0[t].d)), acc[t]);
    for (int t = 0; t < T; ++t)
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1[t]), _mm512_mul_ps(sw1, _mm512_set1_ps(a1[t].d)), acc[t]);
  }
  store_group(acc, kRows, y, ldy);
}

void run_q4x16(const GemmArgs& a, int64_t r0, int64_t r1) {
  const ActBlock* act = reinterpret_cast<const ActBlock*>(a.xq);
  const int64_t nrec = a.w.cols / kQ4x16Cols;
  for_each_x16_group(a, r0, r1, nrec, kQ4x16RecordBytes, [&](const uint8_t* rec, int64_t r, int64_t t0, int64_t t1) {
    with_rows(t1 - t0, [&](auto T) { group_q4x16<decltype(T)::value>(rec, nrec, act + t0, a.n, a.y + t0 * a.ldy + r, a.ldy); });
  });
}

}  // namespace

const GemmKernel kGemmVnniQ4x16 = {"avx512-vnni-q4x16", kRows, 1, act_bytes, prepare, run_q4x16};

}  // namespace wai::kernels

WAI_ISA_END
