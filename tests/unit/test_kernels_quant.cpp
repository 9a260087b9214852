// Conversions and row (de)quantization: exhaustive f16/bf16 checks against the CPU's own F16C
// conversion instructions, hand-worked ggml block layouts, and error bounds derived from each type.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/blocks.h"
#include "kernels/cpu.h"
#include "kernels/quant.h"
#include "util/error.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace wai::kernels {
namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = g(rng);
  return v;
}

std::vector<float> roundtrip(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(*row_bytes(t, static_cast<int64_t>(x.size())));
  quantize_row(t, x.data(), q.data(), static_cast<int64_t>(x.size()));
  std::vector<float> y(x.size());
  dequantize_row(t, q.data(), y.data(), static_cast<int64_t>(x.size()));
  return y;
}

TEST(F16, AllHalvesRoundTripExactly) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f)))) << h;
      continue;
    }
    EXPECT_EQ(f32_to_f16(f), h) << "half 0x" << std::hex << h;
  }
}

#if defined(__x86_64__)
__attribute__((target("f16c"))) float hw_h2f(uint16_t h) { return _cvtsh_ss(h); }
__attribute__((target("f16c"))) uint16_t hw_f2h(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

// The CPU's F16C instructions are the oracle: every half, and f32 values around every rounding edge.
TEST(F16, MatchesF16CInstructions) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "no F16C on this CPU";
  for (uint32_t h = 0; h < 65536; ++h) {
    const float a = f16_to_f32(static_cast<uint16_t>(h)), b = hw_h2f(static_cast<uint16_t>(h));
    EXPECT_EQ(bits(a), bits(b)) << "half 0x" << std::hex << h;
  }
  // Each half's value and its neighbours: midpoints between halves (ties), +-1 ulp of f32 around them.
  int mismatches = 0;
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const uint32_t base = bits(f16_to_f32(static_cast<uint16_t>(h)));
    const uint32_t next = bits(f16_to_f32(static_cast<uint16_t>(h + 1)));
    const uint32_t mid = base + (next - base) / 2;
    for (uint32_t u : {base, base + 1, mid - 1, mid, mid + 1, next - 1}) {
      for (uint32_t s : {0u, 0x80000000u}) {
        const float f = from_bits(u | s);
        if (f32_to_f16(f) != hw_f2h(f) && ++mismatches < 10) ADD_FAILURE() << "f32 0x" << std::hex << (u | s);
      }
    }
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 2000000; ++i) {
    const float f = from_bits(rng());
    if (std::isnan(f)) continue;
    if (f32_to_f16(f) != hw_f2h(f) && ++mismatches < 10) ADD_FAILURE() << "f32 0x" << std::hex << bits(f);
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(f32_to_f16(1e9f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-1e9f), 0xfc00);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));
}
#endif

TEST(BF16, AllValuesRoundTripAndRoundToNearestEven) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    EXPECT_EQ(bits(f), h << 16);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f))));
    } else {
      EXPECT_EQ(f32_to_bf16(f), h);
    }
  }
  // Ties go to even: 1 + 2^-8 lies halfway between bf16 1.0 (0x3f80) and 1 + 2^-7 (0x3f81).
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-7f + 0x1p-8f), 0x3f82);
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
  EXPECT_EQ(f32_to_bf16(-1.0f), 0xbf80);
}

// Hand-worked q4_0 block: max (by magnitude) is -8, so d = 1 and q = x + 8.
TEST(Q4_0, LayoutMatchesGgml) {
  float x[32];
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>((i % 16) - 8);
  BlockQ4_0 b;
  quantize_row(DType::Q4_0, x, &b, 32);
  EXPECT_EQ(b.d, f32_to_f16(1.0f));
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], j | (j << 4)) << j;  // elements j and j+16 share byte j
  float y[32];
  dequantize_row(DType::Q4_0, &b, y, 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], x[i]);
}

TEST(Q8_0, LayoutMatchesGgml) {
  float x[32];
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i * 4 - 64);  // amax 64 -> d = 64/127
  BlockQ8_0 b;
  quantize_row(DType::Q8_0, x, &b, 32);
  EXPECT_EQ(b.d, f32_to_f16(64.0f / 127.0f));
  for (int i = 0; i < 32; ++i) EXPECT_EQ(b.qs[i], static_cast<int>(std::roundf(x[i] * 127.0f / 64.0f))) << i;
}

