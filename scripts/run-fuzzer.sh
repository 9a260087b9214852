#!/usr/bin/env bash
# run-fuzzer.sh BINARY SEED_DIR SECONDS: runs a libFuzzer target for a bounded time on a scratch copy
# of its seed corpus. Fails when the binary is missing or the fuzzer finds a crash, leak or UB.
set -euo pipefail
bin=$1 seeds=$2 secs=$3
[ -x "$bin" ] || { echo "fuzzer $bin not built (scripts/test.sh builds build-fuzz/)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
[ -d "$seeds" ] && cp -r "$seeds"/. "$work/corpus/" 2>/dev/null || true
cd "$work"
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 corpus 2>&1 | tail -n 25
