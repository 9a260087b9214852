// Vector math for AVX-512 code paths, shared by the kernels and the model's attention: internal
// linkage, each function compiled for AVX-512F wherever it is inlined (a caller compiled for a
// superset may inline it). Include only from x86-64 translation units that check cpu_features().
#pragma once

#include <immintrin.h>

namespace wai::kernels {
namespace {

// e^x, 16 lanes: x = n ln2 + r, |r| <= ln2/2, e^r by its degree-7 Taylor polynomial (truncation error
// < 1e-8 relative), times 2^n by vscalefps; ~2 ulp. The input is clamped to [-87.3, 88.7]: below,
// e^x < 1.2e-38 (and -inf does not turn into NaN); above, the result would overflow.
[[maybe_unused]] __attribute__((target("avx512f"))) inline __m512 exp_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);  // ln2, high part (exact product)
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);       // ln2, low part
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

}  // namespace
}  // namespace wai::kernels
