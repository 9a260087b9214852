#include "kernels/elementwise.h"

#include <cmath>

#include "kernels/cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include "kernels/avx512_math.h"
#if !defined(__clang__)
// GCC 12 warns falsely about the _mm512_undefined_* inside its own intrinsic headers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace wai::kernels {
namespace {

void rmsnorm_portable(const float* x, const float* w, float* out, int64_t n, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i] * x[i]);
  const float scale = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

void swiglu_portable(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

#if defined(__x86_64__)
#define WAI_AVX512 __attribute__((target("avx512f")))

WAI_AVX512 void rmsnorm_avx512(const float* x, const float* w, float* out, int64_t n, float eps) {
  // f32 squares summed in f64, 8 lanes x 2 accumulators.
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __m512 sq = _mm512_mul_ps(v, v);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sq), 1))));
  }
  double ss = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  for (; i < n; ++i) ss += static_cast<double>(x[i] * x[i]);
  const float scale = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
  const __m512 vs = _mm512_set1_ps(scale);
  for (i = 0; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), vs), _mm512_loadu_ps(w + i)));
  for (; i < n; ++i) out[i] = x[i] * scale * w[i];
}

WAI_AVX512 void swiglu_avx512(float* gate, const float* up, int64_t n) {
  int64_t i = 0;
  const __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i);
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g));
    _mm512_storeu_ps(gate + i, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_loadu_ps(up + i)));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g));
    _mm512_mask_storeu_ps(gate + i, m, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(m, up + i)));
  }
}
#undef WAI_AVX512
#endif

}  // namespace

void rmsnorm(const float* x, const float* w, float* out, int64_t n, float eps) {
#if defined(__x86_64__)
  if (cpu_features().avx512f) return rmsnorm_avx512(x, w, out, n, eps);
#endif
  rmsnorm_portable(x, w, out, n, eps);
}

void swiglu(float* gate, const float* up, int64_t n) {
#if defined(__x86_64__)
  if (cpu_features().avx512f) return swiglu_avx512(gate, up, n);
#endif
  swiglu_portable(gate, up, n);
}

}  // namespace wai::kernels
