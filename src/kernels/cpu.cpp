// CPUID-based feature detection, once per process. AVX/AVX-512/AMX state must also be enabled by the
// OS (XCR0), and AMX tile data additionally needs a per-process permission request on Linux.
#include "kernels/cpu.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>

#include "util/error.h"
#endif

namespace wai::kernels {
namespace {

#if defined(__x86_64__)
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

// Linux >= 5.16 keeps AMX tile data disabled until the process asks for it.
bool request_amx_permission() {
#if defined(__linux__)
  constexpr long kArchGetXcompPerm = 0x1022, kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return false;
  unsigned long bitmask = 0;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &bitmask) != 0) return false;
  return (bitmask & (1ul << kXfeatureXtiledata)) != 0;
#else
  return false;
#endif
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  if (!osxsave) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool os_avx = (xcr0 & 0x6) == 0x6;             // SSE + AVX state
  const bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;      // XTILECFG, XTILEDATA
  f.fma = os_avx && (c & (1u << 12));
  f.f16c = os_avx && (c & (1u << 29));
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.avx2 = os_avx && (b & (1u << 5));
  f.avx512f = os_avx512 && (b & (1u << 16));
  f.avx512bw = f.avx512f && (b & (1u << 30));
  f.avx512vl = f.avx512f && (b & (1u << 31));
  f.avx512vnni = f.avx512f && (c & (1u << 11));
  f.avx512vbmi = f.avx512f && (c & (1u << 1));
  const bool amx_bf16 = d & (1u << 22), amx_tile = d & (1u << 24), amx_int8 = d & (1u << 25);
  unsigned a1 = 0, b1, c1, d1;
  if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512bf16 = f.avx512f && (a1 & (1u << 5));
  if (amx_tile && os_amx && request_amx_permission()) {
    f.amx_tile = true;
    f.amx_int8 = amx_int8;
    f.amx_bf16 = amx_bf16;
  }
#endif
  return f;
}

const CpuFeatures& detected() {
  static const CpuFeatures f = detect();
  return f;
}

std::atomic<bool>& portable_flag() {
  static std::atomic<bool> on{[] {
    const char* e = std::getenv("WAI_FORCE_PORTABLE");
    return e != nullptr && std::strcmp(e, "") != 0 && std::strcmp(e, "0") != 0;
  }()};
  return on;
}

// What a level leaves of the detected features.
CpuFeatures capped(CpuLevel level) {
  CpuFeatures f = detected();
  if (level < CpuLevel::kAmx) f.amx_tile = f.amx_int8 = f.amx_bf16 = false;
  if (level < CpuLevel::kAvx512)
    f.avx512f = f.avx512bw = f.avx512vl = f.avx512vnni = f.avx512vbmi = f.avx512bf16 = false;
  if (level < CpuLevel::kAvx2) f = CpuFeatures{};
  return f;
}

const CpuFeatures& features_at(CpuLevel level) {
  static const CpuFeatures table[4] = {capped(CpuLevel::kPortable), capped(CpuLevel::kAvx2), capped(CpuLevel::kAvx512),
                                       capped(CpuLevel::kAmx)};
  return table[static_cast<int>(level)];
}

std::atomic<int>& level_cap() {
  static std::atomic<int> cap{[] {
    CpuLevel l = detected_cpu_level();
    if (const char* e = std::getenv("WAI_CPU"); e != nullptr && *e != '\0') {
      const auto want = parse_cpu_level(e);
      if (!want) std::fprintf(stderr, "wai: ignoring WAI_CPU=%s (one of %s)\n", e, cpu_level_choices());
      else if (!cpu_level_missing(*want).empty())
        std::fprintf(stderr, "wai: ignoring WAI_CPU=%s: this CPU lacks %s\n", e, cpu_level_missing(*want).c_str());
      else l = *want;
    }
    return static_cast<int>(l);
  }()};
  return cap;
}

}  // namespace

const CpuFeatures& cpu_features() {
  if (portable_flag().load(std::memory_order_relaxed)) return features_at(CpuLevel::kPortable);
  return features_at(static_cast<CpuLevel>(level_cap().load(std::memory_order_relaxed)));
}

void force_portable(bool on) { portable_flag().store(on, std::memory_order_relaxed); }

