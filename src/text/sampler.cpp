// Sampling chain (see sampler.h): penalties -> greedy shortcut -> top-k -> top-p -> min-p ->
// temperature -> draw. Candidates are either in id order or sorted by (logit desc, id asc), a total
// order, so a seeded run depends only on the logits and parameters, never on sort instability.
#include "text/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "util/error.h"

namespace wai::text {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

uint64_t seed_or_random(uint64_t seed) {
  if (seed) return seed;
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

bool better(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

// Sorts the k best candidates to the front: selection in O(n), then O(k log k) (faster than a heap-based
// std::partial_sort when k is a sizable fraction of n).
void sort_prefix(std::vector<std::pair<float, int32_t>>& c, size_t k) {
  if (k < c.size()) std::nth_element(c.begin(), c.begin() + k, c.end(), better);
  std::sort(c.begin(), c.begin() + k, better);
}

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  return best;
}

}  // namespace

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(seed_or_random(p.seed)) {}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> history) {
  if (logits.empty()) invalid("sampler: empty logits");
  for (float& l : logits) {
    if (std::isnan(l)) l = kNegInf;
    else if (l == std::numeric_limits<float>::infinity()) l = std::numeric_limits<float>::max();
  }

  // Penalties over the last penalty_last_n ids of history (all of it when negative), llama.cpp style:
  // repetition divides a positive logit / multiplies a negative one once per distinct id; frequency
  // subtracts count * f; presence subtracts p once.
  const bool rep = p_.repetition_penalty > 0.0f && p_.repetition_penalty != 1.0f;
  if ((rep || p_.frequency_penalty != 0.0f || p_.presence_penalty != 0.0f) && p_.penalty_last_n != 0) {
    size_t n = history.size();
    if (p_.penalty_last_n > 0) n = std::min(n, static_cast<size_t>(p_.penalty_last_n));
    std::unordered_map<int32_t, int32_t> count;
    for (size_t i = history.size() - n; i < history.size(); ++i) ++count[history[i]];
    for (const auto& [id, c] : count) {
      if (id < 0 || static_cast<size_t>(id) >= logits.size()) continue;
      float& l = logits[id];
      if (rep) l = l > 0.0f ? l / p_.repetition_penalty : l * p_.repetition_penalty;
      l -= static_cast<float>(c) * p_.frequency_penalty + p_.presence_penalty;
    }
  }

  if (p_.temperature <= 0.0f || p_.top_k == 1) return argmax(logits);

  cand_.clear();
  for (size_t i = 0; i < logits.size(); ++i)
    if (logits[i] > kNegInf) cand_.emplace_back(logits[i], static_cast<int32_t>(i));
  if (cand_.empty()) return argmax(logits);  // everything is -inf: any id is as good; stay deterministic

  // Sorting is the costly part for a 32000-id row, so it is done only as far as a filter needs it:
  // top-k partially sorts the k best; top-p grows a sorted prefix until it holds the nucleus (usually a
  // few dozen ids); min-p and the draw need only the maximum. A sorted prefix is the same whichever way
  // it was produced, because `better` is a total order.
  bool sorted = false;
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < cand_.size()) {
    sort_prefix(cand_, p_.top_k);
    cand_.resize(p_.top_k);
    sorted = true;
  }
  float max_l = kNegInf;
  for (const auto& c : cand_) max_l = std::max(max_l, c.first);

  // top-p and min-p on the temperature-1 distribution (the chain order of llama.cpp).
  if (p_.top_p < 1.0f) {
    double total = 0.0;
    for (const auto& c : cand_) total += std::exp(static_cast<double>(c.first - max_l));
    const double target = static_cast<double>(std::max(p_.top_p, 0.0f)) * total;
    const size_t n = cand_.size();
    for (size_t k = sorted ? n : std::min<size_t>(64, n);; k = std::min(n, k * 4)) {
      if (!sorted) sort_prefix(cand_, k);
      double cum = 0.0;
      size_t keep = 0;
      while (keep < k && cum < target) cum += std::exp(static_cast<double>(cand_[keep++].first - max_l));
      if (cum >= target || k == n) {
        cand_.resize(std::max<size_t>(keep, 1));
        break;
      }
    }
  }
  if (p_.min_p > 0.0f) {
    const float floor = max_l + std::log(std::min(p_.min_p, 1.0f));  // p_i >= min_p * p_max
    std::erase_if(cand_, [floor](const std::pair<float, int32_t>& c) { return c.first < floor; });  // keeps the max
  }

  // Temperature, then one draw from the softmax: u in [0, 1) from the top 53 bits of the generator.
  const double inv_t = 1.0 / static_cast<double>(p_.temperature);
  double total = 0.0;
  std::vector<double>& w = weights_;
  w.resize(cand_.size());
  for (size_t i = 0; i < cand_.size(); ++i) {
    w[i] = std::exp((static_cast<double>(cand_[i].first) - max_l) * inv_t);
    total += w[i];
  }
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * total;
  double cum = 0.0;
  for (size_t i = 0; i < cand_.size(); ++i) {
    cum += w[i];
    if (u < cum) return cand_[i].second;
  }
  return cand_.back().second;
}

float log_softmax_at(std::span<const float> logits, int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= logits.size())
    invalid("log_softmax_at: id " + std::to_string(id) + " out of range [0, " + std::to_string(logits.size()) + ")");
  float mx = kNegInf;
  for (float l : logits) mx = std::max(mx, l);
  if (mx == kNegInf) return kNegInf;
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - mx);
  return static_cast<float>(static_cast<double>(logits[id]) - mx - std::log(sum));
}

}  // namespace wai::text
