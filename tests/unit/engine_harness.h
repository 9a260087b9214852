// What the engine tests share: a request's recorder (Gen) and greedy sampling parameters.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/engine.h"

namespace wai::runtime::harness {

using namespace std::chrono_literals;

// Everything one request produced, filled in by its callbacks (on the loop thread).
struct Gen {
  std::mutex m;
  std::condition_variable cv;
  std::vector<int32_t> ids;
  std::vector<std::string> pieces;
  std::vector<float> logprobs;
  std::string text;  // events + tail
  Completion done;
  bool finished = false;
  std::function<bool(const TokenEvent&, int n)> hook;  // optional: runs on each token; false cancels

  Callbacks callbacks() {
    Callbacks cb;
    cb.on_token = [this](const TokenEvent& ev) {
      int n;
      {
        std::lock_guard<std::mutex> lk(m);
        ids.push_back(ev.id);
        pieces.push_back(ev.text);
        logprobs.push_back(ev.logprob);
        text += ev.text;
        n = static_cast<int>(ids.size());
        cv.notify_all();
      }
      return hook ? hook(ev, n) : true;
    };
    cb.on_done = [this](const Completion& c) {
      {
        std::lock_guard<std::mutex> lk(m);
        done = c;
        text += c.tail_text;
        finished = true;
        cv.notify_all();  // under the lock: the waiter may destroy this object as soon as it wakes
      }
    };
    return cb;
  }
  void wait() {
    std::unique_lock<std::mutex> lk(m);
    ASSERT_TRUE(cv.wait_for(lk, 60s, [&] { return finished; })) << "request did not finish";
  }
  void wait_tokens(size_t n) {
    std::unique_lock<std::mutex> lk(m);
    ASSERT_TRUE(cv.wait_for(lk, 60s, [&] { return ids.size() >= n || finished; }));
  }
};

inline text::SamplingParams greedy() {
  text::SamplingParams p;
  p.temperature = 0;
  return p;
}

inline bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (int k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += len;
  }
  return true;
}


}  // namespace wai::runtime::harness
