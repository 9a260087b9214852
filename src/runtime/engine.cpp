// The generation engine: a request queue, `parallel` slots (one KV cache each) and one loop thread
// that decodes every active sequence in one forward pass per step (continuous batching).
//
// Threads and locks:
//   - submit(), stats(), cancel() and shutdown() run on any thread; the loop thread owns the slots,
//     the Forward scratch and every per-sequence state, and runs all callbacks.
//   - Signal::m guards the queue, the slot occupancy count and the shutdown flags. The loop never
//     holds it while running the model or a callback, so a callback may call cancel() or stats().
//
// Sequence life: queued -> admitted into a free slot (cache cleared) -> prefilling (prompt chunks of
// the step's token budget) -> generating (one token per step) -> finished (on_done, slot freed).
#include "runtime/engine.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "text/stop.h"
#include "util/error.h"

namespace wai::runtime {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "error";
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Shared by the engine and the handles it hands out (a handle may outlive the engine).
struct Signal {
  std::mutex m;
  std::condition_variable wake;  // loop: work arrived, cancel, shutdown
  std::condition_variable idle;  // shutdown(): a request finished
};

struct Request final : RequestHandle {
  GenerateRequest req;
  Callbacks cb;
  std::atomic<bool> cancelled{false};
  std::weak_ptr<Signal> signal;
  Clock::time_point submitted;

  void cancel() override {
    cancelled.store(true, std::memory_order_release);
    if (auto s = signal.lock()) {
      std::lock_guard<std::mutex> lk(s->m);
      s->wake.notify_all();
    }
  }
};

// One sequence's state while it occupies a slot. Invariants: during prefill
// cache->n_past() < n_prompt; while generating, tokens.size() == cache->n_past() + 1 (the last
// sampled token is fed at the next step, at position n_past()).
struct Slot {
  std::unique_ptr<model::KvCache> cache;
  std::shared_ptr<Request> r;  // null: free
  uint64_t admitted = 0;       // admission order (prefill budget goes to the oldest first)
  std::vector<int32_t> tokens; // prompt + generated ids (sampler history)
  size_t n_prompt = 0;
  int32_t n_generated = 0;
  std::optional<text::Sampler> sampler;
  std::optional<text::StreamDecoder> decoder;
  std::optional<text::StopMatcher> stop;
  Clock::time_point first_token;
  bool has_first_token = false;

  bool prefilling() const { return cache->n_past() < static_cast<int64_t>(n_prompt); }
};

}  // namespace

struct Engine::Impl {
  std::shared_ptr<const model::Model> model;
  std::shared_ptr<const text::Tokenizer> tok;
  EngineOptions opts;
  int64_t ctx = 0;         // per-sequence positions limit
  int batch_budget = 0;    // tokens per forward pass

  ThreadPool pool;
  model::Forward forward;
  std::vector<Slot> slots;
  std::vector<model::KvCache*> cache_ptrs;  // slots[i].cache, indexed by Batch::seq
  model::Batch batch;
  std::vector<float> logits;
  std::vector<float> row_copy;  // unmodified logits row, for logprobs
  uint64_t admit_counter = 0;
  int32_t prime_id = -1;  // some kNormal token, for GenerateRequest::continuation

  // Guarded by signal->m.
  std::shared_ptr<Signal> signal = std::make_shared<Signal>();
  std::deque<std::shared_ptr<Request>> queue;
  int occupied = 0;         // slots holding a request
  bool accepting = true;    // false after shutdown() began
  bool stop_loop = false;   // loop: cancel everything and exit

  // Read by stats() without the lock.
  std::atomic<int> st_queued{0}, st_active{0};
  std::atomic<int64_t> st_kv_used{0};
  std::atomic<uint64_t> st_generated{0}, st_prompted{0};
  int64_t kv_total = 0;

  std::thread thread;
  std::once_flag shutdown_once;

