// GGUF reader: every read is bounds-checked against the buffer; every count is checked against the
// bytes that remain before anything is reserved, so a hostile header cannot trigger a huge allocation.
#include "format/gguf.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "util/error.h"

namespace wai::gguf {
namespace {

constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxArrayDepth = 4;                   // arrays of arrays of ... (llama.cpp allows none)
constexpr uint64_t kMaxTotalArrayItems = 1u << 22;  // all metadata array items together (<= ~200 MB of Values)
constexpr uint64_t kMaxDims = 4;

// The smallest encoding of one value of type t: lets a count be checked against the remaining bytes.
uint64_t min_encoded_size(ValueType t) {
  switch (t) {
    case ValueType::U8: case ValueType::I8: case ValueType::BOOL: return 1;
    case ValueType::U16: case ValueType::I16: return 2;
    case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
    case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
    case ValueType::STRING: return 8;           // u64 length
    case ValueType::ARRAY: return 4 + 8;        // u32 elem type + u64 count
  }
  return 1;
}

bool valid_value_type(uint32_t raw) { return raw <= static_cast<uint32_t>(ValueType::F64); }

// A key or tensor name for an error message: at most 80 bytes, printable ASCII (others as \xNN), so a
// hostile name cannot put control characters or invalid UTF-8 into logs or JSON error bodies.
std::string quoted(std::string_view s) {
  std::string out = "'";
  for (unsigned char c : s.substr(0, 80)) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + (s.size() > 80 ? "...'" : "'");
}

// A bounds-checked little-endian cursor over the file bytes. `ctx_` names what is being parsed (the
// metadata key, the tensor) so that errors say where the file went wrong.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> b) : b_(b) {}

  size_t pos() const { return pos_; }
  size_t size() const { return b_.size(); }
  uint64_t remaining() const { return b_.size() - pos_; }
  void set_context(std::string c) { ctx_ = std::move(c); }

  [[noreturn]] void fail(const std::string& msg) const {
    invalid("gguf: " + msg + (ctx_.empty() ? "" : " (in " + ctx_ + ")"));
  }

  void need(uint64_t n, const char* what) const {
    if (n > remaining())
      fail(std::string("truncated file: ") + what + " at byte " + std::to_string(pos_) + " needs " + std::to_string(n) +
           " bytes, only " + std::to_string(remaining()) + " remain");
  }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));  // x86-64 and aarch64 are little-endian like GGUF
    pos_ += sizeof(T);
    return v;
  }

  std::string_view read_string(const char* what) {
    uint64_t len = read<uint64_t>(what);
    if (len > remaining())
      fail(std::string(what) + " length " + std::to_string(len) + " at byte " + std::to_string(pos_ - 8) +
           " runs past the end of the file (" + std::to_string(remaining()) + " bytes remain)");
    std::string_view s(reinterpret_cast<const char*>(b_.data() + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }

  // Checks that `count` items of at least `min_size` bytes each can still be in the file.
  void check_count(uint64_t count, uint64_t min_size, const char* what) const {
    if (count > remaining() / min_size)
      fail(std::string(what) + " " + std::to_string(count) + " is too large: the remaining " +
           std::to_string(remaining()) + " bytes hold at most " + std::to_string(remaining() / min_size));
  }

  Value read_value(ValueType t, int depth) {
    Value out;
    out.type = t;
    switch (t) {
      case ValueType::U8: out.v = uint64_t{read<uint8_t>("u8 value")}; break;
      case ValueType::I8: out.v = int64_t{read<int8_t>("i8 value")}; break;
      case ValueType::U16: out.v = uint64_t{read<uint16_t>("u16 value")}; break;
      case ValueType::I16: out.v = int64_t{read<int16_t>("i16 value")}; break;
      case ValueType::U32: out.v = uint64_t{read<uint32_t>("u32 value")}; break;
      case ValueType::I32: out.v = int64_t{read<int32_t>("i32 value")}; break;
      case ValueType::U64: out.v = read<uint64_t>("u64 value"); break;
      case ValueType::I64: out.v = read<int64_t>("i64 value"); break;
      case ValueType::F32: out.v = double{read<float>("f32 value")}; break;
      case ValueType::F64: out.v = read<double>("f64 value"); break;
      case ValueType::BOOL: {
        uint8_t b = read<uint8_t>("bool value");
        if (b > 1) fail("bool value " + std::to_string(b) + " at byte " + std::to_string(pos_ - 1) + " is neither 0 nor 1");
        out.v = b != 0;
        break;
      }
      case ValueType::STRING: out.v = std::string(read_string("string value")); break;
      case ValueType::ARRAY: out.v = read_array(depth + 1); break;
    }
    return out;
  }

  Array read_array(int depth) {
    if (depth > kMaxArrayDepth) fail("arrays nested more than " + std::to_string(kMaxArrayDepth) + " deep");
    uint32_t raw = read<uint32_t>("array element type");
    if (!valid_value_type(raw)) fail("unknown array element type " + std::to_string(raw) + " at byte " + std::to_string(pos_ - 4));
    auto et = static_cast<ValueType>(raw);
    uint64_t count = read<uint64_t>("array count");
    check_count(count, min_encoded_size(et), "array count");
    total_items_ += count;
    if (total_items_ > kMaxTotalArrayItems)
      fail("metadata arrays hold more than " + std::to_string(kMaxTotalArrayItems) + " items in total");
    Array a;
    a.elem_type = et;
    a.items.reserve(static_cast<size_t>(count));
    for (uint64_t i = 0; i < count; ++i) a.items.push_back(read_value(et, depth));
    return a;
  }

  void seek(size_t p) { pos_ = p; }

 private:
  std::span<const uint8_t> b_;
  size_t pos_ = 0;
  std::string ctx_;
  uint64_t total_items_ = 0;
};

bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }
bool checked_add(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }

}  // namespace

