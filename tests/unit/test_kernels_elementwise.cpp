// The vectorized element operations against their portable definitions (force_portable), on values
// that cover the exp's clamping range and partial vectors.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu.h"
#include "kernels/elementwise.h"

namespace wai::kernels {
namespace {

std::vector<float> values(int64_t n, float scale, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

TEST(Elementwise, SwigluMatchesPortable) {
  for (int64_t n : {1, 15, 16, 17, 1000, 14336}) {
    auto gate = values(n, 6.0f, 1 + static_cast<unsigned>(n)), up = values(n, 2.0f, 2);
    // Extremes: exp's clamps on both sides, zero, the smallest normals.
    const float edge[] = {0.0f, -0.0f, 88.0f, -88.0f, 100.0f, -100.0f, 1e-30f, -1e-30f, 20.0f, -20.0f};
    for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]) && i < gate.size(); ++i) gate[i] = edge[i];
    auto fast = gate, port = gate;
    force_portable(false);
    swiglu(fast.data(), up.data(), n);
    force_portable(true);
    swiglu(port.data(), up.data(), n);
    force_portable(false);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_TRUE(std::isfinite(fast[i])) << gate[i];
      ASSERT_NEAR(fast[i], port[i], std::fabs(port[i]) * 1e-6f + 1e-30f) << "gate " << gate[i] << " up " << up[i];
    }
  }
}

TEST(Elementwise, SwigluIsSiluTimesUp) {
  // silu(x) = x * sigmoid(x): silu(0) = 0, silu(x) -> x for large x, -> 0 for very negative x.
  float gate[4] = {0.0f, 30.0f, -30.0f, 1.0f}, up[4] = {5.0f, 2.0f, 3.0f, 1.0f};
  swiglu(gate, up, 4);
  EXPECT_EQ(gate[0], 0.0f);
  EXPECT_NEAR(gate[1], 60.0f, 1e-4f);
  EXPECT_NEAR(gate[2], 0.0f, 1e-10f);
  EXPECT_NEAR(gate[3], 1.0f / (1.0f + std::exp(-1.0f)), 1e-7f);
}

TEST(Elementwise, RmsnormMatchesPortableAndDefinition) {
  for (int64_t n : {1, 7, 16, 64, 4099}) {
    const auto x = values(n, 3.0f, 10 + static_cast<unsigned>(n)), w = values(n, 1.0f, 11);
    std::vector<float> fast(n), port(n);
    force_portable(false);
    rmsnorm(x.data(), w.data(), fast.data(), n, 1e-5f);
    force_portable(true);
    rmsnorm(x.data(), w.data(), port.data(), n, 1e-5f);
    force_portable(false);
    double ss = 0;
    for (float v : x) ss += static_cast<double>(v) * v;
    const double scale = 1.0 / std::sqrt(ss / static_cast<double>(n) + 1e-5);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(fast[i], port[i], std::fabs(port[i]) * 1e-6f + 1e-30f);
      ASSERT_NEAR(fast[i], x[i] * scale * w[i], std::fabs(x[i] * scale * w[i]) * 1e-5 + 1e-30);
    }
  }
}

}  // namespace
}  // namespace wai::kernels
