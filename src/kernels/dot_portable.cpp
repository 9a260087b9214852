// Portable dot products with llama.cpp's numerics: integer sums within a block, scaled per block by
// the product of the weight and activation scales, accumulated in f32.
#include <cstring>
#include <vector>

#include "kernels/blocks.h"
#include "kernels/gemm.h"
#include "kernels/quant.h"
#include "kernels/repack.h"

namespace wai::kernels {
namespace {

float dot_q4_0_q8_0(int64_t n, const BlockQ4_0* x, const BlockQ8_0* y) {
  float sum = 0;
  for (int64_t i = 0; i < n / kQK0; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQK0 / 2; ++j) {
      sumi += ((x[i].qs[j] & 0xF) - 8) * y[i].qs[j];
      sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
    }
    sum += f16_to_f32(x[i].d) * f16_to_f32(y[i].d) * static_cast<float>(sumi);
  }
  return sum;
}

float dot_q8_0_q8_0(int64_t n, const BlockQ8_0* x, const BlockQ8_0* y) {
  float sum = 0;
  for (int64_t i = 0; i < n / kQK0; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQK0; ++j) sumi += x[i].qs[j] * y[i].qs[j];
    sum += f16_to_f32(x[i].d) * f16_to_f32(y[i].d) * static_cast<float>(sumi);
  }
  return sum;
}

// Unpacks the 8 six-bit scales and mins of a q4_K block.
void unpack_q4_K_scales(const uint8_t* packed, uint8_t* scales, uint8_t* mins) {
  for (int j = 0; j < 8; ++j) get_scale_min_k4(j, packed, &scales[j], &mins[j]);
}

// Per block: sumi = sum_j scale_j * <q4_j, q8_j> (32-element sub-blocks), summ = sum_j min_j * (bsums
// of sub-block j); result += d_w*d_x * sumi - dmin_w*d_x * summ.
float dot_q4_K_q8_K(int64_t n, const BlockQ4K* x, const BlockQ8K* y) {
  float sum = 0, summin = 0;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    uint8_t sc[8], mn[8];
    unpack_q4_K_scales(x[i].scales, sc, mn);
    int summ = 0;
    for (int j = 0; j < kQKK / 16; ++j) summ += y[i].bsums[j] * mn[j / 2];
    int sumi = 0;
    const uint8_t* q4 = x[i].qs;
    const int8_t* q8 = y[i].qs;
    for (int j = 0; j < kQKK / 64; ++j, q4 += 32, q8 += 64) {
      int lo = 0, hi = 0;
      for (int l = 0; l < 32; ++l) {
        lo += (q4[l] & 0xF) * q8[l];
        hi += (q4[l] >> 4) * q8[l + 32];
      }
      sumi += sc[2 * j] * lo + sc[2 * j + 1] * hi;
    }
    sum += f16_to_f32(x[i].d) * y[i].d * static_cast<float>(sumi);
    summin += f16_to_f32(x[i].dmin) * y[i].d * static_cast<float>(summ);
  }
  return sum - summin;
}

// Per block: sumi = sum over 16 sub-blocks of scale_j * <q6_j - 32, q8_j>; result += d_w*d_x * sumi.
float dot_q6_K_q8_K(int64_t n, const BlockQ6K* x, const BlockQ8K* y) {
  float sum = 0;
  int8_t a[kQKK];
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    for (int h = 0; h < kQKK; h += 128, ql += 64, qh += 32)
      for (int l = 0; l < 32; ++l) {
        a[h + l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
        a[h + l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
        a[h + l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        a[h + l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    int sumi = 0;
    for (int j = 0; j < kQKK / 16; ++j) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += a[16 * j + l] * y[i].qs[16 * j + l];
      sumi += x[i].scales[j] * s;
    }
    sum += f16_to_f32(x[i].d) * y[i].d * static_cast<float>(sumi);
  }
  return sum;
}

template <float (*Cvt)(uint16_t)>
float dot_half(int64_t n, const uint16_t* x, const uint16_t* y) {
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += Cvt(x[i]) * Cvt(y[i]);
  return sum;
}

float dot_f32(int64_t n, const float* x, const float* y) {
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

}  // namespace

float vec_dot_portable(DType wtype, int64_t n, const void* w, const void* x) {
  switch (wtype) {
    case DType::Q4_0:
      return dot_q4_0_q8_0(n, static_cast<const BlockQ4_0*>(w), static_cast<const BlockQ8_0*>(x));
    case DType::Q8_0:
      return dot_q8_0_q8_0(n, static_cast<const BlockQ8_0*>(w), static_cast<const BlockQ8_0*>(x));
    case DType::Q4_K:
      return dot_q4_K_q8_K(n, static_cast<const BlockQ4K*>(w), static_cast<const BlockQ8K*>(x));
    case DType::Q6_K:
      return dot_q6_K_q8_K(n, static_cast<const BlockQ6K*>(w), static_cast<const BlockQ8K*>(x));
    case DType::F16:
      return dot_half<f16_to_f32>(n, static_cast<const uint16_t*>(w), static_cast<const uint16_t*>(x));
    case DType::BF16:
      return dot_half<bf16_to_f32>(n, static_cast<const uint16_t*>(w), static_cast<const uint16_t*>(x));
    default:
      return dot_f32(n, static_cast<const float*>(w), static_cast<const float*>(x));
  }
}

namespace {

size_t portable_act_bytes(DType wtype, int64_t n, int64_t cols) {
  return *row_bytes(vec_dot_type(wtype), cols) * static_cast<size_t>(n);
}

void portable_prepare(DType wtype, const float* x, int64_t, int64_t cols, int64_t t0, int64_t t1, uint8_t* buf) {
  const DType vdt = vec_dot_type(wtype);
  const size_t stride = *row_bytes(vdt, cols);
  for (int64_t t = t0; t < t1; ++t) quantize_activation_row(vdt, x + t * cols, buf + t * stride, cols);
}

void portable_run(const GemmArgs& a, int64_t r0, int64_t r1) {
  const size_t wstride = *row_bytes(a.w.type, a.w.cols);
  const size_t xstride = *row_bytes(vec_dot_type(a.w.type), a.w.cols);
  // q4x16 / q8x16 rows are put back into GGUF's layout one at a time (same blocks, same sums).
  thread_local std::vector<uint8_t> row;
  if (a.w.layout != MatLayout::kRows && row.size() < wstride) row.resize(wstride);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* wr = a.w.data + static_cast<size_t>(r) * wstride;
    if (a.w.layout != MatLayout::kRows) {
      x16_row(a.w, r, row.data());
      wr = row.data();
    }
    for (int64_t t = 0; t < a.n; ++t)
      a.y[t * a.ldy + r] = vec_dot_portable(a.w.type, a.w.cols, wr, a.xq + static_cast<size_t>(t) * xstride);
  }
}

}  // namespace

const GemmKernel kGemmPortable = {"portable", 4, 1, portable_act_bytes, portable_prepare, portable_run};

}  // namespace wai::kernels
