// matmul against (1) the f64 reference on dequantized weights, within a bound derived from the
// activation quantization; (2) an independent scalar transcription of ggml's generic vec_dot
// formulas and activation quantizers (tight: only f32 summation order may differ); (3) the portable
// path, for every fast path this CPU has.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/gemm.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace wai::kernels {
namespace {

struct Weights {
  DType type;
  int64_t rows, cols;
  std::vector<uint8_t> data;
  std::vector<float> deq;  // dequantized, [rows, cols]
  MatRef ref() const { return {type, data.data(), rows, cols}; }
};

Weights make_weights(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 0.05f);
  std::vector<float> f(static_cast<size_t>(rows * cols));
  for (auto& v : f) v = g(rng);
  Weights w{t, rows, cols, std::vector<uint8_t>(*row_bytes(t, cols) * rows), std::vector<float>(f.size())};
  const size_t rb = *row_bytes(t, cols);
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row(t, f.data() + r * cols, w.data.data() + r * rb, cols);
    dequantize_row(t, w.data.data() + r * rb, w.deq.data() + r * cols, cols);
  }
  return w;
}

std::vector<float> activations(int64_t n, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * cols));
  for (auto& v : x) v = g(rng);
  for (size_t i = 0; i < x.size(); i += 53) x[i] *= 8;  // outliers, as in real activations
  return x;
}

// |error| of y[t, r] from converting activation row t to the vec_dot type, bounded per element:
// q8_0: d/2 + 127 |d - f16(d)| <= amax_32 (1/254 + 1/2048); q8_K: amax_256/254; f16: |x| 2^-11;
// bf16: |x| 2^-8; plus f32 accumulation, cols * 2^-24 * sum |w x|.
double bound(const Weights& w, const float* x, int64_t r) {
  const float* wr = w.deq.data() + r * w.cols;
  double b = 0, mag = 0;
  const int64_t blk = w.type == DType::Q4_0 || w.type == DType::Q8_0 ? 32 : 256;
  for (int64_t c0 = 0; c0 < w.cols; c0 += blk) {
    float amax = 0;
    for (int64_t c = c0; c < std::min(w.cols, c0 + blk); ++c) amax = std::max(amax, std::fabs(x[c]));
    for (int64_t c = c0; c < std::min(w.cols, c0 + blk); ++c) {
      const double aw = std::fabs(wr[c]), ax = std::fabs(x[c]);
      mag += aw * ax;
      switch (w.type) {
        case DType::Q4_0:
        case DType::Q8_0: b += aw * amax * (1.0 / 254 + 1.0 / 2048); break;
        case DType::Q4_K:
        case DType::Q6_K: b += aw * amax / 254; break;
        case DType::F16: b += aw * ax * 0x1p-11; break;
        case DType::BF16: b += aw * ax * 0x1p-8; break;
        default: break;
      }
    }
  }
  return b * 1.001 + mag * static_cast<double>(w.cols) * 0x1p-24 + 1e-6;
}

const DType kTypes[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K};

TEST(Matmul, MatchesReferenceWithinActivationQuantizationBound) {
  ThreadPool pool(2);
  for (DType t : kTypes) {
    for (int64_t rows : {1, 7, 33}) {
      const int64_t cols = 512;
      const Weights w = make_weights(t, rows, cols, 100 + static_cast<uint32_t>(rows));
      for (int64_t n : {1, 3, 17, 64}) {
        const auto x = activations(n, cols, 7 + static_cast<uint32_t>(n));
        std::vector<float> y(n * rows), ref(n * rows);
        matmul(w.ref(), x.data(), n, y.data(), pool);
        matmul_reference(w.ref(), x.data(), n, ref.data());
        for (int64_t i = 0; i < n; ++i)
          for (int64_t r = 0; r < rows; ++r)
            ASSERT_NEAR(y[i * rows + r], ref[i * rows + r], bound(w, x.data() + i * cols, r))
                << dtype_name(t) << " rows " << rows << " n " << n << " at " << i << "," << r;
      }
    }
  }
}

// ---- an independent scalar transcription of ggml's generic formulas -----------------------------

float h2f(uint16_t h) { return f16_to_f32(h); }  // exhaustively checked against F16C in test_kernels_quant

