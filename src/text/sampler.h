// Token sampling. Order (as llama.cpp): penalties -> top-k -> top-p -> min-p -> temperature -> draw.
// temperature 0 (or top_k 1) is greedy argmax. A seeded sampler is reproducible: same seed, same logits
// sequence, same tokens.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace wai::text {

struct SamplingParams {
  float temperature = 0.6f;        // 0..5
  int32_t top_k = 0;               // 0 = off
  float top_p = 1.0f;              // 1 = off (values > 1 act as 1)
  float min_p = 0.0f;              // 0 = off
  float repetition_penalty = 1.0f; // 1 = off; divides positive logits / multiplies negative ones
  float frequency_penalty = 0.0f;  // subtracts count * f
  float presence_penalty = 0.0f;   // subtracts p once per seen token
  int32_t penalty_last_n = 64;     // window of history the penalties look at
  uint64_t seed = 0;               // 0 = random seed
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // logits: [n_vocab] (modified in place: NaN -> -inf, penalties applied); history: previously
  // generated/prompt ids (for penalties; ids outside [0, n_vocab) are ignored). Throws wai::Error for
  // empty logits. repetition_penalty <= 0 is treated as off; top_p <= 0 keeps only the best token.
  int32_t sample(std::span<float> logits, std::span<const int32_t> history);
  const SamplingParams& params() const { return p_; }

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // (logit, id), scratch reused across calls
  std::vector<double> weights_;                  // scratch: softmax weights of cand_
};

// log-softmax of one logit row at `id` (for logprobs and eval).
float log_softmax_at(std::span<const float> logits, int32_t id);

}  // namespace wai::text
