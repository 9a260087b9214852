// AVX-512 activation quantizers producing exactly ggml's values (see quant.cpp for the scalar
// definitions): only for translation units compiled with AVX-512 (gemm_*.cpp), internal linkage.
#pragma once

#include <immintrin.h>

#include <cstdlib>
#include <cstring>

#include "kernels/blocks.h"
#include "kernels/quant.h"
#include "util/huge_pages.h"

namespace wai::kernels {
namespace {

// f16 -> f32 with the F16C instruction (the same values as f16_to_f32, which the tests check
// exhaustively against it), inlined: kernels convert a scale per block.
inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// One q8_0 block as llama.cpp's x86 quantize_row_q8_0: d = amax/127 (f16), q = RNE(x * 127/amax).
// Returns the f16 d; writes 32 int8 quants.
[[maybe_unused]] inline uint16_t quantize_q8_0_block_avx512(const float* x, int8_t* qs) {
  const __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
  const float id = amax != 0.0f ? 127.f / amax : 0.0f;
  const __m512 vid = _mm512_set1_ps(id);
  // cvtps_epi32 rounds with MXCSR's mode: round to nearest even, like _mm256_round_ps(_MM_ROUND_NEAREST).
  const __m512i qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, vid)), qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, vid));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qs), _mm512_cvtepi32_epi8(qa));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + 16), _mm512_cvtepi32_epi8(qb));
  return f32_to_f16(amax / 127.f);
}

// One q8_K block as ggml's quantize_row_q8_K_ref: max = the first value of largest magnitude,
// iscale = -127/max, q = min(127, RNE(iscale * x)), bsums of 16, d = 1/iscale.
[[maybe_unused]] inline void quantize_q8_K_block_avx512(const float* x, BlockQ8K* y) {
  __m512 vmax = _mm512_setzero_ps();
  for (int j = 0; j < kQKK; j += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(x + j)));
  const float amax = _mm512_reduce_max_ps(vmax);
  if (amax == 0.0f) {
    std::memset(y, 0, sizeof(*y));
    return;
  }
  float max = 0;
  for (int j = 0; j < kQKK; j += 16) {
    const __mmask16 m = _mm512_cmpeq_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + j)), _mm512_set1_ps(amax));
    if (m) {
      max = x[j + __builtin_ctz(m)];
      break;
    }
  }
  const float iscale = -127.f / max;
  const __m512 vs = _mm512_set1_ps(iscale);
  for (int j = 0; j < kQKK; j += 16) {
    __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + j), vs));
    q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y->qs + j), _mm512_cvtepi32_epi8(q));
    y->bsums[j / 16] = static_cast<int16_t>(_mm512_reduce_add_epi32(q));
  }
  y->d = 1 / iscale;
}

// 16 bytes at p[i] + off for 16 rows i, transposed to dwords: out[d] lane i = dword d of row i (the
// batch kernels' layout: one register holds the same 4 quants of 16 weight rows). 16 loads, 12
// inserts, 8 unpacks.
[[maybe_unused]] inline void load_transpose16(const uint8_t* const (&p)[16], int off, __m512i (&out)[4]) {
  __m512i y[4];
  for (int m = 0; m < 4; ++m) {  // y[m], 128-bit lane j = row 4j + m
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[m] + off)));
    v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[4 + m] + off)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[8 + m] + off)), 2);
    y[m] = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[12 + m] + off)), 3);
  }
  // 4x4 dword transpose inside each 128-bit lane: lane j then holds rows 4j..4j+3 of one dword.
  const __m512i t0 = _mm512_unpacklo_epi32(y[0], y[1]), t1 = _mm512_unpackhi_epi32(y[0], y[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(y[2], y[3]), t3 = _mm512_unpackhi_epi32(y[2], y[3]);
  out[0] = _mm512_unpacklo_epi64(t0, t2);
  out[1] = _mm512_unpackhi_epi64(t0, t2);
  out[2] = _mm512_unpacklo_epi64(t1, t3);
  out[3] = _mm512_unpackhi_epi64(t1, t3);
}

// acc += vpdpbusd(w, the dword at p broadcast to all 16 lanes), with the broadcast embedded in the
// instruction ({1to16} memory operand: one fused uop). _mm512_dpbusd_epi32(acc, w, _mm512_set1_epi32(x))
// compiles to a separate vpbroadcastd per product, which in a kernel bound by its uops (batched
// decode) costs as many uops again as the products themselves.
[[maybe_unused]] inline __m512i dpbusd_bcst(__m512i acc, __m512i w, const int8_t* p) {
  __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*reinterpret_cast<const int32_t*>(p)));
  return acc;
}

// How far ahead of its reads a kernel prefetches the weights it streams. A thread's weight rows are
// one linear stream (rows contiguous, walked in order); 16 KiB keeps enough cache-line fills in flight
// to read them at DRAM speed, where the hardware prefetcher alone, or a per-row prefetch a few blocks
// ahead, reached ~60% of it (bench/kernels, 7B shapes). Prefetches past the end are harmless.
// The far prefetch goes to L2 only (prefetcht1): an L1 miss holds one of the core's few fill
// buffers until its line arrives, while L2 misses have a deeper queue, so more lines are in flight;
// a second, near prefetch then moves the lines from L2 to L1 a little ahead of use. Measured with
// both matrix-vector kernels interleaved in one process (2 threads, weights from DRAM): 8-11%
// faster than one prefetcht0 16 KiB ahead for q8_0, 5-10% for q4_0.
constexpr int64_t kPrefetchBytes = 16384;
constexpr int64_t kPrefetchNearBytes = 4096;

// Prefetches the `bytes` of a linear weight stream that start at `at`, its current read position:
// into L2 kPrefetchBytes ahead and into L1 kPrefetchNearBytes ahead.
[[maybe_unused]] inline void prefetch_stream(const void* at, int64_t bytes) {
  const char* p = static_cast<const char*>(at);
  for (int64_t o = 0; o < bytes; o += 64) {
    _mm_prefetch(p + kPrefetchBytes + o, _MM_HINT_T1);
    _mm_prefetch(p + kPrefetchNearBytes + o, _MM_HINT_T0);
  }
}

// Per-thread 64-byte-aligned scratch that only grows (the AMX kernels' unpacked weight strips and
// C-tile buffers: a fresh allocation of a few hundred KiB per call would be an mmap/munmap and page
// faults each time). Megabyte buffers come in huge pages (util/huge_pages.h: their L2 behaviour no
// longer depends on which physical pages they got). No std:: containers (see gemm_vnni_q8.cpp on
// template instantiations).
struct Scratch {
  void* p = nullptr;
  size_t size = 0;
  ~Scratch() { huge_free(p); }
  void* get(size_t bytes) {
    if (bytes > size) {
      huge_free(p);
      p = nullptr;
      size = 0;
      p = huge_alloc(bytes);
      size = bytes;
    }
    return p;
  }
};

}  // namespace
}  // namespace wai::kernels
