// q4_K / q6_K weights against q8_K activations with AVX-512 BW + VNNI: per super-block of 256, the
// unsigned weight quants times the activation quants (vpmaddubsw, pairs to int16, exact: at most
// 2 * 63 * 127), times the sub-block scales (vpdpwssd, int32), exactly the integers of ggml's
// ggml_vec_dot_q4_K_q8_K / _q6_K_q8_K; then f32: d_w * d_x * sumi, minus q4_K's dmin * d_x * sum(min *
// bsums). q6_K's -32 offset is removed in the integer domain with the bsums.
//
// Compiled for AVX-512; only called after choose_gemm checked the CPU (see gemm_vnni_q8.cpp).
// Everything below is compiled for this ISA (kernels/isa_target.h).
#include "kernels/isa_target.h"
WAI_ISA_BEGIN("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma,avx2")
#include <immintrin.h>

#include <cstring>

#include "kernels/avx512_quant.h"
#include "kernels/blocks.h"
#include "kernels/gemm.h"
#include "kernels/quant.h"

namespace wai::kernels {
namespace {

size_t act_bytes(DType, int64_t n, int64_t cols) { return static_cast<size_t>(n * (cols / kQKK)) * sizeof(BlockQ8K); }

// ggml's q8_K blocks; for q4_K weights the quants of each 128 elements are stored in the order the
// weight nibbles unpack to (elements 0..31, 64..95, then 32..63, 96..127), bsums stay in natural order.
void prepare(DType w, const float* x, int64_t, int64_t cols, int64_t t0, int64_t t1, uint8_t* buf) {
  const int64_t nb = cols / kQKK;
  for (int64_t t = t0; t < t1; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      BlockQ8K* q = reinterpret_cast<BlockQ8K*>(buf) + t * nb + b;
      quantize_q8_K_block_avx512(x + t * cols + b * kQKK, q);
      if (w == DType::Q4_K) {
        alignas(64) int8_t tmp[kQKK];
        std::memcpy(tmp, q->qs, kQKK);
        for (int k = 0; k < 2; ++k)
          for (int part = 0; part < 4; ++part)  // destination 32-byte slots <- source sub-blocks 0, 2, 1, 3
            std::memcpy(q->qs + 128 * k + 32 * part, tmp + 128 * k + 32 * ((part % 2) * 2 + part / 2), 32);
      }
    }
}

inline __m512i idx16(int a, int b) {  // int16 lane indices: a x16 then b x16
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(static_cast<short>(a))),
                            _mm256_set1_epi16(static_cast<short>(b)), 1);
}
inline __m512i idx8x4(int a) {  // int16 lane indices: a x8, a+1 x8, a+2 x8, a+3 x8
  const __m128i q0 = _mm_set1_epi16(static_cast<short>(a)), q1 = _mm_set1_epi16(static_cast<short>(a + 1));
  const __m128i q2 = _mm_set1_epi16(static_cast<short>(a + 2)), q3 = _mm_set1_epi16(static_cast<short>(a + 3));
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(q1, q0)), _mm256_set_m128i(q3, q2), 1);
}


// R weight rows (1 or 2) against one activation row; out[r] = dot.
template <int R>
void dot_q4_K(const BlockQ4K* const* w, const BlockQ8K* y, int64_t nb, float* out) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i i02 = idx16(0, 2), i13 = idx16(1, 3), i46 = idx16(4, 6), i57 = idx16(5, 7);
  const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  __m512 acc[R];
  __m256 accm[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps(), accm[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].bsums));
    const __m512i y0 = _mm512_loadu_si512(y[i].qs), y1 = _mm512_loadu_si512(y[i].qs + 64);
    const __m512i y2 = _mm512_loadu_si512(y[i].qs + 128), y3 = _mm512_loadu_si512(y[i].qs + 192);
    const float dx = y[i].d;
    for (int r = 0; r < R; ++r) {
      const BlockQ4K& b = w[r][i];
      prefetch_stream(&b, sizeof(BlockQ4K));  // rows contiguous: one linear stream
      // ggml's unpacking of the 12 scale bytes into 8 six-bit scales (u[0..1]) and mins (u[2..3]).
      uint32_t u[4];
      std::memcpy(u, b.scales, 12);
      const uint32_t km1 = 0x3f3f3f3f, km2 = 0x0f0f0f0f, km3 = 0x03030303;
      u[3] = ((u[2] >> 4) & km2) | (((u[1] >> 6) & km3) << 4);
      const uint32_t uaux = u[1] & km1;
      u[1] = (u[2] & km2) | (((u[0] >> 6) & km3) << 4);
      u[2] = uaux;
      u[0] &= km1;
      const __m128i sm = _mm_loadu_si128(reinterpret_cast<const __m128i*>(u));  // scales 0..7, mins 0..7
      const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(sm));    // int16 lanes 0..7 = scales
      const __m256i mins2 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_srli_si128(sm, 8), dup));
      const __m256i summ = _mm256_madd_epi16(mins2, bs);  // 8 lanes: min_j * (bsums 2j + 2j+1)
      const __m512i q0 = _mm512_loadu_si512(b.qs), q1 = _mm512_loadu_si512(b.qs + 64);
      // Sub-blocks (0,2), (1,3), (4,6), (5,7): low and high nibbles of each 64 bytes.
      __m512i sumi = _mm512_dpwssd_epi32(_mm512_setzero_si512(), _mm512_maddubs_epi16(_mm512_and_si512(q0, m4), y0),
                                         _mm512_permutexvar_epi16(i02, sc16));
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(q0, 4), m4), y1),
                                 _mm512_permutexvar_epi16(i13, sc16));
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(_mm512_and_si512(q1, m4), y2),
                                 _mm512_permutexvar_epi16(i46, sc16));
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(_mm512_and_si512(_mm512_srli_epi16(q1, 4), m4), y3),
                                 _mm512_permutexvar_epi16(i57, sc16));
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(h2f(b.d) * dx), acc[r]);
      accm[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(summ), _mm256_set1_ps(h2f(b.dmin) * dx), accm[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const __m128 m = _mm_add_ps(_mm256_castps256_ps128(accm[r]), _mm256_extractf128_ps(accm[r], 1));
    const __m128 m2 = _mm_add_ps(m, _mm_movehl_ps(m, m));
    out[r] = _mm512_reduce_add_ps(acc[r]) - _mm_cvtss_f32(_mm_add_ss(m2, _mm_movehdup_ps(m2)));
  }
}

