// Small f32 vector primitives for attention (the matmuls live in kernels/). AVX-512 when the CPU has
// it (kernels::cpu_features(), so WAI_FORCE_PORTABLE applies), a portable loop otherwise.
#pragma once

#include <cstdint>

namespace wai::model::vec {

float dot(const float* a, const float* b, int64_t n);           // sum a[i] * b[i]
void axpy(float alpha, const float* x, float* y, int64_t n);   // y[i] += alpha * x[i]

}  // namespace wai::model::vec
