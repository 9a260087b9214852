// The prepared activations of the 16-rows-per-register kernels for q4_0 / q8_0 weights
// (gemm_vnni_batch.cpp, gemm_vnni_q4x16.cpp): ggml's q8_0 blocks of every activation row, block-major.
// Internal linkage; include only from translation units compiled for AVX-512, after immintrin.h.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/avx512_quant.h"
#include "kernels/blocks.h"

namespace wai::kernels {
namespace {

// One q8_0 block of one activation row, laid out block-major: act[b * n + t].
struct ActBlock {
  int8_t q[kQK0];  // ggml's q8_0 quants
  float d;         // f16(d) as f32
  int32_t corr;    // -offset * sum(q): vpdpbusd takes unsigned weights; q4_0 stores q + 8, q8_0 uses w + 128
};
static_assert(sizeof(ActBlock) == 40);

size_t act_bytes(DType, int64_t n, int64_t cols) { return static_cast<size_t>(n * (cols / kQK0)) * sizeof(ActBlock); }

void prepare(DType wtype, const float* x, int64_t n, int64_t cols, int64_t t0, int64_t t1, uint8_t* buf) {
  const int64_t nb = cols / kQK0;
  const int32_t offset = wtype == DType::Q4_0 ? 8 : 128;
  ActBlock* act = reinterpret_cast<ActBlock*>(buf);
  for (int64_t t = t0; t < t1; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      ActBlock& o = act[b * n + t];
      o.d = h2f(quantize_q8_0_block_avx512(x + t * cols + b * kQK0, o.q));
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o.q));
      const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), q);
      const __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      const __m128i h2 = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
      o.corr = -offset * _mm_cvtsi128_si32(_mm_add_epi32(h2, _mm_shuffle_epi32(h2, 0xB1)));
    }
}

}  // namespace
}  // namespace wai::kernels