  Impl(std::shared_ptr<const model::Model> m, std::shared_ptr<const text::Tokenizer> t, EngineOptions o)
      : model(std::move(m)), tok(std::move(t)), opts(o), pool(std::max(1, o.threads)), forward(model, pool) {
    const auto& cfg = model->config();
    if (opts.parallel < 1) invalid("engine: parallel must be >= 1, got " + std::to_string(opts.parallel));
    if (opts.max_queue < 0) invalid("engine: max_queue must be >= 0, got " + std::to_string(opts.max_queue));
    if (opts.batch_size < 1) invalid("engine: batch_size must be >= 1, got " + std::to_string(opts.batch_size));
    if (opts.context_length < 0) invalid("engine: context_length must be >= 0");
    ctx = opts.context_length > 0 ? opts.context_length : cfg.context_length;
    if (ctx < 2) invalid("engine: context length " + std::to_string(ctx) + " is too small");
    if (tok->n_vocab() != cfg.n_vocab)
      invalid("engine: tokenizer has " + std::to_string(tok->n_vocab()) + " tokens but the model's vocabulary is " +
              std::to_string(cfg.n_vocab));
    // Every generating sequence feeds one token per step, so the budget is at least `parallel`.
    batch_budget = std::max(opts.batch_size, opts.parallel);
    forward.set_max_chunk(batch_budget);  // one chunk per step: scratch sized for the budget
    for (int32_t id = 0; id < tok->n_vocab() && prime_id < 0; ++id)
      if (tok->type(id) == text::TokenType::kNormal) prime_id = id;
    slots.resize(opts.parallel);
    for (auto& s : slots) {
      s.cache = std::make_unique<model::KvCache>(cfg, ctx);
      cache_ptrs.push_back(s.cache.get());
      kv_total += s.cache->bytes();
    }
    thread = std::thread([this] { loop(); });
  }

  int free_slots_locked() const { return opts.parallel - occupied; }

  std::shared_ptr<RequestHandle> submit(GenerateRequest req, Callbacks cb, bool reject_if_busy) {
    if (req.prompt.empty()) invalid("the prompt is empty (no tokens)");
    if (static_cast<int64_t>(req.prompt.size()) + 1 > ctx)
      invalid("the prompt has " + std::to_string(req.prompt.size()) + " tokens but the context length is " +
              std::to_string(ctx) + " (prompt tokens + 1 must fit)");
    auto r = std::make_shared<Request>();
    r->req = std::move(req);
    r->cb = std::move(cb);
    r->signal = signal;
    r->submitted = Clock::now();
    {
      std::lock_guard<std::mutex> lk(signal->m);
      if (!accepting) throw QueueFull("the engine is shutting down");
      // Requests in the queue that will find a free slot at the next step are not "waiting".
      const int waiting = static_cast<int>(queue.size()) - free_slots_locked();
      if (reject_if_busy && waiting >= 0) throw QueueFull("all " + std::to_string(opts.parallel) + " slots are busy");
      if (waiting >= opts.max_queue)
        throw QueueFull("the queue is full (" + std::to_string(opts.max_queue) + " waiting requests)");
      queue.push_back(r);
      st_queued.store(static_cast<int>(queue.size()), std::memory_order_relaxed);
    }
    signal->wake.notify_all();
    return r;
  }

  // ---- loop thread ----------------------------------------------------------------------------

  void loop() {
    for (;;) {
      std::vector<std::shared_ptr<Request>> dropped;  // cancelled while queued, or shutdown
      bool exiting = false;
      {
        std::unique_lock<std::mutex> lk(signal->m);
        signal->wake.wait(lk, [&] { return stop_loop || !queue.empty() || occupied > 0; });
        exiting = stop_loop;
        for (auto it = queue.begin(); it != queue.end();) {
          if (exiting || (*it)->cancelled.load(std::memory_order_acquire)) {
            dropped.push_back(*it);
            it = queue.erase(it);
          } else {
            ++it;
          }
        }
        for (auto& s : slots) {
          if (s.r || queue.empty()) continue;
          s.r = std::move(queue.front());
          queue.pop_front();
          ++occupied;
          s.admitted = ++admit_counter;
          s.cache->clear();
        }
        st_queued.store(static_cast<int>(queue.size()), std::memory_order_relaxed);
        st_active.store(occupied, std::memory_order_relaxed);
      }
      for (auto& r : dropped) {
        Completion c;
        c.reason = FinishReason::kCancelled;
        c.prompt_tokens = static_cast<int32_t>(r->req.prompt.size());
        c.total_s = seconds_between(r->submitted, Clock::now());
        deliver_done(*r, c);
      }
      for (auto& s : slots) {
        if (!s.r) continue;
        if (!s.sampler.has_value() && !start_or_fail(s)) continue;  // just admitted
        if (exiting || s.r->cancelled.load(std::memory_order_acquire)) finish(s, FinishReason::kCancelled);
      }
      if (exiting) break;
      try {
        step();
      } catch (const std::exception& e) {
        // Not a model error (those are handled in step()): e.g. out of memory building the batch.
        for (auto& s : slots)
          if (s.r) finish(s, FinishReason::kError, std::string("engine: ") + e.what());
      }
    }
  }

  bool start_or_fail(Slot& s) {
    try {
      return start(s);
    } catch (const std::exception& e) {  // e.g. the sampler rejected its parameters
      finish(s, FinishReason::kError, e.what(), /*flush=*/false);
      return false;
    }
  }

