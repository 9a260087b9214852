// The ISA a kernel translation unit is compiled for, from one place: WAI_ISA_BEGIN("avx512f,...")
// before <immintrin.h>, WAI_ISA_END at the end of the file. GCC: `#pragma GCC target` for the rest of
// the file (and GCC 12's false -Wuninitialized / -Wmaybe-uninitialized warnings about the
// _mm512_undefined_* inside its own intrinsic headers silenced); clang: `#pragma clang attribute`
// push / pop over every function in between. Such a file must not instantiate std:: templates (their
// instantiations would carry the ISA into other translation units; see gemm_vnni_q8.cpp).
#pragma once

#define WAI_ISA_PRAGMA(x) _Pragma(#x)

#if defined(__clang__)
#define WAI_ISA_BEGIN(isa) WAI_ISA_PRAGMA(clang attribute push(__attribute__((target(isa))), apply_to = function))
#define WAI_ISA_END WAI_ISA_PRAGMA(clang attribute pop)
#else
#define WAI_ISA_BEGIN(isa)                                    \
  WAI_ISA_PRAGMA(GCC target(isa))                             \
  WAI_ISA_PRAGMA(GCC diagnostic ignored "-Wuninitialized")    \
  WAI_ISA_PRAGMA(GCC diagnostic ignored "-Wmaybe-uninitialized")
#define WAI_ISA_END
#endif
