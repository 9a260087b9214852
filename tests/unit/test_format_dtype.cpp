// Tensor type table: ids, names, block sizes and block bytes as ggml defines them (ggml-common.h
// block structs, restated here field by field), the supported set, and row_bytes.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "format/dtype.h"
#include "util/error.h"

namespace wai {
namespace {

constexpr size_t kHalf = 2, QK = 256;

struct Expect {
  uint32_t id;
  const char* name;
  int64_t block;
  size_t bytes;
};

// Each size written as the sum of its ggml block struct's fields.
const Expect kExpected[] = {
    {0, "f32", 1, 4},
    {1, "f16", 1, 2},
    {2, "q4_0", 32, kHalf + 16},                       // d, qs[16]
    {3, "q4_1", 32, 2 * kHalf + 16},                   // d, m, qs[16]
    {6, "q5_0", 32, kHalf + 4 + 16},                   // d, qh[4], qs[16]
    {7, "q5_1", 32, 2 * kHalf + 4 + 16},               // d, m, qh[4], qs[16]
    {8, "q8_0", 32, kHalf + 32},                       // d, qs[32]
    {9, "q8_1", 32, 2 * kHalf + 32},                   // d, s, qs[32]
    {10, "q2_K", 256, QK / 16 + QK / 4 + 2 * kHalf},   // scales, qs, d, dmin
    {11, "q3_K", 256, QK / 8 + QK / 4 + 12 + kHalf},   // hmask, qs, scales[12], d
    {12, "q4_K", 256, 2 * kHalf + 12 + QK / 2},        // d, dmin, scales[12], qs
    {13, "q5_K", 256, 2 * kHalf + 12 + QK / 8 + QK / 2},
    {14, "q6_K", 256, QK / 2 + QK / 4 + QK / 16 + kHalf},  // ql, qh, scales, d
    {15, "q8_K", 256, 4 + QK + QK / 16 * 2},           // float d, qs, bsums[16] i16
    {16, "iq2_xxs", 256, kHalf + QK / 8 * 2},
    {17, "iq2_xs", 256, kHalf + QK / 8 * 2 + QK / 32},
    {18, "iq3_xxs", 256, kHalf + 3 * QK / 8},
    {19, "iq1_s", 256, kHalf + QK / 8 + QK / 32 * 2},
    {20, "iq4_nl", 32, kHalf + 16},
    {21, "iq3_s", 256, kHalf + QK / 4 + QK / 32 + QK / 8 + QK / 64},
    {22, "iq2_s", 256, kHalf + QK / 4 + QK / 32 + QK / 32},
    {23, "iq4_xs", 256, kHalf + 2 + QK / 64 + QK / 2},
    {24, "i8", 1, 1},
    {25, "i16", 1, 2},
    {26, "i32", 1, 4},
    {27, "i64", 1, 8},
    {28, "f64", 1, 8},
    {29, "iq1_m", 256, QK / 8 + QK / 16 + QK / 32},
    {30, "bf16", 1, 2},
    {34, "tq1_0", 256, (QK - 4 * QK / 64) / 5 + QK / 64 + kHalf},
    {35, "tq2_0", 256, QK / 4 + kHalf},
    {39, "mxfp4", 32, 1 + 16},
};

TEST(DType, TableMatchesGgml) {
  std::set<uint32_t> known;
  for (const auto& e : kExpected) {
    SCOPED_TRACE(e.name);
    known.insert(e.id);
    auto info = dtype_info(e.id);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->name, e.name);
    EXPECT_EQ(info->block_size, e.block);
    EXPECT_EQ(info->type_size, e.bytes);
    EXPECT_EQ(dtype_name(static_cast<DType>(e.id)), e.name);
    EXPECT_EQ(dtype_from_name(e.name), static_cast<DType>(e.id));
  }
  for (uint32_t id = 0; id < 100; ++id) {
    if (known.count(id)) continue;
    EXPECT_FALSE(dtype_info(id).has_value()) << id;
  }
  EXPECT_FALSE(dtype_info(0xffffffffu).has_value());
  EXPECT_THROW(dtype_info(static_cast<DType>(4)), Error);
}

TEST(DType, SupportedSet) {
  std::set<std::string> supported;
  for (const auto& e : kExpected)
    if (dtype_info(e.id)->supported) supported.insert(e.name);
  EXPECT_EQ(supported, (std::set<std::string>{"f32", "f16", "bf16", "q8_0", "q4_0", "q4_K", "q6_K", "q8_K"}));
}

TEST(DType, NamesAndRowBytes) {
  EXPECT_EQ(dtype_from_name("Q4_0"), DType::Q4_0);
  EXPECT_EQ(dtype_from_name("Q4_k"), DType::Q4_K);
  EXPECT_EQ(dtype_from_name("BF16"), DType::BF16);
  EXPECT_EQ(dtype_from_name("q4"), std::nullopt);
  EXPECT_EQ(dtype_from_name(""), std::nullopt);
  EXPECT_EQ(row_bytes(DType::F32, 7), 28u);
  EXPECT_EQ(row_bytes(DType::Q4_0, 4096), 4096u / 32 * 18);
  EXPECT_EQ(row_bytes(DType::Q6_K, 4096), 16u * 210);
  EXPECT_EQ(row_bytes(DType::Q4_K, 4096 + 32), std::nullopt);
  EXPECT_EQ(row_bytes(DType::Q8_0, 16), std::nullopt);
  EXPECT_EQ(row_bytes(DType::F16, -1), std::nullopt);
  EXPECT_EQ(row_bytes(DType::F16, 0), 0u);
}

}  // namespace
}  // namespace wai
