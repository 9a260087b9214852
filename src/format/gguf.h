// GGUF reader (versions 2 and 3), memory-mapped and bounds-checked.
//
// Layout: magic "GGUF", u32 version, u64 n_tensors, u64 n_kv, n_kv key/value pairs, n_tensors tensor
// infos (name, u32 n_dims, u64 dims[n_dims], u32 type, u64 offset), padding to `general.alignment`
// (default 32), then the tensor data section. Tensor offsets are relative to the data section.
//
// Contract: open()/parse() throw wai::Error (kInvalidInput) with a message that names the problem for
// any malformed input: wrong magic, unsupported version, truncated data, absurd counts or lengths,
// unknown value or tensor types, bad dims, offsets out of range or misaligned, overlapping tensors,
// duplicate keys or tensor names. Never reads outside the buffer. A parsed file is immutable.
//
// Limits (beyond what llama.cpp accepts only where noted): arrays nest at most 4 deep (llama.cpp: none);
// all metadata arrays together hold at most 2^22 items (a Value is ~48 bytes, so parsing never
// allocates more than ~200 MB whatever the file claims); n_dims 1..4; every dim > 0; bools are 0 or 1;
// general.alignment an integer power of two <= 2^30. Tensors may lie in any order with gaps, never
// overlapping. A file without tensors may omit the final padding (old gguf-py vocab files do).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "format/dtype.h"
#include "util/mapped_file.h"

namespace wai::gguf {

enum class ValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
std::string_view value_type_name(ValueType t);

struct Value;
struct Array {
  ValueType elem_type = ValueType::U8;
  std::vector<Value> items;
};

// One metadata value. Integers keep their signedness in the variant (u64 for unsigned types, i64 for
// signed), floats become double; `type` keeps the exact GGUF type for printing and round-tripping.
struct Value {
  ValueType type = ValueType::U8;
  std::variant<uint64_t, int64_t, double, bool, std::string, Array> v;

  // Numeric conversions; nullopt when the value is not numeric or does not fit.
  std::optional<int64_t> as_int() const;
  std::optional<double> as_float() const;
  const std::string* as_string() const;
  const Array* as_array() const;
  // For `wai inspect` and messages: numbers in shortest round-trip form, strings quoted with C escapes,
  // arrays as `[3 x string: "a", "b", ...]` showing max_items items. max_items == SIZE_MAX prints
  // everything; otherwise strings are cut after 160 bytes.
  std::string to_string(size_t max_items = 8) const;
};

struct KeyValue {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // ggml order: dims[0] is the innermost (contiguous row length)
  DType type = DType::F32;
  uint64_t offset = 0;        // relative to the data section
  uint64_t nbytes = 0;
  const uint8_t* data = nullptr;  // into the mapping / buffer

  int64_t n_elements() const;
  int64_t rows() const { return dims.empty() ? 1 : n_elements() / dims[0]; }  // all dims but dims[0]
};

class File {
 public:
  // Maps and parses a file.
  static File open(const std::string& path);
  // Parses a caller-owned buffer (fuzzing, tests); the buffer must outlive the File.
  static File parse(std::span<const uint8_t> bytes);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  const std::vector<KeyValue>& metadata() const { return kv_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  std::span<const uint8_t> bytes() const { return bytes_; }
  const std::string& path() const { return path_; }
  bool mapped() const { return map_ != nullptr; }  // bytes() is a read-only mapping of the file (open)

  const Value* find(std::string_view key) const;
  const TensorInfo* find_tensor(std::string_view name) const;

  // Typed lookups: nullopt when missing; throw wai::Error (kInvalidInput) when present with a wrong type.
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  const Array* get_array(std::string_view key) const;

 private:
  std::shared_ptr<MappedFile> map_;  // null when parsing a caller buffer
  std::span<const uint8_t> bytes_;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<KeyValue> kv_;
  std::vector<TensorInfo> tensors_;
};

}  // namespace wai::gguf
