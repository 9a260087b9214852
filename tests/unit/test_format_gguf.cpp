// GGUF reader and writer: round trips through Writer -> parse, and the real files in ../shared.
#include <gtest/gtest.h>

// GCC 12 reports -Wmaybe-uninitialized inside std::variant's move constructor when a Value temporary is
// pushed into a vector (a known false positive of its inliner); the values are fully initialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "util/error.h"

namespace wai::gguf {
namespace {

std::vector<uint8_t> iota_bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 7);
  return b;
}

Value scalar(ValueType t, uint64_t v) { return Value{t, v}; }
Value scalar_i(ValueType t, int64_t v) { return Value{t, v}; }

TEST(GgufRoundTrip, EveryValueType) {
  Writer w;
  w.set("u8", scalar(ValueType::U8, 255));
  w.set("i8", scalar_i(ValueType::I8, -128));
  w.set("u16", scalar(ValueType::U16, 65535));
  w.set("i16", scalar_i(ValueType::I16, -32768));
  w.set_u32("u32", 4000000000u);
  w.set_i32("i32", -2000000000);
  w.set_f32("f32", 0.1f);
  w.set_bool("bool_t", true);
  w.set_bool("bool_f", false);
  w.set_string("string", "h\xc3\xa9llo \"world\"\n");
  w.set_string("empty", "");
  w.set("u64", scalar(ValueType::U64, std::numeric_limits<uint64_t>::max()));
  w.set("i64", scalar_i(ValueType::I64, std::numeric_limits<int64_t>::min()));
  w.set("f64", Value{ValueType::F64, 3.141592653589793});
  Array strs{ValueType::STRING, {}};
  for (const char* s : {"<unk>", "<s>", "</s>", ""}) strs.items.push_back(Value{ValueType::STRING, std::string(s)});
  w.set_array("arr_str", strs);
  Array f32s{ValueType::F32, {}};
  for (float f : {-1e9f, 0.5f, 1e-30f}) f32s.items.push_back(Value{ValueType::F32, double{f}});
  w.set_array("arr_f32", f32s);
  Array nested{ValueType::ARRAY, {}};
  for (int i = 0; i < 3; ++i) {
    Array inner{ValueType::I32, {}};
    for (int j = 0; j <= i; ++j) inner.items.push_back(scalar_i(ValueType::I32, -j));
    nested.items.push_back(Value{ValueType::ARRAY, inner});
  }
  w.set_array("arr_nested", nested);
  w.set_array("arr_empty", Array{ValueType::U8, {}});
  w.set_u32("u32", 7);  // replaces, keeps position

  auto bytes = w.to_bytes();
  File f = File::parse(bytes);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  EXPECT_EQ(f.data_offset(), bytes.size());  // no tensors
  ASSERT_EQ(f.metadata().size(), 18u);
  EXPECT_EQ(f.metadata()[4].key, "u32");
  EXPECT_EQ(f.get_int("u8"), 255);
  EXPECT_EQ(f.get_int("i8"), -128);
  EXPECT_EQ(f.get_int("u16"), 65535);
  EXPECT_EQ(f.get_int("i16"), -32768);
  EXPECT_EQ(f.get_int("u32"), 7);
  EXPECT_EQ(f.find("u32")->type, ValueType::U32);
  EXPECT_EQ(f.get_int("i32"), -2000000000);
  EXPECT_EQ(f.get_float("f32"), double{0.1f});
  EXPECT_EQ(f.find("f32")->to_string(), "0.1");
  EXPECT_EQ(f.get_bool("bool_t"), true);
  EXPECT_EQ(f.get_bool("bool_f"), false);
  EXPECT_EQ(f.get_string("string"), "h\xc3\xa9llo \"world\"\n");
  EXPECT_EQ(f.find("string")->to_string(), "\"h\xc3\xa9llo \\\"world\\\"\\n\"");
  EXPECT_EQ(f.get_string("empty"), "");
  EXPECT_EQ(std::get<uint64_t>(f.find("u64")->v), std::numeric_limits<uint64_t>::max());
  EXPECT_FALSE(f.find("u64")->as_int().has_value());  // does not fit in int64
  EXPECT_THROW(f.get_int("u64"), Error);
  EXPECT_EQ(f.get_int("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f.get_float("f64"), 3.141592653589793);
  const Array* a = f.get_array("arr_str");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->elem_type, ValueType::STRING);
  ASSERT_EQ(a->items.size(), 4u);
  EXPECT_EQ(*a->items[1].as_string(), "<s>");
  EXPECT_EQ(f.find("arr_str")->to_string(2), "[4 x string: \"<unk>\", \"<s>\", ...]");
  EXPECT_EQ(f.find("arr_f32")->to_string(), "[3 x f32: -1e+09, 0.5, 1e-30]");
  EXPECT_EQ(f.get_array("arr_f32")->items[2].as_float(), double{1e-30f});
  EXPECT_EQ(f.find("arr_nested")->to_string(), "[3 x array: [1 x i32: 0], [2 x i32: 0, -1], [3 x i32: 0, -1, -2]]");
  EXPECT_EQ(f.find("arr_empty")->to_string(), "[0 x u8:]");
  EXPECT_EQ(f.find("missing"), nullptr);
  EXPECT_EQ(f.get_int("missing"), std::nullopt);
  EXPECT_EQ(f.get_array("missing"), nullptr);
  // Typed lookups with the wrong type throw.
  EXPECT_THROW(f.get_int("string"), Error);
  EXPECT_THROW(f.get_int("f32"), Error);
  EXPECT_THROW(f.get_string("u8"), Error);
  EXPECT_THROW(f.get_bool("u8"), Error);
  EXPECT_THROW(f.get_array("string"), Error);
  EXPECT_THROW(f.get_float("string"), Error);
  EXPECT_EQ(f.get_float("i32"), -2000000000.0);  // integers widen to floats
}

TEST(GgufRoundTrip, TensorsOfEveryType) {
  struct T {
    std::string name;
    std::vector<int64_t> dims;
    DType type;
    size_t nbytes;
  };
  const std::vector<T> specs = {
      {"f32", {3, 5}, DType::F32, 60},           {"f16", {7}, DType::F16, 14},
      {"bf16", {2, 2, 2, 2}, DType::BF16, 32},   {"q8_0", {64, 3}, DType::Q8_0, 2 * 3 * 34},
      {"q4_0", {32, 1, 2}, DType::Q4_0, 2 * 18}, {"q4_K", {512, 2}, DType::Q4_K, 2 * 2 * 144},
      {"q6_K", {256}, DType::Q6_K, 210},         {"q5_1", {32}, DType::Q5_1, 24},
      {"i8", {3}, DType::I8, 3},                 {"iq4_xs", {256, 2}, DType::IQ4_XS, 2 * 136},
  };
  std::vector<std::vector<uint8_t>> datas;
  Writer w;
  w.set_string("general.architecture", "llama");
  for (size_t i = 0; i < specs.size(); ++i) datas.push_back(iota_bytes(specs[i].nbytes, static_cast<uint8_t>(i)));
  for (size_t i = 0; i < specs.size(); ++i) w.add_tensor(specs[i].name, specs[i].dims, specs[i].type, datas[i]);
  auto bytes = w.to_bytes();
  File f = File::parse(bytes);
  ASSERT_EQ(f.tensors().size(), specs.size());
  uint64_t expect_offset = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorInfo& t = f.tensors()[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, specs[i].name);  // add order
    EXPECT_EQ(t.dims, specs[i].dims);
    EXPECT_EQ(t.type, specs[i].type);
    EXPECT_EQ(t.nbytes, specs[i].nbytes);
    EXPECT_EQ(t.offset, expect_offset);
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(t.rows() * t.dims[0], t.n_elements());
    EXPECT_EQ(std::memcmp(t.data, datas[i].data(), t.nbytes), 0);
    EXPECT_EQ(t.data, bytes.data() + f.data_offset() + t.offset);
    expect_offset = (expect_offset + t.nbytes + 31) / 32 * 32;
    EXPECT_EQ(f.find_tensor(specs[i].name), &t);
  }
  EXPECT_EQ(f.data_offset() + expect_offset, bytes.size());  // last tensor padded too
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
}

