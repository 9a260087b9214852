// q4_0 / q8_0 weights against q8_0 activations with AMX int8 tiles (TDPBSSD), for prefill batches.
//
// Per 32-element block b, one tile product gives the exact integer dot products of 16 weight rows
// with 16 activation rows, C[r][t] = sum_k w[r][k] * x[t][k] (q4_0 unpacked to signed q - 8, so no
// offset correction is needed); each is then scaled by f16(d_w[r,b]) * f16(d_x[t,b]) and accumulated
// in f32, exactly ggml's per-block formula (only the f32 order of the block sums differs).
//
// Layouts: activations are prepared per tile of 16 rows in the B-operand ("VNNI") layout, per block
// 8 rows of 64 bytes: B[k/4][4t + k%4] = x_q[t][32b + k]; padding rows are zero with zero scale.
// Weights: 16 rows at a time are unpacked to int8 in tile order [block][16][32].
//
// Compiled for AMX/AVX-512; only called after choose_gemm checked the CPU and the OS permission.
// No std:: templates here (see gemm_vnni_q8.cpp).
// Everything below is compiled for this ISA (GCC: target pragma; clang: attribute push).
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c,fma,avx2,amx-tile,amx-int8"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,f16c,fma,avx2,amx-tile,amx-int8")
// GCC 12 warns falsely about the _mm512_undefined_* inside its own intrinsic headers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdlib>
#include <cstring>

#include "kernels/avx512_quant.h"
#include "kernels/blocks.h"
#include "kernels/gemm.h"
#include "kernels/quant.h"

