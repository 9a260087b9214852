// f32 / f16 / bf16 weights with AVX-512: activations rounded to the weight type (ggml's vec_dot_type:
// f16 for f16, bf16 for bf16), products summed in f32. f16 is widened with vcvtph2ps and FMA'd; bf16
// uses vdpbf16ps (AVX512-BF16), as ggml's AVX512BF16 build does. Register tiles of 4 weight rows x 4
// activation rows; tails of any length through masked loads.
//
// Compiled for AVX-512; only called after choose_gemm checked the CPU (see gemm_vnni_q8.cpp).
// Everything below is compiled for this ISA (kernels/isa_target.h).
#include "kernels/isa_target.h"
WAI_ISA_BEGIN("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,f16c,fma,avx2")
#include <immintrin.h>

#include "kernels/blocks.h"
#include "kernels/gemm.h"
#include "kernels/quant.h"

namespace wai::kernels {
namespace {

template <DType W>
constexpr int kStep = W == DType::BF16 ? 32 : 16;  // elements per vector step

template <DType W>
inline __m512 load16(const uint8_t* p, int64_t c, __mmask16 m) {
  if constexpr (W == DType::F32) return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(p) + c);
  else return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(p) + c));
}

template <DType W, int R, int T>
void tile(const uint8_t* w, size_t wstride, const uint8_t* x, size_t xstride, int64_t cols, float* y, int64_t ldy) {
  __m512 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  for (int64_t c = 0; c < cols; c += kStep<W>) {
    const int64_t left = cols - c;
    if constexpr (W == DType::BF16) {
      const __mmask32 m = left >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << left) - 1);
      __m512bh wv[R];
      for (int r = 0; r < R; ++r)
        wv[r] = (__m512bh)(_mm512_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(w + r * wstride) + c));
      for (int t = 0; t < T; ++t) {
        const __m512bh xv =
            (__m512bh)(_mm512_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(x + t * xstride) + c));
        for (int r = 0; r < R; ++r) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], wv[r], xv);
      }
    } else {
      const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
      __m512 wv[R];
      for (int r = 0; r < R; ++r) wv[r] = load16<W>(w + r * wstride, c, m);
      for (int t = 0; t < T; ++t) {
        const __m512 xv = load16<W>(x + t * xstride, c, m);
        for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
}

template <DType W, int R>
void tile_rows(const uint8_t* w, size_t wstride, const uint8_t* x, size_t xstride, int64_t n, int64_t cols, float* y,
               int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) tile<W, R, 4>(w, wstride, x + t * xstride, xstride, cols, y + t * ldy, ldy);
  switch (n - t) {
    case 3: tile<W, R, 3>(w, wstride, x + t * xstride, xstride, cols, y + t * ldy, ldy); break;
    case 2: tile<W, R, 2>(w, wstride, x + t * xstride, xstride, cols, y + t * ldy, ldy); break;
    case 1: tile<W, R, 1>(w, wstride, x + t * xstride, xstride, cols, y + t * ldy, ldy); break;
    default: break;
  }
}

template <DType W>
void run_type(const GemmArgs& a, int64_t r0, int64_t r1) {
  const size_t stride = static_cast<size_t>(a.w.cols) * float_elem_size(W);
  const int64_t chunk = 64;  // activation rows kept hot in cache while this thread's weight rows stream
  for (int64_t t0 = 0; t0 < a.n; t0 += chunk) {
    const int64_t nt = a.n - t0 < chunk ? a.n - t0 : chunk;
    const uint8_t* x = a.xq + t0 * stride;
    float* y = a.y + t0 * a.ldy;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) tile_rows<W, 4>(a.w.data + r * stride, stride, x, stride, nt, a.w.cols, y + r, a.ldy);
    for (; r < r1; ++r) tile_rows<W, 1>(a.w.data + r * stride, stride, x, stride, nt, a.w.cols, y + r, a.ldy);
  }
}

void run(const GemmArgs& a, int64_t r0, int64_t r1) {
  switch (a.w.type) {
    case DType::F16: run_type<DType::F16>(a, r0, r1); break;
    case DType::BF16: run_type<DType::BF16>(a, r0, r1); break;
    default: run_type<DType::F32>(a, r0, r1); break;
  }
}

}  // namespace

const GemmKernel kGemmAvx512Float = {"avx512-float", 4, 1, float_act_bytes, float_prepare, run};

}  // namespace wai::kernels

WAI_ISA_END
