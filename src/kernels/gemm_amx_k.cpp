// q4_K / q6_K weights against q8_K activations with AMX int8 tiles, for prefill batches.
//
// Per sub-block j (32 elements for q4_K, 16 for q6_K) one tile product gives the exact integer dot
// products C_j[r][t] of 16 weight rows with 16 activation rows (q6_K quants unpacked to signed
// q - 32). They are combined in int32 exactly as ggml's ggml_vec_dot_q4_K_q8_K / _q6_K_q8_K do:
//   sumi[r][t] = sum_j scale_j[r] * C_j[r][t]            (q4_K also summ = sum_j min_j[r] * bsum_j[t])
//   y[r][t]   += d_w[r] * d_x[t] * sumi  (- dmin_w[r] * d_x[t] * summ)          per super-block, f32
//
// Layouts: activations per tile of 16 rows and per super-block: 64 rows of 64 bytes in the B-operand
// layout (B[k/4][4t + k%4] = x_q[t][k], so sub-block j's tile is rows j*SB/4 ..), f32 d per row, and
// for q4_K pairs of 32-element bsums (int16 x2 per row) for vpdpwssd. Weights: 16 rows at a time
// unpacked to int8 in tile order [super-block][sub-block][16 rows][SB bytes] with their scales.
//
// Compiled for AMX/AVX-512; only called after choose_gemm checked the CPU (see gemm_vnni_q8.cpp).
// Everything below is compiled for this ISA (GCC: target pragma; clang: attribute push).
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma,avx2,amx-tile,amx-int8"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma,avx2,amx-tile,amx-int8")
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

struct ActBlock {            // one super-block of one 16-row activation tile
  int8_t qs[64][64];         // B layout
  float dx[16];              // d of each row (0 for padding rows)
  int32_t bsum_pairs[4][16];  // (bsum32_{2p} & 0xffff) | bsum32_{2p+1} << 16, per row
};
static_assert(sizeof(ActBlock) == 4096 + 64 + 256);

inline int64_t tiles_of(int64_t n) { return (n + kTile - 1) / kTile; }

size_t act_bytes(DType, int64_t n, int64_t cols) {
  return static_cast<size_t>(tiles_of(n) * (cols / kQKK)) * sizeof(ActBlock);
}

