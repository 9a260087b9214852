// Runtime dispatch: picks a kernel from the weight type, the batch size and the CPU features.
#include "kernels/cpu.h"
#include "kernels/gemm.h"

namespace wai::kernels {

// From this batch size on, quantized (and bf16) weights go through the AMX-BF16 kernel: it
// dequantizes every weight once per call (~0.3 ns per weight per core), which the tile unit's rate
// repays only over enough activation rows; below it the VNNI kernels, which read each weight straight
// from its blocks, are faster. Measured with bench/kernels on the 7B shapes; against the q4_0/q8_0
// batch kernel (gemm_vnni_batch.cpp), at 16 rows the tiles are ~30% slower on q4_0 and ~10% faster on
// q8_0, at 24 rows about even on q4_0 (one thread, interleaved): 16 stays the one threshold.
constexpr int64_t kAmxBf16MinBatch = 16;

const GemmKernel& choose_gemm(DType wtype, int64_t n, int64_t cols, MatLayout layout, bool x16_pending) {
  const CpuFeatures& f = cpu_features();
  const bool vnni = f.vnni_kernels();
  const bool amx_bf16 = vnni && f.avx512bf16 && f.amx_tile && f.amx_bf16;
  const bool batch = n >= kAmxBf16MinBatch && cols % 32 == 0;
  if (layout != MatLayout::kRows) {  // (the portable kernel reads them too: force_portable after a repack)
    if (amx_bf16 && batch) return kGemmAmxBf16;
    if (vnni) return layout == MatLayout::kQ8x16 ? kGemmVnniQ8x16 : kGemmVnniQ4x16;
    if (f.avx2_kernels()) return kGemmAvx2X16;
    return kGemmPortable;
  }
  switch (wtype) {
    case DType::Q4_0:
    case DType::Q8_0:
      if (amx_bf16 && batch) return kGemmAmxBf16;
      // A matrix waiting for its x16 copy takes, even for one row, the kernel whose arithmetic that
      // copy's kernel repeats bit for bit (not the matrix-vector kernel: same products, another f32
      // order): results must not change when the copy lands mid-conversation.
      if (vnni && (n >= 2 || x16_pending)) return kGemmVnniBatch;  // (and prefill where AMX is missing)
      if (vnni && f.avx512vbmi) return kGemmVnniQ8;
      // AVX2: a matrix whose x16 copy is pending is read the way the copy will be (same results when
      // it lands); one that will never have a copy (shape) takes the row-layout kernel.
      if (!vnni && f.avx2_kernels()) return x16_pending ? kGemmAvx2X16 : kGemmAvx2Q0;
      break;
    case DType::Q4_K:
    case DType::Q6_K:
      if (amx_bf16 && batch) return kGemmAmxBf16;
      if (vnni && n >= 2) return kGemmVnniKBatch;
      if (vnni) return kGemmVnniK;
      if (f.avx2_kernels()) return kGemmAvx2K;
      break;
    case DType::F32:
    case DType::F16:
      // (not through bf16 tiles: that would round the weights; the f32/f16 paths are exact to ggml)
      if (vnni) return kGemmAvx512Float;
      if (f.avx2_kernels()) return kGemmAvx2Float;
      break;
    case DType::BF16:
      if (amx_bf16 && batch) return kGemmAmxBf16;
      if (vnni && f.avx512bf16) return kGemmAvx512Float;
      if (f.avx2_kernels()) return kGemmAvx2Float;
      break;
    default:
      break;
  }
  return kGemmPortable;
}

}  // namespace wai::kernels