// ggml's x86 quantize_row_q8_0: d = amax/127 -> f16, q = round-half-even(x * 127/amax).
std::vector<uint8_t> ggml_q8_0(const float* x, int64_t n) {
  std::vector<uint8_t> out(n / 32 * 34);
  for (int64_t b = 0; b < n / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const uint16_t d = f32_to_f16(amax / 127.f);
    std::memcpy(&out[b * 34], &d, 2);
    const float id = amax != 0 ? 127.f / amax : 0.f;
    for (int j = 0; j < 32; ++j) out[b * 34 + 2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::nearbyint(x[b * 32 + j] * id)));
  }
  return out;
}

struct Q8K {
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};

// ggml's quantize_row_q8_K_ref.
std::vector<Q8K> ggml_q8_K(const float* x, int64_t n) {
  std::vector<Q8K> out(n / 256);
  for (int64_t b = 0; b < n / 256; ++b) {
    const float* xb = x + b * 256;
    float max = 0, amax = 0;
    for (int j = 0; j < 256; ++j)
      if (std::fabs(xb[j]) > amax) amax = std::fabs(xb[j]), max = xb[j];
    const float iscale = -127.f / max;
    for (int j = 0; j < 256; ++j) out[b].qs[j] = static_cast<int8_t>(std::min(127, static_cast<int>(std::nearbyint(iscale * xb[j]))));
    for (int j = 0; j < 16; ++j) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += out[b].qs[16 * j + i];
      out[b].bsums[j] = static_cast<int16_t>(s);
    }
    out[b].d = 1 / iscale;
  }
  return out;
}

