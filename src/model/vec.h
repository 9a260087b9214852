// The f32 <-> IEEE half conversions of the KV cache: AVX-512 + F16C when the CPU has them
// (kernels::cpu_features(), so WAI_FORCE_PORTABLE applies), a portable loop otherwise; both convert
// with round to nearest even, so they give the same halves bit for bit.
#pragma once

#include <cstdint>

namespace wai::model::vec {

void to_f16(const float* x, uint16_t* y, int64_t n);    // y[i] = half(x[i]), round to nearest even
void from_f16(const uint16_t* x, float* y, int64_t n);  // y[i] = float(x[i]) (exact)

}  // namespace wai::model::vec