TEST(GgufRoundTrip, CustomAlignmentAndFile) {
  Writer w;
  w.set_u32("general.alignment", 64);
  auto d1 = iota_bytes(4 * 3, 1), d2 = iota_bytes(4 * 17, 2);
  w.add_tensor("a", {3}, DType::F32, d1);
  w.add_tensor("b", {17}, DType::F32, d2);
  std::filesystem::create_directories(WAI_TEST_TMP);
  const std::string path = std::string(WAI_TEST_TMP) + "/format_gguf_align64.gguf";
  w.write(path);
  File f = File::open(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.tensors()[1].offset, 64u);
  EXPECT_EQ(std::memcmp(f.tensors()[1].data, d2.data(), d2.size()), 0);
  auto mem = w.to_bytes();
  ASSERT_EQ(f.bytes().size(), mem.size());
  EXPECT_EQ(std::memcmp(f.bytes().data(), mem.data(), mem.size()), 0);  // write() == to_bytes()
  std::filesystem::remove(path);
}

TEST(GgufWriter, RejectsBadInput) {
  Writer w;
  std::vector<uint8_t> d(8);
  EXPECT_THROW(w.add_tensor("x", {3}, DType::F32, d), Error);        // wrong byte count
  EXPECT_THROW(w.add_tensor("x", {2, 0}, DType::F32, {}), Error);    // zero dim
  EXPECT_THROW(w.add_tensor("x", {16}, DType::Q8_0, d), Error);      // not a multiple of the block
  EXPECT_THROW(w.add_tensor("x", {1, 1, 1, 1, 2}, DType::F32, d), Error);
  EXPECT_THROW(w.add_tensor(std::string(64, 'n'), {2}, DType::F32, d), Error);  // llama.cpp limit
  w.add_tensor("x", {2}, DType::F32, d);
  EXPECT_THROW(w.add_tensor("x", {2}, DType::F32, d), Error);        // duplicate
  w.set("bad", Value{ValueType::U8, uint64_t{256}});
  EXPECT_THROW(w.to_bytes(), Error);
  w.set("bad", Value{ValueType::STRING, uint64_t{1}});
  EXPECT_THROW(w.to_bytes(), Error);
  w.set("bad", Value{ValueType::ARRAY, Array{ValueType::U8, {Value{ValueType::I8, int64_t{1}}}}});
  EXPECT_THROW(w.to_bytes(), Error);
  w.set("bad", Value{ValueType::U8, uint64_t{1}});
  w.set_u32("general.alignment", 48);
  EXPECT_THROW(w.to_bytes(), Error);
  w.set_u32("general.alignment", 16);
  EXPECT_NO_THROW(File::parse(w.to_bytes()));
}

