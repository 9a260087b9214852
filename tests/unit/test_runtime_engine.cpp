// runtime::Engine on the real stories260K model: continuous batching gives each sequence exactly the
// tokens it gets alone (whatever joins, leaves or prefills next to it), and the request lifecycle
// (cancel, queue limits, max_tokens, stop sequences, context limit, shutdown) behaves as engine.h says.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <sys/resource.h>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"
#include "runtime/engine.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "unit/engine_harness.h"

namespace wai::runtime {
namespace {

using namespace std::chrono_literals;
using namespace harness;

const std::string kModelPath = std::string(WAI_SHARED_DIR) + "/models/stories260K.gguf";

const std::vector<std::string> kPrompts = {
    "Once upon a time",       "Lily and Tom went to the park", "The cat sat",
    "One day, a little boy",  "Sam had a red ball.",           "The sun was",
    "There was a big dog named Max", "Mom said",
};

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = model::Model::load(kModelPath);
    tok_ = std::make_shared<const text::Tokenizer>(text::Tokenizer::from_gguf(model_->file()));
  }
  static void TearDownTestSuite() {
    model_.reset();
    tok_.reset();
  }

  static std::unique_ptr<Engine> make(int parallel, int batch = 512, int max_queue = 64, int64_t ctx = 0,
                                      std::shared_ptr<const model::Model> m = nullptr, bool prefix_cache = true) {
    EngineOptions o;
    o.threads = 1;
    o.parallel = parallel;
    o.batch_size = batch;
    o.max_queue = max_queue;
    o.context_length = ctx;
    o.prefix_cache = prefix_cache;
    return std::make_unique<Engine>(m ? m : model_, tok_, o);
  }

  static GenerateRequest request(const std::string& prompt, int max_tokens, text::SamplingParams sp = greedy()) {
    GenerateRequest r;
    r.prompt = tok_->encode(prompt, true);
    r.max_tokens = max_tokens;
    r.sampling = sp;
    return r;
  }

  // Each request alone, one after the other, on a one-slot engine without the prefix cache (each
  // computes its whole prompt).
  static std::vector<std::vector<int32_t>> alone(const std::vector<GenerateRequest>& reqs,
                                                  std::shared_ptr<const model::Model> m = nullptr) {
    auto e = make(1, 512, 64, 0, m, /*prefix_cache=*/false);
    std::vector<std::vector<int32_t>> out;
    for (const auto& r : reqs) {
      Gen run;
      e->submit(r, run.callbacks());
      run.wait();
      out.push_back(run.ids);
    }
    return out;
  }

  static std::shared_ptr<const model::Model> model_;
  static std::shared_ptr<const text::Tokenizer> tok_;
};

std::shared_ptr<const model::Model> EngineTest::model_;
std::shared_ptr<const text::Tokenizer> EngineTest::tok_;

TEST_F(EngineTest, GreedyStoryContinuesTheReference) {
  // /work/shared/models/README.md: llama.cpp's greedy continuation of "Once upon a time" (BOS added).
  const std::string reference =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, "
      "she saw a big, red ball. She wanted to play with it, but it was too high.";
  auto e = make(1);
  Gen run;
  e->submit(request("Once upon a time", 60), run.callbacks());
  run.wait();
  const std::string full = "Once upon a time" + run.text;
  ASSERT_GE(full.size(), reference.size()) << full;
  EXPECT_EQ(full.substr(0, reference.size()), reference);
  EXPECT_EQ(run.done.reason, FinishReason::kLength);
  EXPECT_EQ(run.done.completion_tokens, 60);
  EXPECT_EQ(run.done.prompt_tokens, static_cast<int32_t>(tok_->encode("Once upon a time", true).size()));
}

TEST_F(EngineTest, EightConcurrentRequestsMatchEachAlone) {
  std::vector<GenerateRequest> reqs;
  for (const auto& p : kPrompts) reqs.push_back(request(p, 48));
  const auto expected = alone(reqs);
  // batch 8 with 8 slots: prompts are prefilled in chunks that share passes with decode tokens.
  for (int batch : {8, 512}) {
    auto e = make(8, batch);
    std::vector<std::unique_ptr<Gen>> runs;
    for (const auto& r : reqs) {
      runs.push_back(std::make_unique<Gen>());
      e->submit(r, runs.back()->callbacks());
    }
    for (size_t i = 0; i < runs.size(); ++i) {
      runs[i]->wait();
      EXPECT_EQ(runs[i]->ids, expected[i]) << "prompt '" << kPrompts[i] << "', batch " << batch;
      EXPECT_EQ(runs[i]->done.reason, FinishReason::kLength);
    }
  }
}

