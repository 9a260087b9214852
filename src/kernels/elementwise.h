// Row-wise element operations of the forward pass, vectorized (AVX-512 when the CPU has it, as
// cpu_features() reports, so WAI_FORCE_PORTABLE applies; a portable loop otherwise).
//
// Numerics: rmsnorm sums the f32 squares in f64 (as ggml does: its sum is ggml_float); swiglu uses
// an exp accurate to ~2 ulp on the vector path (kernels/avx512_math.h) (std::exp on the portable path), so the two paths
// differ by float rounding only.
#pragma once

#include <cstdint>

namespace wai::kernels {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], i < n.
void rmsnorm(const float* x, const float* w, float* out, int64_t n, float eps);

// gate[i] = silu(gate[i]) * up[i] = gate[i] / (1 + exp(-gate[i])) * up[i], i < n.
void swiglu(float* gate, const float* up, int64_t n);

}  // namespace wai::kernels
