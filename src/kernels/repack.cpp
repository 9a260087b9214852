// q4x16 / q8x16 repacking (see repack.h). The portable version works on 64-bit words: one row's two blocks
// (2 x 16 bytes of nibbles) become 8 dwords, the low-nibble words of both blocks merged into one and
// the high-nibble words into another; the AVX-512 one (repack_avx512.cpp) does 16 rows at once.
#include "kernels/repack.h"

#include <cstring>

#include "kernels/blocks.h"
#include "kernels/cpu.h"
#include "kernels/gemm.h"

namespace wai::kernels {
namespace {

constexpr uint64_t kLo = 0x0F0F0F0F0F0F0F0FULL;
constexpr uint64_t kHi = 0xF0F0F0F0F0F0F0F0ULL;

}  // namespace

bool q4x16_available(const MatRef& w) {
  return w.type == DType::Q4_0 && w.layout == MatLayout::kRows && w.rows > 0 && w.rows % kX16Rows == 0 &&
         w.cols > 0 && w.cols % kQ4x16Cols == 0 && (cpu_features().vnni_kernels() || cpu_features().avx2_kernels());
}

bool q8x16_available(const MatRef& w) {
  return w.type == DType::Q8_0 && w.layout == MatLayout::kRows && w.rows > 0 && w.rows % kX16Rows == 0 &&
         w.cols > 0 && w.cols % kQ8x16Cols == 0 && (cpu_features().vnni_kernels() || cpu_features().avx2_kernels());
}

void repack_x16(const MatRef& w, uint8_t* dst, int64_t g0, int64_t g1) {
  if (w.type == DType::Q8_0) repack_q8x16(w, dst, g0, g1);
  else repack_q4x16(w, dst, g0, g1);
}

void x16_row(const MatRef& w, int64_t row, uint8_t* out) {
  if (w.layout == MatLayout::kQ8x16) q8x16_row(w, row, out);
  else q4x16_row(w, row, out);
}

void repack_q8x16(const MatRef& w, uint8_t* dst, int64_t g0, int64_t g1) {
  if (q8x16_available(w) && cpu_features().vnni_kernels()) repack_q8x16_avx512(w, dst, g0, g1);
  else repack_q8x16_portable(w, dst, g0, g1);
}

void repack_q8x16_portable(const MatRef& w, uint8_t* dst, int64_t g0, int64_t g1) {
  const int64_t nb = w.cols / kQK0;
  const size_t stride = static_cast<size_t>(nb) * sizeof(BlockQ8_0);
  for (int64_t g = g0; g < g1; ++g)
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* rec = dst + static_cast<size_t>(g * nb + b) * kQ8x16RecordBytes;
      for (int64_t i = 0; i < kX16Rows; ++i) {
        const auto* blk = reinterpret_cast<const BlockQ8_0*>(w.data + static_cast<size_t>(g * kX16Rows + i) * stride) + b;
        std::memcpy(rec + 2 * i, &blk->d, 2);
        for (int j = 0; j < 8; ++j) std::memcpy(rec + 32 + 64 * j + 4 * i, blk->qs + 4 * j, 4);
      }
    }
}

void q8x16_row(const MatRef& w, int64_t row, uint8_t* out) {
  const int64_t nb = w.cols / kQK0, g = row / kX16Rows, i = row % kX16Rows;
  auto* blocks = reinterpret_cast<BlockQ8_0*>(out);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* rec = w.data + static_cast<size_t>(g * nb + b) * kQ8x16RecordBytes;
    std::memcpy(&blocks[b].d, rec + 2 * i, 2);
    for (int j = 0; j < 8; ++j) std::memcpy(blocks[b].qs + 4 * j, rec + 32 + 64 * j + 4 * i, 4);
  }
}

void repack_q4x16(const MatRef& w, uint8_t* dst, int64_t g0, int64_t g1) {
  if (q4x16_available(w) && cpu_features().vnni_kernels()) repack_q4x16_avx512(w, dst, g0, g1);
  else repack_q4x16_portable(w, dst, g0, g1);
}

void repack_q4x16_portable(const MatRef& w, uint8_t* dst, int64_t g0, int64_t g1) {
  const int64_t np = w.cols / kQ4x16Cols;
  const size_t stride = static_cast<size_t>(w.cols / kQK0) * sizeof(BlockQ4_0);
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* rows = w.data + static_cast<size_t>(g * kX16Rows) * stride;
    for (int64_t p = 0; p < np; ++p) {
      uint8_t* rec = dst + static_cast<size_t>(g * np + p) * kQ4x16RecordBytes;
      uint8_t* q = rec + 64;
      for (int64_t i = 0; i < kX16Rows; ++i) {
        const auto* b = reinterpret_cast<const BlockQ4_0*>(rows + static_cast<size_t>(i) * stride) + 2 * p;
        std::memcpy(rec + 2 * i, &b[0].d, 2);
        std::memcpy(rec + 32 + 2 * i, &b[1].d, 2);
        for (int k = 0; k < 2; ++k) {  // bytes 8 k .. 8 k + 7 of both blocks' nibbles
          uint64_t a, c;
          std::memcpy(&a, b[0].qs + 8 * k, 8);
          std::memcpy(&c, b[1].qs + 8 * k, 8);
          const uint64_t lo = (a & kLo) | ((c & kLo) << 4);  // elements 8 k .. 8 k + 7
          const uint64_t hi = ((a >> 4) & kLo) | (c & kHi);  // elements 16 + 8 k .. 16 + 8 k + 7
          for (int h = 0; h < 2; ++h) {                      // dwords: elements 4 j .. 4 j + 3
            std::memcpy(q + (2 * k + h) * 64 + 4 * i, reinterpret_cast<const uint8_t*>(&lo) + 4 * h, 4);
            std::memcpy(q + (4 + 2 * k + h) * 64 + 4 * i, reinterpret_cast<const uint8_t*>(&hi) + 4 * h, 4);
          }
        }
      }
    }
  }
}

void q4x16_row(const MatRef& w, int64_t row, uint8_t* out) {
  const int64_t np = w.cols / kQ4x16Cols, g = row / kX16Rows, i = row % kX16Rows;
  auto* blocks = reinterpret_cast<BlockQ4_0*>(out);
  for (int64_t p = 0; p < np; ++p) {
    const uint8_t* rec = w.data + static_cast<size_t>(g * np + p) * kQ4x16RecordBytes;
    const uint8_t* q = rec + 64;
    BlockQ4_0* b = blocks + 2 * p;
    std::memcpy(&b[0].d, rec + 2 * i, 2);
    std::memcpy(&b[1].d, rec + 32 + 2 * i, 2);
    for (int k = 0; k < 2; ++k) {
      uint64_t lo, hi;
      for (int h = 0; h < 2; ++h) {
        std::memcpy(reinterpret_cast<uint8_t*>(&lo) + 4 * h, q + (2 * k + h) * 64 + 4 * i, 4);
        std::memcpy(reinterpret_cast<uint8_t*>(&hi) + 4 * h, q + (4 + 2 * k + h) * 64 + 4 * i, 4);
      }
      const uint64_t a = (lo & kLo) | ((hi & kLo) << 4);
      const uint64_t c = ((lo >> 4) & kLo) | (hi & kHi);
      std::memcpy(b[0].qs + 8 * k, &a, 8);
      std::memcpy(b[1].qs + 8 * k, &c, 8);
    }
  }
}

}  // namespace wai::kernels