TEST_F(EngineTest, RequestsJoiningMidGenerationStillMatch) {
  std::vector<GenerateRequest> reqs;
  for (size_t i = 0; i < 6; ++i) reqs.push_back(request(kPrompts[i], 64));
  const auto expected = alone(reqs);
  auto e = make(4, 4);  // 4 slots, 4-token budget: late prompts prefill in chunks next to decodes
  std::vector<std::unique_ptr<Gen>> runs;
  for (size_t i = 0; i < reqs.size(); ++i) runs.push_back(std::make_unique<Gen>());
  // Slow the first stream down a little so that the others really overlap with it.
  runs[0]->hook = [](const TokenEvent&, int) {
    std::this_thread::sleep_for(1ms);
    return true;
  };
  e->submit(reqs[0], runs[0]->callbacks());
  e->submit(reqs[1], runs[1]->callbacks());
  runs[0]->wait_tokens(10);
  e->submit(reqs[2], runs[2]->callbacks());
  e->submit(reqs[3], runs[3]->callbacks());
  runs[0]->wait_tokens(30);
  // Slots are full now: these two wait in the queue and take the slots of the first finishers.
  e->submit(reqs[4], runs[4]->callbacks());
  e->submit(reqs[5], runs[5]->callbacks());
  for (size_t i = 0; i < runs.size(); ++i) {
    runs[i]->wait();
    EXPECT_EQ(runs[i]->ids, expected[i]) << "prompt '" << kPrompts[i] << "'";
  }
  EXPECT_EQ(e->stats().active, 0);
  EXPECT_EQ(e->stats().queued, 0);
}

TEST_F(EngineTest, LongPromptPrefillsInChunksWhileStreamsKeepFlowing) {
  std::string long_text;
  for (int i = 0; i < 8; ++i) long_text += "Once upon a time, there was a little girl named Lily. ";
  auto long_req = request(long_text, 20);
  ASSERT_GT(long_req.prompt.size(), 100u);
  auto a_req = request("The cat sat", 300);
  const auto expected = alone({a_req, long_req});

  auto e = make(2, /*batch=*/8);
  std::mutex m;
  std::string order;  // 'a' / 'b' per delivered token, in delivery order
  Gen a, b;
  std::promise<void> at5, submitted;
  auto submitted_f = submitted.get_future().share();
  a.hook = [&](const TokenEvent&, int n) {
    {
      std::lock_guard<std::mutex> lk(m);
      order += 'a';
    }
    if (n == 5) {
      at5.set_value();
      submitted_f.wait();  // B is queued before A's sixth token
    }
    return true;
  };
  b.hook = [&](const TokenEvent&, int) {
    std::lock_guard<std::mutex> lk(m);
    order += 'b';
    return true;
  };
  e->submit(a_req, a.callbacks());
  at5.get_future().wait();
  e->submit(long_req, b.callbacks());
  submitted.set_value();
  a.wait();
  b.wait();
  EXPECT_EQ(a.ids, expected[0]);
  EXPECT_EQ(b.ids, expected[1]);
  // B's prompt needs >= prompt/7 passes of 8 tokens next to A's decode token; A streams meanwhile.
  const size_t first_b = order.find('b');
  ASSERT_NE(first_b, std::string::npos);
  const size_t a_during_prefill = first_b - 5;
  EXPECT_GE(a_during_prefill, long_req.prompt.size() / 7 - 1) << order;
  EXPECT_LE(a_during_prefill, long_req.prompt.size() / 7 + 2) << order;  // and B got the rest of every pass
}

TEST_F(EngineTest, IdleEngineDoesNotSpin) {
  EngineOptions o;
  o.threads = 2;
  o.parallel = 2;
  Engine e(model_, tok_, o);
  Gen run;
  e.submit(request("Once upon a time", 2), run.callbacks());
  run.wait();
  std::this_thread::sleep_for(50ms);  // let the pool's workers finish their short spin
  auto cpu = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec * 1e3 + u.ru_utime.tv_usec / 1e3 + u.ru_stime.tv_sec * 1e3 + u.ru_stime.tv_usec / 1e3;
  };
  const double before = cpu();
  std::this_thread::sleep_for(400ms);
  const double used_ms = cpu() - before;
  EXPECT_LT(used_ms, 40.0) << "the idle engine burned " << used_ms << " ms of CPU in 400 ms";
}

