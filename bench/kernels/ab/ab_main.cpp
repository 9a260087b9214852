// Interleaved A/B timing of matmul kernel variants: the variants (one kernel source file compiled up to
// three times, each with its own -D flags and its exported GemmKernel renamed to kVarA/B/C by ab.sh)
// run alternately, call by call, on the same weights and activations, so that they share the
// machine's state: on a VM whose speed swings 20-40% (at times 2x) for seconds, that is the only way
// to see a 5-10% difference. Weights rotate through ~1 GiB of copies, so every call reads them from
// DRAM as decode and batched decode do. Prints best / p10 / median ms per variant and the largest
// difference from matmul_reference (a variant that is fast and wrong shows here).
//   ab_main ROWS COLS N TYPE [THREADS] [ITERATIONS]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/gemm.h"
#include "kernels/quant.h"
#include "util/huge_pages.h"
#include "util/thread_pool.h"

using namespace wai;
namespace wai::kernels {
extern const GemmKernel kVarA, kVarB, kVarC;
extern const int kVariants;
}  // namespace wai::kernels

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: ab_main ROWS COLS N TYPE [THREADS] [ITERATIONS]\n");
    return 2;
  }
  const int64_t rows = std::atoll(argv[1]), cols = std::atoll(argv[2]), n = std::atoll(argv[3]);
  const auto t = dtype_from_name(argv[4]);
  const int threads = argc > 5 ? std::atoi(argv[5]) : 2;
  const int iters = argc > 6 ? std::atoi(argv[6]) : (n >= 64 ? 40 : 300);
  if (!t || rows <= 0 || cols <= 0 || n <= 0 || threads <= 0 || iters <= 0) {
    std::fprintf(stderr, "ab_main: bad arguments\n");
    return 2;
  }
  kernels::cpu_features();  // (also asks the OS for AMX state)
  ThreadPool pool(threads);
  const size_t rb = *row_bytes(*t, cols);
  std::vector<uint8_t> w(rb * rows);
  std::mt19937 rng(1);
  std::normal_distribution<float> g(0, 0.05f);
  std::vector<float> f(cols);
  for (int64_t r = 0; r < std::min<int64_t>(rows, 64); ++r) {  // 64 distinct rows, repeated
    for (auto& v : f) v = g(rng);
    kernels::quantize_row(*t, f.data(), w.data() + r * rb, cols);
  }
  for (int64_t r = 64; r < rows; ++r) std::memcpy(w.data() + r * rb, w.data() + (r % 64) * rb, rb);
  const size_t copies = std::max<size_t>(1, (size_t{1} << 30) / w.size());
  std::vector<uint8_t> big(w.size() * copies);
  for (size_t k = 0; k < copies; ++k) std::memcpy(big.data() + k * w.size(), w.data(), w.size());
  std::vector<float> x(n * cols);
  for (auto& v : x) v = g(rng) * 20;
  const kernels::GemmKernel* ks[3] = {&kernels::kVarA, &kernels::kVarB, &kernels::kVarC};
  const int nv = kernels::kVariants;
  // Activations and outputs in huge pages, as the engine has them (util/huge_pages.h). In 4 KiB pages
  // each variant's speed depended on its own buffers' physical pages: three copies of the AMX kernel
  // differed by up to 20% (the last-allocated fastest; reversing the allocation order moved the lead).
  auto huge = [](size_t bytes) {
    void* p = huge_alloc(bytes);
    std::memset(p, 0, bytes);
    return p;
  };
  std::vector<uint8_t*> act(nv);
  std::vector<float*> y(nv);
  for (int v = 0; v < nv; ++v) {
    act[v] = static_cast<uint8_t*>(huge(ks[v]->act_bytes(*t, n, cols)));
    y[v] = static_cast<float*>(huge(n * rows * sizeof(float)));
    ks[v]->prepare(*t, x.data(), n, cols, 0, n, act[v]);
  }
  std::vector<std::vector<double>> ms(nv);
  size_t next = 0;
  for (int it = 0; it < iters; ++it)
    for (int k = 0; k < nv; ++k) {
      // Each iteration starts at another variant, so that none always runs right after the same one.
      const int v = (it + k) % nv;
      kernels::GemmArgs a;
      a.w = kernels::MatRef{*t, big.data() + (next++ % copies) * w.size(), rows, cols};
      a.xq = act[v];
      a.n = n;
      a.y = y[v];
      a.ldy = rows;
      const auto c = std::chrono::steady_clock::now();
      pool.parallel_for(rows, [&](int64_t r0, int64_t r1) { ks[v]->run(a, r0, r1); }, ks[v]->row_grain);
      ms[v].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - c).count() * 1e3);
    }
  std::vector<float> ref(n * rows);
  kernels::matmul_reference(kernels::MatRef{*t, w.data(), rows, cols}, x.data(), n, ref.data());
  for (int v = 0; v < nv; ++v) {
    double md = 0;
    for (size_t i = 0; i < ref.size(); ++i) md = std::max(md, static_cast<double>(std::fabs(y[v][i] - ref[i])));
    auto s = ms[v];
    std::sort(s.begin(), s.end());
    std::printf("var%c %s %lldx%lld n=%lld threads %d: best %.3f ms  p10 %.3f  median %.3f  (%.1f GMAC/s best)  max |y - ref| %.3g\n",
                'A' + v, argv[4], static_cast<long long>(rows), static_cast<long long>(cols), static_cast<long long>(n), threads,
                s[0], s[s.size() / 10], s[s.size() / 2], static_cast<double>(rows * cols * n) / s[0] / 1e6, md);
  }
  for (int v = 0; v < nv; ++v) {
    huge_free(act[v]);
    huge_free(y[v]);
  }
}