  // Sets up a just-admitted slot; false when the request ended at once (invalid ids, max_tokens 0).
  bool start(Slot& s) {
    const auto& req = s.r->req;
    s.tokens = req.prompt;
    s.n_prompt = req.prompt.size();
    s.n_generated = 0;
    s.has_first_token = false;
    s.decoder.emplace(*tok);
    // The decoder strips the first piece's leading space; feeding it one ordinary piece first (its
    // text discarded) makes it treat the generated tokens as a continuation.
    if (req.continuation && prime_id >= 0) s.decoder->push(prime_id);
    s.stop.emplace(req.stop);
    s.sampler.emplace(req.sampling);
    const int64_t n_vocab = model->config().n_vocab;
    for (size_t i = 0; i < req.prompt.size(); ++i) {
      if (req.prompt[i] < 0 || req.prompt[i] >= n_vocab) {
        finish(s, FinishReason::kError,
               "prompt token " + std::to_string(i) + " has id " + std::to_string(req.prompt[i]) +
                   ", outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
        return false;
      }
    }
    if (req.max_tokens <= 0) {
      finish(s, FinishReason::kLength);
      return false;
    }
    return true;
  }

  // One forward pass: a decode token for every generating slot, then prompt chunks for the
  // prefilling slots (oldest admission first) within the remaining budget.
  void step() {
    batch.clear();
    std::vector<Slot*> out_slot;  // which slot each logits row belongs to, in batch order
    for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
      Slot& s = slots[i];
      if (!s.r || s.prefilling()) continue;
      batch.add(s.tokens.back(), static_cast<int32_t>(s.cache->n_past()), i, true);
      out_slot.push_back(&s);
    }
    std::vector<int> prefill;
    for (int i = 0; i < static_cast<int>(slots.size()); ++i)
      if (slots[i].r && slots[i].prefilling()) prefill.push_back(i);
    std::sort(prefill.begin(), prefill.end(), [&](int a, int b) { return slots[a].admitted < slots[b].admitted; });
    for (int i : prefill) {
      Slot& s = slots[i];
      const int64_t budget = batch_budget - static_cast<int64_t>(batch.size());
      if (budget <= 0) break;
      const int64_t from = s.cache->n_past();
      const int64_t n = std::min<int64_t>(budget, static_cast<int64_t>(s.n_prompt) - from);
      for (int64_t p = from; p < from + n; ++p) {
        const bool last = p + 1 == static_cast<int64_t>(s.n_prompt);
        batch.add(s.tokens[p], static_cast<int32_t>(p), i, last);
        if (last) out_slot.push_back(&s);
      }
      st_prompted.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    }
    if (batch.size() == 0) return;

    logits.clear();
    try {
      forward.run(batch, cache_ptrs, logits);
    } catch (const std::exception& e) {
      // The caches of every sequence in this batch are in an unknown state: end them all.
      std::vector<bool> in_batch(slots.size(), false);
      for (int32_t q : batch.seq) in_batch[q] = true;
      for (size_t i = 0; i < slots.size(); ++i)
        if (in_batch[i] && slots[i].r) finish(slots[i], FinishReason::kError, std::string("model: ") + e.what());
      update_kv_stats();
      return;
    }
    const size_t n_vocab = static_cast<size_t>(model->config().n_vocab);
    for (size_t row = 0; row < out_slot.size(); ++row) {
      Slot& s = *out_slot[row];
      if (!s.r) continue;
      std::span<float> lg(logits.data() + row * n_vocab, n_vocab);
      try {
        on_logits(s, lg);
      } catch (const std::exception& e) {
        if (s.r) finish(s, FinishReason::kError, e.what(), /*flush=*/false);
      }
    }
    update_kv_stats();
  }

  // Samples the next token of `s` from its logits row and delivers it (or finishes the sequence).
  void on_logits(Slot& s, std::span<float> lg) {
    const auto& req = s.r->req;
    if (req.want_logprobs) row_copy.assign(lg.begin(), lg.end());
    int32_t id;
    try {
      id = s.sampler->sample(lg, s.tokens);
    } catch (const std::exception& e) {
      finish(s, FinishReason::kError, std::string("sampler: ") + e.what());
      return;
    }
    const auto now = Clock::now();
    if (!s.has_first_token) {
      s.has_first_token = true;
      s.first_token = now;
    }
    if (tok->is_eog(id)) {
      finish(s, FinishReason::kStop);
      return;
    }
    s.tokens.push_back(id);
    ++s.n_generated;
    st_generated.fetch_add(1, std::memory_order_relaxed);

    TokenEvent ev;
    ev.id = id;
    auto res = s.stop->push(s.decoder->push(id));
    ev.text = std::move(res.emit);
    if (req.want_logprobs) ev.logprob = text::log_softmax_at(row_copy, id);
    bool keep = true;
    if (s.r->cb.on_token) {
      try {
        keep = s.r->cb.on_token(ev);
      } catch (...) {
        keep = false;
      }
    }
    if (!keep || s.r->cancelled.load(std::memory_order_acquire)) {
      finish(s, FinishReason::kCancelled);
    } else if (res.stopped) {
      finish(s, FinishReason::kStop, {}, /*flush=*/false);
    } else if (s.n_generated >= req.max_tokens) {
      finish(s, FinishReason::kLength);
    } else if (static_cast<int64_t>(s.tokens.size()) >= ctx) {
      finish(s, FinishReason::kLength);  // no position left to feed the last token
    }
  }

