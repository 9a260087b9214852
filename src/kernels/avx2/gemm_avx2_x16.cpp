// q4_0 / q8_0 weights in the q4x16 / q8x16 layouts (kernels/repack.h) against q8_0 activations with
// AVX2 + FMA, for CPUs without AVX-512: decode and prefill alike.
//
// The layouts hold, per 32-bit lane i of a 64-byte row q[j] of a record, 4 consecutive quants of row
// 16 g + i; a 256-bit register takes 8 of those rows (half h of the record), so one activation dword
// broadcast against it multiplies 4 quants of 8 rows at once and every lane stays one row: no
// horizontal sums, and the per-block f32 work (convert, scale, FMA) is paid once per 8 rows.
//   q4x16: vpmaddubsw(nibbles 0..15, activation) gives per row two pair sums <= 2 * 15 * 127; 8 of them
//          (one block) add up in int16 without overflow (<= 30480), one vpmaddwd with ones makes the
//          block's int32 sum of nibble * x, and -8 * sum(x) (per activation block, from prepare)
//          makes it the sum of (nibble - 8) * x: exact.
//   q8x16: signed x signed: vpsignb moves the activation's sign onto the weights (|x| * sign(x) * w),
//          vpmaddubsw(|x|, w') <= 2 * 127 * 128 per pair, vpmaddwd per dword, int32 sums: exact.
// Then, per block and row: f32(sum) * (f16(d_w) * f16(d_x)) FMA'd into the row's lane, in block
// order; the same instructions for every output whatever the batch size, so results do not depend
// on it. (The same terms as ggml; only the f32 order of the block sums differs: block order here.)
//
// A matrix still in GGUF's layout whose x16 copy is being made (choose_gemm's x16_pending) is read
// through this kernel too, each 16-row group repacked on the fly into a per-thread buffer: the
// arithmetic, and so every result, stays the same when the copy lands.
//
// Loop order: activation rows in chunks that stay in L2; per 16-row group and half (8 rows x cols:
// 18 KiB at 4096 columns, L1), register tiles of up to 4 activation rows. Compiled for AVX2/FMA/F16C;
// choose_gemm calls it only when the CPU has them. No std:: templates (see gemm_vnni_q8.cpp).
#include "kernels/isa_target.h"
WAI_ISA_BEGIN("avx2,fma,f16c")
#include <immintrin.h>

#include "kernels/avx2/act_q8.h"
#include "kernels/blocks.h"
#include "kernels/gemm.h"
#include "kernels/quant.h"
#include "kernels/repack.h"

namespace wai::kernels {
namespace {

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// q4x16, half h (rows 8 h .. 8 h + 7) of the group whose records start at rec0 (np records of 64
// columns), T activation rows: acc[t] lane i += row (8 h + i) . activation t.
template <int T>
void q4_half(const uint8_t* rec0, int64_t np, int h, const Act* act, int64_t n, __m256 (&acc)[T]) {
  const __m256i m = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t p = 0; p < np; ++p) {
    const uint8_t* rec = rec0 + static_cast<size_t>(p) * kQ4x16RecordBytes;
    const uint8_t* q = rec + 64 + 32 * h;
    for (int k = 0; k < 2; ++k) {  // block 2 p (low nibbles), then 2 p + 1 (high)
      const Act* a = act + (2 * p + k) * n;
      __m256i s[T];
      for (int t = 0; t < T; ++t) s[t] = _mm256_setzero_si256();
      for (int j = 0; j < 8; ++j) {
        __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * j));
        if (k) w = _mm256_srli_epi16(w, 4);
        w = _mm256_and_si256(w, m);
        for (int t = 0; t < T; ++t) s[t] = _mm256_add_epi16(s[t], _mm256_maddubs_epi16(w, bcast4(a[t].q + 4 * j)));
      }
      const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + 32 * k + 16 * h)));
      for (int t = 0; t < T; ++t) {
        const __m256i i32 = _mm256_add_epi32(_mm256_madd_epi16(s[t], ones), _mm256_set1_epi32(a[t].corr));
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i32), _mm256_mul_ps(dw, _mm256_set1_ps(a[t].d)), acc[t]);
      }
    }
  }
}

