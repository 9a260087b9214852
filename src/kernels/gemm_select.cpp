// Runtime dispatch: picks a kernel from the weight type, the batch size and the CPU features.
#include "kernels/cpu.h"
#include "kernels/gemm.h"

namespace wai::kernels {

// Below these batch sizes a 16-row AMX tile is mostly padding and unpacking the weights for it costs
// more than it saves: the VNNI register tiles win (q4_0/q8_0 reuse each weight load across 4 rows;
// the K-quant VNNI path is one dot per row pair, so AMX pays off sooner). Measured on the dev machine
// with bench/kernels.
constexpr int64_t kAmxMinBatchQ8 = 16;
constexpr int64_t kAmxMinBatchK = 8;

const GemmKernel& choose_gemm(DType wtype, int64_t n) {
  const CpuFeatures& f = cpu_features();
  const bool vnni = f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni && f.f16c && f.fma && f.avx2;
  const bool amx = vnni && f.amx_tile && f.amx_int8;
  switch (wtype) {
    case DType::Q4_0:
    case DType::Q8_0:
      if (amx && n >= kAmxMinBatchQ8) return kGemmAmxQ8;
      if (vnni && f.avx512vbmi) return kGemmVnniQ8;
      break;
    case DType::Q4_K:
    case DType::Q6_K:
      if (amx && n >= kAmxMinBatchK) return kGemmAmxK;
      if (vnni) return kGemmVnniK;
      break;
    case DType::F32:
    case DType::F16:
      if (vnni) return kGemmAvx512Float;
      break;
    case DType::BF16:
      if (vnni && f.avx512bf16) return kGemmAvx512Float;
      break;
    default:
      break;
  }
  return kGemmPortable;
}

}  // namespace wai::kernels