  // Ends the sequence in `s`: flushes held-back text into tail_text (unless a stop sequence already
  // matched, or the request was cancelled), frees the slot, then calls on_done.
  void finish(Slot& s, FinishReason reason, std::string error = {}, bool flush = true) {
    std::shared_ptr<Request> r = std::move(s.r);
    Completion c;
    c.reason = reason;
    c.error = std::move(error);
    c.prompt_tokens = static_cast<int32_t>(r->req.prompt.size());
    c.completion_tokens = s.n_generated;
    if (flush && (reason == FinishReason::kStop || reason == FinishReason::kLength) && s.decoder && s.stop) {
      auto res = s.stop->push(s.decoder->flush());
      c.tail_text = std::move(res.emit);
      if (res.stopped)
        c.reason = FinishReason::kStop;
      else
        c.tail_text += s.stop->flush();
    }
    const auto now = Clock::now();
    c.total_s = seconds_between(r->submitted, now);
    c.time_to_first_token_s = s.has_first_token ? seconds_between(r->submitted, s.first_token) : c.total_s;
    s.cache->clear();
    s.sampler.reset();
    s.decoder.reset();
    s.stop.reset();
    s.tokens.clear();
    {
      std::lock_guard<std::mutex> lk(signal->m);
      --occupied;
      st_active.store(occupied, std::memory_order_relaxed);
    }
    update_kv_stats();
    deliver_done(*r, c);
  }

  void deliver_done(Request& r, const Completion& c) {
    if (r.cb.on_done) {
      try {
        r.cb.on_done(c);
      } catch (...) {
        // A callback's failure is the caller's problem; the loop keeps running.
      }
    }
    signal->idle.notify_all();
  }

  void update_kv_stats() {
    int64_t used = 0;
    for (auto& s : slots) {
      if (!s.r) continue;
      const int64_t cap = s.cache->capacity();
      used += s.cache->bytes() / cap * std::min(s.cache->n_past(), cap);
    }
    st_kv_used.store(used, std::memory_order_relaxed);
  }

  // ---- shutdown -------------------------------------------------------------------------------

  void shutdown(std::chrono::milliseconds grace) {
    std::call_once(shutdown_once, [&] {
      std::unique_lock<std::mutex> lk(signal->m);
      accepting = false;
      signal->idle.wait_for(lk, grace, [&] { return queue.empty() && occupied == 0; });
      stop_loop = true;
      lk.unlock();
      signal->wake.notify_all();
      if (thread.joinable()) thread.join();
    });
  }
};

Engine::Engine(std::shared_ptr<const model::Model> model, std::shared_ptr<const text::Tokenizer> tok, EngineOptions opts)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(tok), opts)) {}

Engine::~Engine() { shutdown(std::chrono::milliseconds(0)); }

std::shared_ptr<RequestHandle> Engine::submit(GenerateRequest req, Callbacks cb, bool reject_if_busy) {
  return impl_->submit(std::move(req), std::move(cb), reject_if_busy);
}

EngineStats Engine::stats() const {
  EngineStats s;
  s.queued = impl_->st_queued.load(std::memory_order_relaxed);
  s.active = impl_->st_active.load(std::memory_order_relaxed);
  s.parallel = impl_->opts.parallel;
  s.kv_bytes_used = impl_->st_kv_used.load(std::memory_order_relaxed);
  s.kv_bytes_total = impl_->kv_total;
  s.tokens_generated = impl_->st_generated.load(std::memory_order_relaxed);
  s.tokens_prompted = impl_->st_prompted.load(std::memory_order_relaxed);
  return s;
}

const model::Model& Engine::model() const { return *impl_->model; }
const text::Tokenizer& Engine::tokenizer() const { return *impl_->tok; }
int64_t Engine::context_length() const { return impl_->ctx; }

void Engine::shutdown(std::chrono::milliseconds grace) { impl_->shutdown(grace); }

}  // namespace wai::runtime
