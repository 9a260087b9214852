// Scalar conversions and row (de)quantization for every supported type, bit-compatible with ggml.
#include "kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/blocks.h"
#include "util/error.h"

namespace wai::kernels {
namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void check_blocks(DType t, int64_t n, const char* what) {
  const auto& info = dtype_info(t);
  if (n < 0 || n % info.block_size != 0)
    fail(ErrorKind::kInvalidInput, std::string(what) + ": row of " + std::to_string(n) + " elements is not a multiple of " +
                                       std::string(info.name) + "'s block size " + std::to_string(info.block_size));
}

// ---- q8_0 / q4_0 -------------------------------------------------------------------------------

// ggml's quantize_row_q8_0_ref (the weights' rounding: roundf, half away from zero).
void quantize_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK0; ++i, x += kQK0) {
    float amax = 0;
    for (int j = 0; j < kQK0; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < kQK0; ++j) y[i].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
  }
}

// llama.cpp's x86 quantize_row_q8_0 (AVX/AVX2 build): multiply by 127/amax, round half to even.
// This is what llama.cpp's matmul applies to activations, so matmul uses it too.
void quantize_q8_0_act(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK0; ++i, x += kQK0) {
    float amax = 0;
    for (int j = 0; j < kQK0; ++j) amax = std::max(amax, std::fabs(x[j]));
    y[i].d = f32_to_f16(amax / 127.f);
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    for (int j = 0; j < kQK0; ++j) y[i].qs[j] = static_cast<int8_t>(std::nearbyintf(x[j] * id));
  }
}

// ggml's quantize_row_q4_0_ref: d = max / -8 where max is the signed value of largest magnitude.
void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK0; ++i, x += kQK0) {
    float amax = 0, max = 0;
    for (int j = 0; j < kQK0; ++j)
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < kQK0 / 2; ++j) {
      const uint8_t lo = static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f))));
      const uint8_t hi = static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f))));
      y[i].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

// ggml's quantize_row_q8_K_ref: d = max / -127 (max signed, largest magnitude), q clamped to 127.
void quantize_q8_K(const float* x, BlockQ8K* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    float amax = 0, max = 0;
    for (int j = 0; j < kQKK; ++j)
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    if (amax == 0) {
      std::memset(&y[i], 0, sizeof(BlockQ8K));
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kQKK; ++j) y[i].qs[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * x[j])));
    for (int j = 0; j < kQKK / 16; ++j) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[i].qs[j * 16 + l];
      y[i].bsums[j] = static_cast<int16_t>(sum);
    }
    y[i].d = 1 / iscale;
  }
}

void dequantize_q4_K(const BlockQ4K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float d = f16_to_f32(x[i].d), dmin = f16_to_f32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    for (int j = 0, is = 0; j < kQKK; j += 64, is += 2, q += 32) {
      uint8_t sc, m;
      get_scale_min_k4(is, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
    }
  }
}

void dequantize_q6_K(const BlockQ6K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float d = f16_to_f32(x[i].d);
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* sc = x[i].scales;
    for (int h = 0; h < kQKK; h += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

}  // namespace

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24 is exact in f32
    const float v = static_cast<float>(mant) * 0x1p-24f;
    return float_of(sign | bits_of(v));
  }
  if (exp == 31) return float_of(sign | 0x7f800000 | (mant << 13) | (mant ? 0x400000 : 0));  // NaN: quieted, as F16C
  return float_of(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t f32_to_f16(float f) {
  const uint32_t x = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t a = x & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00 | ((a >> 13) & 0x3ff);  // NaN: quiet, top payload bits kept
  if (a >= 0x477ff000) return sign | 0x7c00;                       // >= 65520 rounds to infinity
  if (a >= 0x38800000) {                                           // normal half (>= 2^-14)
    const uint32_t r = a + 0xfff + ((a >> 13) & 1) - 0x38000000;  // round at bit 13, rebias 127 -> 15
    return static_cast<uint16_t>(sign | (r >> 13));
  }
  if (a < 0x33000000) return sign;  // below 2^-25: rounds to zero
  // Subnormal half: q = round_half_even(value / 2^-24) (q may reach 0x400, the smallest normal).
  const uint32_t m = (a & 0x7fffff) | 0x800000;
  const int shift = 126 - static_cast<int>(a >> 23);  // 14..24
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1))) ++q;
  return static_cast<uint16_t>(sign | q);
}

