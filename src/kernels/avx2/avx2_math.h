// Small vector helpers shared by the AVX2 kernels (kernels/avx2/): internal linkage, compiled for
// AVX2 + FMA + F16C wherever they are inlined. Include only from translation units in kernels/avx2/,
// after <immintrin.h>.
#pragma once

#include <immintrin.h>

namespace wai::kernels {
namespace {

// The sum of 8 lanes in ggml's hsum_float_8 order: (high half + low half), then pairs, then the last two.
[[maybe_unused]] __attribute__((target("avx2,fma,f16c"))) inline float hsum8(__m256 v) {
  __m128 r = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
  r = _mm_add_ps(r, _mm_movehl_ps(r, r));
  r = _mm_add_ss(r, _mm_movehdup_ps(r));
  return _mm_cvtss_f32(r);
}

// The largest of 8 lanes (same tree).
[[maybe_unused]] __attribute__((target("avx2,fma,f16c"))) inline float hmax8(__m256 v) {
  __m128 r = _mm_max_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
  r = _mm_max_ps(r, _mm_movehl_ps(r, r));
  r = _mm_max_ss(r, _mm_movehdup_ps(r));
  return _mm_cvtss_f32(r);
}

}  // namespace
}  // namespace wai::kernels
