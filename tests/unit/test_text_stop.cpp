// StopMatcher: held-back prefixes, matches split across pushes, earliest of several stops, flush.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "text/stop.h"

namespace {

using wai::text::StopMatcher;

// Feeds `text` in the given chunk sizes; returns (emitted text, stopped).
std::pair<std::string, bool> feed(StopMatcher& m, const std::string& text, const std::vector<size_t>& cuts) {
  std::string out;
  size_t pos = 0;
  for (size_t i = 0; pos < text.size(); ++i) {
    const size_t n = std::min(cuts[i % cuts.size()], text.size() - pos);
    auto r = m.push(text.substr(pos, n));
    out += r.emit;
    pos += n;
    if (r.stopped) return {out, true};
  }
  return {out + m.flush(), false};
}

TEST(StopMatcher, HoldsBackPossiblePrefix) {
  StopMatcher m({"</answer>"});
  auto r = m.push("The result is 4</ans");
  EXPECT_EQ(r.emit, "The result is 4");
  EXPECT_FALSE(r.stopped);
  r = m.push("wer> trailing");
  EXPECT_EQ(r.emit, "");
  EXPECT_TRUE(r.stopped);
  EXPECT_TRUE(m.push("more").stopped);
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, FalseAlarmIsReleased) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.push("ST").emit, "");
  EXPECT_EQ(m.push("ART").emit, "START");
  EXPECT_EQ(m.push("S").emit, "");
  EXPECT_EQ(m.flush(), "S");
}

TEST(StopMatcher, EarliestOfSeveral) {
  StopMatcher m({"world", "lo w", "\n\n"});
  auto r = m.push("Hello world");
  EXPECT_EQ(r.emit, "Hel");
  EXPECT_TRUE(r.stopped);
}

TEST(StopMatcher, NoStopsAndEmptyStops) {
  StopMatcher m({"", ""});
  EXPECT_EQ(m.push("abc").emit, "abc");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, AnyChunkingGivesTheSameResult) {
  std::mt19937 rng(4);
  const std::vector<std::string> stops = {"User:", "###", "ab"};
  const std::vector<std::string> texts = {"Hello there.\n### next", "aaaaaaab", "User User: hi", "no stop here #",
                                          "日本語 ## 語 User", "a"};
  for (const auto& t : texts) {
    // Reference: the earliest occurrence of any stop in the whole text.
    size_t best = std::string::npos;
    for (const auto& s : stops) best = std::min(best, t.find(s));
    const std::string want = best == std::string::npos ? t : t.substr(0, best);
    for (int trial = 0; trial < 50; ++trial) {
      std::vector<size_t> cuts;
      for (int i = 0; i < 8; ++i) cuts.push_back(1 + rng() % 4);
      StopMatcher m(stops);
      const auto [out, stopped] = feed(m, t, cuts);
      EXPECT_EQ(out, want) << t;
      EXPECT_EQ(stopped, best != std::string::npos) << t;
    }
  }
}

}  // namespace