std::optional<CpuLevel> parse_cpu_level(std::string_view name) {
  if (name == "portable") return CpuLevel::kPortable;
  if (name == "avx2") return CpuLevel::kAvx2;
  if (name == "avx512") return CpuLevel::kAvx512;
  if (name == "amx") return CpuLevel::kAmx;
  return std::nullopt;
}

const char* cpu_level_name(CpuLevel level) {
  switch (level) {
    case CpuLevel::kPortable: return "portable";
    case CpuLevel::kAvx2: return "avx2";
    case CpuLevel::kAvx512: return "avx512";
    case CpuLevel::kAmx: return "amx";
  }
  return "portable";
}

const char* cpu_level_choices() { return "portable, avx2, avx512, amx"; }

std::string cpu_level_missing(CpuLevel level) {
  const CpuFeatures& f = detected();
  std::string s;
  auto need = [&](bool have, const char* name) {
    if (have) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  if (level >= CpuLevel::kAvx2) {
    need(f.avx2, "avx2");
    need(f.fma, "fma");
    need(f.f16c, "f16c");
  }
  if (level >= CpuLevel::kAvx512) {
    need(f.avx512f, "avx512f");
    need(f.avx512bw, "avx512bw");
    need(f.avx512vl, "avx512vl");
    need(f.avx512vnni, "avx512vnni");
  }
  if (level >= CpuLevel::kAmx) {
    need(f.amx_tile, "amx-tile (or OS permission for it)");
    need(f.amx_int8, "amx-int8");
    need(f.amx_bf16, "amx-bf16");
  }
  return s;
}

CpuLevel detected_cpu_level() {
  for (CpuLevel l : {CpuLevel::kAmx, CpuLevel::kAvx512, CpuLevel::kAvx2})
    if (cpu_level_missing(l).empty()) return l;
  return CpuLevel::kPortable;
}

void set_cpu_level(CpuLevel level) {
  if (const std::string m = cpu_level_missing(level); !m.empty())
    fail(ErrorKind::kInvalidInput, std::string("CPU level ") + cpu_level_name(level) + ": this CPU lacks " + m);
  level_cap().store(static_cast<int>(level), std::memory_order_relaxed);
}

CpuLevel cpu_level() {
  if (portable_flag().load(std::memory_order_relaxed)) return CpuLevel::kPortable;
  return static_cast<CpuLevel>(level_cap().load(std::memory_order_relaxed));
}

void configure_cpu_level(int& argc, char** argv) {
  auto apply = [](std::string_view name, const std::string& where) {
    const auto l = parse_cpu_level(name);
    if (!l) fail(ErrorKind::kInvalidInput, where + ": unknown CPU level '" + std::string(name) + "' (one of " + cpu_level_choices() + ")");
    if (const std::string m = cpu_level_missing(*l); !m.empty())
      fail(ErrorKind::kInvalidInput, where + ": this CPU lacks " + m + " (it supports up to " + cpu_level_name(detected_cpu_level()) + ")");
    set_cpu_level(*l);
  };
  if (const char* e = std::getenv("WAI_CPU"); e != nullptr && *e != '\0') apply(e, std::string("WAI_CPU=") + e);
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--cpu") {
      if (i + 1 >= argc) fail(ErrorKind::kInvalidInput, std::string("--cpu needs a value (one of ") + cpu_level_choices() + ")");
      apply(argv[i + 1], std::string("--cpu ") + argv[i + 1]);
      ++i;
      continue;
    }
    if (a.rfind("--cpu=", 0) == 0) {
      apply(a.substr(6), std::string(a));
      continue;
    }
    argv[out++] = argv[i];
  }
  argc = out;
  argv[argc] = nullptr;
}

std::string cpu_description() {
  const CpuFeatures& f = cpu_features();
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.f16c, "f16c");
  add(f.avx512f, "avx512f");
  add(f.avx512bw, "avx512bw");
  add(f.avx512vl, "avx512vl");
  add(f.avx512vnni, "avx512vnni");
  add(f.avx512vbmi, "avx512vbmi");
  add(f.avx512bf16, "avx512bf16");
  add(f.amx_tile, "amx-tile");
  add(f.amx_int8, "amx-int8");
  add(f.amx_bf16, "amx-bf16");
  return s.empty() ? "portable" : s;
}

}  // namespace wai::kernels
