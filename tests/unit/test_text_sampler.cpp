// Samplers: reproducibility, greedy equivalences, draw frequencies against the analytic distribution
// (chi-square), the effect of each penalty, log-softmax.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "text/sampler.h"
#include "util/error.h"

namespace {

using wai::text::Sampler;
using wai::text::SamplingParams;

std::vector<float> random_logits(std::mt19937& rng, int n) {
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Draws n samples from fresh copies of `logits`; returns counts per id.
std::vector<int> draw(Sampler& s, const std::vector<float>& logits, int n, std::vector<int32_t> history = {}) {
  std::vector<int> counts(logits.size());
  for (int i = 0; i < n; ++i) {
    std::vector<float> l = logits;
    ++counts.at(s.sample(l, history));
  }
  return counts;
}

// Pearson chi-square of counts against probabilities p (ids with p == 0 must have count 0).
double chi_square(const std::vector<int>& counts, const std::vector<double>& p, int n) {
  double chi = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "id " << i << " is outside the allowed set";
      continue;
    }
    const double e = p[i] * n;
    chi += (counts[i] - e) * (counts[i] - e) / e;
  }
  return chi;
}

std::vector<double> softmax(const std::vector<float>& l, double t, const std::vector<bool>& keep) {
  std::vector<double> p(l.size());
  double z = 0;
  for (size_t i = 0; i < l.size(); ++i)
    if (keep[i]) z += p[i] = std::exp(l[i] / t);
  for (auto& x : p) x /= z;
  return p;
}

// Chi-square critical values at p = 0.001 by degrees of freedom 1..4.
constexpr double kChi001[] = {0, 10.83, 13.82, 16.27, 18.47};

