// The engine's paged KV cache and prefix cache on the real stories260K model: a request that starts
// on cached blocks produces exactly the tokens it produces with the prefix cache off (full attention,
// a sliding window shorter than the shared prefix, chained turns), small budgets queue, evict and
// preempt instead of failing, and what could never fit is refused with the numbers.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"
#include "runtime/engine.h"
#include "text/tokenizer.h"
#include "unit/engine_harness.h"
#include "util/error.h"

namespace wai::runtime {
namespace {

using namespace harness;

const std::string kModelPath = std::string(WAI_SHARED_DIR) + "/models/stories260K.gguf";

const std::string kStory =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her "
    "friends. One day, she saw a big red ball under a tree. She ran to the ball and picked it up. It was "
    "shiny and new. Lily wanted to show it to her mom, so she went home";

class PrefixCacheTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = model::Model::load(kModelPath);
    model::LoadOptions lo;
    lo.sliding_window = 16;
    windowed_ = model::Model::load(kModelPath, lo);
    tok_ = std::make_shared<const text::Tokenizer>(text::Tokenizer::from_gguf(model_->file()));
  }
  static void TearDownTestSuite() {
    model_.reset();
    windowed_.reset();
    tok_.reset();
  }

  static std::unique_ptr<Engine> make(std::shared_ptr<const model::Model> m, bool prefix, int parallel = 1,
                                      int64_t kv_bytes = 0, int batch = 512) {
    EngineOptions o;
    o.threads = 1;
    o.parallel = parallel;
    o.batch_size = batch;
    o.prefix_cache = prefix;
    o.kv_cache_bytes = kv_bytes;
    return std::make_unique<Engine>(std::move(m), tok_, o);
  }

  static GenerateRequest request(std::vector<int32_t> prompt, int max_tokens) {
    GenerateRequest r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.sampling = greedy();
    return r;
  }
  static std::vector<int32_t> ids(const std::string& text, bool bos = true) { return tok_->encode(text, bos); }

  // Runs one request to the end on e.
  static void run(Engine& e, const GenerateRequest& r, Gen& g) {
    e.submit(r, g.callbacks());
    g.wait();
  }

  // Each request in order, one at a time, on a fresh engine: with the prefix cache the later ones hit
  // what the earlier ones left. Returns the generations.
  static std::vector<std::unique_ptr<Gen>> sequential(std::shared_ptr<const model::Model> m, bool prefix,
                                                      const std::vector<GenerateRequest>& reqs) {
    auto e = make(std::move(m), prefix);
    std::vector<std::unique_ptr<Gen>> out;
    for (const auto& r : reqs) {
      out.push_back(std::make_unique<Gen>());
      run(*e, r, *out.back());
    }
    return out;
  }

  static int64_t block_bytes() { return model::KvPool::block_bytes(model_->config(), 16); }

  static std::shared_ptr<const model::Model> model_, windowed_;
  static std::shared_ptr<const text::Tokenizer> tok_;
};

std::shared_ptr<const model::Model> PrefixCacheTest::model_;
std::shared_ptr<const model::Model> PrefixCacheTest::windowed_;
std::shared_ptr<const text::Tokenizer> PrefixCacheTest::tok_;