// q8x16, half h of the group whose records start at rec0 (nb records of one block).
template <int T>
void q8_half(const uint8_t* rec0, int64_t nb, int h, const Act* act, int64_t n, __m256 (&acc)[T]) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* rec = rec0 + static_cast<size_t>(b) * kQ8x16RecordBytes;
    const uint8_t* q = rec + 32 + 32 * h;
    const Act* a = act + b * n;
    __m256i s[T];
    for (int t = 0; t < T; ++t) s[t] = _mm256_setzero_si256();
    for (int j = 0; j < 8; ++j) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * j));
      for (int t = 0; t < T; ++t) {
        const __m256i x = bcast4(a[t].q + 4 * j);
        const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(w, x));
        s[t] = _mm256_add_epi32(s[t], _mm256_madd_epi16(p, ones));
      }
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + 16 * h)));
    for (int t = 0; t < T; ++t)
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[t]), _mm256_mul_ps(dw, _mm256_set1_ps(a[t].d)), acc[t]);
  }
}

// y[t * ldy + 8 h + i] for the group's 16 rows and T activation rows starting at act.
template <bool kQ4, int T>
void group_tile(const uint8_t* rec0, int64_t cols, const Act* act, int64_t n, float* y, int64_t ldy) {
  for (int h = 0; h < 2; ++h) {
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    if constexpr (kQ4) q4_half<T>(rec0, cols / kQ4x16Cols, h, act, n, acc);
    else q8_half<T>(rec0, cols / kQK0, h, act, n, acc);
    for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + t * ldy + 8 * h, acc[t]);
  }
}

template <bool kQ4>
void group_rows(const uint8_t* rec0, int64_t cols, const Act* act, int64_t n, int64_t t0, int64_t t1, float* y,
                int64_t ldy) {
  int64_t t = t0;
  for (; t + 4 <= t1; t += 4) group_tile<kQ4, 4>(rec0, cols, act + t, n, y + t * ldy, ldy);
  switch (t1 - t) {
    case 3: group_tile<kQ4, 3>(rec0, cols, act + t, n, y + t * ldy, ldy); break;
    case 2: group_tile<kQ4, 2>(rec0, cols, act + t, n, y + t * ldy, ldy); break;
    case 1: group_tile<kQ4, 1>(rec0, cols, act + t, n, y + t * ldy, ldy); break;
    default: break;
  }
}

// Per-thread buffer for one 16-row group repacked on the fly (a matrix whose copy is pending). Plain
// new[] in a type of this file, not std:: containers (see the file comment).
struct GroupBuf {
  uint8_t* p = nullptr;
  size_t cap = 0;
  ~GroupBuf() { delete[] p; }
  uint8_t* get(size_t n) {
    if (cap < n) {
      delete[] p;
      p = new uint8_t[n];
      cap = n;
    }
    return p;
  }
};
thread_local GroupBuf g_group_buf;

template <bool kQ4>
void run_type(const GemmArgs& a, int64_t r0, int64_t r1) {
  const size_t group_bytes = static_cast<size_t>(kX16Rows) * *row_bytes(a.w.type, a.w.cols);
  const bool on_the_fly = a.w.layout == MatLayout::kRows;
  const Act* act = reinterpret_cast<const Act*>(a.xq);
  // Activation rows per pass: their blocks (40 bytes per 32 columns) within ~256 KiB of L2.
  const int64_t per_row = a.w.cols / kQK0 * static_cast<int64_t>(sizeof(Act));
  int64_t chunk = (int64_t{256} << 10) / per_row;
  chunk = chunk < 4 ? 4 : chunk - chunk % 4;
  for (int64_t t0 = 0; t0 < a.n; t0 += chunk) {
    const int64_t t1 = t0 + chunk < a.n ? t0 + chunk : a.n;
    for (int64_t r = r0; r < r1; r += kX16Rows) {
      const int64_t g = r / kX16Rows;
      const uint8_t* rec0 = a.w.data + static_cast<size_t>(g) * group_bytes;
      if (on_the_fly) {
        MatRef sub = a.w;
        sub.data = rec0;
        sub.rows = kX16Rows;
        uint8_t* buf = g_group_buf.get(group_bytes);
        if (kQ4) repack_q4x16_portable(sub, buf, 0, 1);
        else repack_q8x16_portable(sub, buf, 0, 1);
        rec0 = buf;
      }
      group_rows<kQ4>(rec0, a.w.cols, act, a.n, t0, t1, a.y + r, a.ldy);
    }
  }
}

void run(const GemmArgs& a, int64_t r0, int64_t r1) {
  if (a.w.type == DType::Q4_0) run_type<true>(a, r0, r1);
  else run_type<false>(a, r0, r1);
}

}  // namespace

const GemmKernel kGemmAvx2X16 = {"avx2-x16", kX16Rows, 1, act_bytes, prepare, run};

}  // namespace wai::kernels

WAI_ISA_END