// Returns ggml's dot and the sum of the magnitudes of every scaled product (|d| * sum |w_q x_q|):
// kernels may split a block's integer sum into partial sums (SIMD lanes) and scale each, so this is
// the scale of the f32 rounding differences between correct implementations.
std::pair<double, double> ggml_dot(DType t, const uint8_t* w, const float* x, int64_t n) {
  double sum = 0, mag = 0;
  // scale * sumi, where sumi_abs is the sum of the absolute values of sumi's integer products.
  auto add = [&](double scale, double sumi, double sumi_abs) {
    sum += scale * sumi;
    mag += std::fabs(scale) * sumi_abs;
  };
  if (t == DType::Q4_0 || t == DType::Q8_0) {
    const auto q = ggml_q8_0(x, n);
    const size_t bs = t == DType::Q4_0 ? 18 : 34;
    for (int64_t b = 0; b < n / 32; ++b) {
      const uint8_t* wb = w + b * bs;
      const int8_t* xq = reinterpret_cast<const int8_t*>(&q[b * 34 + 2]);
      uint16_t dw, dx;
      std::memcpy(&dw, wb, 2);
      std::memcpy(&dx, &q[b * 34], 2);
      int sumi = 0, sabs = 0;
      for (int j = 0; j < 32; ++j) {
        const int wq = t == DType::Q4_0 ? (j < 16 ? (wb[2 + j] & 15) : (wb[2 + j - 16] >> 4)) - 8
                                        : static_cast<int8_t>(wb[2 + j]);
        sumi += wq * xq[j];
        sabs += std::abs(wq * xq[j]);
      }
      add(h2f(dw) * h2f(dx), sumi, sabs);
    }
  } else if (t == DType::Q4_K) {
    // ggml's generic ggml_vec_dot_q4_K_q8_K, with its kmask unpacking of the 12 scale bytes.
    const auto q = ggml_q8_K(x, n);
    const uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
    for (int64_t b = 0; b < n / 256; ++b) {
      const uint8_t* wb = w + b * 144;
      uint16_t d16, dmin16;
      std::memcpy(&d16, wb, 2);
      std::memcpy(&dmin16, wb + 2, 2);
      uint32_t utmp[4];
      std::memcpy(utmp, wb + 4, 12);
      utmp[3] = ((utmp[2] >> 4) & kmask2) | (((utmp[1] >> 6) & kmask3) << 4);
      const uint32_t uaux = utmp[1] & kmask1;
      utmp[1] = (utmp[2] & kmask2) | (((utmp[0] >> 6) & kmask3) << 4);
      utmp[2] = uaux;
      utmp[0] &= kmask1;
      const uint8_t* scales = reinterpret_cast<const uint8_t*>(&utmp[0]);
      const uint8_t* mins = reinterpret_cast<const uint8_t*>(&utmp[2]);
      int8_t a[256];
      for (int j = 0; j < 4; ++j)
        for (int l = 0; l < 32; ++l) a[64 * j + l] = wb[16 + 32 * j + l] & 15, a[64 * j + 32 + l] = wb[16 + 32 * j + l] >> 4;
      int sumi_min = 0, smin_abs = 0;
      for (int j = 0; j < 16; ++j) sumi_min += q[b].bsums[j] * mins[j / 2], smin_abs += std::abs(q[b].bsums[j] * mins[j / 2]);
      int sumi = 0, sabs = 0;
      for (int j = 0; j < 8; ++j)
        for (int l = 0; l < 32; ++l) {
          sumi += scales[j] * a[32 * j + l] * q[b].qs[32 * j + l];
          sabs += std::abs(scales[j] * a[32 * j + l] * q[b].qs[32 * j + l]);
        }
      add(h2f(d16) * q[b].d, sumi, sabs);
      add(-(h2f(dmin16) * q[b].d), sumi_min, smin_abs);
    }
  } else if (t == DType::Q6_K) {
    const auto q = ggml_q8_K(x, n);
    for (int64_t b = 0; b < n / 256; ++b) {
      const uint8_t* ql = w + b * 210;
      const uint8_t* qh = ql + 128;
      const int8_t* sc = reinterpret_cast<const int8_t*>(ql + 192);
      uint16_t d16;
      std::memcpy(&d16, ql + 208, 2);
      int8_t a[256];
      for (int h = 0; h < 2; ++h)
        for (int l = 0; l < 32; ++l) {
          const uint8_t* L = ql + 64 * h;
          const uint8_t H = qh[32 * h + l];
          a[128 * h + l] = static_cast<int8_t>(((L[l] & 15) | ((H & 3) << 4)) - 32);
          a[128 * h + l + 32] = static_cast<int8_t>(((L[l + 32] & 15) | (((H >> 2) & 3) << 4)) - 32);
          a[128 * h + l + 64] = static_cast<int8_t>(((L[l] >> 4) | (((H >> 4) & 3) << 4)) - 32);
          a[128 * h + l + 96] = static_cast<int8_t>(((L[l + 32] >> 4) | (((H >> 6) & 3) << 4)) - 32);
        }
      int sumi = 0, sabs = 0;
      for (int j = 0; j < 16; ++j)
        for (int l = 0; l < 16; ++l) {
          sumi += sc[j] * a[16 * j + l] * q[b].qs[16 * j + l];
          // (+32: a kernel may sum the unsigned quants and remove the offset per block)
          sabs += std::abs(sc[j]) * (std::abs(a[16 * j + l] * q[b].qs[16 * j + l]) + 32 * std::abs(q[b].qs[16 * j + l]));
        }
      add(h2f(d16) * q[b].d, sumi, sabs);
    }
  } else if (t == DType::F16 || t == DType::BF16) {
    for (int64_t c = 0; c < n; ++c) {
      uint16_t wv;
      std::memcpy(&wv, w + 2 * c, 2);
      const float xv = t == DType::F16 ? h2f(f32_to_f16(x[c])) : bf16_to_f32(f32_to_bf16(x[c]));
      const float wf = t == DType::F16 ? h2f(wv) : bf16_to_f32(wv);
      add(1.0, wf * xv, std::fabs(wf * xv));
    }
  } else {
    for (int64_t c = 0; c < n; ++c) {
      float wv;
      std::memcpy(&wv, w + 4 * c, 4);
      add(1.0, wv * x[c], std::fabs(wv * x[c]));
    }
  }
  return {sum, mag};
}

void expect_matches_ggml(bool portable) {
  force_portable(portable);
  ThreadPool pool(2);
  for (DType t : kTypes) {
    const int64_t rows = 19, cols = 1024;
    const Weights w = make_weights(t, rows, cols, 300);
    for (int64_t n : {1, 5, 15}) {  // (16 and more: the bf16 tiles on AMX machines, tested below)
      const auto x = activations(n, cols, 400 + static_cast<uint32_t>(n));
      std::vector<float> y(n * rows);
      matmul(w.ref(), x.data(), n, y.data(), pool);
      const size_t rb = *row_bytes(t, cols);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t r = 0; r < rows; ++r) {
          const auto [want, mag] = ggml_dot(t, w.data.data() + r * rb, x.data() + i * cols, cols);
          ASSERT_NEAR(y[i * rows + r], want, mag * 2e-6 + 1e-7)
              << dtype_name(t) << (portable ? " portable" : " fast") << " n " << n << " at " << i << "," << r;
        }
    }
  }
  force_portable(false);
}

