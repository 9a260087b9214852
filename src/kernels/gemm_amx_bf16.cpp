// Weights of any type against bf16 activations with AMX-BF16 tiles (TDPBF16PS), for prefill
// batches: the weights are dequantized panel by panel to bf16 (each weight once per call) and the
// tile unit accumulates in f32 over the whole K, with no per-block work on the vector unit.
//
// Why not int8 tiles with ggml's q8_0 activations: ggml's per-32-block scales (d_w[r,b] * d_x[t,b]
// differ for every block) force a store + convert + scale of the 16x16 int32 tile after every K=32
// product; that vector work, not the tile unit, bounded wai's earlier int8 AMX kernels at a small
// fraction of the tile unit's rate (and below this kernel at every prefill size). Here the scales
// are folded into the bf16 weights.
//
// Numerics: activations are rounded to bf16 (RNE, relative error <= 2^-9), weights are dequantized
// exactly to f32 and rounded to bf16 (the same bound), products are exact in f32 and summed in f32.
// That is as accurate as or more accurate than ggml's q8_0 activation path (absolute error up to
// amax/254 per element); it is not bit-identical to it, so the engine-core differential tests judge
// it by argmax agreement with llama.cpp, like every quantized path.
//
// Blocking (per thread, over its weight rows [r0, r1), 32-row panels):
//   for each K chunk of kKc columns            (activations of the chunk: n x kKc bf16, stays in L2)
//     for each 32-row panel                    (dequantized to bf16 tiles: 32 x kKc x 2 bytes)
//       for each pair of 16-token tiles         (2 x 2 C tiles in tile registers)
//         C += W[panel, chunk] . X[chunk, tokens]   (kKc / 32 steps of 4 TDPBF16PS)
// The weights are the A operand (16 rows x 32 K values, their natural row-major order, so packing is
// a plain dequantize + convert per row) and the activations the B operand; C tiles are [16 weight
// rows][16 tokens]. Between chunks the C tiles wait in a thread-local buffer; after the last chunk
// each is transposed into y[token][row].
//
// Layouts: A panel: [32 rows][kKc bf16 + 32 bf16 padding], tile (step s, half j) at row 16 j,
// column 32 s. B (prepared activations): tiles [n / 16 rounded up][cols / 32 steps][16 K pairs]
// [16 tokens][2 bf16] (the "VNNI" layout TDPBF16PS takes: B[k / 2][2 t + k % 2] = x[t][k]), each
// tile 1 KiB contiguous; tokens beyond n are zero.
//
// Compiled for AMX/AVX-512; only called after choose_gemm checked the CPU and the OS permission.
// No std:: templates here (see gemm_vnni_q8.cpp).
#include "kernels/isa_target.h"
WAI_ISA_BEGIN("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,f16c,fma,avx2,amx-tile,amx-bf16")
#include <immintrin.h>

#include <cstring>

#include "kernels/avx512_quant.h"
#include "kernels/blocks.h"
#include "kernels/gemm.h"
#include "kernels/quant.h"
#include "kernels/repack.h"

namespace wai::kernels {
namespace {

constexpr int kTile = 16;        // tile rows (weight rows of A, K pairs of B) and C columns (tokens)
constexpr int64_t kPanel = 32;   // weight rows per panel (two A tiles)
constexpr int64_t kKc = 1024;    // K chunk: a multiple of every block size (256 for K-quants)
// Activation bytes (n x cols bf16) up to which a call runs as one chunk (kc = cols): the activations
// stay in L2 anyway, and whole weight rows stream sequentially (batched decode, small prefills).
constexpr int64_t kOneChunkBytes = int64_t{1} << 20;

inline int64_t pad16(int64_t n) { return (n + kTile - 1) / kTile * kTile; }

// In-register transpose of a 16 x 16 matrix of 32-bit elements (r[i] = row i).
inline void transpose16(__m512i* r) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // Now r[4a + b] holds, in 128-bit lane l, elements [4l..4l+3] of column (b') for rows 4a..4a+3.
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xDD);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xDD);
    r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xDD);
  }
}

