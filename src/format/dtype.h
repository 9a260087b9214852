// Tensor element types as GGUF/ggml numbers them, with their block layout.
// A row of n elements of a block type occupies n / block_size * type_size bytes (n % block_size == 0).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace wai {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,  // IQ*, TQ*, MXFP4: sized so that files using them can be read and inspected; the
  IQ2_XS = 17,   // model refuses them by name
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

struct DTypeInfo {
  std::string_view name;  // ggml's name: "f32", "q4_K", ...
  int64_t block_size;     // elements per block
  size_t type_size;       // bytes per block
  bool supported;         // wai has kernels for it (f32 f16 bf16 q8_0 q4_0 q4_K q6_K; q8_K internal)
};

// nullopt for numbers ggml does not define (a hostile file); known but unsupported types have
// supported == false (the reader can still size them, the model refuses them by name).
std::optional<DTypeInfo> dtype_info(uint32_t raw);
const DTypeInfo& dtype_info(DType t);  // t must be a defined type
inline std::string_view dtype_name(DType t) { return dtype_info(t).name; }
std::optional<DType> dtype_from_name(std::string_view name);  // "q4_0" / "Q4_0", case-insensitive

// Bytes for a row of n elements; nullopt if n is not a multiple of the block size.
std::optional<size_t> row_bytes(DType t, int64_t n);

}  // namespace wai
