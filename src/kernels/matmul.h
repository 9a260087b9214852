// Matrix products of a weight matrix in its stored type with f32 activations.
//
// W is [rows, cols] row-major in `type` (a GGUF tensor with dims {cols, rows}); x is [n, cols] f32
// row-major; y is [n, rows] f32 row-major:   y[t, r] = sum_c W[r, c] * x[t, c].
//
// Numerics follow llama.cpp's CPU backend, so that wai and llama.cpp agree on quantized models: the
// activations are first converted to the weight type's "vec_dot type" (q8_0 for q4_0/q8_0, q8_K for
// q4_K/q6_K, f16 for f16, bf16 for bf16, f32 for f32) and the dot products are integer (or reduced
// precision) dot products scaled per block. n == 1 is the decode path (matrix-vector, memory bound);
// n > 1 is prefill / batched decode (compute bound).
//
// One exception, for speed: on CPUs with AMX-BF16, batches of 16 or more rows of quantized or bf16
// weights go through bf16 tiles (activations and dequantized weights rounded to bf16, f32 sums; see
// gemm_amx_bf16.cpp): within 2^-8 of sum |w x| of the exact product, like the q8 activations (which
// are off by up to amax / 254 per element), but not bit-identical to ggml. f32/f16 weights never are.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "format/dtype.h"
#include "util/thread_pool.h"

namespace wai::kernels {

// How a matrix's blocks are arranged in memory.
enum class MatLayout : uint8_t {
  kRows,   // ggml's (and GGUF's): row r's blocks at data + r * row_bytes(type, cols)
  kQ4x16,  // q4_0 regrouped in 16-row x 64-column records for the AVX-512 kernels (kernels/repack.h)
  kQ8x16,  // q8_0 regrouped in 16-row x 32-column records, likewise
};

struct MatRef {
  DType type = DType::F32;
  const uint8_t* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;  // multiple of the type's block size
  MatLayout layout = MatLayout::kRows;
  // Set by an owner that repacks the matrix while it is in use (model::Model, in the background):
  // once the slot holds a pointer, matmul reads that copy, in layout kQ4x16 (q4_0) or kQ8x16 (q8_0),
  // instead of `data`.
  // The slot and both copies outlive every matmul on this MatRef.
  const std::atomic<const uint8_t*>* repacked = nullptr;
};

// The repacked layout of a type: kQ8x16 for q8_0, kQ4x16 for q4_0.
inline MatLayout x16_layout(DType t) { return t == DType::Q8_0 ? MatLayout::kQ8x16 : MatLayout::kQ4x16; }

// The copy matmul reads now: w itself, or its repacked copy once that is published.
inline MatRef current(const MatRef& w) {
  if (w.repacked)
    if (const uint8_t* p = w.repacked->load(std::memory_order_acquire))
      return MatRef{w.type, p, w.rows, w.cols, x16_layout(w.type), nullptr};
  return w;
}

void matmul(const MatRef& w, const float* x, int64_t n, float* y, ThreadPool& pool);

// matmul calls running now, in this process (background work such as the weight repack yields to them).
int matmuls_in_flight();

// Reference: dequantize W to f32 and multiply in f64-accumulated f32 (tests only; slow).
void matmul_reference(const MatRef& w, const float* x, int64_t n, float* y);

}  // namespace wai::kernels