void prepare(DType, const float* x, int64_t n, int64_t cols, int64_t t0, int64_t t1, uint8_t* buf) {
  const int64_t nb = cols / kQKK;
  for (int64_t tt = t0 / kTile; tt < tiles_of(t1); ++tt) {
    ActBlock* blocks = reinterpret_cast<ActBlock*>(buf) + tt * nb;
    for (int t = 0; t < kTile; ++t) {
      const int64_t row = tt * kTile + t;
      for (int64_t i = 0; i < nb; ++i) {
        BlockQ8K q;
        if (row < n) quantize_q8_K_block_avx512(x + row * cols + i * kQKK, &q);
        else std::memset(&q, 0, sizeof(q));
        ActBlock& o = blocks[i];
        for (int k4 = 0; k4 < 64; ++k4) std::memcpy(&o.qs[k4][4 * t], q.qs + 4 * k4, 4);
        o.dx[t] = q.d;
        for (int p = 0; p < 4; ++p) {
          const int lo = q.bsums[4 * p] + q.bsums[4 * p + 1], hi = q.bsums[4 * p + 2] + q.bsums[4 * p + 3];
          o.bsum_pairs[p][t] = static_cast<int32_t>((static_cast<uint32_t>(lo) & 0xffff) | (static_cast<uint32_t>(hi) << 16));
        }
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

// tmm0/tmm6: weights (16 x SB bytes); tmm1/tmm7: activations (SB/4 x 64 bytes); tmm2..5: C.
void load_config(int sb) {
  TileConfig c;
  // (plain assignments: no std::initializer_list instantiated in an AVX-512 translation unit)
  c.rows[0] = c.rows[6] = 16;
  c.colsb[0] = c.colsb[6] = static_cast<uint16_t>(sb);
  c.rows[1] = c.rows[7] = static_cast<uint8_t>(sb / 4);
  c.colsb[1] = c.colsb[7] = 64;
  for (int i = 2; i <= 5; ++i) c.rows[i] = 16, c.colsb[i] = 64;
  // Not _tile_loadconfig: GCC 12 declares its operand as only 8 bytes read, so the compiler may drop
  // the stores of the rest of the config as dead. Here the whole 64-byte struct is the input.
  __asm__ volatile("ldtilecfg %0" : : "m"(c));
}

// Unpacked weights of one 16-row strip, per super-block.
template <int SB>
struct WBlock {
  int8_t qs[kQKK / SB][kTile][SB];  // A tiles
  int32_t sc[kQKK / SB][kTile];     // sub-block scales
  int32_t min_pairs[4][kTile];      // q4_K: (min_{2p} | min_{2p+1} << 16)
  float d[kTile], dmin[kTile];
};

void unpack_q4_K(const BlockQ4K& b, int r, WBlock<32>& o) {
  for (int g = 0; g < 4; ++g) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * g));
    const __m256i m = _mm256_set1_epi8(0x0F);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.qs[2 * g][r]), _mm256_and_si256(v, m));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.qs[2 * g + 1][r]), _mm256_and_si256(_mm256_srli_epi16(v, 4), m));
  }
  uint8_t sc[8], mn[8];
  for (int j = 0; j < 8; ++j) get_scale_min_k4(j, b.scales, &sc[j], &mn[j]);
  for (int j = 0; j < 8; ++j) o.sc[j][r] = sc[j];
  for (int p = 0; p < 4; ++p) o.min_pairs[p][r] = mn[2 * p] | (mn[2 * p + 1] << 16);
  o.d[r] = h2f(b.d);
  o.dmin[r] = h2f(b.dmin);
}

void unpack_q6_K(const BlockQ6K& b, int r, WBlock<16>& o) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x03), k32 = _mm512_set1_epi8(32);
  const __m512i sA = _mm512_inserti64x4(_mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
  const __m512i sB = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
  for (int h = 0; h < 2; ++h) {
    const __m512i ql = _mm512_loadu_si512(b.ql + 64 * h);
    const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h)));
    const __m512i qlo = _mm512_sub_epi8(
        _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sA), m2), 4)), k32);
    const __m512i qhi = _mm512_sub_epi8(
        _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                        _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sB), m2), 4)),
        k32);
    alignas(64) int8_t tmp[128];
    _mm512_store_si512(tmp, qlo);
    _mm512_store_si512(tmp + 64, qhi);
    for (int k = 0; k < 8; ++k) std::memcpy(o.qs[8 * h + k][r], tmp + 16 * k, 16);
  }
  for (int j = 0; j < 16; ++j) o.sc[j][r] = b.scales[j];
  o.d[r] = h2f(b.d);
}

#define WAI_AMX_SUB(ct, ta, tb, j)                    \
  do {                                                \
    _tile_zero(ct);                                   \
    _tile_loadd(ta, wb.qs[j], SB);                    \
    _tile_loadd(tb, xb.qs[(j) * (SB / 4)], 64);       \
    _tile_dpbssd(ct, ta, tb);                         \
  } while (0)