TEST(Matmul, PortableMatchesGgmlFormulas) { expect_matches_ggml(true); }
TEST(Matmul, DispatchedMatchesGgmlFormulas) { expect_matches_ggml(false); }

// Activations whose quantization hits exact ties (x * scale = k + 0.5): llama.cpp's x86 q8_0 and
// ggml's q8_K both round half to even, and every path must do the same.
TEST(Matmul, ActivationRoundingTiesMatchGgml) {
  ThreadPool pool(2);
  const int64_t cols = 512, rows = 9;
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    const Weights w = make_weights(t, rows, cols, 77);
    for (int64_t n : {1, 3, 15}) {
      std::vector<float> x(n * cols);
      for (int64_t i = 0; i < n * cols; ++i) {
        const int64_t j = i % cols;
        // -127 opens each 32-block (and so each 256-block): scale 127/127 = 1 and -127/-127 = 1.
        x[i] = j % 32 == 0 ? -127.0f : ((j + i / cols) % 2 ? -1.0f : 1.0f) * (static_cast<float>((j * 7) % 120) + 0.5f);
      }
      for (bool portable : {true, false}) {
        force_portable(portable);
        std::vector<float> y(n * rows);
        matmul(w.ref(), x.data(), n, y.data(), pool);
        for (int64_t i = 0; i < n; ++i)
          for (int64_t r = 0; r < rows; ++r) {
            const auto [want, mag] = ggml_dot(t, w.data.data() + r * *row_bytes(t, cols), x.data() + i * cols, cols);
            ASSERT_NEAR(y[i * rows + r], want, mag * 2e-6) << dtype_name(t) << (portable ? " portable" : " fast") << " n " << n;
          }
      }
      force_portable(false);
    }
  }
}

// A row length that leaves partial vectors: an odd number of 32-blocks, or a ragged float row.
int64_t small_cols(DType t) {
  if (t == DType::Q4_K || t == DType::Q6_K) return 256;
  if (t == DType::Q4_0 || t == DType::Q8_0) return 96;
  return 77;
}

// Every fast path against the portable path on identical inputs, at decode and prefill sizes, with
// row counts that leave partial tiles.
TEST(Matmul, FastPathsMatchPortable) {
  ThreadPool pool(2);
  for (DType t : kTypes) {
    for (int64_t rows : {5, 64, 75})
    for (int64_t cols : {small_cols(t), int64_t{768}}) {
      const Weights w = make_weights(t, rows, cols, 500 + static_cast<uint32_t>(rows));
      for (int64_t n : {1, 2, 4, 15, 16, 33, 64}) {
        const auto x = activations(n, cols, 600 + static_cast<uint32_t>(n));
        std::vector<float> fast(n * rows), port(n * rows);
        force_portable(false);
        matmul(w.ref(), x.data(), n, fast.data(), pool);
        force_portable(true);
        matmul(w.ref(), x.data(), n, port.data(), pool);
        force_portable(false);
        const bool bf16_tiles = &choose_gemm(t, n, cols) == &kGemmAmxBf16;
        for (int64_t i = 0; i < n * rows; ++i) {
          // Both sum identical integer block dot products; only the f32 order of the block sums differs.
          // (The bf16 tiles round differently: within their own bound of the exact product, below.)
          const auto [want, mag] = ggml_dot(t, w.data.data() + (i % rows) * *row_bytes(t, cols), x.data() + (i / rows) * cols, cols);
          (void)want;
          if (bf16_tiles) continue;
          ASSERT_NEAR(fast[i], port[i], mag * 4e-6 + 1e-7) << dtype_name(t) << " rows " << rows << " n " << n << " i " << i;
        }
      }
    }
  }
}

