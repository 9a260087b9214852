// The q4x16 and q8x16 layouts (kernels/repack.h): the repack against the layout as documented (an
// independent transcription), the way back, and every kernel that reads them against the same kernel
// family on GGUF's layout: the VNNI kernels bit-identical to the transposing batch kernel at 1..15
// rows, the AMX-BF16 packers bit-identical to the row packer, the portable path and the reference
// identical.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/blocks.h"
#include "kernels/cpu.h"
#include "kernels/gemm.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "kernels/repack.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace wai::kernels {
namespace {

struct Q4 {
  DType type;
  int64_t rows, cols;
  std::vector<uint8_t> gguf, x16;
  MatRef native() const { return {type, gguf.data(), rows, cols}; }
  MatRef packed() const {
    return {type, x16.data(), rows, cols, x16_layout(type)};
  }
};

Q4 make_w(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 0.05f);
  std::vector<float> f(static_cast<size_t>(rows * cols));
  for (auto& v : f) v = g(rng);
  const size_t rb = *row_bytes(t, cols);
  Q4 w{t, rows, cols, std::vector<uint8_t>(rb * rows), std::vector<uint8_t>(rb * rows)};
  for (int64_t r = 0; r < rows; ++r) quantize_row(t, f.data() + r * cols, w.gguf.data() + r * rb, cols);
  const int64_t groups = rows / kX16Rows;
  repack_x16(w.native(), w.x16.data(), 0, groups / 2);  // in two ranges, as threads would
  repack_x16(w.native(), w.x16.data(), groups / 2, groups);
  return w;
}

Q4 make_q4(int64_t rows, int64_t cols, uint32_t seed) { return make_w(DType::Q4_0, rows, cols, seed); }

constexpr DType kBoth[] = {DType::Q4_0, DType::Q8_0};

std::vector<float> activations(int64_t n, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * cols));
  for (auto& v : x) v = g(rng);
  for (size_t i = 0; i < x.size(); i += 53) x[i] *= 8;
  return x;
}

// One kernel, called directly (no dispatch), on all rows; rows split in two ranges like two threads.
std::vector<float> run_kernel(const GemmKernel& k, const MatRef& w, const std::vector<float>& x, int64_t n) {
  std::vector<uint8_t> act(k.act_bytes(w.type, n, w.cols) + 64);
  std::vector<float> y(static_cast<size_t>(n * w.rows));
  k.prepare(w.type, x.data(), n, w.cols, 0, n, act.data());
  GemmArgs a;
  a.w = w;
  a.xq = act.data();
  a.n = n;
  a.y = y.data();
  a.ldy = w.rows;
  const int64_t mid = w.rows / 2 / k.row_grain * k.row_grain;
  k.run(a, 0, mid);
  k.run(a, mid, w.rows);
  return y;
}

bool has_vnni() { return &choose_gemm(DType::Q4_0, 1, 256, MatLayout::kQ4x16) == &kGemmVnniQ4x16; }
bool has_avx2_x16() { return &choose_gemm(DType::Q4_0, 1, 256, MatLayout::kQ4x16) == &kGemmAvx2X16; }
bool has_x16_kernels() { return has_vnni() || has_avx2_x16(); }

TEST(Repack, RecordsHoldTheDocumentedBytes) {
  const Q4 w = make_q4(48, 192, 1);
  const size_t rb = *row_bytes(DType::Q4_0, w.cols);
  const int64_t np = w.cols / 64;
  // nibble of element e (0..31) of block b of row r, from GGUF's blocks directly.
  auto nib = [&](int64_t r, int64_t b, int e) {
    const auto* blk = reinterpret_cast<const BlockQ4_0*>(w.gguf.data() + r * rb) + b;
    return e < 16 ? blk->qs[e] & 0xF : blk->qs[e - 16] >> 4;
  };
  for (int64_t g = 0; g < w.rows / 16; ++g)
    for (int64_t p = 0; p < np; ++p) {
      const uint8_t* rec = w.x16.data() + (g * np + p) * 576;
      for (int i = 0; i < 16; ++i) {
        const int64_t r = 16 * g + i;
        for (int h = 0; h < 2; ++h) {
          uint16_t d;
          std::memcpy(&d, rec + 32 * h + 2 * i, 2);
          EXPECT_EQ(d, reinterpret_cast<const BlockQ4_0*>(w.gguf.data() + r * rb)[2 * p + h].d);
        }
        for (int j = 0; j < 8; ++j)
          for (int c = 0; c < 4; ++c)
            ASSERT_EQ(rec[64 + 64 * j + 4 * i + c], nib(r, 2 * p, 4 * j + c) | nib(r, 2 * p + 1, 4 * j + c) << 4)
                << "g " << g << " p " << p << " row " << i << " j " << j << " c " << c;
      }
    }
}