size_t act_bytes(DType, int64_t n, int64_t cols) { return static_cast<size_t>(pad16(n) * cols) * 2; }

// Token tiles covering rows [t0, t1) (t0 is a multiple of 16; the range with the last row pads).
void prepare(DType, const float* x, int64_t n, int64_t cols, int64_t t0, int64_t t1, uint8_t* buf) {
  const int64_t steps = cols / 32;
  for (int64_t m = t0 / kTile; m * kTile < t1; ++m) {
    uint8_t* tile = buf + m * steps * 1024;
    for (int64_t s = 0; s < steps; ++s) {
      __m512i r[16];
      for (int t = 0; t < kTile; ++t) {
        const int64_t row = m * kTile + t;
        if (row < n) {
          const float* xr = x + row * cols + 32 * s;
          const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(xr + 16), _mm512_loadu_ps(xr));
          r[t] = reinterpret_cast<const __m512i&>(v);  // lane i = K pair i of token t
        } else {
          r[t] = _mm512_setzero_si512();
        }
      }
      transpose16(r);  // r[i] lane t = K pair i of token t
      for (int i = 0; i < kTile; ++i) _mm512_storeu_si512(tile + s * 1024 + 64 * i, r[i]);
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

// tmm0..3: C (16 rows x 16 tokens f32), tmm4/5: A (16 rows x 32 bf16), tmm6/7: B (16 K pairs x 16 tokens x 2).
void load_config() {
  TileConfig c;
  for (int i = 0; i < 8; ++i) c.rows[i] = kTile, c.colsb[i] = 64;
  // Not _tile_loadconfig: GCC 12 declares its operand as only 8 bytes read, so the compiler may drop
  // the stores of the rest of the config as dead. Here the whole 64-byte struct is the input.
  __asm__ volatile("ldtilecfg %0" : : "m"(c));
}

// 32 f32 -> 32 bf16 (RNE) at dst.
inline void store_bf16x32(const float* f, void* dst) {
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(f + 16), _mm512_loadu_ps(f));
  _mm512_store_si512(dst, reinterpret_cast<const __m512i&>(b));
}

// Row r of a panel, K columns [k0, k0 + kc), as kc contiguous bf16 at dst. src points at the row's
// block holding column k0.
void pack_row(DType type, const uint8_t* src, int64_t kc, float* f32, uint8_t* dst) {
  switch (type) {
    case DType::Q4_0: {
      const auto* b = reinterpret_cast<const BlockQ4_0*>(src);
      const __m128i m = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
      for (int64_t s = 0; s < kc / 32; ++s) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[s].qs));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(v, m), eight);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(v, 4), m), eight);
        const __m512 d = _mm512_set1_ps(h2f(b[s].d));
        const __m512 f0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), d);
        const __m512 f1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi)), d);
        const __m512bh h = _mm512_cvtne2ps_pbh(f1, f0);
        _mm512_store_si512(dst + s * 64, reinterpret_cast<const __m512i&>(h));
      }
      break;
    }
    case DType::Q8_0: {
      const auto* b = reinterpret_cast<const BlockQ8_0*>(src);
      for (int64_t s = 0; s < kc / 32; ++s) {
        const __m512 d = _mm512_set1_ps(h2f(b[s].d));
        const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[s].qs));
        const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[s].qs + 16));
        const __m512 f0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), d);
        const __m512 f1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), d);
        const __m512bh h = _mm512_cvtne2ps_pbh(f1, f0);
        _mm512_store_si512(dst + s * 64, reinterpret_cast<const __m512i&>(h));
      }
      break;
    }
    case DType::Q4_K: {
      // x = d * sc_j * q - dmin * m_j per 32-element sub-block j (ggml's dequantize_row_q4_K).
      const auto* b = reinterpret_cast<const BlockQ4K*>(src);
      const __m256i m4 = _mm256_set1_epi8(0x0F);
      for (int64_t i = 0; i < kc / kQKK; ++i) {
        const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
        for (int j = 0; j < 4; ++j) {
          const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs + 32 * j));
          const __m256i half[2] = {_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_srli_epi16(q, 4), m4)};
          for (int h = 0; h < 2; ++h) {
            uint8_t sc, m;
            get_scale_min_k4(2 * j + h, b[i].scales, &sc, &m);
            const __m512 ds = _mm512_set1_ps(d * sc), dm = _mm512_set1_ps(dmin * m);
            const __m512 f0 = _mm512_sub_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(half[h]))), ds), dm);
            const __m512 f1 = _mm512_sub_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(half[h], 1))), ds), dm);
            const __m512bh o = _mm512_cvtne2ps_pbh(f1, f0);
            _mm512_store_si512(dst + (i * 8 + 2 * j + h) * 64, reinterpret_cast<const __m512i&>(o));
          }
        }
      }
      break;
    }
    case DType::Q6_K: {
      // Per 128 elements: q = (ql nibble) | (2 bits of qh) << 4, x = d * scale[16-element group] * (q - 32).
      const auto* b = reinterpret_cast<const BlockQ6K*>(src);
      const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03), off = _mm256_set1_epi8(32);
      for (int64_t i = 0; i < kc / kQKK; ++i) {
        const float d = h2f(b[i].d);
        for (int h = 0; h < 2; ++h) {
          const uint8_t* ql = b[i].ql + 64 * h;
          const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
          const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
          const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qh + 32 * h));
          const __m256i q[4] = {
              _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4)), off),
              _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4)), off),
              _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4)), off),
              _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4)), off)};
          const int8_t* sc = b[i].scales + 8 * h;
          for (int g = 0; g < 4; ++g) {  // elements 32 g .. 32 g + 31 of this half: groups 2 g, 2 g + 1
            const __m512 f0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q[g]))), _mm512_set1_ps(d * sc[2 * g]));
            const __m512 f1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q[g], 1))), _mm512_set1_ps(d * sc[2 * g + 1]));
            const __m512bh o = _mm512_cvtne2ps_pbh(f1, f0);
            _mm512_store_si512(dst + (i * 8 + 4 * h + g) * 64, reinterpret_cast<const __m512i&>(o));
          }
        }
      }
      break;
    }
    case DType::BF16:
      std::memcpy(dst, src, static_cast<size_t>(kc) * 2);
      break;
    default:
      dequantize_row(type, src, f32, kc);
      for (int64_t s = 0; s < kc / 32; ++s) store_bf16x32(f32 + 32 * s, dst + s * 64);
      break;
  }
}

