// The generation engine: a request queue, `parallel` slots, one KV pool (kv_manager.h) and one loop
// thread that decodes every active sequence in one forward pass per step (continuous batching).
//
// Threads and locks:
//   - submit(), stats(), cancel() and shutdown() run on any thread; the loop thread owns the slots,
//     the pool, the Forward scratch and every per-sequence state, and runs all callbacks.
//   - Signal::m guards the queue, the slot occupancy count and the shutdown flags. The loop never
//     holds it while running the model or a callback, so a callback may call cancel() or stats().
//
// Sequence life: queued -> admitted into a free slot once the pool has room for its prompt (starting
// on the longest cached prefix) -> prefilling (prompt chunks of the step's token budget) ->
// generating (one token per step) -> finished (on_done; its blocks go back to the pool, indexed for
// reuse). A running sequence may be preempted when the pool runs dry (see engine.h): it waits at the
// head of the queue with its state and resumes by prefilling what it had.
#include "runtime/engine.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "runtime/kv_manager.h"
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

// One sequence's state, in a slot or (preempted) waiting to return to one. Invariants: while
// prefilling, cache->n_past() < prefill_end; while generating, tokens.size() == cache->n_past() + 1
// (the last sampled token is fed at the next step, at position n_past()).
struct Sequence {
  std::shared_ptr<Request> r;
  std::unique_ptr<model::KvCache> cache;
  uint64_t admitted = 0;        // admission order (prefill budget goes to the oldest first)
  std::vector<int32_t> tokens;  // prompt + generated ids (sampler history; tokens[p] is at position p)
  size_t n_prompt = 0;
  // Positions to prefill before decoding: the prompt, or after a preemption everything but the last
  // sampled token; sample_at_end: the last prefilled position's logits give the next token.
  int64_t prefill_end = 0;
  bool sample_at_end = true;
  int32_t n_generated = 0;
  int32_t cached_tokens = 0;    // at first admission (reported)
  bool started = false;         // sampler etc. set up (first admission)
  std::vector<model::BlockKey> keys;  // chained keys of the whole blocks so far (prefix index)
  std::optional<text::Sampler> sampler;
  std::optional<text::StreamDecoder> decoder;
  std::optional<text::StopMatcher> stop;
  Clock::time_point first_token;
  bool has_first_token = false;

  bool prefilling() const { return cache->n_past() < prefill_end; }
  uint64_t ns() const { return r->req.cache_namespace; }
};

// "1.5 MiB"
std::string mib(int64_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return b;
}

}  // namespace

struct Engine::Impl {
  std::shared_ptr<const model::Model> model;
  std::shared_ptr<const text::Tokenizer> tok;
  EngineOptions opts;
  int64_t ctx = 0;         // per-sequence positions limit
  int batch_budget = 0;    // tokens per forward pass

  ThreadPool pool;
  model::Forward forward;
  std::optional<KvManager> kv;
  std::vector<std::unique_ptr<Sequence>> slots;  // null: free
  std::deque<std::unique_ptr<Sequence>> preempted;  // loop thread only; admitted before the queue
  std::vector<model::KvCache*> step_caches;  // this step's batch: Batch::seq indexes it
  model::Batch batch;
  std::vector<float> logits;
  std::vector<float> row_copy;  // unmodified logits row, for logprobs
  uint64_t admit_counter = 0;
  int32_t prime_id = -1;  // some kNormal token, for GenerateRequest::continuation

  // Guarded by signal->m.
  std::shared_ptr<Signal> signal = std::make_shared<Signal>();
  std::deque<std::shared_ptr<Request>> queue;
  int occupied = 0;         // slots holding a sequence, plus preempted sequences
  bool accepting = true;    // false after shutdown() began
  bool stop_loop = false;   // loop: cancel everything and exit

  // Read by stats() without the lock.
  std::atomic<int> st_queued{0}, st_active{0};
  std::atomic<int64_t> st_kv_used{0}, st_kv_cached{0};
  std::atomic<uint64_t> st_generated{0}, st_prompted{0}, st_prefix_prompt{0}, st_prefix_hit{0}, st_evictions{0},
      st_preemptions{0};
  int64_t kv_total = 0, kv_block_bytes = 0, n_blocks = 0;