// The AMX-BF16 batch kernel against the exact product of the stored weights (f64): every product
// w * x is off by at most (2^-9 + 2^-9 + 2^-18) |w x| from rounding both to bf16, and the f32 sums
// add at most cols * 2^-24 of sum |w x|. Shapes with partial token tiles, partial 32-row panels,
// rows split across threads, several K chunks (cols > 1024), for every type it serves.
TEST(Matmul, AmxBf16WithinBf16RoundingOfExactProduct) {
  if (&choose_gemm(DType::Q4_0, 16, 256) != &kGemmAmxBf16) GTEST_SKIP() << "no AMX-BF16 on this CPU";
  ThreadPool pool(2);
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::BF16}) {
    for (int64_t rows : {5, 64, 75, 200})
    for (int64_t cols : {int64_t{256}, int64_t{2304}}) {
      const Weights w = make_weights(t, rows, cols, 700 + static_cast<uint32_t>(rows));
      std::vector<float> wf(static_cast<size_t>(rows * cols));
      for (int64_t r = 0; r < rows; ++r) dequantize_row(t, w.data.data() + r * *row_bytes(t, cols), &wf[r * cols], cols);
      for (int64_t n : {16, 17, 33, 64}) {
        ASSERT_EQ(&choose_gemm(t, n, cols), &kGemmAmxBf16);
        const auto x = activations(n, cols, 800 + static_cast<uint32_t>(n));
        std::vector<float> y(n * rows);
        matmul(w.ref(), x.data(), n, y.data(), pool);
        for (int64_t i = 0; i < n; ++i)
          for (int64_t r = 0; r < rows; ++r) {
            double exact = 0, mag = 0;
            for (int64_t c = 0; c < cols; ++c) {
              exact += static_cast<double>(wf[r * cols + c]) * x[i * cols + c];
              mag += std::fabs(static_cast<double>(wf[r * cols + c]) * x[i * cols + c]);
            }
            ASSERT_NEAR(y[i * rows + r], exact, mag * (0x1p-8 + static_cast<double>(cols) * 0x1p-24) + 1e-6)
                << dtype_name(t) << " rows " << rows << " cols " << cols << " n " << n << " at " << i << "," << r;
          }
      }
    }
  }
}

// The batch kernels (16 weight rows per register) against ggml's formulas where their structure has
// edges: 1..8 activation rows in one pass, 9..15 in two near-equal passes, a last group of fewer
// than 16 rows, row ranges split across threads at 16-row groups, an odd number of blocks.
TEST(Matmul, VnniBatchKernelsMatchGgmlFormulas) {
  if (&choose_gemm(DType::Q4_0, 8, 4096) != &kGemmVnniBatch) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  ThreadPool pool(2);
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    const bool k = t == DType::Q4_K || t == DType::Q6_K;
    for (int64_t rows : {16, 37, 130})
    for (int64_t cols : {k ? int64_t{768} : int64_t{96}, int64_t{4096}}) {
      const Weights w = make_weights(t, rows, cols, 900 + static_cast<uint32_t>(rows));
      for (int64_t n : {2, 7, 8, 9, 15}) {
        ASSERT_EQ(&choose_gemm(t, n, cols), k ? &kGemmVnniKBatch : &kGemmVnniBatch);
        const auto x = activations(n, cols, 950 + static_cast<uint32_t>(n));
        std::vector<float> y(n * rows);
        matmul(w.ref(), x.data(), n, y.data(), pool);
        for (int64_t i = 0; i < n; ++i)
          for (int64_t r = 0; r < rows; ++r) {
            const auto [want, mag] = ggml_dot(t, w.data.data() + r * *row_bytes(t, cols), x.data() + i * cols, cols);
            ASSERT_NEAR(y[i * rows + r], want, mag * 2e-6 + 1e-7)
                << dtype_name(t) << " rows " << rows << " cols " << cols << " n " << n << " at " << i << "," << r;
          }
      }
    }
  }
}

// The AVX2 kernel (CPUs without AVX-512) computes every output with the same instructions whatever the
// tile it falls in: a row of a batch is bit-identical to the same row alone, and to it in a batch of
// another size (ragged tiles: 1..3 leftover activation rows, 1 leftover weight row).
TEST(Matmul, Avx2KernelSameBitsAtEveryBatchSize) {
  if (&choose_gemm(DType::Q4_0, 1, 4096) != &kGemmAvx2Q0) GTEST_SKIP() << "the AVX2 kernel is not this CPU's";
  ThreadPool pool(2);
  for (DType t : {DType::Q4_0, DType::Q8_0}) {
    ASSERT_EQ(&choose_gemm(t, 7, 4096), &kGemmAvx2Q0);
    const int64_t rows = 75, cols = 4096;
    const Weights w = make_weights(t, rows, cols, 1200);
    const auto x = activations(70, cols, 1300);  // 70 rows: a 64-row chunk and a ragged one
    std::vector<float> all(70 * rows);
    matmul(w.ref(), x.data(), 70, all.data(), pool);
    for (int64_t n : {1, 2, 3, 5, 9}) {
      for (int64_t t0 : {int64_t{0}, int64_t{61}}) {
        std::vector<float> part(n * rows);
        matmul(w.ref(), x.data() + t0 * cols, n, part.data(), pool);
        for (int64_t i = 0; i < n * rows; ++i)
          ASSERT_EQ(part[i], all[t0 * rows + i]) << dtype_name(t) << " n " << n << " from " << t0 << " at " << i;
      }
    }
  }
}