// Rows [0, nr) of a panel (row stride wstride bytes, k0_bytes into each row) into the A layout;
// rows nr..31 zero. Panel rows are lda bytes apart (kc * 2 plus one cache line, so that the 16 rows
// a tile load reads fall in 16 different L1 sets rather than two).
//
// Prefetch: with one chunk the rows are one contiguous stream, fetched kPrefetchBytes ahead. With
// several chunks a row's segment is a few hundred bytes and the next one read is the same segment of
// the next row (wstride on): the stream prefetch would land in another chunk of a later row, useless
// here, and the segments stalled on DRAM. So the same segment kPackNearRows rows on goes to L1 and
// kPackFarRows rows on (the next panel's) to L2: 5-19% less time on the 7B shapes at 512 tokens
// (bench/kernels/ab, interleaved; 8/64 and 16/256 rows measured the same).
constexpr int64_t kPackNearRows = 4, kPackFarRows = 32;

void pack_panel(DType type, const uint8_t* w, size_t wstride, int64_t nr, int64_t kc, size_t k0_bytes, float* f32,
                uint8_t* panel, int64_t lda) {
  const size_t seg = *row_bytes(type, kc);
  for (int64_t r = 0; r < kPanel; ++r) {
    uint8_t* dst = panel + r * lda;
    const char* src = reinterpret_cast<const char*>(w + r * wstride + k0_bytes);
    if (seg < wstride) {
      for (size_t o = 0; o < seg; o += 64) {
        _mm_prefetch(src + kPackNearRows * wstride + o, _MM_HINT_T0);
        _mm_prefetch(src + kPackFarRows * wstride + o, _MM_HINT_T1);
      }
    } else {
      for (size_t o = 0; o < seg; o += 64) _mm_prefetch(src + kPrefetchBytes + o, _MM_HINT_T0);
    }
    if (r < nr) pack_row(type, w + r * wstride + k0_bytes, kc, f32, dst);
    else std::memset(dst, 0, static_cast<size_t>(kc) * 2);
  }
}

