// Request bodies -> generation inputs, with Workers AI's documented defaults and ranges.
//
// Workers AI (POST .../ai/run/{model}): prompt shape {prompt (1..131072 chars), raw, lora, ...} or
// messages shape {messages:[{role, content}], ...}; stream, max_tokens (default 256), temperature
// (default 0.6, 0..5), top_p (0..2, values > 1 act as 1), top_k (1..50), seed (1..9999999999),
// repetition_penalty (0..2; 0 = off), frequency_penalty and presence_penalty (0..2).
// OpenAI (chat/completions, completions): model, messages | prompt, stream, stream_options.include_usage,
// max_tokens | max_completion_tokens, temperature (0..2), top_p, top_k, seed (any integer),
// frequency/presence_penalty (-2..2), stop (string or array of up to 4), n (only 1), logprobs
// (chat: bool, top_logprobs must be 0; completions: integer, top alternatives are not computed).
// Violations throw ApiError 400/5006 "AiError: Bad input: ..." naming the field as a JSON pointer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/chat_template.h"
#include "text/sampler.h"

namespace wai::server {

struct GenInput {
  bool use_messages = false;          // messages shape (chat template applied)
  std::string prompt;                 // prompt shape
  bool raw = false;                   // prompt shape: no chat template
  std::vector<text::ChatMessage> messages;
  bool stream = false;
  int32_t max_tokens = 256;
  text::SamplingParams sampling;
  std::vector<std::string> stop;
  bool logprobs = false;
  bool include_usage = false;         // OpenAI stream_options.include_usage
  bool reject_if_busy = false;        // options.rejectIfBusy
  std::string model;                  // OpenAI body "model"
};

// Parses a request body as JSON (an empty body -> 400/3003, invalid JSON or a non-object -> 400/5006).
nlohmann::json parse_body(const std::string& body);

GenInput parse_workers_ai(const nlohmann::json& body);
GenInput parse_openai_chat(const nlohmann::json& body);
GenInput parse_openai_completion(const nlohmann::json& body);

}  // namespace wai::server
