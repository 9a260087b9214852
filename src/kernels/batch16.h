// The shared drivers of the kernels that hold 16 weight rows per register (gemm_vnni_batch.cpp,
// gemm_vnni_k_batch.cpp, and the x16 ones): 16-row groups, activation rows in passes of at most 8,
// the gather index of the rows' records. Internal linkage; include only from translation units compiled for AVX-512
// (the functions take the includer's target), after immintrin.h.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/gemm.h"

namespace wai::kernels {
namespace {

constexpr int kGroupRows = 16;   // weight rows per register (int32 / f32 lanes)
constexpr int kMaxPassRows = 8;  // activation rows per pass over a group's weights

template <int N>
struct Rows {
  static constexpr int value = N;
};

// f(Rows<t>{}) for t in 1..8: a runtime row count to the kernels' compile-time register tiles.
template <class F>
inline void with_rows(int64_t t, F&& f) {
  switch (t) {
    case 1: f(Rows<1>{}); break;
    case 2: f(Rows<2>{}); break;
    case 3: f(Rows<3>{}); break;
    case 4: f(Rows<4>{}); break;
    case 5: f(Rows<5>{}); break;
    case 6: f(Rows<6>{}); break;
    case 7: f(Rows<7>{}); break;
    default: f(Rows<8>{}); break;
  }
}

// Byte offsets of 16 rows' records from row 0's, rows past `valid` repeating the last one (for
// vpgatherdd; stride * 15 fits int32 for any real row).
inline __m512i gather_index(int valid, size_t stride) {
  return _mm512_mullo_epi32(
      _mm512_min_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(valid - 1)),
      _mm512_set1_epi32(static_cast<int>(stride)));
}

// Pointers to the 16 rows of a group starting at w; rows past `valid` repeat the last one (their
// lanes are computed and never stored).
inline void group_rows(const uint8_t* w, size_t stride, int valid, const uint8_t* (&p)[kGroupRows]) {
  for (int i = 0; i < kGroupRows; ++i) p[i] = w + static_cast<size_t>(i < valid ? i : valid - 1) * stride;
}

// acc[t] (lane i = row i of the group) -> y[t * ldy + i] for the valid rows.
template <int T>
inline void store_group(const __m512 (&acc)[T], int valid, float* y, int64_t ldy) {
  const __mmask16 keep = static_cast<__mmask16>((1u << valid) - 1);
  for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y + t * ldy, keep, acc[t]);
}

// Calls group(w, r, valid, t0, t1, pf) for every 16-row group of weight rows [r0, r1) (w: the
// group's first row, valid: its rows, at most 16) and every pass [t0, t1) over the activation rows:
// near-equal passes of at most 8 rows (n = 12: 6 + 6, not 8 + 4). pf is where the group should
// prefetch the next group's rows (contiguous after it) in its first pass, and its own rows (already
// in cache, so a harmless no-op) in later ones.
template <class G>
inline void for_each_group(const GemmArgs& a, int64_t r0, int64_t r1, size_t stride, G&& group) {
  const int64_t passes = (a.n + kMaxPassRows - 1) / kMaxPassRows;
  for (int64_t r = r0; r < r1; r += kGroupRows) {
    const int valid = static_cast<int>(r1 - r < kGroupRows ? r1 - r : kGroupRows);
    const uint8_t* w = a.w.data + r * stride;
    const char* next = reinterpret_cast<const char*>(w + kGroupRows * stride);
    for (int64_t k = 0, t0 = 0; k < passes; ++k) {
      const int64_t t1 = a.n * (k + 1) / passes;
      group(w, r, valid, t0, t1, k == 0 ? next : reinterpret_cast<const char*>(w));
      t0 = t1;
    }
  }
}

// The x16 kernels' driver (kernels/repack.h): group(rec, r, t0, t1) for every 16-row group (first row r) of weight
// rows [r0, r1) (rec: its first record; records_per_group records of record_bytes follow) and every
// pass [t0, t1) of at most 8 activation rows, near-equal as in for_each_group.
template <class G>
inline void for_each_x16_group(const GemmArgs& a, int64_t r0, int64_t r1, int64_t records_per_group, size_t record_bytes,
                               G&& group) {
  const int64_t passes = (a.n + kMaxPassRows - 1) / kMaxPassRows;
  for (int64_t r = r0; r < r1; r += kGroupRows) {
    const uint8_t* rec = a.w.data + static_cast<size_t>(r / kGroupRows * records_per_group) * record_bytes;
    for (int64_t k = 0, t0 = 0; k < passes; ++k) {
      const int64_t t1 = a.n * (k + 1) / passes;
      group(rec, r, t0, t1);
      t0 = t1;
    }
  }
}

}  // namespace
}  // namespace wai::kernels