std::string_view value_type_name(ValueType t) {
  switch (t) {
    case ValueType::U8: return "u8";
    case ValueType::I8: return "i8";
    case ValueType::U16: return "u16";
    case ValueType::I16: return "i16";
    case ValueType::U32: return "u32";
    case ValueType::I32: return "i32";
    case ValueType::F32: return "f32";
    case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "string";
    case ValueType::ARRAY: return "array";
    case ValueType::U64: return "u64";
    case ValueType::I64: return "i64";
    case ValueType::F64: return "f64";
  }
  return "unknown";
}

// ---- Value -----------------------------------------------------------------------------------------

std::optional<int64_t> Value::as_int() const {
  if (auto* u = std::get_if<uint64_t>(&v)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  if (auto* i = std::get_if<int64_t>(&v)) return *i;
  if (auto* d = std::get_if<double>(&v)) {
    // Integral floats convert; anything else (fractions, inf, nan, out of range) does not fit.
    if (!std::isfinite(*d) || std::trunc(*d) != *d || *d < -9.2233720368547758e18 || *d >= 9.2233720368547758e18)
      return std::nullopt;
    return static_cast<int64_t>(*d);
  }
  return std::nullopt;
}

std::optional<double> Value::as_float() const {
  if (auto* u = std::get_if<uint64_t>(&v)) return static_cast<double>(*u);
  if (auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (auto* d = std::get_if<double>(&v)) return *d;
  return std::nullopt;
}

const std::string* Value::as_string() const { return std::get_if<std::string>(&v); }
const Array* Value::as_array() const { return std::get_if<Array>(&v); }

namespace {

// Strings print quoted with C-style escapes for control characters and quotes; long strings are cut at
// a UTF-8 character boundary when `limit` is set.
void append_quoted(std::string& out, const std::string& s, size_t limit) {
  size_t n = s.size();
  if (n > limit) {
    n = limit;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  }
  out += '"';
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  if (n < s.size()) out += "... (" + std::to_string(s.size()) + " bytes)";
}

void append_value(std::string& out, const Value& val, size_t max_items) {
  const bool full = max_items == std::numeric_limits<size_t>::max();
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, uint64_t> || std::is_same_v<T, int64_t>) {
          out += std::to_string(x);
        } else if constexpr (std::is_same_v<T, double>) {
          char buf[64];
          // Shortest text that reads back to the same f32 / f64.
          auto r = val.type == ValueType::F32 ? std::to_chars(buf, buf + sizeof buf, static_cast<float>(x))
                                              : std::to_chars(buf, buf + sizeof buf, x);
          out.append(buf, r.ptr);
        } else if constexpr (std::is_same_v<T, bool>) {
          out += x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::string>) {
          append_quoted(out, x, full ? std::numeric_limits<size_t>::max() : 160);
        } else {
          out += "[" + std::to_string(x.items.size()) + " x " + std::string(value_type_name(x.elem_type)) + ":";
          size_t shown = std::min(x.items.size(), max_items);
          for (size_t i = 0; i < shown; ++i) {
            out += i ? ", " : " ";
            append_value(out, x.items[i], max_items);
          }
          if (shown < x.items.size()) out += shown ? ", ..." : " ...";
          out += "]";
        }
      },
      val.v);
}

}  // namespace

