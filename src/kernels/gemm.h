// Kernel-internal interface between the matmul driver (matmul.cpp) and its implementations
// (portable, AVX-512/VNNI, AMX). Not for use outside src/kernels and its tests.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/matmul.h"

namespace wai::kernels {

// One slice of a product: for weight rows r in [r0, r1) and activation rows t in [0, n):
//   y[t * ldy + r] = dot(W row r, activation row t)
// xq holds the n activation rows already converted to vec_dot_type(w.type), xq_stride bytes apart.
struct GemmArgs {
  MatRef w;
  const uint8_t* xq = nullptr;
  size_t xq_stride = 0;
  int64_t n = 0;
  float* y = nullptr;
  int64_t ldy = 0;
};
using GemmFn = void (*)(const GemmArgs& a, int64_t r0, int64_t r1);

// The portable slice kernel (one vec_dot per (row, t)); always available.
void gemm_portable(const GemmArgs& a, int64_t r0, int64_t r1);

// The fastest slice kernel for this weight type and batch size on this CPU (cpu_features(); the
// portable kernel when force_portable is on), and the row grain its threads should split on.
struct GemmChoice {
  GemmFn fn;
  int64_t grain;
  const char* name;
};
GemmChoice choose_gemm(DType wtype, int64_t n);

}  // namespace wai::kernels
