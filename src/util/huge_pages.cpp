#include "util/huge_pages.h"

#include <sys/mman.h>

#include <cstdlib>
#include <new>

namespace wai {

void* huge_alloc(size_t bytes) {
  if (bytes == 0) bytes = 1;
  const bool huge = bytes >= kHugeMinBytes;
  const size_t align = huge ? kHugePageBytes : 64;
  const size_t size = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, size);
  if (!p) throw std::bad_alloc();
  // Advice only: where THP is off or the advice fails, the buffer works in small pages.
  if (huge) (void)madvise(p, size, MADV_HUGEPAGE);
  return p;
}

void huge_free(void* p) noexcept { std::free(p); }

}  // namespace wai
