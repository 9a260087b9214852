#!/usr/bin/env bash
# README command 2: build everything (main build, clang fuzz build, JS test clients) and run every
# test: unit tests, differential tests against llama.cpp (node-llama-cpp), SentencePiece, the official
# SDKs against the real server, and bounded fuzzing. Exit code 0 only when all pass.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
# libFuzzer targets: clang with ASan/UBSan, a separate build tree.
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DWAI_FUZZ=ON -DWAI_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target wai_fuzzers
# JS test dependencies, pinned by tests/js/package-lock.json.
if [ ! -d tests/js/node_modules ] || [ tests/js/package-lock.json -nt tests/js/node_modules/.package-lock.json ]; then
  (cd tests/js && npm ci --omit=optional --no-audit --no-fund --loglevel=error)
fi
ctest --test-dir build --output-on-failure -j2 "$@"
