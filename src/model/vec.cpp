#include "model/vec.h"

#include "kernels/cpu.h"
#include "kernels/quant.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace wai::model::vec {
namespace {

float dot_portable(const float* a, const float* b, int64_t n) {
  // Four partial sums: fewer dependent adds, and the same order on every run.
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

void axpy_portable(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) float dot_avx512(const float* a, const float* b, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc1);
  }
  // (A store and a scalar sum: GCC 12's _mm512_reduce_add_ps trips -Wuninitialized.)
  alignas(64) float t[16];
  _mm512_store_ps(t, _mm512_add_ps(acc0, acc1));
  float s = 0.0f;
  for (float v : t) s += v;
  return s;
}

__attribute__((target("avx512f"))) void axpy_avx512(float alpha, const float* x, float* y, int64_t n) {
  const __m512 va = _mm512_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

__attribute__((target("avx512f,f16c"))) void to_f16_avx512(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    alignas(32) uint16_t t[16];
    _mm256_store_si256(reinterpret_cast<__m256i*>(t), h);
    for (int64_t j = i; j < n; ++j) y[j] = t[j - i];
  }
}

__attribute__((target("avx512f,f16c"))) void from_f16_avx512(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i))));
  for (; i < n; ++i) y[i] = kernels::f16_to_f32(x[i]);
}
#endif

}  // namespace

void to_f16(const float* x, uint16_t* y, int64_t n) {
#if defined(__x86_64__)
  if (kernels::cpu_features().avx512f && kernels::cpu_features().f16c) return to_f16_avx512(x, y, n);
#endif
  for (int64_t i = 0; i < n; ++i) y[i] = kernels::f32_to_f16(x[i]);
}

void from_f16(const uint16_t* x, float* y, int64_t n) {
#if defined(__x86_64__)
  if (kernels::cpu_features().avx512f && kernels::cpu_features().f16c) return from_f16_avx512(x, y, n);
#endif
  for (int64_t i = 0; i < n; ++i) y[i] = kernels::f16_to_f32(x[i]);
}

float dot(const float* a, const float* b, int64_t n) {
#if defined(__x86_64__)
  if (kernels::cpu_features().avx512f) return dot_avx512(a, b, n);
#endif
  return dot_portable(a, b, n);
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
#if defined(__x86_64__)
  if (kernels::cpu_features().avx512f) return axpy_avx512(alpha, x, y, n);
#endif
  axpy_portable(alpha, x, y, n);
}

}  // namespace wai::model::vec
