// Kernel-internal interface between the matmul driver (matmul.cpp) and its implementations
// (portable, AVX-512/VNNI, AMX). Not for use outside src/kernels and its tests.
//
// A kernel owns the layout of its prepared activations: the driver asks it for a buffer size,
// calls prepare() once per call over ranges of activation rows (in parallel, ranges aligned to
// act_grain), then run() over ranges of weight rows (aligned to row_grain) on every thread.
// The matrix-vector kernels' layouts hold exactly the values ggml's quantize_row_<vec_dot_type>
// produces; they differ only in how they arrange them and in the f32 order of the per-block sums. The
// AMX-BF16 batch kernel rounds activations and dequantized weights to bf16 instead (see its file).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/matmul.h"

namespace wai::kernels {

struct GemmArgs {
  MatRef w;
  const uint8_t* xq = nullptr;  // prepared activations (kernel's layout)
  int64_t n = 0;                // activation rows
  float* y = nullptr;           // y[t * ldy + r]
  int64_t ldy = 0;
};

struct GemmKernel {
  const char* name;
  int64_t row_grain;  // weight rows per unit of work split across threads
  int64_t act_grain;  // activation rows prepare() handles as a unit (tile height)
  size_t (*act_bytes)(DType wtype, int64_t n, int64_t cols);
  // Prepares activation rows [t0, t1) of x ([n, cols] f32) into buf.
  void (*prepare)(DType wtype, const float* x, int64_t n, int64_t cols, int64_t t0, int64_t t1, uint8_t* buf);
  // y[t, r] for all t and r in [r0, r1).
  void (*run)(const GemmArgs& a, int64_t r0, int64_t r1);
};

// The f32 / f16 / bf16 kernels' activations (float_act.cpp): rows of the weight type's vec_dot type;
// float_elem_size(w) bytes per element.
size_t float_elem_size(DType w);
size_t float_act_bytes(DType w, int64_t n, int64_t cols);
void float_prepare(DType w, const float* x, int64_t n, int64_t cols, int64_t t0, int64_t t1, uint8_t* buf);

// Always available: activations as rows of vec_dot_type, one vec_dot per (row, t).
extern const GemmKernel kGemmPortable;

// The fastest kernel for this weight type, layout and batch size on this CPU (cpu_features(); the
// portable kernel when force_portable is on). x16_pending: GGUF's layout of a matrix whose x16 copy
// is still being made (MatRef::repacked set, not yet published).
const GemmKernel& choose_gemm(DType wtype, int64_t n, int64_t cols, MatLayout layout = MatLayout::kRows,
                              bool x16_pending = false);

// Fast kernels (defined in their own files, compiled for their ISA; only called when the CPU has it).
extern const GemmKernel kGemmVnniQ8;     // q4_0, q8_0 weights; AVX-512 VNNI + VBMI (matrix-vector)
extern const GemmKernel kGemmVnniBatch;  // q4_0, q8_0 weights; AVX-512 VNNI (small batches)
extern const GemmKernel kGemmVnniQ4x16;  // q4_0 in the q4x16 layout; AVX-512 VNNI (1..15 rows)
extern const GemmKernel kGemmVnniQ8x16;  // q8_0 in the q8x16 layout; AVX-512 VNNI (1..15 rows)
extern const GemmKernel kGemmVnniK;      // q4_K, q6_K weights; AVX-512 BW + VNNI
extern const GemmKernel kGemmVnniKBatch; // q4_K, q6_K weights; AVX-512 VNNI (small batches)
extern const GemmKernel kGemmAvx512Float; // f32, f16 (F16C), bf16 (AVX512-BF16) weights
extern const GemmKernel kGemmAmxBf16;    // any weight type (and q4x16, q8x16) dequantized to bf16; AMX bf16 (batches)
extern const GemmKernel kGemmAvx2Q0;     // q4_0, q8_0 weights; AVX2 + FMA + F16C (no AVX-512: any batch size)
extern const GemmKernel kGemmAvx2Float;  // f32, f16, bf16 weights; AVX2 + FMA + F16C
extern const GemmKernel kGemmAvx2K;      // q4_K, q6_K weights; AVX2 + FMA + F16C
extern const GemmKernel kGemmAvx2X16;    // q4_0 / q8_0 in the q4x16 / q8x16 layouts (or pending); AVX2 + FMA + F16C

// repack_q4x16 / repack_q8x16 (kernels/repack.h) for AVX-512 CPUs (repack_avx512.cpp); call only where
// q4x16_available().
void repack_q4x16_avx512(const MatRef& w, uint8_t* dst, int64_t g0, int64_t g1);
void repack_q8x16_avx512(const MatRef& w, uint8_t* dst, int64_t g0, int64_t g1);
}  // namespace wai::kernels
