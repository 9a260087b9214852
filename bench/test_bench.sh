#!/usr/bin/env bash
# Smoke test of the benchmark tool chain on tiny models (CTest: bench_smoke, ~40-70 s on 2 cores):
# `wai bench` (table, --json, --batch, --ctx-depth with and without the sliding window, --ctx-fill
# prefill, bad options), wai-bandwidth, bench/llama_bench.mjs (llama.cpp via node-llama-cpp) on the
# same model, bench/chat_bench.mjs --quick and its report, and the whole bench/side_by_side.sh
# --quick --tiny pipeline with its report. Checks the numbers that do not depend on speed exactly
# (token counts, KV bytes from the shapes, the prompt hash shared with the llama.cpp script, file
# size, cache hits) and that speeds are > 0.
#
# Usage: bench/test_bench.sh WAI_BIN WAI_BANDWIDTH_BIN SHARED_DIR TMP_DIR
set -euo pipefail
wai=$1 bw=$2 shared=$3 tmp=$4
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$tmp"
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# check JSON_LINE 'JS boolean expression over r' DESCRIPTION
check() {
  if node -e "const r = JSON.parse(process.argv[1]); if (!($2)) process.exit(1);" "$1"; then ok "$3"; else
    bad "$3"; echo "  expression: $2"; echo "  json: $1"; fi
}
# The one JSON line a command printed (node-llama-cpp may print other lines).
json_of() { grep -E '^\{"engine":' | tail -n 1; }

# A tiny GQA model: dim 256, 2 layers, 8 heads of 32, 2 kv heads (kv_dim 64), ff 768, vocab 32000.
model=$tmp/bench-tiny-q4_0.gguf
"$wai" make-model "$model" --vocab "$shared/testdata/tokenizer/mistral-v0.1-vocab.gguf" \
  --dim 256 --layers 2 --heads 8 --kv-heads 2 --ff 768 --type q4_0 --ctx 4096 2>/dev/null
size=$(stat -c %s "$model")

# Full attention: the cache holds whole 16-position blocks: p + n = 40 positions take 3 blocks, so
# capacity 48; kv bytes = 2 (k, v) * 2 layers * 48 * 64 * 2 (f16).
out=$("$wai" bench -m "$model" -p 32 -n 8 -t 2 -r 2 --json | json_of)
check "$out" "r.engine === 'wai' && r.prompt_tokens === 32 && r.generated_tokens === 8 && r.batch === 1 &&
  r.threads === 2 && r.reps === 2 && r.prefill_samples.length === 2 && r.decode_samples.length === 2 &&
  r.prefill_tokens_per_s > 0 && r.decode_tokens_per_s > 0 && r.decode_min <= r.decode_tokens_per_s &&
  r.decode_tokens_per_s <= r.decode_max && r.type === 'q4_0' && r.size_bytes === $size &&
  r.weight_bytes_per_token > 0 && r.weight_bytes_per_token < r.size_bytes && r.kv_capacity === 48 &&
  r.kv_bytes === 2 * 2 * 48 * 64 * 2 && r.rss_peak_bytes > r.kv_bytes && r.load_s >= 0 &&
  r.first_token_s >= r.load_s" "bench --json: counts, kv bytes, sizes"
hash=$(node -e 'console.log(JSON.parse(process.argv[1]).prompt_hash)' "$out")

# Batch of 3: three caches, three prompts (16 + 4 positions: 2 blocks each); aggregate tokens/s.
out=$("$wai" bench -m "$model" -p 16 -n 4 -r 1 --batch 3 --batch-size 7 --json | json_of)
check "$out" "r.batch === 3 && r.batch_size === 7 && r.kv_bytes === 3 * 2 * 2 * 32 * 64 * 2 &&
  r.decode_tokens_per_s > 0 && r.prefill_tokens_per_s > 0" "bench --batch 3"