TEST(Repack, Q8RecordsHoldTheDocumentedBytes) {
  const Q4 w = make_w(DType::Q8_0, 48, 96, 9);
  const size_t rb = *row_bytes(DType::Q8_0, w.cols);
  const int64_t nb = w.cols / 32;
  for (int64_t g = 0; g < w.rows / 16; ++g)
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* rec = w.x16.data() + (g * nb + b) * 544;
      for (int i = 0; i < 16; ++i) {
        const auto* blk = reinterpret_cast<const BlockQ8_0*>(w.gguf.data() + (16 * g + i) * rb) + b;
        uint16_t d;
        std::memcpy(&d, rec + 2 * i, 2);
        EXPECT_EQ(d, blk->d);
        for (int j = 0; j < 8; ++j)
          for (int c = 0; c < 4; ++c)
            ASSERT_EQ(static_cast<int8_t>(rec[32 + 64 * j + 4 * i + c]), blk->qs[4 * j + c])
                << "g " << g << " b " << b << " row " << i << " j " << j << " c " << c;
      }
    }
}

// Both implementations write the same bytes (make_w uses the dispatched one).
TEST(Repack, PortableAndDispatchedAgree) {
  for (DType t : kBoth) {
    const Q4 w = make_w(t, 160, 4096, 8);
    std::vector<uint8_t> port(w.x16.size());
    if (t == DType::Q8_0) repack_q8x16_portable(w.native(), port.data(), 0, w.rows / 16);
    else repack_q4x16_portable(w.native(), port.data(), 0, w.rows / 16);
    EXPECT_EQ(port, w.x16) << dtype_name(t);
  }
}

TEST(Repack, RowsComeBackUnchanged) {
  for (DType t : kBoth) {
    const Q4 w = make_w(t, 64, 4096, 2);
    const size_t rb = *row_bytes(t, w.cols);
    std::vector<uint8_t> row(rb);
    for (int64_t r = 0; r < w.rows; ++r) {
      x16_row(w.packed(), r, row.data());
      ASSERT_EQ(0, std::memcmp(row.data(), w.gguf.data() + r * rb, rb)) << dtype_name(t) << " row " << r;
    }
  }
}

TEST(Repack, AvailableOnlyForWholeRecords) {
  std::vector<uint8_t> buf(1);
  EXPECT_FALSE(q4x16_available({DType::Q8_0, buf.data(), 16, 64}));
  EXPECT_FALSE(q8x16_available({DType::Q4_0, buf.data(), 16, 64}));
  EXPECT_FALSE(q8x16_available({DType::Q8_0, buf.data(), 24, 64}));
  EXPECT_FALSE(x16_available({DType::Q4_K, buf.data(), 16, 256}));
  EXPECT_EQ(q8x16_available({DType::Q8_0, buf.data(), 16, 96}), has_x16_kernels());
  EXPECT_FALSE(q4x16_available({DType::Q4_0, buf.data(), 24, 64}));
  EXPECT_FALSE(q4x16_available({DType::Q4_0, buf.data(), 16, 96}));
  EXPECT_FALSE(q4x16_available({DType::Q4_0, buf.data(), 16, 64, MatLayout::kQ4x16}));
  EXPECT_EQ(q4x16_available({DType::Q4_0, buf.data(), 16, 64}), has_x16_kernels());
}

