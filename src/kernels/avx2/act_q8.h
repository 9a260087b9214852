// The prepared activations of the AVX2 q4_0 / q8_0 kernels (gemm_avx2_q0.cpp, gemm_avx2_x16.cpp):
// ggml's q8_0 blocks of every activation row (quantize_row_q8_0, x86 build), block-major, d widened
// to f32, with corr = -8 * sum(q) (what the x16 kernel adds to a sum over q4_0's raw nibbles).
// Internal linkage; include only from translation units in kernels/avx2/, after <immintrin.h>.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/blocks.h"

namespace wai::kernels {
namespace {

// One q8_0 block of one activation row: act[b * n + t].
struct Act {
  int8_t q[kQK0];
  float d;
  int32_t corr;
};
static_assert(sizeof(Act) == 40);

[[maybe_unused]] size_t act_bytes(DType, int64_t n, int64_t cols) {
  return static_cast<size_t>(n * (cols / kQK0)) * sizeof(Act);
}

[[maybe_unused]] __attribute__((target("avx2,fma,f16c"))) void prepare(DType, const float* x, int64_t n, int64_t cols,
                                                                        int64_t t0, int64_t t1, uint8_t* buf) {
  const int64_t nb = cols / kQK0;
  Act* act = reinterpret_cast<Act*>(buf);
  BlockQ8_0 blk;
  for (int64_t t = t0; t < t1; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      quantize_activation_row(DType::Q8_0, x + t * cols + b * kQK0, &blk, kQK0);
      Act& o = act[b * n + t];
      __builtin_memcpy(o.q, blk.qs, kQK0);
      o.d = _cvtsh_ss(blk.d);
      int32_t s = 0;
      for (int j = 0; j < kQK0; ++j) s += blk.qs[j];
      o.corr = -8 * s;
    }
}

}  // namespace
}  // namespace wai::kernels