// A q4_K block built by hand: sub-block j has scale j+1 and min 2j (6-bit, packed as ggml packs
// them); d = 0.5, dmin = 0.25; quant of element e of sub-block j is (e + j) % 16.
TEST(Q4_K, DequantizeMatchesHandBuiltBlock) {
  BlockQ4K b{};
  b.d = f32_to_f16(0.5f);
  b.dmin = f32_to_f16(0.25f);
  const uint8_t sc[8] = {1, 2, 3, 40, 5, 6, 63, 33}, mn[8] = {0, 2, 4, 6, 50, 10, 12, 63};
  for (int j = 0; j < 4; ++j) {
    b.scales[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    b.scales[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    b.scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
  for (int j = 0; j < 8; ++j)
    for (int e = 0; e < 32; ++e) {
      const int q = (e + j) % 16;
      uint8_t& byte = b.qs[(j / 2) * 32 + e];
      byte = static_cast<uint8_t>(j % 2 == 0 ? (byte & 0xF0) | q : (byte & 0x0F) | (q << 4));
    }
  float y[256];
  dequantize_row(DType::Q4_K, &b, y, 256);
  for (int j = 0; j < 8; ++j)
    for (int e = 0; e < 32; ++e)
      EXPECT_EQ(y[j * 32 + e], 0.5f * sc[j] * ((e + j) % 16) - 0.25f * mn[j]) << j << "," << e;
}

// A q6_K block built by hand: element i has 6-bit quant i % 64, sub-block s (16 elements) scale s-8.
TEST(Q6_K, DequantizeMatchesHandBuiltBlock) {
  BlockQ6K b{};
  b.d = f32_to_f16(0.125f);
  for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<int8_t>(s - 8);
  // ggml's packing: within each half of 128, element l + 32k (k = 0..3) lives in ql[l + 32*(k&1)]'s
  // low (k < 2) or high (k >= 2) nibble, and in bits 2k..2k+1 of qh[l].
  for (int i = 0; i < 256; ++i) {
    const int q = (i * 7) % 64, half = i / 128, l = i % 32, k = (i % 128) / 32;
    uint8_t& lo = b.ql[half * 64 + l + 32 * (k & 1)];
    lo = static_cast<uint8_t>(k < 2 ? (lo & 0xF0) | (q & 15) : (lo & 0x0F) | ((q & 15) << 4));
    b.qh[half * 32 + l] = static_cast<uint8_t>(b.qh[half * 32 + l] | ((q >> 4) << (2 * k)));
  }
  float y[256];
  dequantize_row(DType::Q6_K, &b, y, 256);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], 0.125f * (i / 16 - 8) * ((i * 7) % 64 - 32)) << i;
}

// Per block of 32: |x - x'| <= d/2 for the rounding plus 127 * |d - f16(d)| <= amax/2048.
TEST(Q8_0, RoundTripErrorBound) {
  const auto x = gaussian(32 * 64, 1, 3.0f);
  const auto y = roundtrip(DType::Q8_0, x);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    for (int j = 0; j < 32; ++j)
      EXPECT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), amax / 254 + amax / 2048 + 1e-6f * amax);
  }
}

// d = amax/8: rounding error d/2 except at the clamped end (q 16 -> 15) where it is up to d; plus
// 8 * |d - f16(d)|.
TEST(Q4_0, RoundTripErrorBound) {
  const auto x = gaussian(32 * 64, 2);
  const auto y = roundtrip(DType::Q4_0, x);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 8, slack = 8 * d / 2048 + 1e-6f * amax;
    for (int j = 0; j < 32; ++j) {
      const float xv = x[b * 32 + j], err = std::fabs(xv - y[b * 32 + j]);
      EXPECT_LE(err, (std::fabs(xv) <= 7 * d ? d / 2 : d) + slack) << b << "," << j;
    }
  }
}

// q8_K: d = amax/127 (f32), so |x - x'| <= d/2 (+ f32 rounding); bsums are the sums of each 16 quants.
TEST(Q8_K, RoundTripErrorBoundAndBsums) {
  const auto x = gaussian(256 * 8, 3, 2.0f);
  std::vector<BlockQ8K> q(8);
  quantize_row(DType::Q8_K, x.data(), q.data(), 256 * 8);
  std::vector<float> y(x.size());
  dequantize_row(DType::Q8_K, q.data(), y.data(), 256 * 8);
  for (int b = 0; b < 8; ++b) {
    float amax = 0;
    for (int j = 0; j < 256; ++j) amax = std::max(amax, std::fabs(x[b * 256 + j]));
    for (int j = 0; j < 256; ++j) EXPECT_LE(std::fabs(x[b * 256 + j] - y[b * 256 + j]), amax / 254 * 1.0001f);
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += q[b].qs[g * 16 + l];
      EXPECT_EQ(q[b].bsums[g], s);
    }
  }
  std::vector<float> zeros(256, 0.0f);
  BlockQ8K z;
  quantize_row(DType::Q8_K, zeros.data(), &z, 256);
  EXPECT_EQ(z.d, 0.0f);
}