// The VNNI kernel on q4x16 does the transposing batch kernel's integer sums and f32 operations in
// the same order: equal to the last bit, for one pass (1..8 rows) and two (9..15), at a shape with
// one record per group and at 7B's row length.
TEST(Repack, VnniKernelBitIdenticalToBatchKernel) {
  if (!has_vnni()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  for (DType t : kBoth)
    for (int64_t cols : {int64_t{64}, int64_t{4096}}) {
      const Q4 w = make_w(t, 160, cols, 3);
      for (int64_t n = 1; n <= 15; ++n) {
        const auto x = activations(n, cols, 10 + static_cast<uint32_t>(n));
        const auto want = run_kernel(kGemmVnniBatch, w.native(), x, n);
        const auto got = run_kernel(t == DType::Q8_0 ? kGemmVnniQ8x16 : kGemmVnniQ4x16, w.packed(), x, n);
        ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
            << dtype_name(t) << " cols " << cols << " n " << n;
      }
    }
}

// Through matmul (dispatch, thread split) at decode and batch sizes: the q4x16 copy gives the batch
// kernel's exact results, and the portable path gives the same on either layout.
TEST(Repack, MatmulOnEitherLayoutAgrees) {
  ThreadPool pool(2);
  for (DType t : kBoth) {
  const Q4 w = make_w(t, 320, 1024, 4);
  for (int64_t n : {1, 2, 8, 15}) {
    const auto x = activations(n, w.cols, 20 + static_cast<uint32_t>(n));
    std::vector<float> a(n * w.rows), b(n * w.rows);
    if (has_vnni()) {
      matmul(w.packed(), x.data(), n, b.data(), pool);
      EXPECT_EQ(run_kernel(kGemmVnniBatch, w.native(), x, n), b) << "n " << n;
    }
    force_portable(true);
    matmul(w.native(), x.data(), n, a.data(), pool);
    matmul(w.packed(), x.data(), n, b.data(), pool);
    force_portable(false);
    EXPECT_EQ(a, b) << "portable, n " << n;
  }
  }
}

// The AVX2 kernel on q4x16 / q8x16: the same bits whatever the batch size or the split of rows, the
// same bits from GGUF's layout while a copy is pending (each group repacked on the fly), and ggml's
// products within f32 summation order of the portable kernel.
TEST(Repack, Avx2X16KernelSameBitsFromEitherLayoutAndBatch) {
  if (!has_avx2_x16()) GTEST_SKIP() << "the AVX2 x16 kernel is not this CPU's";
  for (DType t : kBoth)
    for (int64_t cols : {int64_t{64}, int64_t{4096}}) {
      const Q4 w = make_w(t, 160, cols, 5);
      const auto x = activations(13, cols, 77);
      const auto all = run_kernel(kGemmAvx2X16, w.packed(), x, 13);
      EXPECT_EQ(run_kernel(kGemmAvx2X16, w.native(), x, 13), all) << dtype_name(t) << " cols " << cols;
      std::vector<float> port(all.size());
      ThreadPool pool(1);
      force_portable(true);
      matmul(w.native(), x.data(), 13, port.data(), pool);
      force_portable(false);
      for (size_t i = 0; i < all.size(); ++i) ASSERT_NEAR(all[i], port[i], 2e-5f * (1 + std::fabs(port[i]))) << i;
      for (int64_t n : {1, 2, 3, 4, 5}) {
        const std::vector<float> part_x(x.begin() + 7 * cols, x.begin() + (7 + n) * cols);
        const auto part = run_kernel(kGemmAvx2X16, w.packed(), part_x, n);
        for (int64_t i = 0; i < n * w.rows; ++i) ASSERT_EQ(part[i], all[7 * w.rows + i]) << "n " << n << " at " << i;
      }
    }
}

// The AMX-BF16 kernel packs the same bf16 panels from either layout: identical results, with one K
// chunk and with several (n * cols * 2 > 1 MiB), whole and half-empty 32-row panels.
TEST(Repack, AmxBf16PanelsIdenticalFromEitherLayout) {
  if (&choose_gemm(DType::Q4_0, 16, 256, MatLayout::kQ4x16) != &kGemmAmxBf16) GTEST_SKIP() << "no AMX-BF16 on this CPU";
  ThreadPool pool(2);
  for (DType t : kBoth)
  for (int64_t rows : {16, 48, 160})
    for (auto [cols, n] : {std::pair<int64_t, int64_t>{256, 16}, {2304, 33}, {2304, 256}}) {
      const Q4 w = make_w(t, rows, cols, 5 + static_cast<uint32_t>(rows));
      const auto x = activations(n, cols, 30 + static_cast<uint32_t>(n));
      std::vector<float> a(n * rows), b(n * rows);
      matmul(w.native(), x.data(), n, a.data(), pool);
      matmul(w.packed(), x.data(), n, b.data(), pool);
      EXPECT_EQ(a, b) << dtype_name(t) << " rows " << rows << " cols " << cols << " n " << n;
    }
}

TEST(Repack, ReferenceReadsEitherLayout) {
  for (DType t : kBoth) {
    const Q4 w = make_w(t, 32, 128, 6);
    const auto x = activations(3, w.cols, 40);
    std::vector<float> a(3 * w.rows), b(3 * w.rows);
    matmul_reference(w.native(), x.data(), 3, a.data());
    matmul_reference(w.packed(), x.data(), 3, b.data());
    EXPECT_EQ(a, b) << dtype_name(t);
  }
}

// A MatRef with a repack slot reads GGUF's copy until the slot holds the q4x16 copy, then that one;
// while it waits, even one activation row gets the q4x16 kernel's exact results (the batch kernel,
// not the matrix-vector kernel), so nothing changes when the copy lands.
TEST(Repack, SlotSwitchesTheCopyMatmulReads) {
  ThreadPool pool(1);
  const Q4 w = make_q4(32, 256, 7);
  Q4 zero = w;
  std::fill(zero.x16.begin(), zero.x16.end(), uint8_t{0});  // scales 0: every product 0
  std::atomic<const uint8_t*> slot{nullptr};
  MatRef ref = w.native();
  ref.repacked = &slot;
  const auto x = activations(1, w.cols, 50);
  std::vector<float> y(w.rows), want(w.rows);
  matmul(w.packed(), x.data(), 1, want.data(), pool);
  matmul(ref, x.data(), 1, y.data(), pool);
  EXPECT_EQ(y, want);
  if (has_vnni()) {  // (portable: one kernel for both anyway)
    std::vector<float> plain(w.rows);
    matmul(w.native(), x.data(), 1, plain.data(), pool);  // the matrix-vector kernel: same within f32 order
    for (int64_t r = 0; r < w.rows; ++r) EXPECT_NEAR(plain[r], want[r], 1e-5f * (1 + std::fabs(want[r])));
  }
  slot.store(zero.x16.data());
  matmul(ref, x.data(), 1, y.data(), pool);
  EXPECT_EQ(y, std::vector<float>(w.rows, 0.0f));
  EXPECT_EQ(current(ref).layout, MatLayout::kQ4x16);
}

TEST(Repack, MatmulRejectsMalformedQ4x16) {
  ThreadPool pool(1);
  std::vector<uint8_t> buf(4096);
  float x[128] = {}, y[128];
  EXPECT_THROW(matmul({DType::Q8_0, buf.data(), 16, 64, MatLayout::kQ4x16}, x, 1, y, pool), Error);
  EXPECT_THROW(matmul({DType::Q4_0, buf.data(), 24, 64, MatLayout::kQ4x16}, x, 1, y, pool), Error);
  EXPECT_THROW(matmul({DType::Q4_0, buf.data(), 16, 96, MatLayout::kQ4x16}, x, 1, y, pool), Error);
  EXPECT_THROW(matmul({DType::Q4_0, buf.data(), 16, 64, MatLayout::kQ8x16}, x, 1, y, pool), Error);
  EXPECT_THROW(matmul({DType::Q8_0, buf.data(), 24, 64, MatLayout::kQ8x16}, x, 1, y, pool), Error);
}

}  // namespace
}  // namespace wai::kernels