TEST_F(EngineTest, CancelFreesTheSlotWithinOneStep) {
  auto e = make(2);
  Gen run;
  std::atomic<int> after_cancel{0};
  std::atomic<bool> cancelled{false};
  std::promise<void> reached;
  std::promise<void> resume;
  auto resumed = resume.get_future().share();
  run.hook = [&](const TokenEvent&, int n) {
    if (cancelled) ++after_cancel;
    if (n == 5) {
      reached.set_value();
      resumed.wait();  // the loop is paused here while the test cancels
    }
    return true;
  };
  auto h = e->submit(request("Once upon a time", 400), run.callbacks());
  reached.get_future().wait();
  EXPECT_EQ(e->stats().active, 1);
  h->cancel();
  cancelled = true;
  resume.set_value();
  run.wait();
  EXPECT_EQ(run.done.reason, FinishReason::kCancelled);
  EXPECT_EQ(after_cancel.load(), 0);  // cancel() before the step ends: no further token
  EXPECT_EQ(run.done.completion_tokens, 5);
  EXPECT_EQ(e->stats().active, 0);
  EXPECT_EQ(e->stats().kv_bytes_used, 0);

  // on_token returning false ends it the same way; the freed slot serves the next request.
  Gen stop3;
  stop3.hook = [](const TokenEvent&, int n) { return n < 3; };
  e->submit(request("The cat sat", 400), stop3.callbacks());
  stop3.wait();
  EXPECT_EQ(stop3.done.reason, FinishReason::kCancelled);
  EXPECT_EQ(stop3.ids.size(), 3u);
  EXPECT_EQ(stop3.done.completion_tokens, 3);
  Gen next;
  e->submit(request("Once upon a time", 10), next.callbacks());
  next.wait();
  EXPECT_EQ(next.done.reason, FinishReason::kLength);
  EXPECT_EQ(next.ids.size(), 10u);
}

// Keeps the loop thread inside request A's first on_token until release().
struct Blocker {
  std::promise<void> reached, release_p;
  std::shared_future<void> released = release_p.get_future().share();
  bool keep_going = true;
  void attach(Gen& run) {
    run.hook = [this](const TokenEvent&, int n) {
      if (n == 1) {
        reached.set_value();
        released.wait();
      }
      return keep_going;
    };
  }
  void release(bool keep) {
    keep_going = keep;
    release_p.set_value();
  }
};

TEST_F(EngineTest, QueueFullWhenTheWaitingQueueIsAtMaxQueue) {
  auto e = make(1, 512, /*max_queue=*/1);
  Gen a, b;
  Blocker blk;
  blk.attach(a);
  e->submit(request("Once upon a time", 50), a.callbacks());
  blk.reached.get_future().wait();  // A holds the only slot
  e->submit(request("The cat sat", 5), b.callbacks());
  EXPECT_EQ(e->stats().queued, 1);
  Gen c;
  EXPECT_THROW(e->submit(request("Mom said", 5), c.callbacks()), QueueFull);
  blk.release(false);
  a.wait();
  b.wait();
  EXPECT_EQ(a.done.reason, FinishReason::kCancelled);
  EXPECT_EQ(b.done.reason, FinishReason::kLength);
  EXPECT_EQ(b.ids.size(), 5u);
  EXPECT_FALSE(c.finished);
}

TEST_F(EngineTest, RejectIfBusyWhenNoSlotIsFree) {
  auto e = make(1, 512, 8);
  Gen a, b;
  Blocker blk;
  blk.attach(a);
  e->submit(request("Once upon a time", 20), a.callbacks());
  blk.reached.get_future().wait();
  EXPECT_THROW(e->submit(request("The cat sat", 5), b.callbacks(), /*reject_if_busy=*/true), QueueFull);
  blk.release(true);
  a.wait();
  EXPECT_EQ(a.done.reason, FinishReason::kLength);
  // The slot is free again: accepted.
  e->submit(request("The cat sat", 5), b.callbacks(), true);
  b.wait();
  EXPECT_EQ(b.done.reason, FinishReason::kLength);
}