float dot_q6_K(const BlockQ6K* w, const BlockQ8K* y, int64_t nb) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x03);
  const __m512i sA = idx16(0, 2), sB = idx16(4, 6);  // qh shifts for elements 0..63 and 64..127
  const __m512i p0 = idx8x4(0), p4 = idx8x4(4), p8 = idx8x4(8), p12 = idx8x4(12);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < nb; ++i) {
    prefetch_stream(&w[i], sizeof(BlockQ6K));
    const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].scales)));
    const __m512i sc16 = _mm512_castsi256_si512(sc);
    const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i].bsums));
    const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc, bs), 5);  // 32 * sum_j scale_j * bsum_j
    __m512i sumi = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(off));
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(w[i].ql + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qh + 32 * h)));
      const __m512i qlo = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                          _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sA), m2), 4));
      const __m512i qhi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                          _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sB), m2), 4));
      const int8_t* yq = y[i].qs + 128 * h;
      const __m512i plo = _mm512_maddubs_epi16(qlo, _mm512_loadu_si512(yq));
      const __m512i phi = _mm512_maddubs_epi16(qhi, _mm512_loadu_si512(yq + 64));
      sumi = _mm512_dpwssd_epi32(sumi, plo, _mm512_permutexvar_epi16(h ? p8 : p0, sc16));
      sumi = _mm512_dpwssd_epi32(sumi, phi, _mm512_permutexvar_epi16(h ? p12 : p4, sc16));
    }
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(h2f(w[i].d) * y[i].d), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

void run(const GemmArgs& a, int64_t r0, int64_t r1) {
  const int64_t nb = a.w.cols / kQKK;
  const bool q4 = a.w.type == DType::Q4_K;
  const size_t wstride = static_cast<size_t>(nb) * (q4 ? sizeof(BlockQ4K) : sizeof(BlockQ6K));
  const BlockQ8K* x = reinterpret_cast<const BlockQ8K*>(a.xq);
  int64_t r = r0;
  if (q4) {  // two weight rows per pass share the activation loads
    for (; r + 2 <= r1; r += 2) {
      const BlockQ4K* w[2] = {reinterpret_cast<const BlockQ4K*>(a.w.data + r * wstride),
                              reinterpret_cast<const BlockQ4K*>(a.w.data + (r + 1) * wstride)};
      for (int64_t t = 0; t < a.n; ++t) {
        float out[2];
        dot_q4_K<2>(w, x + t * nb, nb, out);
        a.y[t * a.ldy + r] = out[0];
        a.y[t * a.ldy + r + 1] = out[1];
      }
    }
  }
  for (; r < r1; ++r) {
    const uint8_t* wr = a.w.data + r * wstride;
    for (int64_t t = 0; t < a.n; ++t) {
      if (q4) {
        const BlockQ4K* w[1] = {reinterpret_cast<const BlockQ4K*>(wr)};
        dot_q4_K<1>(w, x + t * nb, nb, &a.y[t * a.ldy + r]);
      } else {
        a.y[t * a.ldy + r] = dot_q6_K(reinterpret_cast<const BlockQ6K*>(wr), x + t * nb, nb);
      }
    }
  }
}

}  // namespace

const GemmKernel kGemmVnniK = {"avx512-vnni", 4, 1, act_bytes, prepare, run};

}  // namespace wai::kernels

WAI_ISA_END
