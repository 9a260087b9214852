#!/usr/bin/env bash
# wai vs llama.cpp, side by side on one machine, and the report in docs/BENCHMARKS.md.
#
#   bench/side_by_side.sh [--quick] [--tiny] [--reps R] [--types "q4_0 q8_0 q4_K"] [--threads T]
#                         [--build-dir DIR] [--no-build] [--out FILE] [--results DIR] [--models DIR]
#
# Steps (each timed; the log and every raw JSON line go to the results folder, bench/results/STAMP/):
#   1. build wai and wai-bandwidth (Release) unless --no-build;
#   2. generate, or reuse, the Mistral-7B-shaped random-weight models models/mistral-7b-TYPE.gguf
#      (models/ in the repo is gitignored; --models DIR puts them elsewhere)
#      (`wai make-model --shape mistral-7b --type TYPE`; dim 4096, 32 layers, 32/8 heads, ff 14336,
#      vocab 32000, sliding window 4096);
#   3. memory read bandwidth (wai-bandwidth, T threads) — the decode roofline;
#   4. for each model (first read back into the page cache through wai's mapping: page_in below),
#      R rounds ALTERNATING wai (`wai bench --json -r 1`) and llama.cpp
#      (bench/llama_bench.mjs -r 1, node-llama-cpp 3.21.1, CPU only), same prompt ids (the JSON lines
#      carry a prompt_hash to prove it), same prompt length P, generated length N, threads T; each
#      round starts with a short bandwidth probe, the roofline of that round (this machine's
#      bandwidth drifts by up to 30% over minutes: a decode is compared with the memory of its moment);
#   5. `wai bench --batch 1` and `--batch 8` (aggregate decode tokens/s) on the q4_0 model, R rounds
#      alternating;
#   6. long-context decode at depth 4096/8192/16384 with the 4096 sliding window (and, full run only,
#      8192/16384 without it for contrast);
#   7. bandwidth again (the report uses the better of the two);
#   8. bench/report.mjs writes the report: --out FILE, default docs/BENCHMARKS.md for a full run
#      (the part between its results markers), RESULTS/BENCHMARKS.md for --quick or --tiny.
#
# --quick: q4_0 only, P=64, N=16, one round, short batch and long-context runs (a smoke test of the
# whole pipeline on the real 7B shape: ~5-10 minutes with the model already generated).
# --tiny:  dim-256 models (models/tiny-TYPE.gguf) instead of the 7B shape, small bandwidth probe
#          (under a minute; the bench_smoke test runs --quick --tiny).
# Run it on a quiet machine: other processes on the same cores distort both engines (llama.cpp's
# spinning thread pool collapses when its cores are shared).
set -euo pipefail

cmdline="bench/side_by_side.sh${*:+ $*}"
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
quick=0 tiny=0 reps="" types="" threads=2 build_dir=build do_build=1 out="" results="" models=models
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --tiny) tiny=1 ;;
    --reps) reps=$2; shift ;;
    --types) types=$2; shift ;;
    --threads) threads=$2; shift ;;
    --build-dir) build_dir=$2; shift ;;
    --no-build) do_build=0 ;;
    --out) out=$2; shift ;;
    --results) results=$2; shift ;;
    --models) models=$2; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "side_by_side: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done

if [ "$quick" = 1 ]; then
  P=64 N=16 reps=${reps:-1} types=${types:-q4_0}
  BP=16 BN=8 LN=4 depths="4096 8192 16384" full_depths="" bw_args="--size-mib 1024 --reps 3" bw_round_args="--size-mib 1024 --reps 2"
else
  P=512 N=128 reps=${reps:-3} types=${types:-"q4_0 q8_0 q4_K"}
  BP=64 BN=64 LN=32 depths="4096 8192 16384" full_depths="8192 16384" bw_args="--size-mib 2048 --reps 5" bw_round_args="--size-mib 2048 --reps 2"
fi
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=${results:-bench/results/$stamp}
[ "$tiny" = 1 ] && bw_args="--size-mib 256 --reps 2" bw_round_args="--size-mib 256 --reps 1"
mkdir -p "$results" "$models"
if [ -z "$out" ]; then
  if [ "$quick" = 1 ] || [ "$tiny" = 1 ]; then out=$results/BENCHMARKS.md; else out=docs/BENCHMARKS.md; fi
