// std::vector of scratch data on huge_alloc memory (see huge_pages.h). Separate from huge_pages.h so
// that the AVX-512 kernel files, which must not instantiate std:: templates, include only the functions.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

#include "util/huge_pages.h"

namespace wai {

// std::allocator replacement on top of huge_alloc, for vectors of scratch data.
template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}
  T* allocate(size_t n) {
    if (n > static_cast<size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(huge_alloc(n * sizeof(T)));
  }
  void deallocate(T* p, size_t) noexcept { huge_free(p); }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept { return true; }
};

template <class T>
using HugeVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace wai
