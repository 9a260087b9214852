// ThreadPool::parallel_for's contract: every index of [0, n) in exactly one call, ranges contiguous
// and aligned to the grain, any thread count; work goes to whichever thread is free, in chunks that
// shrink towards the end of the range.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "util/thread_pool.h"

namespace wai {
namespace {

TEST(ThreadPool, ParallelForCoversEachIndexOnceInAlignedRanges) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 5, 16, 17, 100, 1000, 4099})
      for (int64_t grain : {1, 4, 16, 32}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::mutex m;
        std::vector<std::pair<int64_t, int64_t>> ranges;
        pool.parallel_for(n, [&](int64_t b, int64_t e) {
          ASSERT_LT(b, e);
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
          std::lock_guard<std::mutex> g(m);
          ranges.emplace_back(b, e);
        }, grain);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << n << " " << grain << " " << i;
        for (auto [b, e] : ranges) {
          EXPECT_EQ(b % grain, 0) << "range start not aligned";
          EXPECT_TRUE(e == n || e % grain == 0) << "range end not aligned";
        }
      }
  }
}

TEST(ThreadPool, SlowThreadDoesNotHoldItsShareOfTheWork) {
  // The first range a thread gets sleeps; the others are instant. With one fixed range per thread
  // the sleeper would take half the work; with chunks handed out on demand it takes one chunk.
  ThreadPool pool(2);
  std::mutex m;
  std::set<std::thread::id> slept;
  std::atomic<int64_t> done_by_sleeper{0};
  pool.parallel_for(64, [&](int64_t b, int64_t e) {
    bool sleep = false;
    {
      std::lock_guard<std::mutex> g(m);
      sleep = slept.empty();
      if (sleep) slept.insert(std::this_thread::get_id());
    }
    if (sleep) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      done_by_sleeper += e - b;
    }
  });
  EXPECT_LT(done_by_sleeper.load(), 32) << "the sleeping thread ran half of the work";
}

TEST(ThreadPool, ChunksShrinkTowardsTheEnd) {
  // Guided scheduling: long chunks first (a kernel streams its rows in order), short ones last (the
  // threads finish close together): the first is a quarter of the range with 2 threads, lengths in
  // range order never grow, and the last ones are at most 1/64 of it.
  ThreadPool pool(2);
  std::mutex m;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  pool.parallel_for(4096, [&](int64_t b, int64_t e) {
    std::lock_guard<std::mutex> g(m);
    ranges.emplace_back(b, e);
  });
  std::sort(ranges.begin(), ranges.end());
  ASSERT_GE(ranges.size(), 8u);
  EXPECT_EQ(ranges.front(), (std::pair<int64_t, int64_t>{0, 1024}));
  for (size_t i = 1; i < ranges.size(); ++i)
    EXPECT_LE(ranges[i].second - ranges[i].first, ranges[i - 1].second - ranges[i - 1].first) << "chunk " << i;
  EXPECT_LE(ranges.back().second - ranges.back().first, 64);
  EXPECT_LE(ranges[ranges.size() - 2].second - ranges[ranges.size() - 2].first, 64);
}

TEST(ThreadPool, RunCallsEveryThreadOnce) {
  ThreadPool pool(3);
  std::atomic<int> mask{0};
  pool.run([&](int t, int total) {
    EXPECT_EQ(total, 3);
    mask.fetch_or(1 << t);
  });
  EXPECT_EQ(mask.load(), 7);
}

}  // namespace
}  // namespace wai