TEST(Sampler, SeededRunsAreReproducible) {
  std::mt19937 rng(5);
  std::vector<std::vector<float>> rows;
  for (int i = 0; i < 200; ++i) rows.push_back(random_logits(rng, 1000));
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.9f;
  p.top_k = 40;
  p.seed = 42;
  const auto run = [&](uint64_t seed) {
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (auto row : rows) out.push_back(s.sample(row, out));
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(Sampler, TopK1AndTemperature0AreGreedy) {
  std::mt19937 rng(6);
  for (int i = 0; i < 100; ++i) {
    auto l = random_logits(rng, 500);
    const int32_t best = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
    SamplingParams k1;
    k1.temperature = 1.5f;
    k1.top_k = 1;
    k1.seed = 1 + i;
    SamplingParams t0;
    t0.temperature = 0.0f;
    auto a = l, b = l;
    EXPECT_EQ(Sampler(k1).sample(a, {}), best);
    EXPECT_EQ(Sampler(t0).sample(b, {}), best);
  }
}

TEST(Sampler, TemperatureDrawsFollowTheSoftmax) {
  const std::vector<float> l = {2.0f, 1.0f, 0.0f, -1.0f, -2.5f};
  for (float t : {0.5f, 1.0f, 2.0f}) {
    SamplingParams p;
    p.temperature = t;
    p.seed = 7;
    Sampler s(p);
    const int n = 20000;
    const auto c = draw(s, l, n);
    EXPECT_LT(chi_square(c, softmax(l, t, {true, true, true, true, true}), n), kChi001[4]) << "T=" << t;
  }
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  // probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.75 keeps {0, 1}; top_p 0.85 keeps {0, 1, 2}.
  const std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  const int n = 20000;
  {
    SamplingParams p;
    p.temperature = 1.0f;
    p.top_p = 0.75f;
    p.seed = 11;
    Sampler s(p);
    const auto c = draw(s, l, n);
    EXPECT_LT(chi_square(c, softmax(l, 1.0, {true, true, false, false}), n), kChi001[1]);
  }
  {
    SamplingParams p;
    p.temperature = 0.8f;  // temperature applies after the nucleus is chosen
    p.top_p = 0.85f;
    p.seed = 12;
    Sampler s(p);
    const auto c = draw(s, l, n);
    EXPECT_LT(chi_square(c, softmax(l, 0.8, {true, true, true, false}), n), kChi001[2]);
  }
}

// A wide nucleus in a large vocabulary (hundreds of ids: the sampler's growing sorted prefix has to
// grow several times): draws stay inside the analytic nucleus and cover it.
TEST(Sampler, TopPOnALargeVocabulary) {
  std::mt19937 rng(21);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> l(5000);
  for (auto& x : l) x = d(rng);
  std::vector<int> order(l.size());
  for (size_t i = 0; i < l.size(); ++i) order[i] = static_cast<int>(i);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
  double total = 0;
  for (float x : l) total += std::exp(x);
  std::vector<bool> in(l.size());
  double cum = 0;
  size_t nucleus = 0;
  for (int id : order) {
    in[id] = true;
    ++nucleus;
    if ((cum += std::exp(l[id])) >= 0.3 * total) break;
  }
  ASSERT_GT(nucleus, 300u);
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.3f;
  p.seed = 5;
  Sampler s(p);
  const auto c = draw(s, l, 3000);
  size_t distinct = 0;
  for (size_t i = 0; i < l.size(); ++i) {
    if (!c[i]) continue;
    ++distinct;
    EXPECT_TRUE(in[i]) << "id " << i << " is outside the nucleus";
  }
  EXPECT_GT(distinct, nucleus * 8 / 10) << "nucleus " << nucleus;
}

TEST(Sampler, TopKAndMinP) {
  const std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  const int n = 20000;
  SamplingParams k;
  k.temperature = 1.0f;
  k.top_k = 2;
  k.seed = 13;
  Sampler sk(k);
  EXPECT_LT(chi_square(draw(sk, l, n), softmax(l, 1.0, {true, true, false, false}), n), kChi001[1]);
  SamplingParams m;
  m.temperature = 1.0f;
  m.min_p = 0.2f;  // keeps p >= 0.2 * 0.5 = 0.1
  m.seed = 14;
  Sampler sm(m);
  EXPECT_LT(chi_square(draw(sm, l, n), softmax(l, 1.0, {true, true, true, false}), n), kChi001[2]);
}

TEST(Sampler, RepetitionPenaltyLowersRepeatedTokens) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  std::vector<float> l = {2.0f, 1.5f, -1.0f, 0.5f};
  const std::vector<int32_t> hist = {0, 0, 2};
  EXPECT_EQ(s.sample(l, hist), 1);  // token 0 was the best but is repeated
  EXPECT_FLOAT_EQ(l[0], 1.0f);      // positive: divided once, however often it appeared
  EXPECT_FLOAT_EQ(l[2], -2.0f);     // negative: multiplied
  EXPECT_FLOAT_EQ(l[1], 1.5f);
  // With sampling, the repeated token's frequency drops.
  SamplingParams q;
  q.temperature = 1.0f;
  q.seed = 3;
  const std::vector<float> base = {1.0f, 1.0f};
  Sampler plain(q);
  q.repetition_penalty = 1.5f;
  Sampler pen(q);
  const auto c0 = draw(plain, base, 4000, {0});
  const auto c1 = draw(pen, base, 4000, {0});
  EXPECT_LT(chi_square(c0, softmax(base, 1.0, {true, true}), 4000), kChi001[1]);
  EXPECT_LT(chi_square(c1, softmax({1.0f / 1.5f, 1.0f}, 1.0, {true, true}), 4000), kChi001[1]);  // p0 = 0.417
  EXPECT_LT(c1[0], c0[0] - 150);
}

TEST(Sampler, FrequencyVersusPresence) {
  const std::vector<int32_t> hist = {0, 0, 0, 1};
  SamplingParams f;
  f.temperature = 0.0f;
  f.frequency_penalty = 0.5f;
  std::vector<float> lf = {3.0f, 3.0f, 3.0f};
  Sampler(f).sample(lf, hist);
  EXPECT_FLOAT_EQ(lf[0], 1.5f);  // 3 occurrences
  EXPECT_FLOAT_EQ(lf[1], 2.5f);  // 1 occurrence
  EXPECT_FLOAT_EQ(lf[2], 3.0f);
  SamplingParams pr;
  pr.temperature = 0.0f;
  pr.presence_penalty = 0.5f;
  std::vector<float> lp = {3.0f, 3.0f, 3.0f};
  Sampler(pr).sample(lp, hist);
  EXPECT_FLOAT_EQ(lp[0], 2.5f);  // once, however often
  EXPECT_FLOAT_EQ(lp[1], 2.5f);
  EXPECT_FLOAT_EQ(lp[2], 3.0f);
  // Only the last penalty_last_n ids count.
  SamplingParams w = f;
  w.penalty_last_n = 1;
  std::vector<float> lw = {3.0f, 3.0f, 3.0f};
  Sampler(w).sample(lw, hist);
  EXPECT_FLOAT_EQ(lw[0], 3.0f);
  EXPECT_FLOAT_EQ(lw[1], 2.5f);
}

TEST(Sampler, BadLogitsDoNotCrash) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 1;
  Sampler s(p);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (int i = 0; i < 50; ++i) {
    std::vector<float> l = {nan, 1.0f, -inf, nan};
    EXPECT_EQ(s.sample(l, std::vector<int32_t>{-5, 99}), 1);
  }
  std::vector<float> all = {-inf, -inf};
  EXPECT_EQ(s.sample(all, {}), 0);
  std::vector<float> pinf = {0.0f, inf};
  EXPECT_EQ(s.sample(pinf, {}), 1);
  std::vector<float> empty;
  EXPECT_THROW(s.sample(empty, {}), wai::Error);
}

TEST(Sampler, LogSoftmax) {
  const std::vector<float> l = {1.0f, 2.0f, 3.0f};
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(wai::text::log_softmax_at(l, i), l[i] - std::log(z), 1e-6);
  const std::vector<float> big = {1000.0f, 1000.0f};
  EXPECT_NEAR(wai::text::log_softmax_at(big, 0), -std::log(2.0), 1e-6);
  EXPECT_THROW(wai::text::log_softmax_at(l, 3), wai::Error);
}

}  // namespace