  std::thread thread;
  std::once_flag shutdown_once;

  Impl(std::shared_ptr<const model::Model> m, std::shared_ptr<const text::Tokenizer> t, EngineOptions o)
      : model(std::move(m)), tok(std::move(t)), opts(o), pool(std::max(1, o.threads)), forward(model, pool) {
    const auto& cfg = model->config();
    if (opts.parallel < 1) invalid("engine: parallel must be >= 1, got " + std::to_string(opts.parallel));
    if (opts.max_queue < 0) invalid("engine: max_queue must be >= 0, got " + std::to_string(opts.max_queue));
    if (opts.batch_size < 1) invalid("engine: batch_size must be >= 1, got " + std::to_string(opts.batch_size));
    if (opts.context_length < 0) invalid("engine: context_length must be >= 0");
    if (opts.kv_cache_bytes < 0) invalid("engine: the KV cache budget must be >= 0");
    if (opts.kv_block_size < 1 || opts.kv_block_size > 1024)
      invalid("engine: KV block size must be in [1, 1024], got " + std::to_string(opts.kv_block_size));
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
    kv_block_bytes = model::KvPool::block_bytes(cfg, opts.kv_block_size);
    const int64_t budget = opts.kv_cache_bytes > 0 ? opts.kv_cache_bytes : default_kv_cache_bytes(cfg, opts, ctx);
    n_blocks = budget / kv_block_bytes;
    if (n_blocks < 1)
      fail(ErrorKind::kInvalidInput, "engine: a KV cache budget of " + std::to_string(budget) +
                                         " bytes holds no block (one block of " + std::to_string(opts.kv_block_size) +
                                         " positions takes " + std::to_string(kv_block_bytes) + " bytes)");
    kv.emplace(cfg, n_blocks, opts.kv_block_size, opts.prefix_cache, ctx);
    kv_total = n_blocks * kv_block_bytes;
    slots.resize(static_cast<size_t>(opts.parallel));
    thread = std::thread([this] { loop(); });
  }

  int free_slots_locked() const { return opts.parallel - occupied; }

  // The fewest blocks the prompt needs to be prefilled at all (with no prefix cached).
  int64_t min_blocks(int64_t n_prompt) const { return kv->blocks_to_prefill(0, n_prompt); }