# Long context: 300 positions deep; with a 64-position window the cache holds 64 positions only;
# without one, 300 + 4 positions = 19 blocks.
out=$("$wai" bench -m "$model" -p 0 -n 4 -r 1 --ctx-depth 300 --sliding-window 64 --json | json_of)
check "$out" "r.ctx_depth === 300 && r.sliding_window === 64 && r.kv_capacity === 64 &&
  r.kv_bytes === 2 * 2 * 64 * 64 * 2 && r.prefill_tokens_per_s === null && r.decode_tokens_per_s > 0" \
  "bench --ctx-depth with window"
out=$("$wai" bench -m "$model" -p 0 -n 4 -r 1 --ctx-depth 300 --sliding-window 0 --json | json_of)
check "$out" "r.sliding_window === 0 && r.kv_capacity === 304 && r.ctx_fill === 'synthetic'" \
  "bench --ctx-depth full attention"
out=$("$wai" bench -m "$model" -p 4 -n 4 -r 2 --ctx-depth 100 --ctx-fill prefill --batch 2 --json | json_of)
check "$out" "r.ctx_fill === 'prefill' && r.batch === 2 && r.decode_samples.length === 2" "bench --ctx-fill prefill"

# The default table names both tests.
table=$("$wai" bench -m "$model" -p 16 -n 4 -r 1)
if grep -q "pp16" <<<"$table" && grep -q "tg4" <<<"$table" && grep -q "peak RSS" <<<"$table"; then
  ok "bench table"; else bad "bench table"; echo "$table"; fi

# Bad options are errors (exit 1 with a message), not crashes.
for args in "-p -1" "-r 0" "--batch 0" "-t 0" "--ctx-fill magic" "-p 0 -n 0" "--bogus 1"; do
  # shellcheck disable=SC2086
  if err=$("$wai" bench -m "$model" $args 2>&1 >/dev/null); then bad "bench $args succeeded"
  elif grep -q "error" <<<"$err"; then ok "bench $args rejected"; else bad "bench $args: no error message: $err"; fi
done
if "$wai" bench -m "$tmp/no-such.gguf" >/dev/null 2>&1; then bad "missing model accepted"; else ok "missing model rejected"; fi

# A real model (stories260K: vocab 512, tied or not, whatever it has).
out=$("$wai" bench -m "$shared/models/stories260K.gguf" -p 20 -n 5 -r 1 --json | json_of)
check "$out" "r.generated_tokens === 5 && r.decode_tokens_per_s > 0" "bench on stories260K"

# The bandwidth probe.
out=$("$bw" --json --size-mib 64 --reps 2 | json_of)
check "$out" "r.threads === 2 && r.best_gb_per_s > 0 && r.median_gb_per_s <= r.best_gb_per_s &&
  Object.values(r.variants).every(v => v.length === 2)" "wai-bandwidth"
if "$bw" --threads 0 >/dev/null 2>&1; then bad "wai-bandwidth --threads 0 accepted"; else ok "wai-bandwidth rejects --threads 0"; fi

# llama.cpp on the same model and the same prompt ids.
if [ -d "$here/../tests/js/node_modules/node-llama-cpp" ]; then
  out=$(node "$here/llama_bench.mjs" -m "$model" -p 32 -n 8 -t 2 -r 1 2>/dev/null | json_of)
  check "$out" "r.engine === 'llama.cpp' && r.prompt_tokens === 32 && r.generated_tokens === 8 &&
    r.prefill_tokens_per_s > 0 && r.decode_tokens_per_s > 0 && r.prompt_hash === '$hash'" \
    "llama_bench.mjs: same prompt ids as wai bench"
else
  bad "tests/js/node_modules is missing (npm ci --omit=optional in tests/js)"
fi

