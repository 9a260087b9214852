// Runtime CPU feature detection. Kernels pick their implementation per call from these flags, so one
// binary runs everywhere; force_portable() makes every kernel take the portable path (tests, and
// `WAI_FORCE_PORTABLE=1` in the environment).
#pragma once

#include <string>

namespace wai::kernels {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool avx512vbmi = false;  // (added by the kernels layer: byte permutes in the q4_0/q8_0 VNNI path)
  bool avx512bf16 = false;
  bool amx_tile = false;
  bool amx_int8 = false;
  bool amx_bf16 = false;

  // The set the AVX-512 VNNI kernels and the x16 repack are compiled for (gemm_vnni_*.cpp,
  // repack_avx512.cpp): one test, so that the repack never makes a layout the kernels cannot read.
  bool avx2_kernels() const { return avx2 && fma && f16c; }  // kernels/avx2/
  bool vnni_kernels() const { return avx512f && avx512bw && avx512vl && avx512vnni && f16c && fma && avx2; }
};

const CpuFeatures& cpu_features();  // as usable now (respects force_portable and OS support for AMX)
void force_portable(bool on);
std::string cpu_description();      // e.g. "avx512f avx512vnni amx-int8"

}  // namespace wai::kernels