// ---- Real files (written by llama.cpp's tools) ------------------------------------------------------

TEST(GgufRealFiles, Stories260K) {
  File f = File::open(std::string(WAI_SHARED_DIR) + "/models/stories260K.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.embedding_length"), 64);
  EXPECT_EQ(f.get_int("llama.block_count"), 5);
  EXPECT_EQ(f.get_int("llama.attention.head_count"), 8);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 4);
  const Array* tokens = f.get_array("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->items.size(), 512u);
  EXPECT_EQ(tokens->elem_type, ValueType::STRING);
  const TensorInfo* emb = f.find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->dims, (std::vector<int64_t>{64, 512}));
  // 5 layers x 9 tensors + token_embd + output_norm (+ output when untied).
  EXPECT_GE(f.tensors().size(), 47u);
  ASSERT_NE(f.find_tensor("blk.4.ffn_down.weight"), nullptr);
  EXPECT_EQ(f.find_tensor("blk.0.attn_k.weight")->dims, (std::vector<int64_t>{64, 32}));  // 4 kv heads x 8
  uint64_t end = 0;
  for (const auto& t : f.tensors()) end = std::max(end, t.offset + t.nbytes);
  EXPECT_LE(f.data_offset() + end, f.bytes().size());
  EXPECT_GT(f.data_offset() + end + f.alignment(), f.bytes().size());  // data fills the file
}

TEST(GgufRealFiles, TokenizerVocabs) {
  for (const char* name : {"ggml-vocab-llama-spm.gguf", "mistral-v0.1-vocab.gguf"}) {
    SCOPED_TRACE(name);
    File f = File::open(std::string(WAI_SHARED_DIR) + "/testdata/tokenizer/" + name);
    EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
    const Array* tokens = f.get_array("tokenizer.ggml.tokens");
    const Array* scores = f.get_array("tokenizer.ggml.scores");
    const Array* types = f.get_array("tokenizer.ggml.token_type");
    ASSERT_TRUE(tokens && scores && types);
    EXPECT_EQ(tokens->items.size(), 32000u);
    EXPECT_EQ(scores->items.size(), 32000u);
    EXPECT_EQ(types->items.size(), 32000u);
    EXPECT_EQ(scores->elem_type, ValueType::F32);
    EXPECT_EQ(*tokens->items[0].as_string(), "<unk>");
    EXPECT_EQ(*tokens->items[1].as_string(), "<s>");
    EXPECT_EQ(*tokens->items[2].as_string(), "</s>");
    EXPECT_EQ(f.get_int("tokenizer.ggml.bos_token_id"), 1);
    EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id"), 2);
    EXPECT_EQ(f.find("tokenizer.ggml.tokens")->to_string(3), "[32000 x string: \"<unk>\", \"<s>\", \"</s>\", ...]");
  }
}

}  // namespace
}  // namespace wai::gguf

namespace wai::gguf {
namespace {

// The Writer, fed a real file's metadata and tensors in file order, reproduces the file byte for byte:
// the files were written by llama.cpp's tools / gguf-py, so this checks the Writer's layout against theirs.
TEST(GgufRealFiles, WriterReproducesFilesByteForByte) {
  for (const char* rel : {"models/stories260K.gguf", "testdata/tokenizer/ggml-vocab-llama-spm.gguf",
                          "testdata/tokenizer/mistral-v0.1-vocab.gguf"}) {
    SCOPED_TRACE(rel);
    File f = File::open(std::string(WAI_SHARED_DIR) + "/" + rel);
    Writer w;
    for (const auto& kv : f.metadata()) w.set(kv.key, kv.value);
    for (const auto& t : f.tensors()) w.add_tensor(t.name, t.dims, t.type, {t.data, t.nbytes});
    auto bytes = w.to_bytes();
    // gguf-py once wrote tensor-less files without the final padding (ggml-vocab-llama-spm.gguf); the
    // Writer pads like llama.cpp's gguf_write_to_buf does.
    const bool unpadded = f.tensors().empty() && f.bytes().size() % f.alignment() != 0;
    ASSERT_EQ(bytes.size(), unpadded ? f.data_offset() : f.bytes().size());
    EXPECT_TRUE(std::equal(f.bytes().begin(), f.bytes().end(), bytes.begin()));
    for (size_t i = f.bytes().size(); i < bytes.size(); ++i) EXPECT_EQ(bytes[i], 0) << i;
  }
}

}  // namespace
}  // namespace wai::gguf
