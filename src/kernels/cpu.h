// Runtime CPU feature detection. Kernels pick their implementation per call from these flags, so one
// binary runs everywhere; force_portable() makes every kernel take the portable path (tests, and
// `WAI_FORCE_PORTABLE=1` in the environment).
//
// Levels cap dispatch: `WAI_CPU=portable|avx2|avx512|amx` (or `--cpu` on every wai command) makes
// cpu_features() report only what that level and the ones below use, so e.g. an AVX-512 machine runs
// the AVX2 kernels (avx2: AVX2 + FMA + F16C; avx512: + AVX-512 F/BW/VL/VNNI/VBMI/BF16 as present; amx:
// + AMX). Asking for a level the CPU lacks is an error naming what is missing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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

const CpuFeatures& cpu_features();  // as usable now (respects the level, force_portable, OS support for AMX)
void force_portable(bool on);
std::string cpu_description();      // e.g. "avx512f avx512vnni amx-int8"

enum class CpuLevel : int { kPortable = 0, kAvx2 = 1, kAvx512 = 2, kAmx = 3 };
std::optional<CpuLevel> parse_cpu_level(std::string_view name);  // "portable" | "avx2" | "avx512" | "amx"
const char* cpu_level_name(CpuLevel level);
const char* cpu_level_choices();     // "portable, avx2, avx512, amx"
CpuLevel detected_cpu_level();       // the highest level this CPU (and OS) supports
std::string cpu_level_missing(CpuLevel level);  // features the CPU lacks for it ("" when it has them)
// Caps dispatch at `level` (WAI_CPU is read the same way at first use; an unusable value there is
// ignored with a warning). Throws wai::Error (kInvalidInput) when the CPU lacks the level.
void set_cpu_level(CpuLevel level);
CpuLevel cpu_level();                // the level in effect (kPortable while force_portable is on)
// WAI_CPU from the environment, then `--cpu NAME` / `--cpu=NAME` taken out of argv (the CLI calls
// it before any command): throws wai::Error for an unknown name (listing the choices) or a level the
// CPU lacks (naming what it lacks).
void configure_cpu_level(int& argc, char** argv);

}  // namespace wai::kernels
