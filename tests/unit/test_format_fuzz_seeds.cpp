// The fuzz target's seed corpus (tests/fuzz/corpus/fuzz_format_gguf/): small valid GGUFs made by the
// Writer. This test checks that the committed seeds are exactly what the Writer makes today and that
// they parse; with WAI_WRITE_SEEDS=1 in the environment it (re)writes them instead. (No .gguf suffix:
// .gitignore ignores *.gguf.)
#include <gtest/gtest.h>

// GCC 12 reports -Wmaybe-uninitialized inside std::variant's move constructor when a Value temporary is
// pushed into a vector (a known false positive of its inliner); the values are fully initialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "format/gguf_writer.h"

namespace wai::gguf {
namespace {

using Bytes = std::vector<uint8_t>;

Value str(std::string s) { return Value{ValueType::STRING, std::move(s)}; }

std::map<std::string, Bytes> make_seeds() {
  std::map<std::string, Bytes> seeds;
  std::vector<uint8_t> pattern(4096);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>(i * 37 + 11);
  auto data = [&](size_t n) { return std::span<const uint8_t>(pattern.data(), n); };

  {  // Every value type, nested arrays, no tensors.
    Writer w;
    w.set("u8", Value{ValueType::U8, uint64_t{200}});
    w.set("i8", Value{ValueType::I8, int64_t{-5}});
    w.set("u16", Value{ValueType::U16, uint64_t{60000}});
    w.set("i16", Value{ValueType::I16, int64_t{-300}});
    w.set_u32("u32", 123456);
    w.set_i32("i32", -7);
    w.set_f32("f32", 1.5f);
    w.set_bool("bool", true);
    w.set_string("string", "hello");
    w.set("u64", Value{ValueType::U64, uint64_t{1} << 40});
    w.set("i64", Value{ValueType::I64, int64_t{-1} << 40});
    w.set("f64", Value{ValueType::F64, 2.25});
    Array inner{ValueType::U16, {Value{ValueType::U16, uint64_t{1}}, Value{ValueType::U16, uint64_t{2}}}};
    w.set_array("nested", Array{ValueType::ARRAY, {Value{ValueType::ARRAY, inner}, Value{ValueType::ARRAY, inner}}});
    seeds["values"] = w.to_bytes();
  }
  {  // A tiny llama: vocab arrays and tensors of every supported type.
    Writer w;
    w.set_string("general.architecture", "llama");
    w.set_u32("llama.embedding_length", 32);
    w.set_u32("llama.block_count", 1);
    Array toks{ValueType::STRING, {}}, scores{ValueType::F32, {}}, types{ValueType::I32, {}};
    for (int i = 0; i < 16; ++i) {
      toks.items.push_back(str(i < 3 ? std::vector<std::string>{"<unk>", "<s>", "</s>"}[i] : "\xe2\x96\x81t" + std::to_string(i)));
      scores.items.push_back(Value{ValueType::F32, double(-i)});
      types.items.push_back(Value{ValueType::I32, int64_t{i < 3 ? 3 : 1}});
    }
    w.set_array("tokenizer.ggml.tokens", toks);
    w.set_array("tokenizer.ggml.scores", scores);
    w.set_array("tokenizer.ggml.token_type", types);
    w.add_tensor("token_embd.weight", {32, 2}, DType::F32, data(256));
    w.add_tensor("f16", {32}, DType::F16, data(64));
    w.add_tensor("bf16", {4, 2}, DType::BF16, data(16));
    w.add_tensor("q8_0", {32, 2}, DType::Q8_0, data(68));
    w.add_tensor("q4_0", {64}, DType::Q4_0, data(36));
    w.add_tensor("q4_K", {256}, DType::Q4_K, data(144));
    w.add_tensor("q6_K", {256}, DType::Q6_K, data(210));
    seeds["tiny-llama"] = w.to_bytes();
  }
  {  // Custom alignment, 3-d and 4-d tensors.
    Writer w;
    w.set_u32("general.alignment", 64);
    w.add_tensor("a", {2, 3, 4}, DType::F32, data(96));
    w.add_tensor("b", {1, 1, 1, 5}, DType::F16, data(10));
    seeds["align64"] = w.to_bytes();
  }
  {  // Version 2, one key.
    Writer w;
    w.set_string("general.name", "v2");
    Bytes b = w.to_bytes();
    b[4] = 2;
    seeds["v2"] = b;
  }
  return seeds;
}

std::string corpus_dir() {
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "fuzz" / "corpus" / "fuzz_format_gguf").string();
}

TEST(FuzzSeeds, CommittedSeedsMatchTheWriterAndParse) {
  const auto seeds = make_seeds();
  if (const char* w = std::getenv("WAI_WRITE_SEEDS"); w && std::strcmp(w, "1") == 0) {
    std::filesystem::create_directories(corpus_dir());
    for (const auto& [name, bytes] : seeds) {
      std::ofstream out(corpus_dir() + "/" + name, std::ios::binary);
      out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
  }
  for (const auto& [name, bytes] : seeds) {
    SCOPED_TRACE(name);
    std::ifstream in(corpus_dir() + "/" + name, std::ios::binary);
    ASSERT_TRUE(in) << "missing seed; run with WAI_WRITE_SEEDS=1";
    Bytes on_disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(on_disk, bytes);
    EXPECT_NO_THROW(File::parse(on_disk));
  }
  EXPECT_EQ(File::parse(seeds.at("v2")).version(), 2u);
  EXPECT_EQ(File::parse(seeds.at("tiny-llama")).tensors().size(), 7u);
}

}  // namespace
}  // namespace wai::gguf