TEST_F(EngineTest, MaxTokensEndsWithLengthAfterExactlyN) {
  auto e = make(2);
  Gen full, seven;
  e->submit(request("Once upon a time", 30), full.callbacks());
  full.wait();
  e->submit(request("Once upon a time", 7), seven.callbacks());
  seven.wait();
  EXPECT_EQ(seven.done.reason, FinishReason::kLength);
  EXPECT_EQ(seven.done.completion_tokens, 7);
  ASSERT_EQ(seven.ids.size(), 7u);
  EXPECT_EQ(seven.ids, std::vector<int32_t>(full.ids.begin(), full.ids.begin() + 7));
}

TEST_F(EngineTest, StopSequenceEndsGenerationAndIsNotEmitted) {
  auto e = make(2);
  Gen full;
  e->submit(request("Once upon a time", 40), full.callbacks());
  full.wait();
  for (const std::string stop : {"Lily", "little girl", "."}) {
    const size_t at = full.text.find(stop);
    ASSERT_NE(at, std::string::npos) << stop;
    Gen run;
    auto r = request("Once upon a time", 40);
    r.stop = {"never appears", stop};
    e->submit(r, run.callbacks());
    run.wait();
    EXPECT_EQ(run.done.reason, FinishReason::kStop) << stop;
    EXPECT_EQ(run.text, full.text.substr(0, at)) << stop;
    EXPECT_LT(run.ids.size(), full.ids.size());
  }
}

TEST_F(EngineTest, SameSeedSameOutputAlsoWhenBatched) {
  text::SamplingParams sp;
  sp.temperature = 0.8f;
  sp.seed = 1234;
  std::vector<GenerateRequest> reqs;
  for (size_t i = 0; i < 4; ++i) reqs.push_back(request(kPrompts[i], 100, sp));
  const auto first = alone(reqs);
  const auto second = alone(reqs);
  EXPECT_EQ(first, second);
  // Batched with other seeded requests: each sequence's sampler is its own.
  auto e = make(4);
  std::vector<std::unique_ptr<Gen>> runs;
  for (const auto& r : reqs) {
    runs.push_back(std::make_unique<Gen>());
    e->submit(r, runs.back()->callbacks());
  }
  for (size_t i = 0; i < runs.size(); ++i) {
    runs[i]->wait();
    EXPECT_EQ(runs[i]->ids, first[i]);
  }
  // A different seed samples a different story (it is sampling, not greedy).
  auto other = reqs;
  for (auto& r : other) r.sampling.seed = 99;
  const auto third = alone(other);
  EXPECT_NE(third, first);
}

TEST_F(EngineTest, PromptTooLongIsRejectedNamingBothNumbers) {
  auto e = make(1, 512, 8, /*ctx=*/32);
  EXPECT_EQ(e->context_length(), 32);
  GenerateRequest r;
  r.prompt.assign(40, 100);
  r.prompt[0] = tok_->bos();
  Gen run;
  try {
    e->submit(r, run.callbacks());
    FAIL() << "expected wai::Error";
  } catch (const Error& err) {
    EXPECT_EQ(err.kind(), ErrorKind::kInvalidInput);
    EXPECT_NE(std::string(err.what()).find("40"), std::string::npos) << err.what();
    EXPECT_NE(std::string(err.what()).find("32"), std::string::npos) << err.what();
  }
  r.prompt.resize(32);  // 32 + 1 > 32
  EXPECT_THROW(e->submit(r, run.callbacks()), Error);
  r.prompt.resize(31);  // fits; the one generated token fills the context
  r.max_tokens = 100;
  r.sampling = greedy();
  e->submit(r, run.callbacks());
  run.wait();
  EXPECT_EQ(run.done.reason, FinishReason::kLength);
  EXPECT_EQ(run.done.completion_tokens, 1);
  EXPECT_THROW(e->submit(GenerateRequest{}, Callbacks{}), Error);  // empty prompt
}

TEST_F(EngineTest, ContextFullEndsWithLength) {
  auto e = make(2, 512, 8, /*ctx=*/24);
  Gen run;
  auto r = request("Once upon a time", 1000);
  e->submit(r, run.callbacks());
  run.wait();
  EXPECT_EQ(run.done.reason, FinishReason::kLength);
  EXPECT_EQ(run.done.prompt_tokens + run.done.completion_tokens, 24);
  // Same tokens as an unconstrained run, up to where the context ran out.
  auto big = make(1);
  Gen ref;
  big->submit(request("Once upon a time", 30), ref.callbacks());
  ref.wait();
  EXPECT_EQ(run.ids, std::vector<int32_t>(ref.ids.begin(), ref.ids.begin() + run.ids.size()));
}