// One 16 x 16 output tile over all super-blocks.
template <int SB, bool kMins>
void tile_product(const WBlock<SB>* w, const ActBlock* x, int64_t nb, __m512* acc) {
  constexpr int NS = kQKK / SB;
  alignas(64) int32_t c[NS][kTile * kTile];
  for (int r = 0; r < kTile; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const WBlock<SB>& wb = w[i];
    const ActBlock& xb = x[i];
    for (int j = 0; j < NS; j += 4) {
      WAI_AMX_SUB(2, 0, 1, j);
      WAI_AMX_SUB(3, 6, 7, j + 1);
      WAI_AMX_SUB(4, 0, 1, j + 2);
      WAI_AMX_SUB(5, 6, 7, j + 3);
      _tile_stored(2, c[j], 64);
      _tile_stored(3, c[j + 1], 64);
      _tile_stored(4, c[j + 2], 64);
      _tile_stored(5, c[j + 3], 64);
    }
    const __m512 dx = _mm512_loadu_ps(xb.dx);
    for (int r = 0; r < kTile; ++r) {
      __m512i s = _mm512_setzero_si512();
      for (int j = 0; j < NS; ++j)
        s = _mm512_add_epi32(s, _mm512_mullo_epi32(_mm512_load_si512(c[j] + 16 * r), _mm512_set1_epi32(wb.sc[j][r])));
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(_mm512_set1_ps(wb.d[r]), dx), acc[r]);
      if constexpr (kMins) {
        __m512i m = _mm512_setzero_si512();
        for (int p = 0; p < 4; ++p)
          m = _mm512_dpwssd_epi32(m, _mm512_loadu_si512(xb.bsum_pairs[p]), _mm512_set1_epi32(wb.min_pairs[p][r]));
        acc[r] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m), _mm512_mul_ps(_mm512_set1_ps(wb.dmin[r]), dx), acc[r]);
      }
    }
  }
}
#undef WAI_AMX_SUB

template <int SB>
void run_type(const GemmArgs& a, int64_t r0, int64_t r1) {
  constexpr bool kQ4 = SB == 32;
  const int64_t nb = a.w.cols / kQKK;
  const size_t wrow = static_cast<size_t>(nb) * (kQ4 ? sizeof(BlockQ4K) : sizeof(BlockQ6K));
  thread_local Scratch strip_mem;
  auto* strip = static_cast<WBlock<SB>*>(strip_mem.get(sizeof(WBlock<SB>) * nb));
  const ActBlock* x = reinterpret_cast<const ActBlock*>(a.xq);
  load_config(SB);
  alignas(64) float out[kTile][kTile];
  for (int64_t rt = r0; rt < r1; rt += kTile) {
    const int nr = static_cast<int>(r1 - rt < kTile ? r1 - rt : kTile);
    for (int64_t i = 0; i < nb; ++i) {
      if (nr < kTile) std::memset(&strip[i], 0, sizeof(WBlock<SB>));
      for (int r = 0; r < nr; ++r) {
        const uint8_t* row = a.w.data + (rt + r) * wrow;
        if constexpr (kQ4) unpack_q4_K(reinterpret_cast<const BlockQ4K*>(row)[i], r, strip[i]);
        else unpack_q6_K(reinterpret_cast<const BlockQ6K*>(row)[i], r, strip[i]);
      }
    }
    for (int64_t tt = 0; tt < tiles_of(a.n); ++tt) {
      __m512 acc[kTile];
      tile_product<SB, kQ4>(strip, x + tt * nb, nb, acc);
      for (int r = 0; r < kTile; ++r) _mm512_store_ps(out[r], acc[r]);
      const int nt = static_cast<int>(a.n - tt * kTile < kTile ? a.n - tt * kTile : kTile);
      for (int t = 0; t < nt; ++t)
        for (int r = 0; r < nr; ++r) a.y[(tt * kTile + t) * a.ldy + rt + r] = out[r][t];
    }
  }
  _tile_release();
}

void run(const GemmArgs& a, int64_t r0, int64_t r1) {
  if (a.w.type == DType::Q4_K) run_type<32>(a, r0, r1);
  else run_type<16>(a, r0, r1);
}

}  // namespace

const GemmKernel kGemmAmxK = {"amx-int8", kTile, kTile, act_bytes, prepare, run};

}  // namespace wai::kernels

#if defined(__clang__)
#pragma clang attribute pop
#endif
