// wai-bandwidth: the machine's sustained memory READ bandwidth, the roofline of decode.
//
// Decode of a dense model reads every weight once per token, so tokens/s <= bandwidth / bytes of
// weights per token. This probe measures that bandwidth the way decode consumes it: T threads (default
// 2, as the benchmarks run) each stream sequentially through their own contiguous part of one buffer
// much larger than the last-level cache (default 2 GiB; the dev machine's L3 is 300 MiB), with 64-byte
// AVX-512 loads (8 independent accumulators so the loads are not serialised on one dependency chain),
// in three access patterns: one sequential stream, four streams with software prefetch, and one
// stream prefetched as the decode kernels do. The buffer is written first (untouched anonymous pages
// would all map the one zero page and read from cache).
// Each repetition reads the whole buffer once; the best repetition of the best pattern is reported
// (the most the memory delivered, least disturbed by other processes), with medians for reference.
// GB/s = 1e9 bytes per second.
//
// Usage: wai-bandwidth [--threads 2] [--size-mib 2048] [--reps 5] [--json]
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "util/thread_pool.h"

namespace {

// Sums the 64-bit lanes of S equal sub-ranges of [p, p + n) read in lock step (n a multiple of
// S * 512 bytes), prefetching PF bytes ahead of each stream when PF > 0. The sum only keeps the loads
// alive. One stream is the plain sequential read; several streams with prefetch keep more cache-line
// fills in flight per core, which on some machines is what reaches the memory's limit (a decode
// kernel reading several weight rows at once behaves like that). PF < 0: the decode kernels' own
// pattern (kernels/avx512_quant.h prefetch_stream): prefetcht1 16 KiB ahead, prefetcht0 4 KiB ahead,
// so that the roofline is what the best known way of reading reaches, the kernels' included.
#if defined(__x86_64__)
template <int S, int PF>
__attribute__((target("avx512f"))) uint64_t read_avx512(const uint8_t* p, size_t n) {
  __m512i acc[8];
  for (auto& a : acc) a = _mm512_setzero_si512();
  const size_t sub = n / S;
  for (size_t i = 0; i < sub; i += 512) {
    for (int s = 0; s < S; ++s) {
      const uint8_t* b = p + s * sub + i;
      if constexpr (PF < 0) {
        for (int o = 0; o < 512; o += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(b) + 16384 + o, _MM_HINT_T1);
          _mm_prefetch(reinterpret_cast<const char*>(b) + 4096 + o, _MM_HINT_T0);
        }
      }
      if constexpr (PF > 0) {
        _mm_prefetch(reinterpret_cast<const char*>(b) + PF, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(b) + PF + 256, _MM_HINT_T0);
      }
      const __m512i* q = reinterpret_cast<const __m512i*>(b);
      for (int k = 0; k < 8; ++k) acc[k] = _mm512_add_epi64(acc[k], _mm512_load_si512(q + k));
    }
  }
  alignas(64) uint64_t lanes[8];
  uint64_t sum = 0;
  for (auto& a : acc) {
    _mm512_store_si512(reinterpret_cast<__m512i*>(lanes), a);
    for (uint64_t x : lanes) sum += x;
  }
  return sum;
}
#endif

uint64_t read_portable(const uint8_t* p, size_t n) {
  const uint64_t* q = reinterpret_cast<const uint64_t*>(p);
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (size_t i = 0; i < n / 8; i += 4) {
    a0 += q[i]; a1 += q[i + 1]; a2 += q[i + 2]; a3 += q[i + 3];
  }
  return a0 + a1 + a2 + a3;
}

bool have_avx512() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") && !std::getenv("WAI_FORCE_PORTABLE");
#else
  return false;
#endif
}

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "wai-bandwidth: %s\nusage: wai-bandwidth [--threads T] [--size-mib M] [--reps R] [--json]\n",
               msg.c_str());
  std::exit(2);
}

