// The prepared activations of the f32 / f16 / bf16 kernels (gemm_avx512_float.cpp, avx2/
// gemm_avx2_float.cpp): rows of the weight type's vec_dot type (ggml's: f16 for f16, bf16 for bf16).
// Portable code, shared by both ISAs' kernels.
#include "kernels/blocks.h"
#include "kernels/gemm.h"

namespace wai::kernels {

size_t float_elem_size(DType w) { return w == DType::F32 ? 4 : 2; }

size_t float_act_bytes(DType w, int64_t n, int64_t cols) { return static_cast<size_t>(n * cols) * float_elem_size(w); }

void float_prepare(DType w, const float* x, int64_t, int64_t cols, int64_t t0, int64_t t1, uint8_t* buf) {
  for (int64_t t = t0; t < t1; ++t)
    quantize_activation_row(vec_dot_type(w), x + t * cols, buf + static_cast<size_t>(t * cols) * float_elem_size(w), cols);
}

}  // namespace wai::kernels