TEST_F(EngineTest, StreamedTextIsUtf8AndConcatenatesToTheFullDecode) {
  // Hot sampling from a prompt with multi-byte characters: byte-fallback pieces arrive one byte at a
  // time, and no event may carry half a character.
  auto e = make(4);
  // Seeds until one streams a multi-byte character (at least 6; sampled text, so how many it takes
  // depends on the model's numerics: ~1 byte >= 0x80 per seed on average).
  int multibyte = 0;
  for (uint64_t seed = 1; seed <= 6 || (multibyte == 0 && seed <= 60); ++seed) {
    text::SamplingParams sp;
    sp.temperature = 2.0f;
    sp.seed = seed;
    Gen run;
    e->submit(request("Ünïcödé 日本語 — ça va? ", 80, sp), run.callbacks());
    run.wait();
    for (const auto& p : run.pieces) EXPECT_TRUE(valid_utf8(p)) << "event '" << p << "'";
    EXPECT_TRUE(valid_utf8(run.done.tail_text));
    EXPECT_EQ(run.text, tok_->decode(run.ids)) << "seed " << seed;
    for (unsigned char c : run.text) multibyte += c >= 0x80;
  }
  EXPECT_GT(multibyte, 0) << "the test never streamed a multi-byte character";
}

TEST_F(EngineTest, ContinuationKeepsTheFirstTokensLeadingSpace) {
  auto e = make(2);
  int spaced = 0;
  for (const std::string prompt : {"Once upon a", "The cat", "One day, a little", "Once upon a time"}) {
    auto r = request(prompt, 12);
    r.continuation = true;
    Gen run;
    e->submit(r, run.callbacks());
    run.wait();
    std::vector<int32_t> all = r.prompt;
    all.insert(all.end(), run.ids.begin(), run.ids.end());
    // Oracle: the tokenizer's decode of the whole sequence.
    EXPECT_EQ(tok_->decode(r.prompt) + run.text, tok_->decode(all)) << prompt;
    spaced += !run.text.empty() && run.text[0] == ' ';
    // Without the flag the reply starts at its first word, as decode() of the reply alone does.
    r.continuation = false;
    Gen reply;
    e->submit(r, reply.callbacks());
    reply.wait();
    EXPECT_EQ(reply.text, tok_->decode(reply.ids)) << prompt;
  }
  EXPECT_GT(spaced, 0) << "no prompt exercised a leading space";
}

TEST_F(EngineTest, LogprobsAreLogSoftmaxOfTheChosenToken) {
  auto e = make(1);
  Gen run;
  auto r = request("Once upon a time", 10);
  r.want_logprobs = true;
  e->submit(r, run.callbacks());
  run.wait();
  ASSERT_EQ(run.logprobs.size(), 10u);
  for (float lp : run.logprobs) {
    EXPECT_LE(lp, 0.0f);
    EXPECT_GT(lp, -20.0f);  // greedy picks: the most likely token is never very unlikely
  }
}

TEST_F(EngineTest, BadTokenIdEndsThatRequestWithErrorAndTheLoopLives) {
  auto e = make(2);
  GenerateRequest bad;
  bad.prompt = {tok_->bos(), static_cast<int32_t>(model_->config().n_vocab) + 5};
  Gen b, good;
  e->submit(request("Once upon a time", 12), good.callbacks());
  e->submit(bad, b.callbacks());
  b.wait();
  good.wait();
  EXPECT_EQ(b.done.reason, FinishReason::kError);
  EXPECT_FALSE(b.done.error.empty());
  EXPECT_EQ(good.done.reason, FinishReason::kLength);
  EXPECT_EQ(good.ids.size(), 12u);
}

TEST_F(EngineTest, SlidingWindowRunsPastTheWindowAndChunkingDoesNotMatter) {
  model::LoadOptions lo;
  lo.sliding_window = 8;
  auto windowed = model::Model::load(kModelPath, lo);
  ASSERT_EQ(windowed->config().sliding_window, 8);
  std::vector<GenerateRequest> reqs;
  for (size_t i = 0; i < 4; ++i) reqs.push_back(request(kPrompts[i] + ", and then they all went home to sleep", 40));
  const auto expected = alone(reqs, windowed);
  for (int batch : {3, 4}) {  // prompts of ~15 tokens: prefilled over several steps, chunk edges differ
    auto e = make(4, batch, 8, 0, windowed);
    std::vector<std::unique_ptr<Gen>> runs;
    for (const auto& r : reqs) {
      runs.push_back(std::make_unique<Gen>());
      e->submit(r, runs.back()->callbacks());
    }
    for (size_t i = 0; i < runs.size(); ++i) {
      runs[i]->wait();
      EXPECT_EQ(runs[i]->ids, expected[i]) << "batch " << batch;
    }
    // Every block is back in the pool (cached or free), and the pool never held more than its budget.
    const auto st = e->stats();
    EXPECT_EQ(st.kv_bytes_used, 0);
    EXPECT_LE(st.kv_bytes_cached, st.kv_bytes_total);
  }
  // The window changes the model's output compared with full attention (so it is really applied).
  EXPECT_NE(expected, alone(reqs));
}

