// q4_0 weights regrouped for the AVX-512 and AVX2 kernels ("q4x16", MatLayout::kQ4x16).
//
// In GGUF's layout each row is a run of 18-byte blocks (f16 scale + 16 bytes of nibbles), so a kernel
// that works on 16 rows at once (the batch kernels: one register lane per row) transposes them on the
// fly, and the matrix-vector kernel reads 4 rows as 4 interleaved streams. Here each 16 rows x 64
// columns are one 576-byte record, in the order the kernels consume them:
//
//   record (g, p) at data + (g * cols / 64 + p) * 576, for rows 16 g .. 16 g + 15, columns 64 p .. 64 p + 63
//     uint16_t d[2][16]   f16 scale of block 2 p + h of row 16 g + i at d[h][i]
//     uint8_t  q[8][64]   q[j][4 i + c] = nibble of element 4 j + c of block 2 p     (low 4 bits)
//                                       | nibble of element 4 j + c of block 2 p + 1 (high 4 bits)
//                         (element e of a block: ggml's x[e] = d * (nibble - 8))
//
// so q[j] & 0x0F holds, per 32-bit lane i, 4 consecutive quants of row i (what vpdpbusd takes against
// an activation dword, and an AMX int8 B tile row), and one thread's rows are one linear stream. Group
// g takes exactly the bytes rows 16 g .. 16 g + 15 take in GGUF's layout, so sizes and offsets match.
// Needs rows % 16 == 0 and cols % 64 == 0 (every Mistral / Llama 7B matrix).
//
// q8_0 likewise ("q8x16", MatLayout::kQ8x16): record (g, b) of 16 rows x one 32-column block, 544 bytes
// at data + (g * cols / 32 + b) * 544: uint16_t d[16] (f16 scale of row 16 g + i), int8_t q[8][64] with
// q[j][4 i + c] = quant of element 4 j + c of block b of row 16 g + i. Needs rows % 16 == 0.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/matmul.h"

namespace wai::kernels {

inline constexpr int64_t kX16Rows = 16;
inline constexpr int64_t kQ4x16Cols = 64;
inline constexpr size_t kQ4x16RecordBytes = 576;

// Whether w (GGUF layout) can be repacked and this CPU has the kernels that read the result (AVX2 or AVX-512
// VNNI; not when the portable path is forced).
bool q4x16_available(const MatRef& w);

// Writes row groups [g0, g1) of w (GGUF layout, q4_0, shape as above) to dst in the q4x16 layout
// (dst holds the whole matrix: rows * row_bytes bytes); disjoint ranges may run in parallel. AVX-512
// on AVX-512 VNNI CPUs, else repack_q4x16_portable.
void repack_q4x16(const MatRef& w, uint8_t* dst, int64_t g0, int64_t g1);
void repack_q4x16_portable(const MatRef& w, uint8_t* dst, int64_t g0, int64_t g1);

// Row `row` of a q4x16 matrix back in GGUF's layout: cols / 32 blocks of 18 bytes at out.
void q4x16_row(const MatRef& w, int64_t row, uint8_t* out);

inline constexpr int64_t kQ8x16Cols = 32;
inline constexpr size_t kQ8x16RecordBytes = 544;

// The same for q8_0 and q8x16 (rows % 16 == 0).
bool q8x16_available(const MatRef& w);
void repack_q8x16(const MatRef& w, uint8_t* dst, int64_t g0, int64_t g1);
void repack_q8x16_portable(const MatRef& w, uint8_t* dst, int64_t g0, int64_t g1);
void q8x16_row(const MatRef& w, int64_t row, uint8_t* out);

// Either: whether w's type has a x16 layout this CPU's kernels read, the repack into it, and a row of
// a repacked matrix (w.layout kQ4x16 or kQ8x16) back in GGUF's layout.
inline bool x16_available(const MatRef& w) { return q4x16_available(w) || q8x16_available(w); }
void repack_x16(const MatRef& w, uint8_t* dst, int64_t g0, int64_t g1);
void x16_row(const MatRef& w, int64_t row, uint8_t* out);

}  // namespace wai::kernels
