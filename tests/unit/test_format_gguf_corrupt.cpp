// Hand-made corrupt GGUF files: each starts from a valid Writer output and mutates bytes (or is built
// raw), and must be refused with wai::Error (kInvalidInput) whose message names the problem.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "util/error.h"

namespace wai::gguf {
namespace {

using Bytes = std::vector<uint8_t>;

// The base file: 5 metadata entries and two tensors, f32 [8, 2] (64 bytes at offset 0) and q8_0 [32]
// (34 bytes at offset 64), alignment 32.
struct Base {
  std::vector<uint8_t> d0 = Bytes(64, 1), d1 = Bytes(34, 2);
  Bytes bytes;
  Base() {
    Writer w;
    w.set_string("general.architecture", "llama");
    w.set_u32("test.k1", 7);
    w.set_u32("test.k2", 8);
    w.set_bool("test.flag", true);
    Array a{ValueType::STRING, {}};
    for (const char* s : {"a", "bc", "def"}) a.items.push_back(Value{ValueType::STRING, std::string(s)});
    w.set_array("test.tokens", a);
    w.set_u32("general.alignment", 32);
    w.add_tensor("tensor.a", {8, 2}, DType::F32, d0);
    w.add_tensor("tensor.b", {32}, DType::Q8_0, d1);
    bytes = w.to_bytes();
  }
};

// Position just after the length-prefixed string `s` (a key or tensor name) in the file.
size_t after(const Bytes& b, std::string_view s) {
  Bytes needle(8);
  uint64_t n = s.size();
  std::memcpy(needle.data(), &n, 8);
  needle.insert(needle.end(), s.begin(), s.end());
  auto it = std::search(b.begin(), b.end(), needle.begin(), needle.end());
  EXPECT_NE(it, b.end()) << s;
  return static_cast<size_t>(it - b.begin()) + needle.size();
}

template <typename T>
void poke(Bytes& b, size_t pos, T v) {
  ASSERT_LE(pos + sizeof(T), b.size());
  std::memcpy(b.data() + pos, &v, sizeof(T));
}

// Tensor info field positions relative to the end of the tensor name (2 dims for alpha, 1 for beta).
size_t ndims_at(const Bytes& b, std::string_view name) { return after(b, name); }
size_t dim_at(const Bytes& b, std::string_view name, int i) { return after(b, name) + 4 + 8 * i; }
size_t type_at(const Bytes& b, std::string_view name, int n_dims) { return after(b, name) + 4 + 8 * n_dims; }
size_t offset_at(const Bytes& b, std::string_view name, int n_dims) { return type_at(b, name, n_dims) + 4; }

// Raw little-endian builder for files the Writer refuses to produce.
struct Raw {
  Bytes b;
  Raw& u32(uint32_t v) { return put(v); }
  Raw& u64(uint64_t v) { return put(v); }
  Raw& str(std::string_view s) {
    u64(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  template <typename T>
  Raw& put(T v) {
    uint8_t x[sizeof(T)];
    std::memcpy(x, &v, sizeof(T));
    b.insert(b.end(), x, x + sizeof(T));
    return *this;
  }
  Raw& header(uint64_t n_tensors, uint64_t n_kv) {
    b.assign({'G', 'G', 'U', 'F'});
    return u32(3).u64(n_tensors).u64(n_kv);
  }
};

std::string parse_error(const Bytes& b) {
  try {
    File::parse(b);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput) << e.what();
    return e.what();
  }
  return "(parsed without error)";
}

TEST(GgufCorrupt, BaseIsValid) {
  Base base;
  File f = File::parse(base.bytes);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensors()[1].offset, 64u);
  EXPECT_EQ(f.data_offset() + 128, base.bytes.size());
}

// Every prefix of the file that cuts the header, metadata, tensor infos or tensor data is refused;
// prefixes that only drop the zero padding after the last tensor are complete files.
TEST(GgufCorrupt, TruncatedAtEveryLength) {
  Base base;
  const size_t data_offset = File::parse(base.bytes).data_offset();
  const size_t end_of_data = data_offset + 64 + 34;
  for (size_t n = 0; n < base.bytes.size(); ++n) {
    Bytes prefix(base.bytes.begin(), base.bytes.begin() + n);
    if (n < end_of_data) {
      std::string msg = parse_error(prefix);
      EXPECT_NE(msg.find("gguf: "), std::string::npos) << "prefix " << n << ": " << msg;
      EXPECT_TRUE(msg.find("truncated") != std::string::npos || msg.find("too small") != std::string::npos ||
                  msg.find("past the end") != std::string::npos || msg.find("too large") != std::string::npos ||
                  msg.find("outside the data section") != std::string::npos)
          << "prefix " << n << ": " << msg;
    } else {
      EXPECT_NO_THROW(File::parse(prefix)) << "prefix " << n;
    }
  }
}

struct Case {
  const char* name;
  std::function<void(Bytes&)> mutate;
  const char* phrase;  // must appear in the error message
};

TEST(GgufCorrupt, Table) {
  const std::vector<Case> cases = {
      {"wrong magic", [](Bytes& b) { b[0] = 'X'; }, "bad magic 'XGUF'"},
      {"version 1", [](Bytes& b) { poke<uint32_t>(b, 4, 1); }, "version 1 is not supported"},
      {"version 99", [](Bytes& b) { poke<uint32_t>(b, 4, 99); }, "unsupported version 99"},
      {"big-endian", [](Bytes& b) { poke<uint32_t>(b, 4, 0x03000000); }, "big-endian"},
      {"huge tensor count", [](Bytes& b) { poke<uint64_t>(b, 8, uint64_t{1} << 60); }, "tensor count 1152921504606846976 is too large"},
      {"huge metadata count", [](Bytes& b) { poke<uint64_t>(b, 16, uint64_t{1} << 60); }, "metadata count 1152921504606846976 is too large"},
      {"key length past end", [](Bytes& b) { poke<uint64_t>(b, 24, uint64_t{1} << 63); }, "key length 9223372036854775808 at byte 24 runs past the end"},
      {"string value past end",
       [](Bytes& b) { poke<uint64_t>(b, after(b, "general.architecture") + 4, 1000000); },
       "string value length 1000000"},
      {"huge array count",
       [](Bytes& b) { poke<uint64_t>(b, after(b, "test.tokens") + 8, uint64_t{1} << 62); },
       "array count 4611686018427387904 is too large"},
      {"unknown value type", [](Bytes& b) { poke<uint32_t>(b, after(b, "test.k1"), 13); }, "unknown value type 13 (in metadata key 'test.k1')"},
      {"unknown array element type", [](Bytes& b) { poke<uint32_t>(b, after(b, "test.tokens") + 4, 99); }, "unknown array element type 99"},
      {"bool not 0/1", [](Bytes& b) { b[after(b, "test.flag") + 4] = 2; }, "bool value 2"},
      {"duplicate key", [](Bytes& b) { b[after(b, "test.k2") - 1] = '1'; }, "duplicate key 'test.k1'"},
      {"alignment not a power of two", [](Bytes& b) { poke<uint32_t>(b, after(b, "general.alignment") + 4, 48); }, "general.alignment 48 is not a nonzero power of two"},
      {"alignment zero", [](Bytes& b) { poke<uint32_t>(b, after(b, "general.alignment") + 4, 0); }, "general.alignment 0 is not a nonzero power of two"},
      {"alignment not an integer", [](Bytes& b) { poke<uint32_t>(b, after(b, "general.alignment"), 6); }, "general.alignment must be an integer, got f32"},
      {"unknown tensor type", [](Bytes& b) { poke<uint32_t>(b, type_at(b, "tensor.a", 2), 4); }, "unknown tensor type 4 (in tensor 'tensor.a')"},
      {"tensor type far out", [](Bytes& b) { poke<uint32_t>(b, type_at(b, "tensor.a", 2), 0xffffffff); }, "unknown tensor type 4294967295"},
      {"n_dims 5", [](Bytes& b) { poke<uint32_t>(b, ndims_at(b, "tensor.a"), 5); }, "n_dims 5 is out of range"},
      {"n_dims 0", [](Bytes& b) { poke<uint32_t>(b, ndims_at(b, "tensor.a"), 0); }, "n_dims 0 is out of range"},
      {"zero dim", [](Bytes& b) { poke<uint64_t>(b, dim_at(b, "tensor.a", 1), 0); }, "dimension 1 is 0 (must be positive)"},
      {"negative dim", [](Bytes& b) { poke<int64_t>(b, dim_at(b, "tensor.a", 0), -8); }, "dimension 0 is -8 (must be positive)"},
      {"element count overflow",
       [](Bytes& b) {
         poke<uint64_t>(b, dim_at(b, "tensor.a", 0), uint64_t{1} << 32);
         poke<uint64_t>(b, dim_at(b, "tensor.a", 1), uint64_t{1} << 32);
       },
       "element count overflows"},
      {"byte size overflow", [](Bytes& b) { poke<uint64_t>(b, dim_at(b, "tensor.a", 0), uint64_t{1} << 61); }, "byte size overflows"},
      {"dims[0] not a block multiple", [](Bytes& b) { poke<uint64_t>(b, dim_at(b, "tensor.b", 0), 16); }, "dims[0] = 16 is not a multiple of the q8_0 block size 32"},
      {"offset out of range", [](Bytes& b) { poke<uint64_t>(b, offset_at(b, "tensor.b", 1), 1 << 20); }, "tensor 'tensor.b' data [1048576, +34) lies outside the data section"},
      {"offset + size wraps", [](Bytes& b) { poke<uint64_t>(b, offset_at(b, "tensor.b", 1), ~uint64_t{31}); }, "lies outside the data section"},
      {"misaligned offset", [](Bytes& b) { poke<uint64_t>(b, offset_at(b, "tensor.b", 1), 65); }, "offset 65 is not a multiple of the alignment 32"},
      {"overlapping tensors", [](Bytes& b) { poke<uint64_t>(b, offset_at(b, "tensor.b", 1), 32); }, "tensors 'tensor.a' [0, +64) and 'tensor.b' [32, +34) overlap"},
      {"duplicate tensor name", [](Bytes& b) { b[after(b, "tensor.b") - 1] = 'a'; }, "duplicate tensor name 'tensor.a'"},
  };
  Base base;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Bytes b = base.bytes;
    c.mutate(b);
    std::string msg = parse_error(b);
    EXPECT_NE(msg.find(c.phrase), std::string::npos) << "message: " << msg;
  }
}

// Every single-byte change of the base file either parses (then every tensor span lies inside the
// buffer) or is refused with kInvalidInput: never a crash or another exception type.
TEST(GgufCorrupt, EverySingleByteMutation) {
  Base base;
  size_t refused = 0, accepted = 0;
  for (size_t i = 0; i < base.bytes.size(); ++i) {
    for (uint8_t v : {uint8_t{0}, uint8_t{1}, uint8_t{0x7f}, uint8_t{0x80}, uint8_t{0xff},
                      static_cast<uint8_t>(base.bytes[i] + 1), static_cast<uint8_t>(base.bytes[i] ^ 0x20)}) {
      if (v == base.bytes[i]) continue;
      Bytes b = base.bytes;
      b[i] = v;
      try {
        File f = File::parse(b);
        for (const auto& t : f.tensors()) {
          ASSERT_GE(t.data, b.data() + f.data_offset());
          ASSERT_LE(t.data + t.nbytes, b.data() + b.size());
        }
        ++accepted;
      } catch (const Error& e) {
        ASSERT_EQ(e.kind(), ErrorKind::kInvalidInput) << "byte " << i << " = " << int(v) << ": " << e.what();
        ++refused;
      }
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_GT(accepted, 0u);  // e.g. changes inside strings and tensor data are harmless
}

TEST(GgufCorrupt, RawFiles) {
  EXPECT_NE(parse_error({}).find("0 bytes, too small for a GGUF header"), std::string::npos);
  EXPECT_NE(parse_error({'G', 'G'}).find("too small"), std::string::npos);
  EXPECT_NE(parse_error({'G', 'G', 'U', 'F', 3, 0}).find("truncated file: version"), std::string::npos);

  // Arrays nested 5 deep: refused before recursing further (a 100000-deep file must not overflow the stack).
  for (int depth : {5, 100000}) {
    Raw r;
    r.header(0, 1).str("deep").u32(9);
    for (int i = 0; i < depth; ++i) r.u32(9).u64(1);
    r.u32(0).u64(0);
    EXPECT_NE(parse_error(r.b).find("arrays nested more than 4 deep"), std::string::npos) << depth;
  }
  {  // 4 deep is fine
    Raw r;
    r.header(0, 1).str("deep").u32(9);
    for (int i = 0; i < 3; ++i) r.u32(9).u64(1);
    r.u32(4).u64(1).u32(42);
    File f = File::parse(r.b);
    EXPECT_EQ(f.find("deep")->to_string(), "[1 x array: [1 x array: [1 x array: [1 x u32: 42]]]]");
  }
  {  // Many array items in total: refused before any allocation of Values.
    Raw r;
    r.header(0, 1).str("big").u32(9).u32(0).u64((uint64_t{1} << 22) + 1);
    r.b.resize(r.b.size() + (size_t{1} << 22) + 1);
    EXPECT_NE(parse_error(r.b).find("hold more than 4194304 items in total"), std::string::npos);
  }
  {  // Names in messages are printable ASCII: control bytes and invalid UTF-8 are escaped.
    Raw r;
    r.header(0, 2).str("a\n\xff").u32(0).put<uint8_t>(1).str("a\n\xff").u32(0).put<uint8_t>(1);
    EXPECT_NE(parse_error(r.b).find("duplicate key 'a\\x0a\\xff'"), std::string::npos) << parse_error(r.b);
  }
  {  // Empty key.
    Raw r;
    r.header(0, 1).str("").u32(0).put<uint8_t>(1);
    EXPECT_NE(parse_error(r.b).find("empty key"), std::string::npos);
  }
  {  // Tensor infos that end where the data section should start, with no room left for data.
    Raw r;
    r.header(1, 0).str("t").u32(1).u64(4).u32(0).u64(0);
    EXPECT_NE(parse_error(r.b).find("past the end of the file"), std::string::npos);
    r.b.resize(64);  // now padded, but the 16 bytes of data are missing
    EXPECT_NE(parse_error(r.b).find("lies outside the data section"), std::string::npos);
    r.b.resize(64 + 16);
    EXPECT_NO_THROW(File::parse(r.b));
  }
  {  // A v2 file is read like v3.
    Raw r;
    r.header(0, 1).str("k").u32(4).u32(5);
    poke<uint32_t>(r.b, 4, 2);
    File f = File::parse(r.b);
    EXPECT_EQ(f.version(), 2u);
    EXPECT_EQ(f.get_int("k"), 5);
  }
}

TEST(GgufCorrupt, OpenErrors) {
  try {
    File::open("/nonexistent/model.gguf");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf"), std::string::npos);
  }
  // A corrupt file on disk: the message names the file.
  std::filesystem::create_directories(WAI_TEST_TMP);
  const std::string path = std::string(WAI_TEST_TMP) + "/format_gguf_corrupt.gguf";
  Base base;
  base.bytes[0] = 'X';
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(base.bytes.data(), 1, base.bytes.size(), f);
    std::fclose(f);
  }
  try {
    File::open(path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("bad magic"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace wai::gguf