// ggml's test-quantize-fns criterion (synthetic data 0.1 + 2 cos(i + offset), "total error"
// sqrt(sum diff^2) / n < 0.002 for 4..8-bit types) plus relative RMS bounds for Gaussian data:
// 4 bits with per-32 scales leave ~1/(15 sqrt 12) of the block range, 6 bits ~1/(63 sqrt 12).
TEST(KQuants, RoundTripQuality) {
  const int n = 32 * 128;
  std::vector<float> cosdata(n);
  for (int i = 0; i < n; ++i) cosdata[i] = 0.1f + 2 * std::cos(i + 0.0f);
  const auto g = gaussian(n, 4);
  struct Case {
    DType t;
    double max_rel_rms;
  };
  for (const Case c : {Case{DType::Q4_0, 0.13}, Case{DType::Q4_K, 0.11}, Case{DType::Q6_K, 0.03},
                       Case{DType::Q8_0, 0.006}, Case{DType::F16, 0.0005}, Case{DType::BF16, 0.003}}) {
    const auto yc = roundtrip(c.t, cosdata);
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += (yc[i] - cosdata[i]) * (yc[i] - cosdata[i]);
    EXPECT_LT(std::sqrt(sum) / n, 0.002) << dtype_name(c.t);
    const auto yg = roundtrip(c.t, g);
    double se = 0, s2 = 0;
    for (int i = 0; i < n; ++i) {
      se += (yg[i] - g[i]) * (yg[i] - g[i]);
      s2 += g[i] * g[i];
    }
    EXPECT_LT(std::sqrt(se / s2), c.max_rel_rms) << dtype_name(c.t);
  }
}

// Per element, a K-quant's error is bounded by its sub-block's range: q4_K sub-blocks of 32 have 15
// steps (one step of slack for the 6-bit scale/min quantization and the search's clipping), q6_K
// sub-blocks of 16 have 63 steps (two steps of slack, the 8-bit scale is relative to the block max).
TEST(KQuants, RoundTripMaxErrorPerSubBlock) {
  for (uint32_t seed = 0; seed < 4; ++seed) {
    auto x = gaussian(256 * 16, 10 + seed);
    for (size_t i = 0; i < x.size(); i += 97) x[i] *= 6;  // outliers
    const auto y4 = roundtrip(DType::Q4_K, x), y6 = roundtrip(DType::Q6_K, x);
    for (size_t s = 0; s < x.size() / 32; ++s) {
      float lo = 0, hi = 0;
      for (int j = 0; j < 32; ++j) lo = std::min(lo, x[s * 32 + j]), hi = std::max(hi, x[s * 32 + j]);
      for (int j = 0; j < 32; ++j) EXPECT_LE(std::fabs(x[s * 32 + j] - y4[s * 32 + j]), (hi - lo) / 15) << s;
    }
    for (size_t s = 0; s < x.size() / 16; ++s) {
      float amax = 0, bmax = 0;
      for (int j = 0; j < 16; ++j) amax = std::max(amax, std::fabs(x[s * 16 + j]));
      for (int j = 0; j < 256; ++j) bmax = std::max(bmax, std::fabs(x[(s / 16) * 256 + j]));
      for (int j = 0; j < 16; ++j)
        EXPECT_LE(std::fabs(x[s * 16 + j] - y6[s * 16 + j]), 2 * amax / 63 + bmax / 128) << s;
    }
  }
}

TEST(Quant, ZeroRowsStayZero) {
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::Q8_K}) {
    const auto y = roundtrip(t, std::vector<float>(512, 0.0f));
    for (float v : y) EXPECT_EQ(v, 0.0f) << dtype_name(t);
  }
}

TEST(Quant, RejectsBadLengthsAndTypes) {
  float x[64] = {};
  uint8_t buf[512];
  EXPECT_THROW(quantize_row(DType::Q4_0, x, buf, 33), Error);
  EXPECT_THROW(dequantize_row(DType::Q4_K, buf, x, 64), Error);
  EXPECT_THROW(quantize_row(DType::Q5_K, x, buf, 256), Error);
  try {
    dequantize_row(DType::Q2_K, buf, x, 256);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("q2_K"), std::string::npos);
  }
}

TEST(Cpu, ForcePortableClearsEveryFeature) {
  const CpuFeatures real = cpu_features();
  force_portable(true);
  const CpuFeatures& p = cpu_features();
  EXPECT_FALSE(p.avx2 || p.avx512f || p.avx512vnni || p.amx_int8 || p.f16c);
  EXPECT_EQ(cpu_description(), "portable");
  force_portable(false);
  EXPECT_EQ(cpu_features().avx512f, real.avx512f);
#if defined(__x86_64__)
  __builtin_cpu_init();
  EXPECT_EQ(real.avx2, __builtin_cpu_supports("avx2") != 0);
  EXPECT_EQ(real.avx512f, __builtin_cpu_supports("avx512f") != 0);
  EXPECT_EQ(real.avx512vnni, __builtin_cpu_supports("avx512vnni") != 0);
#endif
}

}  // namespace
}  // namespace wai::kernels
