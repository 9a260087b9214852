// huge_alloc's contract: 64-byte alignment always, 2 MiB alignment and whole huge pages from
// kHugeMinBytes on, memory usable to its last byte; HugeVector behaves as a std::vector; and where THP
// is available (enabled = always or madvise), a touched large buffer is in fact backed by huge pages.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "util/huge_pages.h"
#include "util/huge_vector.h"

namespace wai {
namespace {

TEST(HugePages, AlignmentAndUsableSize) {
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{63}, size_t{4096}, kHugeMinBytes - 1, kHugeMinBytes,
                       kHugePageBytes + 1, size_t{9} << 20}) {
    void* p = huge_alloc(bytes);
    ASSERT_NE(p, nullptr);
    const auto a = reinterpret_cast<uintptr_t>(p);
    EXPECT_EQ(a % 64, 0u) << bytes;
    if (bytes >= kHugeMinBytes) {
      EXPECT_EQ(a % kHugePageBytes, 0u) << bytes;
    }
    if (bytes > 0) {
      std::memset(p, 0xA5, bytes);
      EXPECT_EQ(static_cast<unsigned char*>(p)[bytes - 1], 0xA5);
    }
    huge_free(p);
  }
  huge_free(nullptr);
}

TEST(HugePages, HugeVectorIsAVector) {
  HugeVector<float> v;
  v.resize(3, 1.5f);
  v.push_back(2.0f);
  v.resize(size_t{1} << 20);  // 4 MiB: moves to a huge allocation, keeps the contents, zero-fills
  EXPECT_EQ(v[0], 1.5f);
  EXPECT_EQ(v[3], 2.0f);
  EXPECT_EQ(v[4], 0.0f);
  EXPECT_EQ(v.back(), 0.0f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % kHugePageBytes, 0u);
  HugeVector<float> w = v;
  EXPECT_EQ(w, v);
}

// AnonHugePages of this process (kB), from /proc/self/smaps_rollup; -1 where it is not readable.
long anon_huge_kb() {
  std::ifstream f("/proc/self/smaps_rollup");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("AnonHugePages:", 0) == 0) return std::stol(line.substr(14));
  return -1;
}

TEST(HugePages, LargeBuffersGetHugePagesWhereTheOsOffersThem) {
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::stringstream ss;
  ss << thp.rdbuf();
  const std::string mode = ss.str();
  if (mode.find("[never]") != std::string::npos || mode.empty() || anon_huge_kb() < 0)
    GTEST_SKIP() << "transparent huge pages unavailable here: " << mode;
  const long before = anon_huge_kb();
  const size_t bytes = size_t{16} << 20;
  void* p = huge_alloc(bytes);
  std::memset(p, 1, bytes);
  const long after = anon_huge_kb();
  huge_free(p);
  // At least half of the 16 MiB in 2 MiB pages (the kernel may fall back for some under pressure).
  EXPECT_GE(after - before, static_cast<long>(bytes / 1024 / 2)) << "THP mode: " << mode;
}

}  // namespace
}  // namespace wai