  std::shared_ptr<RequestHandle> submit(GenerateRequest req, Callbacks cb, bool reject_if_busy) {
    if (req.prompt.empty()) invalid("the prompt is empty (no tokens)");
    if (static_cast<int64_t>(req.prompt.size()) + 1 > ctx)
      invalid("the prompt has " + std::to_string(req.prompt.size()) + " tokens but the context length is " +
              std::to_string(ctx) + " (prompt tokens + 1 must fit)");
    const int64_t need = min_blocks(static_cast<int64_t>(req.prompt.size()));
    if (need > n_blocks)
      throw KvBudgetExceeded("the prompt has " + std::to_string(req.prompt.size()) + " tokens, whose keys and values need " +
                             std::to_string(need) + " KV blocks (" + mib(need * kv_block_bytes) +
                             "), but the whole KV cache holds " + std::to_string(n_blocks) + " blocks (" +
                             mib(kv_total) + "; see --kv-cache-mib)");
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
        st_queued.store(static_cast<int>(queue.size()), std::memory_order_relaxed);
      }
      for (auto& r : dropped) {
        Completion c;
        c.reason = FinishReason::kCancelled;
        c.prompt_tokens = static_cast<int32_t>(r->req.prompt.size());
        c.total_s = seconds_between(r->submitted, Clock::now());
        deliver_done(*r, c);
      }
      for (auto it = preempted.begin(); it != preempted.end();) {  // cancelled while preempted
        if (exiting || (*it)->r->cancelled.load(std::memory_order_acquire)) {
          auto s = std::move(*it);
          it = preempted.erase(it);
          finish(std::move(s), FinishReason::kCancelled);
        } else {
          ++it;
        }
      }
      for (auto& s : slots)
        if (s && (exiting || s->r->cancelled.load(std::memory_order_acquire))) finish(std::move(s), FinishReason::kCancelled);
      if (exiting) break;
      admit();
      try {
        step();
      } catch (const std::exception& e) {
        // Not a model error (those are handled in step()): e.g. out of memory building the batch.
        for (auto& s : slots)
          if (s) finish(std::move(s), FinishReason::kError, std::string("engine: ") + e.what());
      }
      publish_kv_stats();
    }
  }

  // Sets up a new sequence for request r; null when the request ended at once (invalid ids,
  // max_tokens 0, the sampler rejected its parameters): on_done has run then.
  std::unique_ptr<Sequence> make_sequence(std::shared_ptr<Request> r) {
    auto s = std::make_unique<Sequence>();
    s->r = std::move(r);
    s->cache = kv->new_cache();
    try {
      const auto& req = s->r->req;
      s->tokens = req.prompt;
      s->n_prompt = req.prompt.size();
      s->prefill_end = static_cast<int64_t>(s->n_prompt);
      s->decoder.emplace(*tok);
      // The decoder strips the first piece's leading space; feeding it one ordinary piece first (its
      // text discarded) makes it treat the generated tokens as a continuation.
      if (req.continuation && prime_id >= 0) s->decoder->push(prime_id);
      s->stop.emplace(req.stop);
      s->sampler.emplace(req.sampling);
      s->started = true;
      const int64_t n_vocab = model->config().n_vocab;
      for (size_t i = 0; i < req.prompt.size(); ++i) {
        if (req.prompt[i] < 0 || req.prompt[i] >= n_vocab) {
          finish(std::move(s), FinishReason::kError,
                 "prompt token " + std::to_string(i) + " has id " + std::to_string(req.prompt[i]) +
                     ", outside the vocabulary [0, " + std::to_string(n_vocab) + ")",
                 /*flush=*/false);
          return nullptr;
        }
      }
      if (req.max_tokens <= 0) {
        finish(std::move(s), FinishReason::kLength);
        return nullptr;
      }
    } catch (const std::exception& e) {
      finish(std::move(s), FinishReason::kError, e.what(), /*flush=*/false);
      return nullptr;
    }
    return s;
  }

  // Blocks a waiting sequence needs now to start, after what the prefix cache gives it.
  struct Plan {
    model::PrefixMatch m;
    int64_t need = 0;  // blocks to allocate, net of the idle cached blocks it takes off the queue
  };
  Plan plan(const Sequence& s) const {
    Plan p;
    const int64_t limit = s.sample_at_end ? s.prefill_end - 1 : s.prefill_end;  // logits need one computed position
    p.m = kv->match(std::span<const int32_t>(s.tokens.data(), static_cast<size_t>(s.prefill_end)), limit, s.ns());
    p.need = kv->blocks_to_prefill(p.m.n_cached, s.prefill_end) + kv->idle_blocks(p.m);
    return p;
  }

  // Whether a new sequence should wait for a running one that is prefilling a longer prefix of its
  // prompt than the cache holds: the shared whole blocks enter the prefix index as that sequence
  // writes them, so waiting a step or two costs less than computing them a second time (requests
  // that arrive together with one system prompt compute it once).
  bool waits_for_shared_prefix(const Sequence& s, int64_t n_cached) const {
    if (!kv->prefix_cache()) return false;
    const int64_t B = kv->pool().block_size();
    for (const auto& q : slots) {
      if (!q || q->ns() != s.ns() || !q->prefilling()) continue;
      const int64_t n = std::min(s.prefill_end, q->prefill_end);
      int64_t common = 0;
      while (common < n && s.tokens[static_cast<size_t>(common)] == q->tokens[static_cast<size_t>(common)]) ++common;
      const int64_t shared = common / B * B;  // whole blocks only are indexed
      if (shared >= n_cached + B && q->cache->n_past() < shared) return true;
    }
    return false;
  }

  // Fills free slots, preempted sequences first, then the queue in order, while the pool has room for
  // the next one's prompt (beyond one block per running sequence, the room they need to go on). A
  // sequence that does not fit waits, and so does everything behind it.
  void admit() {
    for (;;) {
      auto free_slot = std::find_if(slots.begin(), slots.end(), [](const auto& s) { return !s; });
      if (free_slot == slots.end()) return;
      int64_t running = 0;
      for (const auto& s : slots) running += s ? 1 : 0;
      std::unique_ptr<Sequence> s;
      if (!preempted.empty()) {
        s = std::move(preempted.front());
        preempted.pop_front();
      } else {
        std::shared_ptr<Request> r;
        {
          std::lock_guard<std::mutex> lk(signal->m);
          if (queue.empty()) return;
          r = std::move(queue.front());
          queue.pop_front();
          ++occupied;  // (make_sequence's finish() takes it back when the request ends at once)
          st_queued.store(static_cast<int>(queue.size()), std::memory_order_relaxed);
          st_active.store(occupied, std::memory_order_relaxed);
        }
        s = make_sequence(std::move(r));
        if (!s) continue;
      }
      Plan p = plan(*s);
      if (s->admitted == 0 && waits_for_shared_prefix(*s, p.m.n_cached)) {
        preempted.push_front(std::move(s));  // at the head: admitted once the shared blocks are cached
        return;
      }
      if (running > 0 && kv->pool().available() < p.need + running) {
        preempted.push_front(std::move(s));  // wait at the head (admitted or not, it keeps its place)
        return;
      }
      const bool first = s->admitted == 0;
      s->admitted = ++admit_counter;
      const int64_t n = kv->begin(*s->cache, p.m, s->keys);
      if (first) {
        s->cached_tokens = static_cast<int32_t>(n);
        st_prefix_prompt.fetch_add(s->n_prompt, std::memory_order_relaxed);
        st_prefix_hit.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      }
      *free_slot = std::move(s);
    }
  }

  Sequence* youngest() {
    Sequence* y = nullptr;
    for (auto& s : slots)
      if (s && (!y || s->admitted > y->admitted)) y = s.get();
    return y;
  }

  std::unique_ptr<Sequence>& slot_of(const Sequence* p) {
    for (auto& s : slots)
      if (s.get() == p) return s;
    fail(ErrorKind::kInternal, "engine: sequence not in a slot");
  }

  // Releases s's blocks (indexed, so its return can reuse what is still cached) and puts it back at
  // the head of the queue, to recompute up to its last sampled token.
  void preempt(Sequence* p) {
    std::unique_ptr<Sequence> s = std::move(slot_of(p));
    release_blocks(*s);
    if (s->n_generated > 0 || s->has_first_token) {
      s->prefill_end = static_cast<int64_t>(s->tokens.size()) - 1;
      s->sample_at_end = false;
    }
    st_preemptions.fetch_add(1, std::memory_order_relaxed);
    preempted.push_front(std::move(s));
  }

  void release_blocks(Sequence& s) {
    kv->index_tail(*s.cache, s.tokens, s.ns(), s.keys);
    s.cache->clear();
    s.keys.clear();
  }

  // The sequences in slots, oldest admission first.
  std::vector<Sequence*> by_age() {
    std::vector<Sequence*> v;
    for (auto& s : slots)
      if (s) v.push_back(s.get());
    std::sort(v.begin(), v.end(), [](const Sequence* a, const Sequence* b) { return a->admitted < b->admitted; });
    return v;
  }

  // One forward pass: a decode token for every generating sequence, then prompt chunks for the
  // prefilling ones (oldest admission first) within the remaining budget. Blocks are reserved first;
  // a generating sequence that finds none preempts the youngest sequence (itself, if it is the
  // youngest; alone, it has reached what the pool can hold and ends with kLength).
  void step() {
    // Decode positions.
    for (Sequence* s : by_age()) {
      if (!slot_has(s) || s->prefilling()) continue;
      while (s->cache->reserve(1) < 1) {
        Sequence* y = youngest();
        if (y == s && running_count() == 1) {
          finish(std::move(slot_of(s)), FinishReason::kLength);
          break;
        }
        preempt(y);
        if (y == s) break;
      }
    }
    // Prefill chunks: what the budget and the pool allow. When nothing at all can run, the youngest
    // sequence makes room.
    std::vector<std::pair<Sequence*, int64_t>> chunks;
    for (;;) {
      chunks.clear();
      int64_t used = 0;
      for (auto& s : slots)
        if (s && !s->prefilling()) ++used;
      for (Sequence* s : by_age()) {
        if (!s->prefilling()) continue;
        const int64_t budget = batch_budget - used;
        if (budget <= 0) break;
        const int64_t want = std::min<int64_t>(budget, s->prefill_end - s->cache->n_past());
        const int64_t got = s->cache->reserve(want);
        if (got > 0) chunks.emplace_back(s, got), used += got;
      }
      if (used > 0 || running_count() == 0) break;
      Sequence* y = youngest();
      if (running_count() == 1) {
        // Alone and still no block: what it has reached is all the pool holds (a fresh prompt always
        // fits: submit() checks).
        if (y->n_generated > 0) finish(std::move(slot_of(y)), FinishReason::kLength);
        else finish(std::move(slot_of(y)), FinishReason::kError, "the KV cache has no room for this prompt", false);
        break;
      }
      preempt(y);
    }

    batch.clear();
    step_caches.clear();
    std::vector<Sequence*> out_seq;  // which sequence each logits row belongs to, in batch order
    std::vector<Sequence*> in_batch;
    auto seq_index = [&](Sequence* s) {
      in_batch.push_back(s);
      step_caches.push_back(s->cache.get());
      return static_cast<int32_t>(step_caches.size() - 1);
    };
    for (Sequence* s : by_age()) {
      if (s->prefilling()) continue;
      batch.add(s->tokens.back(), static_cast<int32_t>(s->cache->n_past()), seq_index(s), true);
      out_seq.push_back(s);
    }
    for (auto [s, n] : chunks) {
      const int32_t idx = seq_index(s);
      const int64_t from = s->cache->n_past();
      for (int64_t p = from; p < from + n; ++p) {
        const bool last = p + 1 == s->prefill_end && s->sample_at_end;
        batch.add(s->tokens[static_cast<size_t>(p)], static_cast<int32_t>(p), idx, last);
        if (last) out_seq.push_back(s);
      }
      st_prompted.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    }
    if (batch.size() == 0) return;

    logits.clear();
    try {
      forward.run(batch, step_caches, logits);
    } catch (const std::exception& e) {
      // The caches of every sequence in this batch are in an unknown state: end them all.
      for (Sequence* s : in_batch)
        if (slot_has(s)) finish(std::move(slot_of(s)), FinishReason::kError, std::string("model: ") + e.what());
      return;
    }
    for (Sequence* s : in_batch) kv->index_full(*s->cache, s->tokens, s->ns(), s->keys);
    const size_t n_vocab = static_cast<size_t>(model->config().n_vocab);
    for (size_t row = 0; row < out_seq.size(); ++row) {
      Sequence* s = out_seq[row];
      if (!slot_has(s)) continue;
      std::span<float> lg(logits.data() + row * n_vocab, n_vocab);
      try {
        on_logits(s, lg);
      } catch (const std::exception& e) {
        if (slot_has(s)) finish(std::move(slot_of(s)), FinishReason::kError, e.what(), /*flush=*/false);
      }
    }
  }

  bool slot_has(const Sequence* p) const {
    for (const auto& s : slots)
      if (s.get() == p) return true;
    return false;
  }
  int running_count() const {
    int n = 0;
    for (const auto& s : slots) n += s ? 1 : 0;
    return n;
  }

  // Samples the next token of `s` from its logits row and delivers it (or finishes the sequence).
  void on_logits(Sequence* s, std::span<float> lg) {
    const auto& req = s->r->req;
    if (req.want_logprobs) row_copy.assign(lg.begin(), lg.end());
    int32_t id;
    try {
      id = s->sampler->sample(lg, s->tokens);
    } catch (const std::exception& e) {
      finish(std::move(slot_of(s)), FinishReason::kError, std::string("sampler: ") + e.what());
      return;
    }
    const auto now = Clock::now();
    if (!s->has_first_token) {
      s->has_first_token = true;
      s->first_token = now;
    }
    if (tok->is_eog(id)) {
      finish(std::move(slot_of(s)), FinishReason::kStop);
      return;
    }
    s->tokens.push_back(id);
    ++s->n_generated;
    st_generated.fetch_add(1, std::memory_order_relaxed);

    TokenEvent ev;
    ev.id = id;
    auto res = s->stop->push(s->decoder->push(id));
    ev.text = std::move(res.emit);
    if (req.want_logprobs) ev.logprob = text::log_softmax_at(row_copy, id);
    bool keep = true;
    if (s->r->cb.on_token) {
      try {
        keep = s->r->cb.on_token(ev);
      } catch (...) {
        keep = false;
      }
    }
    if (!keep || s->r->cancelled.load(std::memory_order_acquire)) {
      finish(std::move(slot_of(s)), FinishReason::kCancelled);
    } else if (res.stopped) {
      finish(std::move(slot_of(s)), FinishReason::kStop, {}, /*flush=*/false);
    } else if (s->n_generated >= req.max_tokens) {
      finish(std::move(slot_of(s)), FinishReason::kLength);
    } else if (static_cast<int64_t>(s->tokens.size()) >= ctx) {
      finish(std::move(slot_of(s)), FinishReason::kLength);  // no position left to feed the last token
    }
  }

  // Ends sequence s: flushes held-back text into tail_text (unless a stop sequence already matched,
  // or the request was cancelled), returns its blocks to the pool (indexed), then calls on_done.
  void finish(std::unique_ptr<Sequence> s, FinishReason reason, std::string error = {}, bool flush = true) {
    Completion c;
    c.reason = reason;
    c.error = std::move(error);
    c.prompt_tokens = static_cast<int32_t>(s->r->req.prompt.size());
    c.completion_tokens = s->n_generated;
    c.cached_tokens = s->cached_tokens;
    if (flush && (reason == FinishReason::kStop || reason == FinishReason::kLength) && s->decoder && s->stop) {
      auto res = s->stop->push(s->decoder->flush());
      c.tail_text = std::move(res.emit);
      if (res.stopped)
        c.reason = FinishReason::kStop;
      else
        c.tail_text += s->stop->flush();
    }
    const auto now = Clock::now();
    c.total_s = seconds_between(s->r->submitted, now);
    c.time_to_first_token_s = s->has_first_token ? seconds_between(s->r->submitted, s->first_token) : c.total_s;
    if (reason != FinishReason::kError) release_blocks(*s);  // (an error leaves the cache's content unknown)
    s->cache->clear();
    {
      std::lock_guard<std::mutex> lk(signal->m);
      --occupied;
      st_active.store(occupied, std::memory_order_relaxed);
    }
    std::shared_ptr<Request> r = std::move(s->r);
    s.reset();
    publish_kv_stats();  // before on_done: whoever waits for it sees the blocks back in the pool
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

  void publish_kv_stats() {
    const auto& p = kv->pool();
    st_kv_used.store(p.in_use() * p.block_bytes(), std::memory_order_relaxed);
    st_kv_cached.store(p.cached() * p.block_bytes(), std::memory_order_relaxed);
    st_evictions.store(p.evictions(), std::memory_order_relaxed);
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
  s.weights_repacked = !impl_->model->repack() || impl_->model->repack()->done();
  s.queued = impl_->st_queued.load(std::memory_order_relaxed);
  s.active = impl_->st_active.load(std::memory_order_relaxed);
  s.parallel = impl_->opts.parallel;
  s.kv_bytes_used = impl_->st_kv_used.load(std::memory_order_relaxed);
  s.kv_bytes_cached = impl_->st_kv_cached.load(std::memory_order_relaxed);
  s.kv_bytes_total = impl_->kv_total;
  s.kv_block_bytes = impl_->kv_block_bytes;
  s.kv_block_size = impl_->opts.kv_block_size;
  s.tokens_generated = impl_->st_generated.load(std::memory_order_relaxed);
  s.tokens_prompted = impl_->st_prompted.load(std::memory_order_relaxed);
  s.prefix_prompt_tokens = impl_->st_prefix_prompt.load(std::memory_order_relaxed);
  s.prefix_hit_tokens = impl_->st_prefix_hit.load(std::memory_order_relaxed);
  s.kv_evictions = impl_->st_evictions.load(std::memory_order_relaxed);
  s.preemptions = impl_->st_preemptions.load(std::memory_order_relaxed);
  s.prefix_cache = impl_->opts.prefix_cache;
  return s;
}

const model::Model& Engine::model() const { return *impl_->model; }
const text::Tokenizer& Engine::tokenizer() const { return *impl_->tok; }
int64_t Engine::context_length() const { return impl_->ctx; }

void Engine::shutdown(std::chrono::milliseconds grace) { impl_->shutdown(grace); }

}  // namespace wai::runtime
