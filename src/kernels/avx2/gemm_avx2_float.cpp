// f32 / f16 / bf16 weights with AVX2 + FMA + F16C, for CPUs without AVX-512: activations rounded to the
// weight type (ggml's vec_dot_type: f16 for f16, bf16 for bf16), both sides widened to f32
// (vcvtph2ps; bf16 by a 16-bit shift), FMA'd into 8-lane accumulators, one hsum per output.
// Register tiles of 2 weight rows x 4 activation rows share every widened load (activation rows in
// L2-sized chunks); a row's tail
// (cols % 8) is summed in scalar after the lanes. Every output takes the same instructions whatever
// its tile, so results do not depend on the batch size.
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

template <DType W>
inline __m256 load8(const uint8_t* p, int64_t c) {
  if constexpr (W == DType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p) + c);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(p) + c));
    if constexpr (W == DType::F16) return _mm256_cvtph_ps(h);
    else return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}

template <DType W>
inline float load1(const uint8_t* p, int64_t c) {
  if constexpr (W == DType::F32) return reinterpret_cast<const float*>(p)[c];
  else if constexpr (W == DType::F16) return _cvtsh_ss(reinterpret_cast<const uint16_t*>(p)[c]);
  else return bf16_to_f32(reinterpret_cast<const uint16_t*>(p)[c]);
}

// y[t * ldy + i] for R weight rows at w (stride ws bytes) and T activation rows at x (stride xs).
template <DType W, int R, int T>
void tile(const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, int64_t cols, float* y, int64_t ldy) {
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  const int64_t body = cols - cols % 8;
  for (int64_t c = 0; c < body; c += 8) {
    __m256 xv[T];
    for (int t = 0; t < T; ++t) xv[t] = load8<W>(x + t * xs, c);
    for (int r = 0; r < R; ++r) {
      const __m256 wv = load8<W>(w + r * ws, c);
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      float s = hsum8(acc[r][t]);
      for (int64_t c = body; c < cols; ++c) s += load1<W>(w + r * ws, c) * load1<W>(x + t * xs, c);
      y[t * ldy + r] = s;
    }
}

template <DType W, int R>
void rows(const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, int64_t n, int64_t cols, float* y, int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= n; t += 4) tile<W, R, 4>(w, ws, x + t * xs, xs, cols, y + t * ldy, ldy);
  switch (n - t) {
    case 3: tile<W, R, 3>(w, ws, x + t * xs, xs, cols, y + t * ldy, ldy); break;
    case 2: tile<W, R, 2>(w, ws, x + t * xs, xs, cols, y + t * ldy, ldy); break;
    case 1: tile<W, R, 1>(w, ws, x + t * xs, xs, cols, y + t * ldy, ldy); break;
    default: break;
  }
}

// Activation rows in chunks of ~256 KiB (L2) while the weight rows pass over them.
template <DType W>
void run_type(const GemmArgs& a, int64_t r0, int64_t r1) {
  const size_t ws = static_cast<size_t>(a.w.cols) * float_elem_size(W), xs = ws;
  int64_t chunk = ws ? static_cast<int64_t>((size_t{256} << 10) / ws) : a.n;
  if (chunk < 4) chunk = 4;
  for (int64_t t0 = 0; t0 < a.n; t0 += chunk) {
    const int64_t n = t0 + chunk < a.n ? chunk : a.n - t0;
    const uint8_t* x = a.xq + static_cast<size_t>(t0) * xs;
    float* y = a.y + t0 * a.ldy;
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) rows<W, 2>(a.w.data + r * ws, ws, x, xs, n, a.w.cols, y + r, a.ldy);
    for (; r < r1; ++r) rows<W, 1>(a.w.data + r * ws, ws, x, xs, n, a.w.cols, y + r, a.ldy);
  }
}

void run(const GemmArgs& a, int64_t r0, int64_t r1) {
  switch (a.w.type) {
    case DType::F32: return run_type<DType::F32>(a, r0, r1);
    case DType::F16: return run_type<DType::F16>(a, r0, r1);
    default: return run_type<DType::BF16>(a, r0, r1);
  }
}

}  // namespace

const GemmKernel kGemmAvx2Float = {"avx2-float", 2, 1, float_act_bytes, float_prepare, run};

}  // namespace wai::kernels

WAI_ISA_END