// A panel from q4_0 / q8_0 in their x16 layouts (kernels/repack.h): calls unpack(rec, out) for the
// records of the panel's two row groups in K columns [k0, k0 + kc) (k0_bytes: GGUF's offset of k0 in
// a row, a 16th of the records' offset), out = the group's first panel row at the record's first
// column; rows of a group past nr are zero. Prefetches the record 4 KiB on into L1 and the next
// panel's (two groups on) into L2.
template <int64_t kCols, size_t kBytes, class Unpack>
inline void pack_panel_x16(const uint8_t* w, size_t wstride, int64_t nr, int64_t kc, size_t k0_bytes, uint8_t* panel,
                           int64_t lda, Unpack&& unpack) {
  for (int64_t j = 0; j < kPanel / kX16Rows; ++j) {
    uint8_t* dst = panel + j * kX16Rows * lda;
    if (j * kX16Rows >= nr) {
      for (int64_t i = 0; i < kX16Rows; ++i) std::memset(dst + i * lda, 0, static_cast<size_t>(kc) * 2);
      continue;
    }
    const uint8_t* rec = w + j * kX16Rows * wstride + kX16Rows * k0_bytes;
    const char* far = reinterpret_cast<const char*>(rec + kPanel * wstride);
    for (int64_t q = 0; q < kc / kCols; ++q, rec += kBytes, far += kBytes) {
      for (size_t o = 0; o < kBytes; o += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(rec) + kPrefetchNearBytes + o, _MM_HINT_T0);
        _mm_prefetch(far + o, _MM_HINT_T1);
      }
      unpack(rec, dst + q * kCols * 2);
    }
  }
}

// q4x16: the 16 dword registers of a record (q & 0x0F: block 2p, q >> 4: block 2p + 1) transposed back
// to rows, each row dequantized as pack_row does: the same bf16 values.
void pack_panel_q4x16(const uint8_t* w, size_t wstride, int64_t nr, int64_t kc, size_t k0_bytes, uint8_t* panel,
                      int64_t lda) {
  const __m512i m = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
  pack_panel_x16<kQ4x16Cols, kQ4x16RecordBytes>(w, wstride, nr, kc, k0_bytes, panel, lda, [&](const uint8_t* rec, uint8_t* dst) {
    __m512i r[16];
    for (int g = 0; g < 8; ++g) {
      const __m512i z = _mm512_loadu_si512(rec + 64 + 64 * g);
      r[g] = _mm512_and_si512(z, m);
      r[8 + g] = _mm512_and_si512(_mm512_srli_epi16(z, 4), m);
    }
    transpose16(r);  // r[i]: the 64 quants of row i, in column order
    alignas(64) float d[2][16];
    _mm512_store_ps(d[0], _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec))));
    _mm512_store_ps(d[1], _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 32))));
    for (int64_t i = 0; i < kX16Rows; ++i) {
      const __m512i v = _mm512_sub_epi8(r[i], eight);
      for (int h = 0; h < 2; ++h) {
        const __m512 dh = _mm512_set1_ps(d[h][i]);
        const __m512 f0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(v, 2 * h))), dh);
        const __m512 f1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(v, 2 * h + 1))), dh);
        const __m512bh b = _mm512_cvtne2ps_pbh(f1, f0);
        _mm512_store_si512(dst + i * lda + 64 * h, reinterpret_cast<const __m512i&>(b));
      }
    }
  });
}

