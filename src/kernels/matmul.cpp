// The matmul driver: validates shapes, converts the activations once per call to the weight type's
// vec_dot type, then splits the weight rows across the pool and runs the chosen slice kernel.
#include "kernels/matmul.h"

#include <atomic>
#include <string>
#include <vector>

#include "kernels/blocks.h"
#include "kernels/cpu.h"
#include "kernels/gemm.h"
#include "kernels/quant.h"
#include "kernels/repack.h"
#include "util/error.h"
#include "util/huge_vector.h"

namespace wai::kernels {
namespace {

void check_shapes(const MatRef& w, int64_t n) {
  const auto& info = dtype_info(w.type);
  if (w.rows < 0 || w.cols < 0 || n < 0)
    fail(ErrorKind::kInvalidInput, "matmul: negative shape");
  if (w.cols % info.block_size != 0)
    fail(ErrorKind::kInvalidInput, "matmul: " + std::to_string(w.cols) + " columns is not a multiple of " +
                                       std::string(info.name) + "'s block size " + std::to_string(info.block_size));
  if (w.layout == MatLayout::kQ4x16 &&
      (w.type != DType::Q4_0 || w.rows % kX16Rows != 0 || w.cols % kQ4x16Cols != 0))
    fail(ErrorKind::kInvalidInput, "matmul: a q4x16 matrix must be q4_0 with rows % 16 == 0 and cols % 64 == 0");
  if (w.layout == MatLayout::kQ8x16 && (w.type != DType::Q8_0 || w.rows % kX16Rows != 0))
    fail(ErrorKind::kInvalidInput, "matmul: a q8x16 matrix must be q8_0 with rows % 16 == 0");
}

std::atomic<int> g_in_flight{0};

struct InFlight {
  InFlight() { g_in_flight.fetch_add(1, std::memory_order_relaxed); }
  ~InFlight() { g_in_flight.fetch_sub(1, std::memory_order_relaxed); }
};

// Multiply-adds below which matmul does not split across threads: ~10 us of one core's work.
constexpr int64_t kSerialMaxWork = int64_t{1} << 18;

}  // namespace

int matmuls_in_flight() { return g_in_flight.load(std::memory_order_relaxed); }

void matmul(const MatRef& w_in, const float* x, int64_t n, float* y, ThreadPool& pool) {
  const InFlight busy;
  const MatRef w = current(w_in);  // (one copy for the whole call, even if a repack lands meanwhile)
  check_shapes(w, n);
  const DType vdt = vec_dot_type(w.type);
  if (n == 0 || w.rows == 0) return;
  if (w.cols == 0) {
    for (int64_t i = 0; i < n * w.rows; ++i) y[i] = 0;
    return;
  }
  const GemmKernel& k = choose_gemm(w.type, n, w.cols, w.layout, w_in.repacked && w.layout == MatLayout::kRows);
  // Products this small take less time than waking the pool's threads (microseconds): the calling
  // thread does them alone (tiny models, small heads).
  const bool tiny = w.rows * w.cols * n < kSerialMaxWork;
  GemmArgs a;
  a.w = w;
  a.n = n;
  a.y = y;
  a.ldy = w.rows;
  if (vdt == DType::F32 && &k == &kGemmPortable) {
    a.xq = reinterpret_cast<const uint8_t*>(x);  // f32 rows are already the portable layout
  } else {
    // Reused per calling thread: prefill activations can be megabytes, and matmul runs per layer;
    // in huge pages, as the AMX kernel re-reads them from L2 per weight panel (util/huge_pages.h).
    thread_local HugeVector<uint8_t> buf;
    const size_t bytes = k.act_bytes(w.type, n, w.cols);
    if (buf.size() < bytes) buf.resize(bytes);
    uint8_t* q = buf.data();
    auto prepare = [&](int64_t t0, int64_t t1) { k.prepare(w.type, x, n, w.cols, t0, t1, q); };
    if (n >= 4 && !tiny) pool.parallel_for(n, prepare, k.act_grain);
    else prepare(0, n);
    a.xq = q;
  }
  if (tiny) k.run(a, 0, w.rows);
  else pool.parallel_for(w.rows, [&](int64_t r0, int64_t r1) { k.run(a, r0, r1); }, k.row_grain);
}

void matmul_reference(const MatRef& w_in, const float* x, int64_t n, float* y) {
  const MatRef w = current(w_in);
  check_shapes(w, n);
  const size_t wstride = *row_bytes(w.type, w.cols);
  std::vector<float> row(static_cast<size_t>(w.cols));
  std::vector<uint8_t> blocks(w.layout != MatLayout::kRows ? wstride : 0);
  for (int64_t r = 0; r < w.rows; ++r) {
    const uint8_t* wr = w.data + static_cast<size_t>(r) * wstride;
    if (w.layout != MatLayout::kRows) {
      x16_row(w, r, blocks.data());
      wr = blocks.data();
    }
    dequantize_row(w.type, wr, row.data(), w.cols);
    for (int64_t t = 0; t < n; ++t) {
      double s = 0;
      const float* xt = x + t * w.cols;
      for (int64_t c = 0; c < w.cols; ++c) s += static_cast<double>(row[c]) * xt[c];
      y[t * w.rows + r] = static_cast<float>(s);
    }
  }
}

}  // namespace wai::kernels
