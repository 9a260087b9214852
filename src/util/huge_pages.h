// Heap memory for large, hot scratch buffers (activations, kernel staging), backed by transparent huge
// pages where the OS offers them (THP "madvise" mode included, the common default).
//
// Why: the AMX prefill kernel re-reads a megabyte-sized block of prepared activations from L2 for every
// weight panel. In 4 KiB pages that block lands on physically random pages, so some L2 sets overflow
// and the time depends on the allocation's luck: three identical copies of the kernel, each with its
// own buffers, differed by up to 20% run after run; with 2 MiB pages the block is physically
// contiguous and every copy ran ~30% faster than the unlucky ones (bench/kernels/ab, 4096 x 4096 x
// 512, docs/BENCHMARKS.md). Buffers below kHugeMinBytes get plain 64-byte-aligned memory.
#pragma once

#include <cstddef>

namespace wai {

constexpr size_t kHugePageBytes = size_t{2} << 20;
constexpr size_t kHugeMinBytes = size_t{1} << 20;

// 64-byte-aligned memory of at least `bytes`; from kHugeMinBytes on, 2 MiB-aligned, rounded up to
// whole 2 MiB pages and marked MADV_HUGEPAGE. Throws std::bad_alloc. Release with huge_free.
void* huge_alloc(size_t bytes);
void huge_free(void* p) noexcept;

}  // namespace wai