// q8x16: a record's 8 dword registers transposed back to rows (the other 8 inputs zero), each row
// dequantized as pack_row does.
void pack_panel_q8x16(const uint8_t* w, size_t wstride, int64_t nr, int64_t kc, size_t k0_bytes, uint8_t* panel,
                      int64_t lda) {
  pack_panel_x16<kQ8x16Cols, kQ8x16RecordBytes>(w, wstride, nr, kc, k0_bytes, panel, lda, [&](const uint8_t* rec, uint8_t* dst) {
    __m512i r[16];
    for (int g = 0; g < 8; ++g) {
      r[g] = _mm512_loadu_si512(rec + 32 + 64 * g);
      r[8 + g] = _mm512_setzero_si512();
    }
    transpose16(r);  // r[i], low 32 bytes: the block's 32 quants of row i, in column order
    alignas(64) float d[16];
    _mm512_store_ps(d, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec))));
    for (int64_t i = 0; i < kX16Rows; ++i) {
      const __m512 di = _mm512_set1_ps(d[i]);
      const __m512 f0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_castsi512_si128(r[i]))), di);
      const __m512 f1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(r[i], 1))), di);
      const __m512bh h = _mm512_cvtne2ps_pbh(f1, f0);
      _mm512_store_si512(dst + i * lda, reinterpret_cast<const __m512i&>(h));
    }
  });
}