long parse_positive(const char* name, const char* v) {
  if (!v) usage_error(std::string(name) + " needs a value");
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || x <= 0) usage_error(std::string(name) + ": expected a positive integer, got '" + v + "'");
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  long threads = 2, size_mib = 2048, reps = 5;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (a == "--threads" || a == "-t") threads = parse_positive("--threads", v), ++i;
    else if (a == "--size-mib") size_mib = parse_positive("--size-mib", v), ++i;
    else if (a == "--reps" || a == "-r") reps = parse_positive("--reps", v), ++i;
    else if (a == "--json") json = true;
    else if (a == "--help" || a == "-h") usage_error("measures sustained memory read bandwidth");
    else usage_error("unknown option '" + a + "'");
  }
  if (threads > 256) usage_error("--threads: at most 256");

  // Each thread's part is a multiple of 4 * 512 bytes (4 streams of whole unrolled iterations).
  const size_t bytes = static_cast<size_t>(size_mib) << 20;
  const size_t part = bytes / static_cast<size_t>(threads) / 2048 * 2048;
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) usage_error("cannot allocate " + std::to_string(size_mib) + " MiB");
  madvise(mem, bytes, MADV_HUGEPAGE);  // fewer TLB misses; a hint, fine if refused
  auto* buf = static_cast<uint8_t*>(mem);

  wai::ThreadPool pool(static_cast<int>(threads));
  // First touch from the thread that will read the part (NUMA-local on multi-socket machines).
  pool.run([&](int t, int) { std::memset(buf + t * part, 0x5a + t, part); });

  struct Variant {
    const char* name;
    uint64_t (*fn)(const uint8_t*, size_t);
  };
  std::vector<Variant> variants;
#if defined(__x86_64__)
  if (have_avx512()) {
    variants.push_back({"avx512-1stream", read_avx512<1, 0>});
    variants.push_back({"avx512-4streams-prefetch", read_avx512<4, 2048>});
    variants.push_back({"avx512-1stream-l2prefetch", read_avx512<1, -1>});
  }
#endif
  if (variants.empty()) variants.push_back({"portable", read_portable});

  // Repetitions alternate between the variants so that a burst of load from other processes does not
  // fall on one variant only.
  std::vector<uint64_t> sink(threads);
  std::vector<std::vector<double>> gbps(variants.size());
  for (long r = 0; r < reps; ++r) {
    for (size_t v = 0; v < variants.size(); ++v) {
      auto t0 = std::chrono::steady_clock::now();
      pool.run([&](int t, int) { sink[t] += variants[v].fn(buf + t * part, part); });
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      gbps[v].push_back(static_cast<double>(part * threads) / s / 1e9);
    }
  }
  uint64_t check = 0;
  for (uint64_t x : sink) check += x;

  // The reported bandwidth is the best repetition of the best variant: the most the memory delivered.
  double best = 0, best_median = 0;
  size_t best_v = 0;
  std::vector<double> medians;
  for (size_t v = 0; v < variants.size(); ++v) {
    std::vector<double> sorted = gbps[v];
    std::sort(sorted.begin(), sorted.end());
    medians.push_back(sorted[sorted.size() / 2]);
    if (sorted.back() > best) best = sorted.back(), best_median = medians.back(), best_v = v;
  }
  if (json) {
    std::printf("{\"engine\":\"wai-bandwidth\",\"threads\":%ld,\"buffer_bytes\":%zu,\"reps\":%ld,"
                "\"best_gb_per_s\":%.3f,\"median_gb_per_s\":%.3f,\"best_variant\":\"%s\",\"variants\":{",
                threads, part * threads, reps, best, best_median, variants[best_v].name);
    for (size_t v = 0; v < variants.size(); ++v) {
      std::printf("%s\"%s\":[", v ? "," : "", variants[v].name);
      for (size_t i = 0; i < gbps[v].size(); ++i) std::printf("%s%.3f", i ? "," : "", gbps[v][i]);
      std::printf("]");
    }
    std::printf("},\"checksum\":%llu}\n", static_cast<unsigned long long>(check));
  } else {
    std::printf("memory read bandwidth: %.2f GB/s (%ld threads, %zu MiB buffer, best of %ld reps)\n", best, threads,
                (part * threads) >> 20, reps);
    for (size_t v = 0; v < variants.size(); ++v) {
      std::printf("  %-26s best %6.2f  median %6.2f GB/s\n", variants[v].name,
                  *std::max_element(gbps[v].begin(), gbps[v].end()), medians[v]);
    }
  }
  munmap(mem, bytes);
  return 0;
}