float bf16_to_f32(uint16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_bf16(float f) {
  const uint32_t u = bits_of(f);
  if ((u & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((u >> 16) | 64);  // NaN, forced quiet
  return static_cast<uint16_t>((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  check_blocks(t, n, "dequantize_row");
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::F16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::BF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::Q8_0: {
      const auto* b = static_cast<const BlockQ8_0*>(src);
      for (int64_t i = 0; i < n / kQK0; ++i) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < kQK0; ++j) *dst++ = d * b[i].qs[j];
      }
      return;
    }
    case DType::Q4_0: {
      const auto* b = static_cast<const BlockQ4_0*>(src);
      for (int64_t i = 0; i < n / kQK0; ++i, dst += kQK0) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < kQK0 / 2; ++j) {
          dst[j] = d * ((b[i].qs[j] & 0xF) - 8);
          dst[j + 16] = d * ((b[i].qs[j] >> 4) - 8);
        }
      }
      return;
    }
    case DType::Q8_K: {
      const auto* b = static_cast<const BlockQ8K*>(src);
      for (int64_t i = 0; i < n / kQKK; ++i)
        for (int j = 0; j < kQKK; ++j) *dst++ = b[i].d * b[i].qs[j];
      return;
    }
    case DType::Q4_K:
      dequantize_q4_K(static_cast<const BlockQ4K*>(src), dst, n);
      return;
    case DType::Q6_K:
      dequantize_q6_K(static_cast<const BlockQ6K*>(src), dst, n);
      return;
    default:
      fail(ErrorKind::kUnsupported, "dequantize_row: no kernels for type " + std::string(dtype_name(t)));
  }
}

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
  check_blocks(t, n, "quantize_row");
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::F16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    case DType::BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::Q8_0:
      quantize_q8_0_ref(src, static_cast<BlockQ8_0*>(dst), n);
      return;
    case DType::Q4_0:
      quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), n);
      return;
    case DType::Q8_K:
      quantize_q8_K(src, static_cast<BlockQ8K*>(dst), n);
      return;
    case DType::Q4_K:
      quantize_row_q4_K(src, static_cast<BlockQ4K*>(dst), n);
      return;
    case DType::Q6_K:
      quantize_row_q6_K(src, static_cast<BlockQ6K*>(dst), n);
      return;
    default:
      fail(ErrorKind::kUnsupported, "quantize_row: no kernels for type " + std::string(dtype_name(t)));
  }
}

DType vec_dot_type(DType weight) {
  switch (weight) {
    case DType::Q4_0:
    case DType::Q8_0:
      return DType::Q8_0;
    case DType::Q4_K:
    case DType::Q6_K:
      return DType::Q8_K;
    case DType::F16:
      return DType::F16;
    case DType::BF16:
      return DType::BF16;
    case DType::F32:
      return DType::F32;
    default:
      fail(ErrorKind::kUnsupported, "matmul: no kernels for weight type " + std::string(dtype_name(weight)));
  }
}

void quantize_activation_row(DType vdt, const float* x, void* dst, int64_t n) {
  if (vdt == DType::Q8_0) {
    check_blocks(vdt, n, "quantize_activation_row");
    quantize_q8_0_act(x, static_cast<BlockQ8_0*>(dst), n);
  } else {
    quantize_row(vdt, x, dst, n);
  }
}

}  // namespace wai::kernels
