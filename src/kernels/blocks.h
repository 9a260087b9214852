// ggml's block layouts (ggml-common.h) and the kernel-internal entry points shared by the kernel
// files. Not for use outside src/kernels and its tests.
//
// All block structs are packed exactly as ggml writes them; sizes are checked against format/dtype.
#pragma once

#include <cstddef>
#include <cstdint>

#include "format/dtype.h"

namespace wai::kernels {

inline constexpr int kQK0 = 32;   // elements per q8_0 / q4_0 block
inline constexpr int kQKK = 256;  // elements per K-quant super-block

struct BlockQ8_0 {
  uint16_t d;        // f16 scale
  int8_t qs[kQK0];   // x = d * qs
};
struct BlockQ4_0 {
  uint16_t d;            // f16 scale
  uint8_t qs[kQK0 / 2];  // x[j] = d * ((qs[j] & 15) - 8), x[j + 16] = d * ((qs[j] >> 4) - 8)
};
struct BlockQ4K {
  uint16_t d;            // f16 super-scale for the 6-bit sub-block scales
  uint16_t dmin;         // f16 super-scale for the 6-bit sub-block mins
  uint8_t scales[12];    // 8 (scale, min) pairs of 6 bits, packed (see get_scale_min_k4)
  uint8_t qs[kQKK / 2];  // per 64 elements: 32 bytes, low nibbles = first 32, high = next 32
};
struct BlockQ6K {
  uint8_t ql[kQKK / 2];      // low 4 bits
  uint8_t qh[kQKK / 4];      // high 2 bits
  int8_t scales[kQKK / 16];  // 16 sub-blocks of 16, 8-bit scales
  uint16_t d;                // f16 super-scale
};
struct BlockQ8K {
  float d;                  // f32 scale (x = d * qs)
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];  // sums of qs over groups of 16
};

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4K) == 144 &&
              sizeof(BlockQ6K) == 210 && sizeof(BlockQ8K) == 292);

// ggml's nearest_int: round half to even through the float magic (|x| < 2^22).
inline int nearest_int(float x) {
  float v = x + 12582912.f;
  int32_t i;
  __builtin_memcpy(&i, &v, sizeof(i));
  return (i & 0x007fffff) - 0x00400000;
}

// The 6-bit scale and min of sub-block j (0..7) of a q4_K block.
inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// The activation type the dot product of a weight type uses (ggml's vec_dot_type).
DType vec_dot_type(DType weight);

// Quantizes an activation row to the vec_dot type exactly as llama.cpp's x86 CPU backend does
// (q8_0: d = amax/127 stored as f16, q = round-half-even(x * 127/amax); q8_K: ggml's
// quantize_row_q8_K_ref; f16/bf16: round to nearest even; f32: copy). n % block == 0.
void quantize_activation_row(DType vdt, const float* x, void* dst, int64_t n);

// Portable dot products, one weight row (w) against one quantized activation row (x), n elements.
float vec_dot_portable(DType wtype, int64_t n, const void* w, const void* x);

// q4_K / q6_K reference quantizers (quant_k.cpp).
void quantize_row_q4_K(const float* x, BlockQ4K* y, int64_t n);
void quantize_row_q6_K(const float* x, BlockQ6K* y, int64_t n);

}  // namespace wai::kernels
