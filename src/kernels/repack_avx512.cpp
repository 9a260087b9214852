// repack_q4x16 and repack_q8x16 (kernels/repack.h) with AVX-512: the batch kernels' transposing loads, then the two
// blocks' nibbles merged per record. Compiled for AVX-512; called only where q4x16_available().
#include "kernels/isa_target.h"
WAI_ISA_BEGIN("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma,avx2")
#include <immintrin.h>

#include "kernels/avx512_quant.h"
#include "kernels/batch16.h"
#include "kernels/blocks.h"
#include "kernels/gemm.h"
#include "kernels/repack.h"

namespace wai::kernels {

// Per record, 16 rows x 2 blocks of nibbles become 8 registers; several times the portable loop's speed.
void repack_q4x16_avx512(const MatRef& w, uint8_t* dst, int64_t g0, int64_t g1) {
  const int64_t np = w.cols / kQ4x16Cols;
  const size_t stride = static_cast<size_t>(w.cols / kQK0) * sizeof(BlockQ4_0);
  const __m512i lo = _mm512_set1_epi8(0x0F), hi = _mm512_set1_epi8(static_cast<char>(0xF0));
  const __m512i gidx = gather_index(kGroupRows, stride);
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* base = w.data + static_cast<size_t>(g * kGroupRows) * stride;
    const uint8_t* p[kGroupRows];
    group_rows(base, stride, kGroupRows, p);
    for (int64_t q = 0; q < np; ++q) {
      uint8_t* rec = dst + static_cast<size_t>(g * np + q) * kQ4x16RecordBytes;
      __m512i t0[4], t1[4];
      load_transpose16(p, 2, t0);       // block 2q: qs bytes 4d..4d+3 of row i in lane i of t0[d]
      load_transpose16(p, 18 + 2, t1);  // block 2q + 1
      for (int d = 0; d < 4; ++d) {
        _mm512_storeu_si512(rec + 64 + 64 * d, _mm512_or_si512(_mm512_and_si512(t0[d], lo), _mm512_slli_epi16(_mm512_and_si512(t1[d], lo), 4)));
        _mm512_storeu_si512(rec + 64 + 64 * (4 + d), _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(t0[d], 4), lo), _mm512_and_si512(t1[d], hi)));
      }
      const __m512i d0 = _mm512_i32gather_epi32(gidx, base + q * 36, 1), d1 = _mm512_i32gather_epi32(gidx, base + q * 36 + 18, 1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(rec), _mm512_cvtepi32_epi16(d0));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(rec + 32), _mm512_cvtepi32_epi16(d1));
      for (int i = 0; i < kGroupRows; ++i) p[i] += 36;
    }
  }
}

// q8x16: the same loads; the two 16-byte halves of each block's quants are already the records' dwords.
void repack_q8x16_avx512(const MatRef& w, uint8_t* dst, int64_t g0, int64_t g1) {
  const int64_t nb = w.cols / kQK0;
  const size_t stride = static_cast<size_t>(nb) * sizeof(BlockQ8_0);
  const __m512i gidx = gather_index(kGroupRows, stride);
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* base = w.data + static_cast<size_t>(g * kGroupRows) * stride;
    const uint8_t* p[kGroupRows];
    group_rows(base, stride, kGroupRows, p);
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* rec = dst + static_cast<size_t>(g * nb + b) * kQ8x16RecordBytes;
      __m512i lo[4], hi[4];
      load_transpose16(p, 2, lo);   // elements 4d..4d+3 of row i in lane i of lo[d]
      load_transpose16(p, 18, hi);  // elements 16 + 4d..
      for (int d = 0; d < 4; ++d) {
        _mm512_storeu_si512(rec + 32 + 64 * d, lo[d]);
        _mm512_storeu_si512(rec + 32 + 64 * (4 + d), hi[d]);
      }
      const __m512i d16 = _mm512_i32gather_epi32(gidx, base + b * sizeof(BlockQ8_0), 1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(rec), _mm512_cvtepi32_epi16(d16));
      for (int i = 0; i < kGroupRows; ++i) p[i] += sizeof(BlockQ8_0);
    }
  }
}

}  // namespace wai::kernels

WAI_ISA_END