fi
wai=$build_dir/bin/wai
bw=$build_dir/bin/wai-bandwidth
log=$results/log.txt
: >"$log"
: >"$results/commands.txt"
: >"$results/steps.tsv"
: >"$results/failed.txt"

say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$log" >&2; }
# run STEP-NAME OUTFILE CMD...: runs CMD, appends its JSON result lines (lines starting with
# {"engine": — node-llama-cpp's warnings are skipped) to OUTFILE, records the command and its time.
# A failed command is logged and listed in failed.txt (the report shows it) and the run goes on, so
# that one failure late in an hour-long run does not lose the rest.
run() {
  local step=$1 outfile=$2
  shift 2
  echo "$*" >>"$results/commands.txt"
  local t0 t1 tmp
  t0=$(date +%s.%N)
  tmp=$(mktemp)
  if ! "$@" >"$tmp" 2>>"$log"; then
    say "FAILED: $*"
    echo "$step: $*" >>"$results/failed.txt"
    cat "$tmp" >>"$log"
    rm -f "$tmp"
    return 0
  fi
  t1=$(date +%s.%N)
  if ! grep -E '^\{"engine":' "$tmp" >>"$outfile"; then
    say "no JSON result from: $*"
    echo "$step (no JSON result): $*" >>"$results/failed.txt"
  fi
  rm -f "$tmp"
  awk -v s="$step" -v a="$t0" -v b="$t1" 'BEGIN { printf "%s\t%.1f\n", s, b - a }' >>"$results/steps.tsv"
}
timed() {  # timed STEP-NAME CMD...: runs CMD (output to the log) and records its time
  local step=$1
  shift
  echo "$*" >>"$results/commands.txt"
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >>"$log" 2>&1 || { say "FAILED: $*"; return 1; }
  t1=$(date +%s.%N)
  awk -v s="$step" -v a="$t0" -v b="$t1" 'BEGIN { printf "%s\t%.1f\n", s, b - a }' >>"$results/steps.tsv"
}

# page_in MODEL: evicts MODEL from the page cache and lets wai read it back once (a short run, not
# recorded; its time is in steps.tsv as a cold start from disk). wai maps weights with MADV_HUGEPAGE,
# so the file comes back in 2 MiB folios, as on a server that starts cold; a file last cached by
# its writer or by read() calls may sit in small folios, and decode, which streams every weight per
# token, then pays TLB misses. (llama.cpp copies the weights it uses into its own buffers at load.)
page_in() {
  dd if="$1" iflag=nocache count=0 status=none 2>>"$log" || say "could not evict $1 from the page cache"
  timed "page-in $(basename "$1")" "$wai" bench -m "$1" -p 1 -n 1 -t "$threads" -r 1 --json || true
}

say "results in $results, report to $out"
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
  say "WARNING: load average $load before starting: the machine is not quiet, numbers will be low and noisy"
fi

# 1. build
if [ "$do_build" = 1 ]; then
  timed build bash -c "cmake -S . -B '$build_dir' -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null && \
    cmake --build '$build_dir' -j2 --target wai wai-bandwidth"
fi
[ -x "$wai" ] && [ -x "$bw" ] || { echo "side_by_side: $wai or $bw missing (build first)" >&2; exit 1; }
[ -d tests/js/node_modules/node-llama-cpp ] || (cd tests/js && npm ci --omit=optional)

# Machine description (the report prints it).
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bench || echo ' (with uncommitted changes)')"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p')"
  echo "cores: $(nproc), $(lscpu | sed -n 's/^Thread(s) per core: *//p') thread(s) per core"
  echo "caches: L2 $(lscpu | sed -n 's/^L2 cache: *//p'), L3 $(lscpu | sed -n 's/^L3 cache: *//p')"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|f16c|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_bf16|avx512_fp16|amx_tile|amx_int8|amx_bf16)$' | tr '\n' ' ')"
  echo "kernel: $(uname -sr)"
  echo "load_before: $(cat /proc/loadavg)"
  echo "hypervisor: $(lscpu | sed -n 's/^Hypervisor vendor: *//p')"
} >"$results/machine.txt"
echo "quick=$quick tiny=$tiny P=$P N=$N rounds=$reps threads=$threads types=$types batch_p=$BP batch_n=$BN long_n=$LN" \
  >"$results/settings.txt"

