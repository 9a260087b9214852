// GGUF v3 writer. Layout written (what llama.cpp's gguf_write_to_buf writes): header, metadata in set
// order, tensor infos in add order, zero padding to the alignment, then each tensor's data followed by
// zero padding to the alignment, so every offset (relative to the data section) is a multiple of it.
#include "format/gguf_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "util/error.h"

namespace wai::gguf {
namespace {

constexpr size_t kMaxNameBytes = 63;  // llama.cpp's GGML_MAX_NAME is 64 including the terminator

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian host, like GGUF
  out.insert(out.end(), b, b + sizeof(T));
}

void put_string(std::vector<uint8_t>& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

[[noreturn]] void bad_value(const std::string& key, const Value& v, const std::string& why) {
  invalid("gguf writer: key '" + key + "' (" + std::string(value_type_name(v.type)) + "): " + why);
}

// The integer held by v (either integer alternative), checked to lie in [lo, hi].
template <typename T>
T int_in_range(const std::string& key, const Value& v) {
  using L = std::numeric_limits<T>;
  if (auto* u = std::get_if<uint64_t>(&v.v)) {
    if (*u > static_cast<uint64_t>(L::max())) bad_value(key, v, std::to_string(*u) + " is out of range");
    return static_cast<T>(*u);
  }
  if (auto* i = std::get_if<int64_t>(&v.v)) {
    if (*i < static_cast<int64_t>(L::min()) || (*i > 0 && static_cast<uint64_t>(*i) > static_cast<uint64_t>(L::max())))
      bad_value(key, v, std::to_string(*i) + " is out of range");
    return static_cast<T>(*i);
  }
  bad_value(key, v, "holds no integer");
}

void put_value(std::vector<uint8_t>& out, const std::string& key, const Value& v, int depth) {
  switch (v.type) {
    case ValueType::U8: put(out, int_in_range<uint8_t>(key, v)); return;
    case ValueType::I8: put(out, int_in_range<int8_t>(key, v)); return;
    case ValueType::U16: put(out, int_in_range<uint16_t>(key, v)); return;
    case ValueType::I16: put(out, int_in_range<int16_t>(key, v)); return;
    case ValueType::U32: put(out, int_in_range<uint32_t>(key, v)); return;
    case ValueType::I32: put(out, int_in_range<int32_t>(key, v)); return;
    case ValueType::U64: put(out, int_in_range<uint64_t>(key, v)); return;
    case ValueType::I64: put(out, int_in_range<int64_t>(key, v)); return;
    case ValueType::F32:
    case ValueType::F64: {
      auto* d = std::get_if<double>(&v.v);
      if (!d) bad_value(key, v, "holds no floating-point number");
      if (v.type == ValueType::F32) put(out, static_cast<float>(*d));
      else put(out, *d);
      return;
    }
    case ValueType::BOOL: {
      auto* b = std::get_if<bool>(&v.v);
      if (!b) bad_value(key, v, "holds no bool");
      put<uint8_t>(out, *b ? 1 : 0);
      return;
    }
    case ValueType::STRING: {
      auto* s = v.as_string();
      if (!s) bad_value(key, v, "holds no string");
      put_string(out, *s);
      return;
    }
    case ValueType::ARRAY: {
      auto* a = v.as_array();
      if (!a) bad_value(key, v, "holds no array");
      if (depth >= 4) bad_value(key, v, "arrays nested too deep");
      put<uint32_t>(out, static_cast<uint32_t>(a->elem_type));
      put<uint64_t>(out, a->items.size());
      for (const auto& item : a->items) {
        if (item.type != a->elem_type)
          bad_value(key, v, "item of type " + std::string(value_type_name(item.type)) + " in an array of " +
                                std::string(value_type_name(a->elem_type)));
        put_value(out, key, item, depth + 1);
      }
      return;
    }
  }
  bad_value(key, v, "unknown value type " + std::to_string(static_cast<uint32_t>(v.type)));
}

uint64_t pad_to(uint64_t n, uint64_t align) { return (n + align - 1) / align * align; }

}  // namespace

void Writer::set(std::string key, Value value) {
  if (key.empty()) invalid("gguf writer: empty key");
  for (auto& kv : kv_)
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  kv_.push_back({std::move(key), std::move(value)});
}

void Writer::set_u32(const std::string& key, uint32_t v) { set(key, Value{ValueType::U32, uint64_t{v}}); }
void Writer::set_i32(const std::string& key, int32_t v) { set(key, Value{ValueType::I32, int64_t{v}}); }
void Writer::set_f32(const std::string& key, float v) { set(key, Value{ValueType::F32, double{v}}); }
void Writer::set_bool(const std::string& key, bool v) { set(key, Value{ValueType::BOOL, v}); }
void Writer::set_string(const std::string& key, std::string v) { set(key, Value{ValueType::STRING, std::move(v)}); }
void Writer::set_array(const std::string& key, Array a) { set(key, Value{ValueType::ARRAY, std::move(a)}); }

void Writer::add_tensor(std::string name, std::vector<int64_t> dims, DType type, std::span<const uint8_t> data) {
  const std::string what = "gguf writer: tensor '" + name + "'";
  if (name.empty() || name.size() > kMaxNameBytes)
    invalid(what + ": name must have 1.." + std::to_string(kMaxNameBytes) + " bytes");
  for (const auto& t : tensors_)
    if (t.name == name) invalid(what + ": duplicate tensor name");
  if (dims.empty() || dims.size() > 4) invalid(what + ": needs 1..4 dims, got " + std::to_string(dims.size()));
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d <= 0) invalid(what + ": dimension " + std::to_string(d) + " must be positive");
    if (__builtin_mul_overflow(n, d, &n)) invalid(what + ": element count overflows");
  }
  auto rb = row_bytes(type, dims[0]);
  if (!rb)
    invalid(what + ": dims[0] = " + std::to_string(dims[0]) + " is not a multiple of the " +
            std::string(dtype_name(type)) + " block size");
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(*rb), static_cast<uint64_t>(n / dims[0]), &nbytes))
    invalid(what + ": byte size overflows");
  if (data.size() != nbytes)
    invalid(what + ": data has " + std::to_string(data.size()) + " bytes, the shape needs " + std::to_string(nbytes));
  tensors_.push_back({std::move(name), std::move(dims), type, data});
}