// Requests sharing a long beginning, with different endings: the same greedy tokens as without the
// cache, for full attention and for a 16-position window (the shared prefix is 4x the window).
TEST_F(PrefixCacheTest, SharedPrefixGivesTheUncachedTokens) {
  const std::vector<std::string> endings = {" and said", ". Her mom", " and", ". The ball was", " and said"};
  std::vector<GenerateRequest> reqs;
  for (const auto& end : endings) reqs.push_back(request(ids(kStory + end), 40));
  const int64_t shared = static_cast<int64_t>(ids(kStory).size()) - 2;  // the last pieces may merge with an ending
  ASSERT_GT(shared, 60);
  for (auto m : {model_, windowed_}) {
    SCOPED_TRACE(m->config().sliding_window ? "window 16" : "full attention");
    const auto plain = sequential(m, false, reqs);
    const auto cached = sequential(m, true, reqs);
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(cached[i]->ids, plain[i]->ids) << "request " << i;
      EXPECT_EQ(plain[i]->done.cached_tokens, 0);
      EXPECT_EQ(cached[i]->done.prompt_tokens, static_cast<int32_t>(reqs[i].prompt.size()));
    }
    EXPECT_EQ(cached[0]->done.cached_tokens, 0);
    for (size_t i = 1; i < reqs.size(); ++i) EXPECT_GE(cached[i]->done.cached_tokens, shared / 16 * 16) << i;
    // The repeated request reuses all of its prompt but the last token (whose logits it needs).
    EXPECT_EQ(cached[4]->done.cached_tokens, static_cast<int32_t>(reqs[4].prompt.size()) - 1);
  }
}

// A conversation as raw turns: each prompt is the previous prompt, the tokens generated for it, and
// new text. Turn n + 1 finds all of turn n's prompt and answer in the cache (but the answer's last
// token, which was sampled and never fed).
TEST_F(PrefixCacheTest, ChainedTurnsHitAndMatch) {
  const std::vector<std::string> added = {" Then the sun went down.", " The next day, Lily", " They played"};
  for (auto m : {model_, windowed_}) {
    SCOPED_TRACE(m->config().sliding_window ? "window 16" : "full attention");
    std::vector<std::vector<int32_t>> answers[2];
    for (int prefix = 0; prefix < 2; ++prefix) {
      auto e = make(m, prefix != 0);
      std::vector<int32_t> prompt = ids(kStory);
      for (int turn = 0; turn < 3; ++turn) {
        if (turn > 0) {
          const auto more = ids(added[static_cast<size_t>(turn - 1)], false);
          prompt.insert(prompt.end(), more.begin(), more.end());
        }
        Gen g;
        run(*e, request(prompt, 24), g);
        answers[prefix].push_back(g.ids);
        if (prefix && turn > 0) {
          EXPECT_GE(g.done.cached_tokens, g.done.prompt_tokens * 9 / 10) << "turn " << turn;
        }
        prompt.insert(prompt.end(), g.ids.begin(), g.ids.end());
      }
    }
    EXPECT_EQ(answers[1], answers[0]);
  }
}

// Many concurrent requests on shared and unshared prompts, some prefilled in small chunks: batching
// next to cached and uncached neighbours changes nothing.
TEST_F(PrefixCacheTest, ConcurrentHitsMatchTheUncachedRun) {
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 8; ++i)
    reqs.push_back(request(ids(i % 2 ? kStory + " number " + std::to_string(i) : "The dog " + std::to_string(i) + " ran"), 32));
  for (auto m : {model_, windowed_}) {
    const auto expected = sequential(m, false, reqs);
    for (int batch : {7, 512}) {
      auto e = make(m, true, 4, 0, batch);
      Gen warm;
      run(*e, reqs[1], warm);  // the story's blocks are cached before the burst
      std::vector<std::unique_ptr<Gen>> runs;
      for (const auto& r : reqs) {
        runs.push_back(std::make_unique<Gen>());
        e->submit(r, runs.back()->callbacks());
      }
      for (size_t i = 0; i < runs.size(); ++i) {
        runs[i]->wait();
        EXPECT_EQ(runs[i]->ids, expected[i]->ids) << "request " << i << ", batch " << batch;
        if (i % 2) {
          EXPECT_GT(runs[i]->done.cached_tokens, 32) << i;
        }
      }
      EXPECT_GT(e->stats().prefix_hit_tokens, 0u);
      EXPECT_EQ(e->stats().kv_bytes_used, 0);
    }
  }
}

