// GGUF v3 writer: used by `wai make-model`, the tests (hand-made corrupt files start from valid ones)
// and anything that emits models. Buffers metadata and tensor infos, streams tensor data to the file.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "format/gguf.h"

namespace wai::gguf {

class Writer {
 public:
  void set(std::string key, Value value);  // replaces an existing key
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, std::string v);
  void set_array(const std::string& key, Array a);

  // dims in ggml order (dims[0] innermost). `data` must hold exactly the tensor's bytes and stay valid
  // until write() returns.
  void add_tensor(std::string name, std::vector<int64_t> dims, DType type, std::span<const uint8_t> data);

  // Writes the file (alignment 32, or general.alignment when set). Throws wai::Error on I/O failure.
  void write(const std::string& path) const;
  std::vector<uint8_t> to_bytes() const;  // the same bytes, in memory (tests)

  // general.alignment when set (must be a u32 nonzero power of two, else wai::Error), else 32.
  uint64_t alignment() const;

 private:
  std::vector<uint8_t> header_bytes() const;  // header, metadata, tensor infos, padding

  struct Pending {
    std::string name;
    std::vector<int64_t> dims;
    DType type;
    std::span<const uint8_t> data;
  };
  std::vector<KeyValue> kv_;
  std::vector<Pending> tensors_;
};

}  // namespace wai::gguf
