// Row conversion between f32 and every weight type wai supports, bit-compatible with ggml's block
// layouts (so GGUF files from llama.cpp load as they are, and files wai writes load in llama.cpp).
//
//   f32, f16 (IEEE half), bf16                      : 1 element per "block"
//   q8_0 : 32 elems, {f16 d; int8 qs[32]}            = 34 bytes
//   q4_0 : 32 elems, {f16 d; uint8 qs[16]}           = 18 bytes (low nibbles = elems 0..15)
//   q4_K : 256 elems, {f16 d, dmin; u8 scales[12]; u8 qs[128]} = 144 bytes
//   q6_K : 256 elems, {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d} = 210 bytes
//   q8_K : 256 elems, {f32 d; i8 qs[256]; i16 bsums[16]} = 292 bytes (activation type only)
#pragma once

#include <cstdint>

#include "format/dtype.h"

namespace wai::kernels {

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);  // round to nearest even (NaN preserved)

// dst[0..n) = src row of type t. n must be a multiple of the block size. Throws wai::Error
// (kUnsupported) for types without kernels.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

// Quantizes an f32 row to type t with ggml's reference rounding (q4_K/q6_K: a simple, valid scale
// search; matching ggml's exact rounding is not required, the block layout is). n % block_size == 0.
void quantize_row(DType t, const float* src, void* dst, int64_t n);

}  // namespace wai::kernels