// Requests that arrive together with one uncached beginning (a shared system prompt): the first
// computes it, the others wait for its blocks instead of computing them again, and every one still
// gives the tokens it gives alone without the cache (one-step prefill and 7-token chunks).
TEST_F(PrefixCacheTest, TogetherArrivingRequestsComputeASharedPrefixOnce) {
  const std::vector<std::string> endings = {" and said", ". Her mom", " and ran", ". The ball was"};
  std::vector<GenerateRequest> reqs;
  for (const auto& end : endings) reqs.push_back(request(ids(kStory + end), 24));
  const int64_t shared = (static_cast<int64_t>(ids(kStory).size()) - 2) / 16 * 16;
  for (auto m : {model_, windowed_}) {
    const auto expected = sequential(m, false, reqs);
    for (int batch : {7, 512}) {
      SCOPED_TRACE(std::string(m->config().sliding_window ? "window 16" : "full attention") + ", batch " + std::to_string(batch));
      auto e = make(m, true, 4, 0, batch);
      std::vector<std::unique_ptr<Gen>> runs;
      for (const auto& r : reqs) {
        runs.push_back(std::make_unique<Gen>());
        e->submit(r, runs.back()->callbacks());
      }
      int64_t hits = 0;
      for (size_t i = 0; i < runs.size(); ++i) {
        runs[i]->wait();
        EXPECT_EQ(runs[i]->ids, expected[i]->ids) << "request " << i;
        hits += runs[i]->done.cached_tokens;
      }
      // All but one found the shared blocks cached.
      EXPECT_GE(hits, static_cast<int64_t>(runs.size() - 1) * shared);
    }
  }
}

TEST_F(PrefixCacheTest, NamespacesAndTheSwitchKeepCachesApart) {
  auto e = make(model_, true);
  GenerateRequest r = request(ids(kStory), 8);
  Gen a, b, c;
  run(*e, r, a);
  r.cache_namespace = 7;  // e.g. another LoRA adapter: its keys and values differ
  run(*e, r, b);
  EXPECT_EQ(b.done.cached_tokens, 0);
  run(*e, r, c);
  EXPECT_EQ(c.done.cached_tokens, c.done.prompt_tokens - 1);
  auto off = make(model_, false);
  Gen d, f;
  run(*off, r, d);
  run(*off, r, f);
  EXPECT_EQ(f.done.cached_tokens, 0);
  EXPECT_EQ(off->stats().prefix_hit_tokens, 0u);
  EXPECT_EQ(off->stats().kv_bytes_cached, 0);
  EXPECT_FALSE(off->stats().prefix_cache);
  EXPECT_TRUE(e->stats().prefix_cache);
}

