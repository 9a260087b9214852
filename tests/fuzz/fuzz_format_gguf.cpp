// libFuzzer target: gguf::File::parse on arbitrary bytes. Any wai::Error is fine; a crash, leak,
// out-of-bounds read (ASan) or UB (UBSan) is a bug. Every value is printed and every byte of every
// tensor's span is read, so a span that points outside the input is caught. Accepted files also go
// through Writer -> parse and must come back with the same metadata and tensors (trap otherwise).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>

#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "util/error.h"

namespace {

using wai::gguf::File;

void check_round_trip(const File& f) {
  wai::gguf::Writer w;
  std::vector<uint8_t> bytes;
  try {
    for (const auto& kv : f.metadata()) w.set(kv.key, kv.value);
    for (const auto& t : f.tensors()) w.add_tensor(t.name, t.dims, t.type, {t.data, t.nbytes});
    bytes = w.to_bytes();
  } catch (const wai::Error&) {
    return;  // the Writer is stricter (names <= 63 bytes, general.alignment must be u32)
  }
  std::optional<File> parsed;
  try {
    parsed = File::parse(bytes);
  } catch (const wai::Error&) {
    __builtin_trap();  // the Writer's output must always parse
  }
  const File& g = *parsed;
  if (g.metadata().size() != f.metadata().size() || g.tensors().size() != f.tensors().size()) __builtin_trap();
  const size_t all = std::numeric_limits<size_t>::max();
  for (size_t i = 0; i < f.metadata().size(); ++i) {
    const auto &a = f.metadata()[i], &b = g.metadata()[i];
    if (a.key != b.key || a.value.type != b.value.type || a.value.to_string(all) != b.value.to_string(all))
      __builtin_trap();
  }
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto &a = f.tensors()[i], &b = g.tensors()[i];
    if (a.name != b.name || a.dims != b.dims || a.type != b.type || a.nbytes != b.nbytes ||
        std::memcmp(a.data, b.data, a.nbytes) != 0)
      __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const File f = File::parse(std::span<const uint8_t>(data, size));
    size_t chars = 0;
    for (const auto& kv : f.metadata()) {
      chars += kv.value.to_string().size();
      chars += kv.value.to_string(std::numeric_limits<size_t>::max()).size();
      (void)kv.value.as_int();
      (void)kv.value.as_float();
      try {
        (void)f.get_int(kv.key);
      } catch (const wai::Error&) {
      }
      try {
        (void)f.get_float(kv.key);
      } catch (const wai::Error&) {
      }
      if (f.find(kv.key) == nullptr) __builtin_trap();
    }
    volatile uint8_t sink = 0;
    for (const auto& t : f.tensors()) {
      if (t.n_elements() <= 0 || t.rows() <= 0) __builtin_trap();
      if (t.data < data + f.data_offset() || t.nbytes > size || t.data + t.nbytes > data + size) __builtin_trap();
      uint8_t acc = 0;
      for (uint64_t i = 0; i < t.nbytes; ++i) acc ^= t.data[i];
      sink = sink ^ acc;
      if (f.find_tensor(t.name) == nullptr) __builtin_trap();
    }
    (void)chars;
    check_round_trip(f);
  } catch (const wai::Error&) {
  }
  return 0;
}
