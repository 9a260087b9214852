// q4_K / q6_K weights (GGUF's row layout) against q8_K activations with AVX2 + FMA, for CPUs without
// AVX-512 (Q4_K_M files, the common download, are mostly these two types).
//
// Per 256-element super-block, ggml's AVX2 formulation:
//   q4_K: per 64 elements, vpmaddubsw(nibbles 0..15, x) (pairs <= 2 * 15 * 128) for the low and the
//         high 32, each vpmaddwd'd with its 6-bit sub-block scale into int32 lanes; the mins term
//         sum_j min_j * bsum_j (16 sums of 16) in scalar int32; result += d * y.d * f32(sumi) -
//         dmin * y.d * summ.
//   q6_K: per 128 elements, the 6-bit quants rebuilt from ql / qh (0..63), vpmaddubsw against x minus
//         vpmaddubsw(32, x) (the -32 offset; |pair| <= 24320), vpmaddwd with the two int8 scales of
//         each 32-element run (8 lanes each); result += d * y.d * f32(sumi).
// Integer sums exact; f32 FMAs per super-block into 8 lanes, one hsum per output (ggml's order).
// Every output takes the same instructions whatever n: results do not depend on the batch size.
// Activation rows in chunks that stay in L2 while a weight row (L1) passes over them.
//
// Compiled for AVX2/FMA/F16C; choose_gemm calls it only when the CPU has them. No std:: templates.
#include "kernels/isa_target.h"
WAI_ISA_BEGIN("avx2,fma,f16c")
#include <immintrin.h>

#include "kernels/avx2/avx2_math.h"
#include "kernels/blocks.h"
#include "kernels/gemm.h"
#include "kernels/quant.h"

namespace wai::kernels {
namespace {

size_t act_bytes(DType, int64_t n, int64_t cols) { return *row_bytes(DType::Q8_K, cols) * static_cast<size_t>(n); }

void prepare(DType, const float* x, int64_t, int64_t cols, int64_t t0, int64_t t1, uint8_t* buf) {
  const size_t stride = *row_bytes(DType::Q8_K, cols);
  for (int64_t t = t0; t < t1; ++t) quantize_activation_row(DType::Q8_K, x + t * cols, buf + t * stride, cols);
}

inline __m256i load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Two int16 scales: lanes 0..7 (the first 16 elements of a 32-element run) and 8..15.
inline __m256i scale_pair(int a, int b) {
  return _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(b)), _mm_set1_epi16(static_cast<int16_t>(a)));
}

float dot_q4_K(int64_t nb, const BlockQ4K* x, const BlockQ8K* y) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  float summin = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) get_scale_min_k4(j, x[i].scales, &sc[j], &mn[j]);
    int32_t summ = 0;
    for (int j = 0; j < 16; ++j) summ += y[i].bsums[j] * mn[j / 2];
    const uint8_t* q4 = x[i].qs;
    const int8_t* q8 = y[i].qs;
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j, q4 += 32, q8 += 64) {
      const __m256i bits = load(q4);
      const __m256i lo = _mm256_and_si256(bits, m4), hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
      const __m256i pl = _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * j]), _mm256_maddubs_epi16(lo, load(q8)));
      const __m256i ph = _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * j + 1]), _mm256_maddubs_epi16(hi, load(q8 + 32)));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
    }
    const float yd = y[i].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(x[i].d) * yd), _mm256_cvtepi32_ps(sumi), acc);
    summin += _cvtsh_ss(x[i].dmin) * yd * static_cast<float>(summ);
  }
  return hsum8(acc) - summin;
}

float dot_q6_K(int64_t nb, const BlockQ6K* x, const BlockQ8K* y) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m32 = _mm256_set1_epi8(32);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* q8 = y[i].qs;
    const int8_t* s = x[i].scales;
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 2; ++j, ql += 64, qh += 32, q8 += 128, s += 8) {
      const __m256i h = load(qh), b1 = load(ql), b2 = load(ql + 32);
      __m256i q[4];
      q[0] = _mm256_or_si256(_mm256_and_si256(b1, m4), _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(3)), 4));
      q[1] = _mm256_or_si256(_mm256_and_si256(b2, m4), _mm256_slli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(12)), 2));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4), _mm256_and_si256(h, _mm256_set1_epi8(48)));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4),
                             _mm256_srli_epi16(_mm256_and_si256(h, _mm256_set1_epi8(static_cast<char>(0xC0))), 2));
      for (int k = 0; k < 4; ++k) {
        const __m256i xv = load(q8 + 32 * k);
        const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q[k], xv), _mm256_maddubs_epi16(m32, xv));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scale_pair(s[2 * k], s[2 * k + 1]), p));
      }
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(x[i].d) * y[i].d), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum8(acc);
}

void run(const GemmArgs& a, int64_t r0, int64_t r1) {
  const int64_t nb = a.w.cols / kQKK;
  const size_t wstride = *row_bytes(a.w.type, a.w.cols);
  const size_t xstride = *row_bytes(DType::Q8_K, a.w.cols);
  int64_t chunk = static_cast<int64_t>((size_t{256} << 10) / xstride);
  if (chunk < 1) chunk = 1;
  for (int64_t t0 = 0; t0 < a.n; t0 += chunk) {
    const int64_t t1 = t0 + chunk < a.n ? t0 + chunk : a.n;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* wr = a.w.data + static_cast<size_t>(r) * wstride;
      for (int64_t t = t0; t < t1; ++t) {
        const auto* yq = reinterpret_cast<const BlockQ8K*>(a.xq + static_cast<size_t>(t) * xstride);
        a.y[t * a.ldy + r] = a.w.type == DType::Q4_K ? dot_q4_K(nb, reinterpret_cast<const BlockQ4K*>(wr), yq)
                                                     : dot_q6_K(nb, reinterpret_cast<const BlockQ6K*>(wr), yq);
      }
    }
  }
}

}  // namespace

const GemmKernel kGemmAvx2K = {"avx2-k", 4, 1, act_bytes, prepare, run};

}  // namespace wai::kernels

WAI_ISA_END
