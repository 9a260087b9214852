// The AVX2 implementation of model::attn::attend() (kernels/avx2/attention_avx2.cpp): same contract
// as attend() there, for head_dim % 8 == 0; sc: group * nk floats of scratch for the scores. Call
// only where cpu_features().avx2_kernels().
#pragma once

#include <cstdint>

namespace wai::kernels {

void attend_avx2(const float* q, int64_t group, int64_t hd, const uint16_t* const* k_rows, const uint16_t* const* v_rows,
                 int64_t nk, float scale, float* sc, float* out);

}  // namespace wai::kernels