// C tile (16 rows x 16 tokens) -> y[token][row] for the valid rows / tokens.
void store_transposed(const float* c, float* y, int64_t ldy, int64_t nrows, int64_t ntok) {
  __m512i r[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_load_si512(c + 16 * i);
  transpose16(r);  // r[t] = the 16 rows of token t
  const __mmask16 mask = static_cast<__mmask16>((1u << nrows) - 1);
  for (int64_t t = 0; t < ntok; ++t) _mm512_mask_storeu_ps(y + t * ldy, mask, _mm512_castsi512_ps(r[t]));
}

void run(const GemmArgs& a, int64_t r0, int64_t r1) {
  const DType type = a.w.type;
  const int64_t cols = a.w.cols, n = a.n, mt = pad16(n) / kTile, steps = cols / 32;
  const size_t wstride = *row_bytes(type, cols);
  const int64_t npanels = (r1 - r0 + kPanel - 1) / kPanel;
  const int64_t kchunk = pad16(n) * cols * 2 <= kOneChunkBytes ? cols : kKc;
  const bool chunked = cols > kchunk;
  thread_local Scratch panel_mem, f32_mem, c_mem;
  const int64_t lda = kchunk * 2 + 64;
  uint8_t* panel = static_cast<uint8_t*>(panel_mem.get(static_cast<size_t>(lda * kPanel)));
  float* f32 = static_cast<float*>(f32_mem.get(static_cast<size_t>(kchunk) * sizeof(float)));
  // C tiles between chunks: [panel][token tile][2][256]; with one chunk only a 4-tile staging area.
  float* cbuf = static_cast<float*>(c_mem.get(static_cast<size_t>(chunked ? npanels * mt * 2 : 4) * 1024));
  load_config();
  for (int64_t k0 = 0; k0 < cols; k0 += kchunk) {
    const int64_t kc = cols - k0 < kchunk ? cols - k0 : kchunk;
    const size_t k0_bytes = *row_bytes(type, k0);
    const bool first = k0 == 0, last = k0 + kc == cols;
    for (int64_t p = 0; p < npanels; ++p) {
      const int64_t rp = r0 + p * kPanel;
      const int64_t nr = r1 - rp < kPanel ? r1 - rp : kPanel;
      if (a.w.layout == MatLayout::kQ4x16) pack_panel_q4x16(a.w.data + rp * wstride, wstride, nr, kc, k0_bytes, panel, lda);
      else if (a.w.layout == MatLayout::kQ8x16) pack_panel_q8x16(a.w.data + rp * wstride, wstride, nr, kc, k0_bytes, panel, lda);
      else pack_panel(type, a.w.data + rp * wstride, wstride, nr, kc, k0_bytes, f32, panel, lda);
      for (int64_t m = 0; m < mt; m += 2) {
        const bool two = m + 1 < mt;
        // C tile (j, m + i) of this panel: tmm(2 i + j).
        float* c = chunked ? cbuf + ((p * mt + m) * 2) * 256 : cbuf;
        if (first) {
          _tile_zero(0);
          _tile_zero(1);
          _tile_zero(2);
          _tile_zero(3);
        } else {
          _tile_loadd(0, c, 64);
          _tile_loadd(1, c + 256, 64);
          if (two) {
            _tile_loadd(2, c + 512, 64);
            _tile_loadd(3, c + 768, 64);
          }
        }
        const uint8_t* b0 = a.xq + (m * steps + k0 / 32) * 1024;
        const uint8_t* b1 = b0 + steps * 1024;
        // The next pair's C tiles (the next 4 KiB of cbuf) were last touched a whole K chunk ago and
        // sit in L3 or DRAM, one 4 KiB page the hardware prefetcher does not enter: fetch them two
        // lines per step so their tile loads do not stall the tile unit.
        const char* cnext = reinterpret_cast<const char*>(c + 1024);
        // In the last chunk, likewise the rows of y the next pair's results go to (32 tokens x 128
        // bytes, one token row per step): cold lines the transposed stores would otherwise miss on.
        const int64_t pn = m + 2 < mt ? p : p + 1, tn = m + 2 < mt ? (m + 2) * kTile : 0;
        const bool ynext = last && pn < npanels;
        const float* yn = a.y + tn * a.ldy + r0 + pn * kPanel;
        if (two) {
          for (int64_t s = 0; s < kc / 32; ++s) {
            if (chunked) {
              _mm_prefetch(cnext + s * 128, _MM_HINT_T0);
              _mm_prefetch(cnext + s * 128 + 64, _MM_HINT_T0);
            }
            if (ynext && s < 2 * kTile && tn + s < n) {
              _mm_prefetch(reinterpret_cast<const char*>(yn + s * a.ldy), _MM_HINT_T0);
              _mm_prefetch(reinterpret_cast<const char*>(yn + s * a.ldy + 16), _MM_HINT_T0);
            }
            _tile_loadd(4, panel + s * 64, lda);
            _tile_loadd(5, panel + kTile * lda + s * 64, lda);
            _tile_loadd(6, b0 + s * 1024, 64);
            _tile_loadd(7, b1 + s * 1024, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 5, 6);
            _tile_dpbf16ps(2, 4, 7);
            _tile_dpbf16ps(3, 5, 7);
          }
        } else {
          for (int64_t s = 0; s < kc / 32; ++s) {
            _tile_loadd(4, panel + s * 64, lda);
            _tile_loadd(5, panel + kTile * lda + s * 64, lda);
            _tile_loadd(6, b0 + s * 1024, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 5, 6);
          }
        }
        _tile_stored(0, c, 64);
        _tile_stored(1, c + 256, 64);
        if (two) {
          _tile_stored(2, c + 512, 64);
          _tile_stored(3, c + 768, 64);
        }
        if (last) {
          for (int i = 0; i < (two ? 2 : 1); ++i) {
            const int64_t t0 = (m + i) * kTile, ntok = n - t0 < kTile ? n - t0 : kTile;
            for (int j = 0; j < 2; ++j) {
              const int64_t nrows = nr - j * kTile;
              if (nrows <= 0) continue;
              store_transposed(c + (2 * i + j) * 256, a.y + t0 * a.ldy + rp + j * kTile, a.ldy,
                               nrows < kTile ? nrows : kTile, ntok);
            }
          }
        }
      }
    }
  }
  _tile_release();
}

}  // namespace

const GemmKernel kGemmAmxBf16 = {"amx-bf16", kPanel, kTile, act_bytes, prepare, run};

}  // namespace wai::kernels

WAI_ISA_END