# 2. models
vocab=../shared/testdata/tokenizer/mistral-v0.1-vocab.gguf
[ -f "$vocab" ] || vocab=/work/shared/testdata/tokenizer/mistral-v0.1-vocab.gguf
: >"$results/models.tsv"
for t in $types; do
  if [ "$tiny" = 1 ]; then
    m=$models/tiny-$t.gguf
    shape=(--dim 256 --layers 4 --heads 8 --kv-heads 2 --ff 768 --sliding-window 4096 --ctx 32768)
  else
    m=$models/mistral-7b-$t.gguf
    shape=(--shape mistral-7b)
  fi
  if [ -f "$m" ]; then
    say "reusing $m"
    printf '%s\t%s\treused\n' "$t" "$m" >>"$results/models.tsv"
  else
    say "generating $m"
    timed "make-model $t" "$wai" make-model "$m.tmp" --vocab "$vocab" "${shape[@]}" --type "$t" -t "$threads"
    mv "$m.tmp" "$m"
    printf '%s\t%s\tgenerated\n' "$t" "$m" >>"$results/models.tsv"
  fi
done

# 3. bandwidth
say "bandwidth"
# shellcheck disable=SC2086
run bandwidth "$results/bandwidth.jsonl" "$bw" --json --threads "$threads" $bw_args

# 4. side by side, alternating
for t in $types; do
  m=$(awk -v t="$t" '$1 == t {print $2}' "$results/models.tsv")
  page_in "$m"
  for r in $(seq 1 "$reps"); do
    say "$t round $r/$reps: bandwidth"
    # (its line goes to the same file: the report pairs each wai line with the probe before it)
    # shellcheck disable=SC2086
    run "bandwidth $t round $r" "$results/side-$t.jsonl" "$bw" --json --threads "$threads" $bw_round_args
    say "$t round $r/$reps: wai"
    run "wai $t round $r" "$results/side-$t.jsonl" "$wai" bench -m "$m" -p "$P" -n "$N" -t "$threads" -r 1 --json
    say "$t round $r/$reps: llama.cpp"
    run "llama.cpp $t round $r" "$results/side-$t.jsonl" node bench/llama_bench.mjs -m "$m" -p "$P" -n "$N" -t "$threads" -r 1
  done
done

# 5. batched decode (q4_0, or the first type)
bt=$(echo "$types" | tr ' ' '\n' | grep -m1 -x q4_0 || echo "$types" | awk '{print $1}')
bm=$(awk -v t="$bt" '$1 == t {print $2}' "$results/models.tsv")
page_in "$bm"
for r in $(seq 1 "$reps"); do
  for b in 1 8; do
    say "batch $b ($bt) round $r/$reps"
    run "wai $bt batch $b round $r" "$results/batch.jsonl" "$wai" bench -m "$bm" -p "$BP" -n "$BN" -t "$threads" --batch "$b" -r 1 --json
  done
done

# 6. long context (sliding window 4096, KV filled synthetically: see `wai bench --help`)
# Depths alternate round by round (the machine's speed drifts over minutes: consecutive repetitions
# of one depth would compare different moments); 2 * reps rounds, as each run is short.
for r in $(seq 1 $((2 * reps))); do
  for d in $depths; do
    say "long context round $r: depth $d, window 4096"
    run "wai $bt depth $d window 4096 round $r" "$results/longctx.jsonl" "$wai" bench -m "$bm" -p 0 -n "$LN" -t "$threads" --ctx-depth "$d" --sliding-window 4096 -r 1 --json
  done
done
for d in $full_depths; do
  say "long context: depth $d, full attention"
  run "wai $bt depth $d full" "$results/longctx.jsonl" "$wai" bench -m "$bm" -p 0 -n "$LN" -t "$threads" --ctx-depth "$d" --sliding-window 0 -r "$reps" --json
done

# 7. bandwidth again
say "bandwidth (end)"
# shellcheck disable=SC2086
run bandwidth-end "$results/bandwidth.jsonl" "$bw" --json --threads "$threads" $bw_args
echo "load_after: $(cat /proc/loadavg)" >>"$results/machine.txt"

# 8. report
node bench/report.mjs --results "$results" --out "$out" --command "$cmdline"
say "report written to $out"
