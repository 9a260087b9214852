// The generation engine: one loop thread that decodes every active sequence together (continuous
// batching). Requests are submitted from any thread; their callbacks run on the loop thread and must
// be quick (hand data to an I/O thread, never block).
//
// Each step: admit queued requests into free slots (up to `parallel`) while the KV pool has room for
// them, build one model::Batch holding one decode token for every generating sequence plus a prompt
// chunk (at most `batch_size` tokens in all) for sequences still prefilling, run it, sample, and
// deliver tokens. A cancelled request (its callback returned false, or cancel() was called) leaves at
// the next step and its blocks go back to the pool.
//
// KV memory (model/kv/): one pool of blocks per engine, sized by a byte budget. With the prefix cache
// on, a new request starts on the blocks of the longest prefix of its prompt that earlier requests
// computed (prefix_index.h) and prefills only the rest; blocks no running sequence holds stay cached
// until the pool needs room (least recently used first). A new request whose prompt shares more
// whole blocks with a sequence still prefilling than the cache holds waits for that sequence to write
// them (requests arriving together with one system prompt compute it once). When a running sequence needs a block and
// none is left, the most recently admitted sequence is preempted: its blocks are released (and stay
// cached), it goes back to the head of the queue, and on its return it recomputes what is no longer
// cached and continues where it was (the tokens it already delivered are not sent again).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/forward.h"
#include "model/model.h"
#include "text/sampler.h"
#include "text/tokenizer.h"

namespace wai::runtime {

struct EngineOptions {
  int threads = 2;
  int parallel = 4;          // max sequences decoded together (slots)
  int max_queue = 64;        // waiting requests beyond the slots; more -> QueueFull
  int batch_size = 512;      // max tokens per forward pass (prefill chunk budget); raised to `parallel`
                             // when smaller, since every generating sequence feeds one token per step
  int64_t context_length = 0;  // per-sequence positions limit; 0 = model's context_length
  int64_t kv_cache_bytes = 0;  // KV pool budget; 0 = default_kv_cache_bytes(...)
  int kv_block_size = 16;      // positions per KV block
  bool prefix_cache = true;    // reuse cached prompt prefixes across requests
};

// The default KV budget: room for `parallel` sequences at the full context (a window bounds each
// sequence), twice over so that as much again stays cached for prefix reuse; capped at half the
// memory available now (MemAvailable), and never below one sequence's need.
int64_t default_kv_cache_bytes(const model::Config& cfg, const EngineOptions& opts, int64_t context_length);

enum class FinishReason { kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason r);  // "stop" | "length" | "cancelled" | "error"

struct GenerateRequest {
  std::vector<int32_t> prompt;   // already tokenized (with BOS when wanted)
  text::SamplingParams sampling;
  int32_t max_tokens = 256;
  std::vector<std::string> stop; // stop sequences (text)
  bool want_logprobs = false;
  // The generated text continues the prompt's text (raw completion): the first token keeps its
  // leading space ("Once upon a" -> " time"). false: the first space is stripped as decode() does
  // (a chat reply starts at its first word).
  bool continuation = false;
  // Requests share cached KV blocks only within one namespace (0: the base model; a LoRA adapter gets
  // its own, since its keys and values differ for the same tokens).
  uint64_t cache_namespace = 0;
};

struct TokenEvent {
  int32_t id = 0;
  std::string text;      // complete UTF-8 text released by this token (may be empty)
  float logprob = 0.0f;  // when want_logprobs
};

// kStop: end-of-generation token (not counted, not delivered) or a stop sequence (the token that
// completed it is delivered with the text before the stop string). kLength: max_tokens generated, or
// prompt + generated tokens reached the context length.
struct Completion {
  FinishReason reason = FinishReason::kStop;
  std::string error;           // when kError
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t cached_tokens = 0;   // prompt tokens whose K/V came from the prefix cache
  std::string tail_text;       // text released at the end (held-back bytes / stop-matcher flush)
  double time_to_first_token_s = 0;
  double total_s = 0;
};

struct Callbacks {
  // Return false to cancel generation.
  std::function<bool(const TokenEvent&)> on_token;
  std::function<void(const Completion&)> on_done;  // called exactly once
};

class RequestHandle {
 public:
  virtual ~RequestHandle() = default;
  virtual void cancel() = 0;  // thread-safe; on_done(kCancelled) follows within one step
};

struct EngineStats {
  int queued = 0;
  int active = 0;
  int parallel = 0;
  int64_t kv_bytes_used = 0;    // blocks held by running sequences
  int64_t kv_bytes_cached = 0;  // blocks no sequence holds, kept for prefix reuse
  int64_t kv_bytes_total = 0;   // the pool's budget (used + cached <= total)
  int64_t kv_block_bytes = 0;
  int64_t kv_block_size = 0;    // positions per block
  uint64_t tokens_generated = 0;
  uint64_t tokens_prompted = 0;       // prompt tokens prefilled (cache hits not counted)
  uint64_t prefix_prompt_tokens = 0;  // prompt tokens of admitted requests
  uint64_t prefix_hit_tokens = 0;     // of those, taken from the prefix cache
  uint64_t kv_evictions = 0;          // cached blocks evicted to make room
  uint64_t preemptions = 0;
  bool prefix_cache = false;
  bool weights_repacked = true;  // the background weight repack (model.h) has finished, or there is none
};

class QueueFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The request could never run: its prompt needs more KV blocks than the whole pool holds.
class KvBudgetExceeded : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Engine {
 public:
  Engine(std::shared_ptr<const model::Model> model, std::shared_ptr<const text::Tokenizer> tok, EngineOptions opts);
  ~Engine();  // stops the loop; pending requests finish with kCancelled

  // Throws QueueFull when the queue is full (or, with reject_if_busy, when no slot is free),
  // wai::Error (kInvalidInput) when the prompt does not fit the context, and KvBudgetExceeded when it
  // does not fit the KV pool.
  std::shared_ptr<RequestHandle> submit(GenerateRequest req, Callbacks cb, bool reject_if_busy = false);

  EngineStats stats() const;
  const model::Model& model() const;
  const text::Tokenizer& tokenizer() const;
  int64_t context_length() const;

  // Stop admitting; cancel everything still running after `grace`.
  void shutdown(std::chrono::milliseconds grace);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wai::runtime