# The chat benchmark (bench/chat_bench.mjs --quick) on stories260K through the real server, with and
# without the prefix cache, and llama.cpp's LlamaChatSession; then its report.
chat=$tmp/chat.json
if node "$here/chat_bench.mjs" -m "$shared/models/stories260K.gguf" --wai "$wai" --quick >"$chat" 2>"$tmp/chat.log"; then
  check "$(grep '^{"bench":"chat"' "$chat")" "r.chat.wai_cache.length === 3 && r.chat.wai_no_cache.length === 3 &&
    r.chat.llama_cpp.turns.length === 3 && r.chat.wai_cache.every((t) => t.ttft_s > 0) &&
    r.chat.wai_cache[2].cached_tokens > 0 && r.chat.wai_no_cache.every((t) => t.cached_tokens === 0) &&
    r.chat.wai_cache.every((t, i) => t.prompt_tokens === r.chat.wai_no_cache[i].prompt_tokens) &&
    r.followup.cached_share > 0.8 && r.shared.cache.cached_tokens > 0 && r.shared.no_cache.cached_tokens === 0" \
    "chat_bench.mjs --quick: turns, cache hits, follow-up, shared prompt"
  if node "$here/chat_report.mjs" "$chat" | grep -q '^| 3 | '; then ok "chat_report.mjs"; else bad "chat_report.mjs"; fi
else bad "chat_bench.mjs --quick failed"; tail -20 "$tmp/chat.log"; fi

# The whole side-by-side pipeline on tiny models, report included (docs/BENCHMARKS.md untouched).
sbs=$tmp/side_by_side
rm -rf "$sbs"
doc_before=$(cksum "$here/../docs/BENCHMARKS.md" 2>/dev/null || true)
if "$here/side_by_side.sh" --quick --tiny --no-build --build-dir "$(dirname "$(dirname "$wai")")" \
     --models "$tmp/models" --results "$sbs" >"$tmp/side_by_side.log" 2>&1; then
  report=$sbs/BENCHMARKS.md
  if grep -q '^| q4_0 | ' "$report" && grep -q '^### Goals' "$report" && grep -q 'batch 8 >= 5x' "$report" &&
     grep -q '^| 16384 | 4096 | ' "$report" && grep -q '| yes |$' "$report" && grep -q 'llama_bench.mjs' "$report" &&
     grep -q "% of its round's probe (" "$report" && grep -qE '^\| 8 \| [0-9.]+ \[' "$report" &&
     ! grep -q 'FAILED steps' "$report"; then
    ok "side_by_side.sh --quick --tiny wrote a complete report"
  else bad "side_by_side.sh report incomplete: $report"; fi
  [ "$doc_before" = "$(cksum "$here/../docs/BENCHMARKS.md" 2>/dev/null || true)" ] && ok "docs/BENCHMARKS.md untouched" ||
    bad "a --quick run changed docs/BENCHMARKS.md"
else
  bad "side_by_side.sh --quick --tiny failed (log: $tmp/side_by_side.log)"; tail -20 "$tmp/side_by_side.log"
fi

# bench/kernels/ab/ab.sh: the q4_0/q8_0 batch kernel against itself under another flag, on a shape with
# a partial 16-row group (needs AVX-512 VNNI: the tool calls the kernels without a CPU check).
if grep -qw avx512_vnni /proc/cpuinfo 2>/dev/null; then
  repo=$(cd "$here/.." && pwd)
  build=$(cd "$(dirname "$wai")/.." && pwd)
  if ab=$("$here/kernels/ab/ab.sh" --build-dir "$build" "$repo/src/kernels/gemm_vnni_batch.cpp" \
      "$repo/src/kernels/gemm_vnni_batch.cpp:-DWAI_AB_UNUSED=1" -- 40 256 3 q4_0 2 3 2>&1) &&
     [ "$(echo "$ab" | grep -c '^var[AB] q4_0 40x256 n=3 threads 2: best ')" = 2 ] &&
     echo "$ab" | awk '/^var/ { if ($NF + 0 > 0.1) bad = 1 } END { exit bad }'; then
    ok "kernels/ab/ab.sh: two variants timed, both within 0.1 of matmul_reference"
  else bad "kernels/ab/ab.sh"; echo "$ab" | tail -5; fi
else
  ok "kernels/ab/ab.sh skipped (no AVX-512 VNNI)"
fi

if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
echo "all bench checks passed"