uint64_t Writer::alignment() const {
  for (const auto& kv : kv_) {
    if (kv.key != "general.alignment") continue;
    auto a = kv.value.as_int();
    if (kv.value.type != ValueType::U32 || !a || *a <= 0 || (*a & (*a - 1)) != 0)
      invalid("gguf writer: general.alignment must be a u32 nonzero power of two, got " + kv.value.to_string());
    return static_cast<uint64_t>(*a);
  }
  return 32;
}

// Everything before the data section, padding included.
std::vector<uint8_t> Writer::header_bytes() const {
  const uint64_t align = alignment();
  std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, kv_.size());
  for (const auto& kv : kv_) {
    put_string(out, kv.key);
    put<uint32_t>(out, static_cast<uint32_t>(kv.value.type));
    put_value(out, kv.key, kv.value, 0);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) put<uint64_t>(out, static_cast<uint64_t>(d));
    put<uint32_t>(out, static_cast<uint32_t>(t.type));
    put<uint64_t>(out, offset);
    offset = pad_to(offset + t.data.size(), align);
  }
  out.resize(pad_to(out.size(), align), 0);
  return out;
}

std::vector<uint8_t> Writer::to_bytes() const {
  const uint64_t align = alignment();
  std::vector<uint8_t> out = header_bytes();
  for (const auto& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    out.resize(pad_to(out.size(), align), 0);
  }
  return out;
}

void Writer::write(const std::string& path) const {
  const uint64_t align = alignment();
  const std::vector<uint8_t> header = header_bytes();
  // Write to a temporary name and rename, so a failed write never leaves a truncated model behind.
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(ErrorKind::kIo, "cannot create '" + tmp + "': " + std::strerror(errno));
  static const uint8_t kZeros[64 * 1024] = {};
  bool ok = std::fwrite(header.data(), 1, header.size(), f) == header.size();
  for (const auto& t : tensors_) {
    if (!ok) break;
    ok = t.data.empty() || std::fwrite(t.data.data(), 1, t.data.size(), f) == t.data.size();
    uint64_t pad = pad_to(t.data.size(), align) - t.data.size();
    while (ok && pad > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(pad, sizeof kZeros));
      ok = std::fwrite(kZeros, 1, n, f) == n;
      pad -= n;
    }
  }
  int err = ok ? 0 : errno;
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) err = errno;
    std::remove(tmp.c_str());
    fail(ErrorKind::kIo, "cannot write '" + path + "': " + std::strerror(err));
  }
}

}  // namespace wai::gguf