TEST_F(EngineTest, ShutdownCancelsWhatOutlivesTheGraceAndRefusesNewWork) {
  auto e = make(1, 512, 8);
  Gen slow, queued, quick;
  slow.hook = [](const TokenEvent&, int) {
    std::this_thread::sleep_for(2ms);
    return true;
  };
  e->submit(request("Once upon a time", 100000), slow.callbacks());
  e->submit(request("The cat sat", 5), queued.callbacks());
  slow.wait_tokens(2);
  e->shutdown(30ms);
  EXPECT_TRUE(slow.finished);
  EXPECT_TRUE(queued.finished);
  EXPECT_EQ(slow.done.reason, FinishReason::kCancelled);
  EXPECT_EQ(queued.done.reason, FinishReason::kCancelled);
  EXPECT_THROW(e->submit(request("Mom said", 5), quick.callbacks()), QueueFull);

  // With enough grace, in-flight work completes normally.
  auto e2 = make(1);
  Gen done;
  e2->submit(request("Once upon a time", 20), done.callbacks());
  e2->shutdown(30s);
  EXPECT_TRUE(done.finished);
  EXPECT_EQ(done.done.reason, FinishReason::kLength);
}

TEST_F(EngineTest, CallbacksMayReenterTheEngineAndHandlesOutliveIt) {
  auto e = make(1);
  Gen second;
  std::promise<std::shared_ptr<RequestHandle>> handle_p;
  auto first_handle = handle_p.get_future().share();  // the hook may run before submit() returns
  std::atomic<int> stats_seen{-1};
  Gen first;
  first.hook = [&](const TokenEvent&, int n) {
    stats_seen = e->stats().active;  // stats() from the loop thread
    if (n == 3) first_handle.get()->cancel();  // cancel() from inside the callback
    return true;
  };
  Callbacks cb = first.callbacks();
  auto done = cb.on_done;
  cb.on_done = [&, done](const Completion& c) {
    e->submit(request("The cat sat", 4), second.callbacks());  // submit() from on_done
    done(c);
  };
  handle_p.set_value(e->submit(request("Once upon a time", 50), cb));
  first.wait();
  second.wait();
  EXPECT_EQ(first.done.reason, FinishReason::kCancelled);
  EXPECT_EQ(first.ids.size(), 3u);
  EXPECT_EQ(stats_seen.load(), 1);
  EXPECT_EQ(second.done.reason, FinishReason::kLength);
  EXPECT_EQ(second.ids.size(), 4u);

  // Destroying the engine cancels what is queued or running; old handles stay safe to use.
  Gen running, queued;
  running.hook = [](const TokenEvent&, int) {
    std::this_thread::sleep_for(1ms);
    return true;
  };
  auto h = e->submit(request("Once upon a time", 100000), running.callbacks());
  e->submit(request("Mom said", 5), queued.callbacks());
  running.wait_tokens(1);
  e.reset();
  EXPECT_TRUE(running.finished);
  EXPECT_TRUE(queued.finished);
  EXPECT_EQ(running.done.reason, FinishReason::kCancelled);
  EXPECT_EQ(queued.done.reason, FinishReason::kCancelled);
  h->cancel();
}

TEST_F(EngineTest, StatsCountTokens) {
  auto e = make(2);
  EXPECT_EQ(e->stats().parallel, 2);
  EXPECT_GT(e->stats().kv_bytes_total, 0);
  Gen a;
  auto r = request("Once upon a time", 9);
  e->submit(r, a.callbacks());
  a.wait();
  const auto s = e->stats();
  EXPECT_EQ(s.tokens_generated, 9u);
  EXPECT_EQ(s.tokens_prompted, r.prompt.size());
  EXPECT_EQ(s.active, 0);
  EXPECT_EQ(s.kv_bytes_used, 0);
}

}  // namespace
}  // namespace wai::runtime
