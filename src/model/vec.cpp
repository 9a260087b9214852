#include "model/vec.h"

#include "kernels/cpu.h"
#include "kernels/quant.h"

#if defined(__x86_64__)
#include <immintrin.h>
#if !defined(__clang__)
// GCC 12 warns falsely about the _mm512_undefined_* inside its own intrinsic headers (as kernels/ does).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace wai::model::vec {
namespace {

#if defined(__x86_64__)
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

}  // namespace wai::model::vec