// Every kernel level this CPU has (--cpu / WAI_CPU: on an AVX-512 machine the AVX2 kernels run too)
// against the portable path, and the level API's contract.
TEST(Matmul, EveryCpuLevelMatchesPortable) {
  ThreadPool pool(2);
  const CpuLevel best = detected_cpu_level();
  for (CpuLevel level : {CpuLevel::kPortable, CpuLevel::kAvx2, CpuLevel::kAvx512, CpuLevel::kAmx}) {
    if (level > best) {
      EXPECT_FALSE(cpu_level_missing(level).empty());
      EXPECT_THROW(set_cpu_level(level), Error);
      continue;
    }
    set_cpu_level(level);
    ASSERT_EQ(cpu_level(), level);
    if (level < CpuLevel::kAvx512) {
      EXPECT_FALSE(cpu_features().avx512f);
    }
    if (level == CpuLevel::kPortable) {
      EXPECT_FALSE(cpu_features().avx2);
    }
    for (DType t : kTypes)
      for (int64_t n : {1, 3, 17}) {
        const int64_t rows = 37, cols = 512;
        const Weights w = make_weights(t, rows, cols, 1400 + static_cast<uint32_t>(n));
        const auto x = activations(n, cols, 1500 + static_cast<uint32_t>(n));
        std::vector<float> fast(n * rows), port(n * rows);
        matmul(w.ref(), x.data(), n, fast.data(), pool);
        force_portable(true);
        matmul(w.ref(), x.data(), n, port.data(), pool);
        force_portable(false);
        if (&choose_gemm(t, n, cols) == &kGemmAmxBf16) continue;  // (its own bound: AmxBf16Within...)
        for (int64_t i = 0; i < n * rows; ++i) {
          const auto [want, mag] = ggml_dot(t, w.data.data() + (i % rows) * *row_bytes(t, cols), x.data() + (i / rows) * cols, cols);
          (void)want;
          ASSERT_NEAR(fast[i], port[i], mag * 4e-6 + 1e-7) << cpu_level_name(level) << " " << dtype_name(t) << " n " << n;
        }
      }
  }
  set_cpu_level(best);
  EXPECT_EQ(parse_cpu_level("avx2"), CpuLevel::kAvx2);
  EXPECT_FALSE(parse_cpu_level("sse9").has_value());
  for (CpuLevel l : {CpuLevel::kPortable, CpuLevel::kAvx2, CpuLevel::kAvx512, CpuLevel::kAmx})
    EXPECT_EQ(parse_cpu_level(cpu_level_name(l)), l);
  EXPECT_TRUE(cpu_level_missing(CpuLevel::kPortable).empty());
}

TEST(Matmul, SingleThreadEqualsTwoThreads) {
  ThreadPool one(1), two(2);
  // Large enough (~1M multiply-adds) that matmul splits it across the pool; rows are independent,
  // so the split must not change any value. n = 3 takes the VNNI tiles, n = 20 the AMX tiles.
  for (DType t : {DType::Q4_0, DType::Q4_K, DType::F16}) {
    for (int64_t n : {3, 20}) {
      const Weights w = make_weights(t, 301, 1024, 9);
      const auto x = activations(n, 1024, 10);
      std::vector<float> a(n * 301), b(n * 301);
      matmul(w.ref(), x.data(), n, a.data(), one);
      matmul(w.ref(), x.data(), n, b.data(), two);
      EXPECT_EQ(a, b) << dtype_name(t) << " n " << n;
    }
  }
}

TEST(Matmul, RejectsBadShapesAndTypes) {
  ThreadPool pool(1);
  std::vector<uint8_t> buf(4096);
  float x[64] = {}, y[64];
  EXPECT_THROW(matmul({DType::Q4_0, buf.data(), 2, 48}, x, 1, y, pool), Error);
  EXPECT_THROW(matmul({DType::Q5_K, buf.data(), 1, 256}, x, 1, y, pool), Error);
  EXPECT_THROW(matmul_reference({DType::Q4_K, buf.data(), 1, 64}, x, 1, y), Error);
}

}  // namespace
}  // namespace wai::kernels
