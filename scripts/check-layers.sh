#!/usr/bin/env bash
# Fails when a source file (in its layer's folder or any subfolder) includes a header from a layer
# above its own.
# Layer order (lower may be included by higher): util < format < kernels,text < model < runtime < server < cli
set -euo pipefail
src=${1:-$(dirname "$0")/../src}
declare -A allowed=(
  [util]="util"
  [format]="util format"
  [kernels]="util format kernels"
  [text]="util format text"
  [model]="util format kernels model"
  [runtime]="util format kernels text model runtime"
  [server]="util format kernels text model runtime server"
  [cli]="util format kernels text model runtime server cli"
)
bad=0
for layer in "${!allowed[@]}"; do
  [ -d "$src/$layer" ] || continue
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(sed -E 's/.*#include "([a-z_]+)\/.*/\1/' <<<"$line")
    if [[ " ${allowed[$layer]} " != *" $inc "* ]]; then
      echo "layering violation: $file includes $inc/ (layer $layer may include: ${allowed[$layer]})"
      bad=1
    fi
  done < <(find "$src/$layer" -type f \( -name '*.h' -o -name '*.cpp' \) -exec grep -HE '^#include "[a-z_]+/' {} + || true)
done
[ $bad -eq 0 ] && echo "layering ok"
exit $bad
