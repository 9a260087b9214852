#!/usr/bin/env bash
# Interleaved A/B of kernel variants (see ab_main.cpp).
#   bench/kernels/ab/ab.sh [--build-dir DIR] 'FILE[:FLAGS]' 'FILE[:FLAGS]' ['FILE[:FLAGS]'] -- ROWS COLS N TYPE [THREADS] [ITERS]
# Each FILE is a kernel source (e.g. src/kernels/gemm_vnni_q8.cpp, or an old version from `git show`),
# compiled with its FLAGS (e.g. -DSOME_TUNABLE=2) and its GemmKernel renamed; the rest of the kernels
# layer comes from DIR (default: build, Release; `cmake --build DIR` it first). Example:
#   git show HEAD~1:src/kernels/gemm_vnni_q8.cpp > /tmp/old.cpp
#   bench/kernels/ab/ab.sh /tmp/old.cpp src/kernels/gemm_vnni_q8.cpp -- 14336 4096 1 q8_0 2
# (An old file that includes repo headers which have since changed may need those headers too.)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
build=$repo/build
if [ "${1:-}" = --build-dir ]; then build=$(cd "$2" && pwd); shift 2; fi
variants=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do variants+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
if [ ${#variants[@]} -lt 1 ] || [ ${#variants[@]} -gt 3 ] || [ $# -lt 4 ]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
for lib in kernels format util; do
  [ -f "$build/src/libwai_$lib.a" ] || { echo "ab.sh: $build/src/libwai_$lib.a missing (build first)" >&2; exit 1; }
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Every exported kernel name is renamed, whichever the file defines.
names="kGemmPortable kGemmVnniQ8 kGemmVnniBatch kGemmVnniQ4x16 kGemmVnniQ8x16 kGemmVnniK kGemmVnniKBatch kGemmAvx512Float kGemmAmxBf16"
objs=()
letters=(A B C)
for i in "${!variants[@]}"; do
  spec=${variants[$i]}
  file=${spec%%:*}
  flags=""
  [ "$spec" != "$file" ] && flags=${spec#*:}
  defs=()
  for nm in $names; do defs+=("-D$nm=kVar${letters[$i]}"); done
  # shellcheck disable=SC2086
  g++ -O3 -std=c++20 $flags -I"$repo/src" "${defs[@]}" -c "$file" -o "$out/var$i.o"
  objs+=("$out/var$i.o")
done
{
  echo '#include "kernels/gemm.h"'
  echo 'namespace wai::kernels {'
  echo "extern const int kVariants; const int kVariants = ${#variants[@]};"
  for i in 1 2; do
    if [ "$i" -ge "${#variants[@]}" ]; then
      echo "extern const GemmKernel kVar${letters[$i]}; const GemmKernel kVar${letters[$i]} = {};"
    fi
  done
  echo '}'
} >"$out/fill.cpp"
g++ -O2 -std=c++20 -I"$repo/src" -c "$out/fill.cpp" -o "$out/fill.o"
g++ -O2 -std=c++20 -I"$repo/src" -c "$repo/bench/kernels/ab/ab_main.cpp" -o "$out/main.o"
g++ -o "$out/ab_main" "$out/main.o" "${objs[@]}" "$out/fill.o" \
  "$build/src/libwai_kernels.a" "$build/src/libwai_format.a" "$build/src/libwai_util.a" -lpthread
"$out/ab_main" "$@"
