// libFuzzer target: gguf::File::parse on arbitrary bytes. Any wai::Error is fine; a crash, leak,
// out-of-bounds read (ASan) or UB (UBSan) is a bug. Every value is printed and every byte of every
// tensor's span is read, so a span that points outside the input is caught.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

#include "format/gguf.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wai::gguf;
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
      if (t.data < data + f.data_offset() || t.data + t.nbytes > data + size) __builtin_trap();
      uint8_t acc = 0;
      for (uint64_t i = 0; i < t.nbytes; ++i) acc ^= t.data[i];
      sink = sink ^ acc;
      if (f.find_tensor(t.name) == nullptr) __builtin_trap();
    }
    (void)chars;
  } catch (const wai::Error&) {
  }
  return 0;
}
