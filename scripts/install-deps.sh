#!/usr/bin/env bash
# Installs the Debian packages wai's build, tests and benchmarks need. Idempotent: a no-op when all are
# present (no apt-get update, no network). Run as root (or with sudo available).
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build g++ clang libclang-rt-14-dev   # toolchains (clang: libFuzzer)
  libboost-dev nlohmann-json3-dev                                  # HTTP (Beast/Asio), JSON
  libgtest-dev libgmock-dev libbenchmark-dev                       # tests
  libsentencepiece-dev sentencepiece                               # reference tokenizer (tests)
  nodejs                                                           # JS oracles and SDK clients (tests)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian splits npm from nodejs; NodeSource's nodejs ships it. Ask for Debian's npm only when absent.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