namespace wai::kernels {
namespace {

constexpr int kTile = 16;

inline int64_t tiles_of(int64_t n) { return (n + kTile - 1) / kTile; }
// Bytes of one prepared activation tile: per block 512 bytes of quants, then per block 16 f32 d.
inline size_t tile_bytes(int64_t nb) { return static_cast<size_t>(nb) * (512 + 64); }

size_t act_bytes(DType, int64_t n, int64_t cols) { return tiles_of(n) * tile_bytes(cols / kQK0); }

void prepare(DType, const float* x, int64_t n, int64_t cols, int64_t t0, int64_t t1, uint8_t* buf) {
  const int64_t nb = cols / kQK0;
  for (int64_t tt = t0 / kTile; tt < tiles_of(t1); ++tt) {
    uint8_t* tile = buf + tt * tile_bytes(nb);
    float* dx = reinterpret_cast<float*>(tile + nb * 512);
    for (int t = 0; t < kTile; ++t) {
      const int64_t row = tt * kTile + t;
      for (int64_t b = 0; b < nb; ++b) {
        alignas(64) int8_t q[32] = {};
        const uint16_t d = row < n ? quantize_q8_0_block_avx512(x + row * cols + b * kQK0, q) : 0;
        uint8_t* dst = tile + b * 512 + 4 * t;
        for (int k4 = 0; k4 < 8; ++k4) std::memcpy(dst + 64 * k4, q + 4 * k4, 4);
        dx[b * kTile + t] = h2f(d);
      }
    }
  }
}

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// tmm0/tmm6: weights (16 x 32 bytes); tmm1/tmm7: activations (8 x 64 bytes); tmm2..5: C (16 x 16 i32).
void load_config() {
  TileConfig c;
  // (plain assignments: no std::initializer_list instantiated in an AVX-512 translation unit)
  c.rows[0] = c.rows[6] = 16;
  c.colsb[0] = c.colsb[6] = static_cast<uint16_t>(32);
  c.rows[1] = c.rows[7] = static_cast<uint8_t>(8);
  c.colsb[1] = c.colsb[7] = 64;
  for (int i = 2; i <= 5; ++i) c.rows[i] = 16, c.colsb[i] = 64;
  // Not _tile_loadconfig: GCC 12 declares its operand as only 8 bytes read, so the compiler may drop
  // the stores of the rest of the config as dead. Here the whole 64-byte struct is the input.
  __asm__ volatile("ldtilecfg %0" : : "m"(c));
}

// acc[r] (16 activation rows of weight row r) += C[r][.] * d_w[r] * d_x[.]
inline void scale_accumulate(const int32_t* c, const float* dw, const float* dx, __m512* acc) {
  const __m512 vdx = _mm512_loadu_ps(dx);
#pragma GCC unroll 16  // keeps acc[] in registers (1.7x)
  for (int r = 0; r < kTile; ++r) {
    const __m512 ci = _mm512_cvtepi32_ps(_mm512_load_si512(c + 16 * r));
    acc[r] = _mm512_fmadd_ps(ci, _mm512_mul_ps(_mm512_set1_ps(dw[r]), vdx), acc[r]);
  }
}

// C tile `ct` = A(block b) . B(block b), using tile pair (ta, tb) for the operands.
#define WAI_AMX_BLOCK(ct, ta, tb, blk)                \
  do {                                                \
    _tile_zero(ct);                                   \
    _tile_loadd(ta, w + (blk) * bstride, wstride);    \
    _tile_loadd(tb, xt + (blk) * 512, 64);            \
    _tile_dpbssd(ct, ta, tb);                         \
  } while (0)

// One 16 x 16 output tile over all nb blocks: w is int8 at block 0 (row stride wstride, block b at
// +b*bstride), xt is a prepared activation tile, dw is f32 [nb][16]. Blocks go in groups of 4: the
// tile unit computes and stores four C tiles, then the vector unit scales them, so neither waits on
// the other's latency per block (tile registers are not renamed; alternating operand pairs helps).
void tile_product(const uint8_t* w, size_t wstride, size_t bstride, const uint8_t* xt, int64_t nb, const float* dw,
                  __m512* acc) {
  alignas(64) int32_t c[4][256];
  const float* dx = reinterpret_cast<const float*>(xt + nb * 512);
  for (int r = 0; r < kTile; ++r) acc[r] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    WAI_AMX_BLOCK(2, 0, 1, b);
    WAI_AMX_BLOCK(3, 6, 7, b + 1);
    WAI_AMX_BLOCK(4, 0, 1, b + 2);
    WAI_AMX_BLOCK(5, 6, 7, b + 3);
    _tile_stored(2, c[0], 64);
    _tile_stored(3, c[1], 64);
    _tile_stored(4, c[2], 64);
    _tile_stored(5, c[3], 64);
    for (int j = 0; j < 4; ++j) scale_accumulate(c[j], dw + (b + j) * kTile, dx + (b + j) * kTile, acc);
  }
  for (; b < nb; ++b) {
    WAI_AMX_BLOCK(2, 0, 1, b);
    _tile_stored(2, c[0], 64);
    scale_accumulate(c[0], dw + b * kTile, dx + b * kTile, acc);
  }
}
#undef WAI_AMX_BLOCK

void run(const GemmArgs& a, int64_t r0, int64_t r1) {
  const bool q4 = a.w.type == DType::Q4_0;
  const int64_t cols = a.w.cols, nb = cols / kQK0;
  const size_t bs = q4 ? 18 : 34, wrow = static_cast<size_t>(nb) * bs;
  thread_local Scratch strip_mem, dw_mem;
  int8_t* strip = static_cast<int8_t*>(strip_mem.get(static_cast<size_t>(kTile * cols)));
  float* dw = static_cast<float*>(dw_mem.get(static_cast<size_t>(nb * kTile) * sizeof(float)));
  load_config();
  alignas(64) float out[kTile][kTile];
  for (int64_t rt = r0; rt < r1; rt += kTile) {
    const int nr = static_cast<int>(r1 - rt < kTile ? r1 - rt : kTile);
    const uint8_t* wbase = a.w.data + rt * wrow;
    for (int r = 0; r < kTile; ++r)
      for (int64_t b = 0; b < nb; ++b) {
        uint16_t d = 0;
        if (r < nr) std::memcpy(&d, wbase + r * wrow + b * bs, 2);
        dw[b * kTile + r] = h2f(d);
      }
    // Unpack to tile order, [block][16 rows][32 bytes], so each A tile is 512 contiguous bytes
    // (rows 4 KiB apart would all fall in one L1 set).
    for (int r = 0; r < kTile; ++r) {
      const uint8_t* src = wbase + r * wrow;
      for (int64_t b = 0; b < nb; ++b) {
        int8_t* dst = strip + b * 512 + r * kQK0;
        if (r >= nr) {
          std::memset(dst, 0, kQK0);
        } else if (q4) {
          const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + b * bs + 2));
          const __m128i m = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_sub_epi8(_mm_and_si128(v, m), eight));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16), _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(v, 4), m), eight));
        } else {
          std::memcpy(dst, src + b * bs + 2, kQK0);
        }
      }
    }
    const uint8_t* w = reinterpret_cast<const uint8_t*>(strip);
    const size_t wstride = kQK0, bstride = 512;
    for (int64_t tt = 0; tt < tiles_of(a.n); ++tt) {
      __m512 acc[kTile];
      tile_product(w, wstride, bstride, a.xq + tt * tile_bytes(nb), nb, dw, acc);
      for (int r = 0; r < kTile; ++r) _mm512_store_ps(out[r], acc[r]);
      const int nt = static_cast<int>(a.n - tt * kTile < kTile ? a.n - tt * kTile : kTile);
      for (int t = 0; t < nt; ++t)
        for (int r = 0; r < nr; ++r) a.y[(tt * kTile + t) * a.ldy + rt + r] = out[r][t];
    }
  }
  _tile_release();
}

}  // namespace

const GemmKernel kGemmAmxQ8 = {"amx-int8", kTile, kTile, act_bytes, prepare, run};

}  // namespace wai::kernels

#if defined(__clang__)
#pragma clang attribute pop
#endif