// A budget of 30 blocks (480 positions) and 4 slots, against 24 distinct prompts of 60..130 tokens
// that generate 40 each: requests wait, cached blocks are evicted, sequences are preempted and
// recomputed, and every request ends as it would alone. The pool never holds more than its budget.
TEST_F(PrefixCacheTest, SmallBudgetQueuesEvictsAndPreemptsButLosesNothing) {
  std::vector<GenerateRequest> reqs;
  for (int i = 0; i < 24; ++i) {
    std::string text = "Tale " + std::to_string(i) + ": ";
    for (int k = 0; k <= i % 4; ++k) text += kStory.substr(0, 120 + 10 * static_cast<size_t>(i % 5)) + ". ";
    reqs.push_back(request(ids(text), 40));
  }
  for (auto m : {model_, windowed_}) {
    SCOPED_TRACE(m->config().sliding_window ? "window 16" : "full attention");
    const auto expected = sequential(m, false, reqs);
    const int64_t budget = 30 * block_bytes();
    auto e = make(m, true, 4, budget, 64);
    std::atomic<bool> over{false}, stop{false};
    std::thread watch([&] {
      while (!stop.load()) {
        const auto st = e->stats();
        if (st.kv_bytes_used + st.kv_bytes_cached > st.kv_bytes_total || st.kv_bytes_total > budget) over = true;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
    std::vector<std::unique_ptr<Gen>> runs;
    for (const auto& r : reqs) {
      runs.push_back(std::make_unique<Gen>());
      e->submit(r, runs.back()->callbacks());
    }
    for (size_t i = 0; i < runs.size(); ++i) {
      runs[i]->wait();
      EXPECT_EQ(runs[i]->done.reason, FinishReason::kLength) << i << " " << runs[i]->done.error;
      EXPECT_EQ(runs[i]->ids, expected[i]->ids) << "request " << i;
    }
    stop = true;
    watch.join();
    EXPECT_FALSE(over.load());
    const auto st = e->stats();
    EXPECT_GT(st.kv_evictions, 0u);
    if (m->config().sliding_window == 0) {
      EXPECT_GT(st.preemptions, 0u);
    }
    EXPECT_EQ(st.kv_bytes_used, 0);
    EXPECT_EQ(st.active, 0);
  }
}

// Two long generations that cannot both fit: the younger is preempted, recomputed and continued; its
// stream has no gap and no repeat.
TEST_F(PrefixCacheTest, PreemptedSequenceResumesWhereItWas) {
  std::vector<GenerateRequest> reqs = {request(ids("Lily and Tom went to the park"), 150),
                                       request(ids("The cat sat on the mat"), 150)};
  const auto expected = sequential(model_, false, reqs);
  for (bool prefix : {true, false}) {
    auto e = make(model_, prefix, 2, 14 * block_bytes(), 512);  // 224 positions for two of ~160
    std::vector<std::unique_ptr<Gen>> runs;
    for (const auto& r : reqs) {
      runs.push_back(std::make_unique<Gen>());
      e->submit(r, runs.back()->callbacks());
    }
    for (size_t i = 0; i < runs.size(); ++i) {
      runs[i]->wait();
      EXPECT_EQ(runs[i]->ids, expected[i]->ids) << "request " << i << (prefix ? " (prefix cache)" : "");
      EXPECT_EQ(runs[i]->done.completion_tokens, 150);
    }
    EXPECT_GT(e->stats().preemptions, 0u);
  }
}

TEST_F(PrefixCacheTest, PromptLargerThanThePoolIsRefusedWithTheNumbers) {
  auto e = make(model_, true, 1, 4 * block_bytes());  // 64 positions
  EXPECT_EQ(e->stats().kv_bytes_total, 4 * block_bytes());
  std::vector<int32_t> p(100, 300);
  p[0] = tok_->bos();
  Gen g;
  try {
    e->submit(request(p, 4), g.callbacks());
    FAIL() << "expected KvBudgetExceeded";
  } catch (const KvBudgetExceeded& err) {
    const std::string what = err.what();
    EXPECT_NE(what.find("100 tokens"), std::string::npos) << what;
    EXPECT_NE(what.find("7 KV blocks"), std::string::npos) << what;
    EXPECT_NE(what.find("4 blocks"), std::string::npos) << what;
  }
  // What fits runs; generation past the pool's end stops with kLength.
  p.resize(60);
  run(*e, request(p, 100), g);
  EXPECT_EQ(g.done.reason, FinishReason::kLength);
  EXPECT_EQ(g.done.completion_tokens, 5);  // tokens 1..4 fed at positions 60..63, the 5th from 63
  // A sliding window bounds what a sequence holds: the same pool runs a 100-token prompt and more.
  auto w = make(windowed_, true, 1, 4 * block_bytes());
  p.assign(100, 300);
  p[0] = tok_->bos();
  Gen h;
  run(*w, request(p, 50), h);
  EXPECT_EQ(h.done.reason, FinishReason::kLength);
  EXPECT_EQ(h.done.completion_tokens, 50);
  EXPECT_THROW(make(model_, true, 1, block_bytes() - 1), Error);
}

}  // namespace
}  // namespace wai::runtime
