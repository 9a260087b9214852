// Micro-benchmark of kernels::matmul at Mistral-7B shapes: GB/s of weights streamed for decode
// (n = 1) and GFLOP/s (2 * rows * cols * n / s) for prefill batches.
// Decode rotates through copies of the matrix totalling --mib MiB (default 1024, beyond the 300 MiB
// L3 of the dev machine) so that it streams from DRAM as a real decode does; compare its GB/s with
// wai-bandwidth run at the same time. Prefill reuses one copy (compute bound).
//   wai-bench-kernels [--threads T] [--n N] [--mib M] [--types q4_0,q8_0,...] [--shape ROWSxCOLS] [--stream] [--portable] [--x16]
// (--shape: one shape instead of the three 7B ones, e.g. 256x4096 to time a kernel from L2;
// --stream: the batch too rotates through the copies, for batched decode; --x16: q4_0 / q8_0 are also
// repacked (kernels/repack.h) and both layouts are timed call by call, alternating, wall medians.)
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "kernels/repack.h"
#include "util/thread_pool.h"

using namespace wai;

int main(int argc, char** argv) {
  int threads = 2;
  int64_t nbatch = 128;
  int64_t mib = 1024;
  bool stream = false;  // batches too read the weights from DRAM (as batched decode does)
  bool x16 = false;     // q4_0 / q8_0: GGUF's layout and the repacked one, alternating
  std::string types = "q4_0,q8_0,q4_K,q6_K,f16,bf16";
  std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 4096}, {14336, 4096}, {4096, 14336}};  // rows, cols
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--n") && i + 1 < argc) nbatch = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--types") && i + 1 < argc) types = argv[++i];
    else if (!std::strcmp(argv[i], "--mib") && i + 1 < argc) mib = std::atoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--portable")) kernels::force_portable(true);
    else if (!std::strcmp(argv[i], "--stream")) stream = true;
    else if (!std::strcmp(argv[i], "--x16")) x16 = true;
    else if (!std::strcmp(argv[i], "--shape") && i + 1 < argc) {
      long long r = 0, c = 0;
      if (std::sscanf(argv[++i], "%lldx%lld", &r, &c) == 2 && r > 0 && c > 0) shapes = {{r, c}};
    }
  }
  std::printf("cpu: %s, threads %d\n", kernels::cpu_description().c_str(), threads);
  ThreadPool pool(threads);
  std::mt19937 rng(1);
  std::normal_distribution<float> g(0, 0.05f);
  size_t pos = 0;
  while (pos < types.size()) {
    size_t comma = types.find(',', pos);
    if (comma == std::string::npos) comma = types.size();
    const auto t = dtype_from_name(types.substr(pos, comma - pos));
    pos = comma + 1;
    if (!t) continue;
    for (const auto& s : shapes) {
      const int64_t rows = s.first, cols = s.second;
      const size_t rb = *row_bytes(*t, cols);
      // 64 distinct quantized rows, repeated (quantizing 58M weights with the K-quant search is slow).
      std::vector<uint8_t> w(rb * rows);
      std::vector<float> f(cols);
      for (int r = 0; r < 64; ++r) {
        for (auto& v : f) v = g(rng);
        kernels::quantize_row(*t, f.data(), w.data() + r * rb, cols);
      }
      for (int64_t r = 64; r < rows; ++r) std::memcpy(w.data() + r * rb, w.data() + (r % 64) * rb, rb);
      const size_t copies = std::max<size_t>(1, static_cast<size_t>(mib << 20) / w.size());
      std::vector<uint8_t> big(w.size() * copies);
      for (size_t k = 0; k < copies; ++k) std::memcpy(big.data() + k * w.size(), w.data(), w.size());
      const bool both = x16 && kernels::x16_available(kernels::MatRef{*t, w.data(), rows, cols});
      std::vector<uint8_t> big16(both ? big.size() : 0);
      for (size_t k = 0; both && k < copies; ++k)
        kernels::repack_x16(kernels::MatRef{*t, big.data() + k * w.size(), rows, cols}, big16.data() + k * w.size(), 0,
                            rows / kernels::kX16Rows);
      for (int64_t n : {int64_t{1}, nbatch}) {
        std::vector<float> x(n * cols), y(n * rows);
        for (auto& v : x) v = g(rng) * 20;
        if (both) {  // alternating calls, GGUF layout then q4x16 on the same copy
          std::vector<double> ts[2];
          size_t k = 0;
          const auto t0 = std::chrono::steady_clock::now();
          for (int rep = 0; rep < 400 && std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 1.0; ++rep) {
            k = n == 1 || stream ? (k + 1) % copies : 0;
            for (int v = 0; v < 2; ++v) {
              const kernels::MatRef m{*t, (v ? big16 : big).data() + k * w.size(), rows, cols,
                                      v ? kernels::x16_layout(*t) : kernels::MatLayout::kRows};
              const auto c = std::chrono::steady_clock::now();
              kernels::matmul(m, x.data(), n, y.data(), pool);
              if (rep > 0) ts[v].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - c).count());
            }
          }
          for (int v = 0; v < 2; ++v) {
            std::sort(ts[v].begin(), ts[v].end());
            const double med = ts[v][ts[v].size() / 2];
            std::printf("%-5s %5lld x %5lld  n=%-4lld %-6s median %8.3f ms (best %8.3f)  %6.1f GB/s  %7.1f GFLOP/s\n",
                        std::string(dtype_name(*t)).c_str(), static_cast<long long>(rows), static_cast<long long>(cols),
                        static_cast<long long>(n), v ? "x16" : "gguf", med * 1e3, ts[v][0] * 1e3,
                        static_cast<double>(w.size()) / med / 1e9, 2.0 * rows * cols * n / med / 1e9);
          }
          std::fflush(stdout);
          continue;
        }
        size_t next = 0;
        auto mat = [&] {
          const size_t k = n == 1 || stream ? next++ % copies : 0;
          return kernels::MatRef{*t, big.data() + k * w.size(), rows, cols};
        };
        kernels::matmul(mat(), x.data(), n, y.data(), pool);  // warm up
        int reps = 0;
        timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        const auto t0 = std::chrono::steady_clock::now();
        double el = 0, best = 1e30;
        do {
          const auto c = std::chrono::steady_clock::now();
          kernels::matmul(mat(), x.data(), n, y.data(), pool);
          best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - c).count());
          ++reps;
          el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        } while (el < 0.5 && reps < 200);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        // The machine may be shared: CPU seconds per thread is the better estimate of the kernel's
        // speed when other processes take cores (it still includes pool spin-waits).
        const double cpu = ((c1.tv_sec - c0.tv_sec) + 1e-9 * (c1.tv_nsec - c0.tv_nsec)) / reps / threads;
        const double sec = (cpu > 0 && cpu < el / reps) ? cpu : el / reps;
        std::printf("%-5s %5lld x %5lld  n=%-4lld %8.3f ms (wall %8.3f, best %8.3f)  %6.1f GB/s  %7.1f GFLOP/s\n", std::string(dtype_name(*t)).c_str(),
                    static_cast<long long>(rows), static_cast<long long>(cols), static_cast<long long>(n), sec * 1e3, el / reps * 1e3, best * 1e3,
                    static_cast<double>(w.size()) / sec / 1e9, 2.0 * rows * cols * n / sec / 1e9);
        std::fflush(stdout);
      }
    }
  }
}