std::string Value::to_string(size_t max_items) const {
  std::string out;
  append_value(out, *this, max_items);
  return out;
}

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;  // the reader checked that the product fits
  return n;
}

// ---- File ------------------------------------------------------------------------------------------

File File::open(const std::string& path) {
  auto map = std::make_shared<MappedFile>(MappedFile::open(path));
  File f;
  try {
    f = parse(map->bytes());
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kInvalidInput) invalid(std::string(e.what()) + " [file '" + path + "']");
    throw;
  }
  f.map_ = std::move(map);
  f.path_ = path;
  return f;
}

File File::parse(std::span<const uint8_t> bytes) {
  File f;
  f.bytes_ = bytes;
  Reader r(bytes);

  // Header: magic, version, counts.
  if (bytes.size() < 4) r.fail("file is " + std::to_string(bytes.size()) + " bytes, too small for a GGUF header");
  if (std::memcmp(bytes.data(), "GGUF", 4) != 0) {
    std::string m;
    for (int i = 0; i < 4; ++i) {
      char c = static_cast<char>(bytes[i]);
      m += (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    r.fail("bad magic '" + m + "': not a GGUF file");
  }
  r.seek(4);
  uint32_t version = r.read<uint32_t>("version");
  if (version == 1) r.fail("version 1 is not supported (GGUF v1 is obsolete; only versions 2 and 3 are read)");
  if (version != 2 && version != 3) {
    if (version == 0x02000000u || version == 0x03000000u)
      r.fail("big-endian GGUF files are not supported");
    r.fail("unsupported version " + std::to_string(version) + " (only versions 2 and 3 are read)");
  }
  f.version_ = version;
  uint64_t n_tensors = r.read<uint64_t>("tensor count");
  uint64_t n_kv = r.read<uint64_t>("metadata count");
  // Each key/value takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least
  // 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset).
  r.check_count(n_kv, 13, "metadata count");
  r.check_count(n_tensors, 32, "tensor count");

  // Metadata.
  f.kv_.reserve(static_cast<size_t>(n_kv));
  std::unordered_set<std::string_view> keys;
  for (uint64_t i = 0; i < n_kv; ++i) {
    r.set_context("metadata entry " + std::to_string(i));
    std::string_view key = r.read_string("key");
    r.set_context("metadata key " + quoted(key));
    if (key.empty()) r.fail("empty key");
    if (!keys.insert(key).second) r.fail("duplicate key " + quoted(key));
    uint32_t raw = r.read<uint32_t>("value type");
    if (!valid_value_type(raw)) r.fail("unknown value type " + std::to_string(raw));
    KeyValue kv;
    kv.key = std::string(key);
    kv.value = r.read_value(static_cast<ValueType>(raw), 0);
    f.kv_.push_back(std::move(kv));
  }

  // Alignment: general.alignment, a nonzero power of two.
  r.set_context("");
  if (const Value* a = f.find("general.alignment")) {
    auto al = a->as_int();
    if (a->type == ValueType::F32 || a->type == ValueType::F64 || a->type == ValueType::BOOL || !al)
      r.fail("general.alignment must be an integer, got " + std::string(value_type_name(a->type)));
    if (*al <= 0 || (*al & (*al - 1)) != 0)
      r.fail("general.alignment " + std::to_string(*al) + " is not a nonzero power of two");
    if (*al > (int64_t{1} << 30)) r.fail("general.alignment " + std::to_string(*al) + " is absurdly large");
    f.alignment_ = static_cast<uint64_t>(*al);
  } else {
    f.alignment_ = kDefaultAlignment;
  }

  // Tensor infos.
  f.tensors_.reserve(static_cast<size_t>(n_tensors));
  std::unordered_set<std::string_view> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    r.set_context("tensor info " + std::to_string(i));
    std::string_view name = r.read_string("tensor name");
    r.set_context("tensor " + quoted(name));
    if (name.empty()) r.fail("empty tensor name");
    if (!names.insert(name).second) r.fail("duplicate tensor name " + quoted(name));
    TensorInfo t;
    t.name = std::string(name);
    uint32_t n_dims = r.read<uint32_t>("n_dims");
    if (n_dims == 0 || n_dims > kMaxDims)
      r.fail("n_dims " + std::to_string(n_dims) + " is out of range (1.." + std::to_string(kMaxDims) + ")");
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = r.read<uint64_t>("dimension");
      if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        r.fail("dimension " + std::to_string(d) + " is " + std::to_string(static_cast<int64_t>(dim)) + " (must be positive)");
      if (!checked_mul(n_el, dim, &n_el) || n_el > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        r.fail("element count overflows (dims too large)");
      t.dims.push_back(static_cast<int64_t>(dim));
    }
    uint32_t raw_type = r.read<uint32_t>("tensor type");
    auto info = dtype_info(raw_type);
    if (!info) r.fail("unknown tensor type " + std::to_string(raw_type));
    t.type = static_cast<DType>(raw_type);
    if (t.dims[0] % info->block_size != 0)
      r.fail("dims[0] = " + std::to_string(t.dims[0]) + " is not a multiple of the " + std::string(info->name) +
             " block size " + std::to_string(info->block_size));
    uint64_t row = 0;
    if (!checked_mul(static_cast<uint64_t>(t.dims[0] / info->block_size), info->type_size, &row) ||
        !checked_mul(row, n_el / static_cast<uint64_t>(t.dims[0]), &t.nbytes))
      r.fail("byte size overflows (dims too large)");
    t.offset = r.read<uint64_t>("tensor offset");
    if (t.offset % f.alignment_ != 0)
      r.fail("offset " + std::to_string(t.offset) + " is not a multiple of the alignment " + std::to_string(f.alignment_));
    f.tensors_.push_back(std::move(t));
  }

  // Data section: starts at the next multiple of the alignment after the tensor infos.
  r.set_context("");
  uint64_t start = r.pos();
  uint64_t aligned = 0;
  if (!checked_add(start, f.alignment_ - 1, &aligned)) r.fail("data section start overflows");
  aligned -= aligned % f.alignment_;
  if (!f.tensors_.empty() && aligned > bytes.size())
    r.fail("data section would start at byte " + std::to_string(aligned) + ", past the end of the file (" +
           std::to_string(bytes.size()) + " bytes)");
  f.data_offset_ = aligned;
  const uint64_t data_size = aligned <= bytes.size() ? bytes.size() - aligned : 0;

  // Every tensor's data lies inside the data section, and no two overlap.
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(f.tensors_.size());
  for (auto& t : f.tensors_) {
    uint64_t end = 0;
    if (!checked_add(t.offset, t.nbytes, &end) || end > data_size)
      r.fail("tensor " + quoted(t.name) + " data [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
             ") lies outside the data section (" + std::to_string(data_size) + " bytes)");
    t.data = bytes.data() + aligned + t.offset;
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo* p = by_offset[i - 1];
    const TensorInfo* q = by_offset[i];
    if (q->offset < p->offset + p->nbytes)
      r.fail("tensors " + quoted(p->name) + " [" + std::to_string(p->offset) + ", +" + std::to_string(p->nbytes) +
             ") and " + quoted(q->name) + " [" + std::to_string(q->offset) + ", +" + std::to_string(q->nbytes) + ") overlap");
  }
  return f;
}

const Value* File::find(std::string_view key) const {
  for (const auto& kv : kv_)
    if (kv.key == key) return &kv.value;
  return nullptr;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

namespace {
[[noreturn]] void wrong_type(std::string_view key, const Value& v, const char* expected) {
  invalid("gguf: key '" + std::string(key) + "' has type " + std::string(value_type_name(v.type)) + ", expected " + expected);
}
bool is_integer_type(ValueType t) {
  return t != ValueType::F32 && t != ValueType::F64 && t != ValueType::BOOL && t != ValueType::STRING &&
         t != ValueType::ARRAY;
}
}  // namespace

std::optional<int64_t> File::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (!is_integer_type(v->type)) wrong_type(key, *v, "an integer");
  auto i = v->as_int();
  if (!i) invalid("gguf: key '" + std::string(key) + "' value " + v->to_string() + " does not fit in int64");
  return i;
}

std::optional<double> File::get_float(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  auto d = v->as_float();
  if (!d || v->type == ValueType::BOOL) wrong_type(key, *v, "a number");
  return d;
}

std::optional<bool> File::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::BOOL) wrong_type(key, *v, "bool");
  return std::get<bool>(v->v);
}

std::optional<std::string> File::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::STRING) wrong_type(key, *v, "string");
  return *v->as_string();
}

const Array* File::get_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return nullptr;
  if (v->type != ValueType::ARRAY) wrong_type(key, *v, "array");
  return v->as_array();
}

}  // namespace wai::gguf
