#!/usr/bin/env node
// Turns a bench/side_by_side.sh results folder into the markdown results section of
// docs/BENCHMARKS.md: machine, bandwidth, wai vs llama.cpp with ratios and roofline, batched decode,
// long-context decode, start-up, the goals marked met / NOT met, the exact commands and step times.
//
// Usage: node bench/report.mjs --results DIR --out FILE [--command "bench/side_by_side.sh ..."]
// FILE's text between the markers RESULTS_BEGIN and RESULTS_END (below) is replaced; a file without
// them gets the section appended; a missing file is created.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const BEGIN = "<!-- results:begin (written by bench/side_by_side.sh, do not edit by hand) -->";
const END = "<!-- results:end -->";

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
};
const dir = opt("--results");
const out = opt("--out");
const command = opt("--command", "bench/side_by_side.sh");
if (!dir || !out) throw new Error("usage: report.mjs --results DIR --out FILE [--command CMD]");

const text = (f) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), "utf8") : "");
const jsonl = (f) => text(f).split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
const keyvals = (f) => Object.fromEntries(text(f).split("\n").filter(Boolean).map((l) => {
  const i = l.indexOf(":");
  return [l.slice(0, i).trim(), l.slice(i + 1).trim()];
}));

function stats(xs) {
  xs = xs.filter((x) => typeof x === "number" && Number.isFinite(x));
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return { median: s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2, min: s[0], max: s[s.length - 1], n: s.length };
}
const f1 = (x) => (x == null ? "–" : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const pct = (x) => (x == null ? "–" : `${(100 * x).toFixed(0)}%`);
const ratio = (a, b) => (a && b ? a / b : null);
const rx = (x) => (x == null ? "–" : `${x.toFixed(2)}x`);
const gib = (b) => (b == null ? "–" : b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`);
const spread = (s) => (s ? `${f1(s.median)} [${f1(s.min)}–${f1(s.max)}]` : "–");
// All per-repetition samples of `field` over the lines (each line may hold several repetitions).
const samples = (lines, field) => lines.flatMap((l) => l[field] ?? []);

const machine = keyvals("machine.txt");
const settings = Object.fromEntries(text("settings.txt").trim().split(/\s+(?=\w+=)/).map((kv) => {
  const i = kv.indexOf("=");
  return [kv.slice(0, i), kv.slice(i + 1)];
}));
const quick = settings.quick === "1", tiny = settings.tiny === "1";
const models = text("models.tsv").split("\n").filter(Boolean).map((l) => l.split("\t"));
const types = models.map((m) => m[0]);
// Probes: at the start and the end (bandwidth.jsonl) and one before each side-by-side round (in the
// round's side-TYPE.jsonl, engine "wai-bandwidth", just before the round's wai line).
const isProbe = (l) => l.engine === "wai-bandwidth";
const bw = [...jsonl("bandwidth.jsonl"), ...types.flatMap((t) => jsonl(`side-${t}.jsonl`).filter(isProbe))];
const bandwidth = bw.length ? Math.max(...bw.map((b) => b.best_gb_per_s)) : null;  // GB/s, the run's best

const L = [];
L.push(BEGIN, "");
L.push(`## Results${quick ? " (QUICK run: short lengths, one round — indicative only)" : ""}${tiny ? " (TINY models, not the 7B shape)" : ""}`, "");
L.push(`Produced by \`${command}\` on ${machine.date ?? "?"}, wai commit ${machine.commit ?? "?"}.`, "");

L.push("### Machine", "");
L.push(`- CPU: ${machine.cpu ?? "?"}; cores: ${machine.cores ?? "?"}; caches: ${machine.caches ?? "?"}; ${machine.memory ?? "?"} RAM` +
  `${machine.hypervisor ? ` (virtual machine, ${machine.hypervisor})` : ""}`);
L.push(`- flags: ${machine.flags ?? "?"}`);
L.push(`- kernel: ${machine.kernel ?? "?"}; load average before: ${machine.load_before ?? "?"}, after: ${machine.load_after ?? "?"}`);
L.push(`- memory read bandwidth (wai-bandwidth, ${bw[0]?.threads ?? "?"} threads, ${gib(bw[0]?.buffer_bytes)} buffer, best of ` +
  `${bw.length} probes): **${bandwidth?.toFixed(1) ?? "?"} GB/s**; all probes in run order, best variant of each: ` +
  `${bw.map((b) => `${b.best_gb_per_s.toFixed(1)} ${b.best_variant}`).join(", ")}`);
const llamaLine = types.flatMap((t) => jsonl(`side-${t}.jsonl`)).find((l) => l.engine === "llama.cpp");
const waiLine = types.flatMap((t) => jsonl(`side-${t}.jsonl`)).find((l) => l.engine === "wai");
if (llamaLine) {
  L.push(`- llama.cpp: ${llamaLine.version} (prebuilt CPU binaries), ${llamaLine.system_info}; flash attention: ` +
    `${llamaLine.flash_attention}, batch size ${llamaLine.batch_size}, context ${llamaLine.context_size}, f16 KV cache`);
}
if (waiLine) L.push(`- wai: kernels for ${waiLine.cpu}; f16 KV cache; prefill chunk ${waiLine.batch_size}`);
L.push("");

// --- side by side
const P = Number(settings.P), N = Number(settings.N), T = Number(settings.threads), R = Number(settings.rounds);
L.push("### wai vs llama.cpp", "");
L.push(`Prefill of a ${P}-token prompt and decode of ${N} tokens after it, ${T} threads, random prompt ids ` +
  `(the same ids for both engines: equal prompt_hash), ${R} alternating round(s) (wai, llama.cpp, wai, ...), ` +
  `each one process with one warm-up and one measured repetition. Tokens/s: median [min–max] over the rounds. ` +
  `Roofline = bandwidth / weight bytes read per decoded token (all weights, one row of token_embd): "roofline" ` +
  `and "/roofline" use the best probe of the whole run; "/round roofline" is the median over the rounds of each ` +
  `decode divided by the roofline of the probe that opened its round (the bandwidth of that moment: it ` +
  `drifts by up to 30% over minutes on this machine).`, "");
L.push("| model | size | weights/token | prefill wai | prefill llama.cpp | wai/llama | decode wai | decode llama.cpp | wai/llama | roofline | wai/roofline | llama/roofline | wai/round roofline | llama/round roofline | same prompt |");
L.push("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
const side = {};
for (const t of types) {
  const all = jsonl(`side-${t}.jsonl`);
  const lines = all.filter((x) => !isProbe(x));
  const w = lines.filter((l) => l.engine === "wai"), l = lines.filter((x) => x.engine === "llama.cpp");
  // Decode / the roofline of the probe that opened the round, per engine (weight bytes: wai's count).
  const wb = w[0]?.weight_bytes_per_token;
  const roundRatios = { wai: [], "llama.cpp": [] };
  let probe = null;
  for (const x of all) {
    if (isProbe(x)) probe = x;
    else if (probe && wb && roundRatios[x.engine])
      for (const d of x.decode_samples ?? []) roundRatios[x.engine].push(d / ((probe.best_gb_per_s * 1e9) / wb));
  }
  if (!w.length && !l.length) continue;
  const r = {
    wp: stats(samples(w, "prefill_samples")), wd: stats(samples(w, "decode_samples")),
    lp: stats(samples(l, "prefill_samples")), ld: stats(samples(l, "decode_samples")),
    wbytes: w[0]?.weight_bytes_per_token, size: w[0]?.size_bytes ?? l[0]?.size_bytes,
    load: stats(w.map((x) => x.load_s)), first: stats(w.map((x) => x.first_token_s)), lload: stats(l.map((x) => x.load_s)),
    rss: stats(w.map((x) => x.rss_peak_bytes)), lrss: stats(l.map((x) => x.rss_peak_bytes)),
    same: new Set(lines.map((x) => x.prompt_hash)).size === 1,
    wround: stats(roundRatios.wai), lround: stats(roundRatios["llama.cpp"]),
  };
  r.roof = bandwidth && r.wbytes ? (bandwidth * 1e9) / r.wbytes : null;
  side[t] = r;
  L.push(`| ${t} | ${gib(r.size)} | ${gib(r.wbytes)} | ${spread(r.wp)} | ${spread(r.lp)} | **${rx(ratio(r.wp?.median, r.lp?.median))}** | ` +
    `${spread(r.wd)} | ${spread(r.ld)} | **${rx(ratio(r.wd?.median, r.ld?.median))}** | ${f1(r.roof)} | ` +
    `${pct(ratio(r.wd?.median, r.roof))} | ${pct(ratio(r.ld?.median, r.roof))} | ${pct(r.wround?.median)} | ` +
    `${pct(r.lround?.median)} | ${r.same ? "yes" : "NO"} |`);
}
L.push("");
L.push("Peak RSS (VmHWM, includes the mapped weights) and load times:", "");
L.push("| model | wai RSS | llama.cpp RSS | wai load | wai first token | llama.cpp load (incl. context) |");
L.push("|---|---|---|---|---|---|");
for (const [t, r] of Object.entries(side)) {
  L.push(`| ${t} | ${gib(r.rss?.median)} | ${gib(r.lrss?.median)} | ${f1(r.load?.median)} s | ${f1(r.first?.median)} s | ${f1(r.lload?.median)} s |`);
}
L.push("");

// --- batch
// (one line per batch size and round, the sizes alternating round by round; older runs: one line per size)
const batchLines = jsonl("batch.jsonl");
const batch = [...new Set(batchLines.map((b) => b.batch))].map((size) => {
  const ls = batchLines.filter((b) => b.batch === size);
  return { batch: size, lines: ls, decode: stats(samples(ls, "decode_samples")), prefill: stats(samples(ls, "prefill_samples")) };
});
const b1 = batch.find((b) => b.batch === 1), b8 = batch.find((b) => b.batch === 8);
if (batch.length) {
  const first = batchLines[0];
  L.push("### Batched decode", "");
  L.push(`\`wai bench --batch B\`: B sequences, each with its own ${first.prompt_tokens}-token prompt and KV cache, decoding ` +
    `${first.generated_tokens} tokens together (one forward pass per step over B tokens); aggregate tokens/s, ` +
    `median [min–max] of ${b1?.decode?.n ?? first.reps} repetitions${batch[0].lines.length > 1 ? ", the batch sizes alternating run by run" : ""}. ` +
    `Model: ${first.type}.`, "");
  L.push("| batch | decode t/s (aggregate) | per sequence | x batch 1 | prefill t/s | KV cache |");
  L.push("|---|---|---|---|---|---|");
  for (const b of batch) {
    const s = b.decode;
    L.push(`| ${b.batch} | ${spread(s)} | ${f1(s?.median / b.batch)} | ${rx(ratio(s?.median, b1?.decode?.median))} | ` +
      `${f1(b.prefill?.median)} | ${gib(b.lines[0].kv_bytes)} |`);
  }
  L.push("");
}

// --- long context (the runs alternate the depths round by round: lines of one setting are merged)
const lcLines = jsonl("longctx.jsonl");
const lc = [];
for (const x of lcLines) {
  const g = lc.find((y) => y.ctx_depth === x.ctx_depth && y.sliding_window === x.sliding_window);
  if (g) g.lines.push(x);
  else lc.push({ ctx_depth: x.ctx_depth, sliding_window: x.sliding_window, kv_bytes: x.kv_bytes, lines: [x] });
}
for (const g of lc) g.stats = stats(samples(g.lines, "decode_samples"));
if (lc.length) {
  const ref = lc.find((x) => x.sliding_window > 0);
  const first = lcLines[0];
  L.push("### Long-context decode", "");
  L.push(`Decode of ${first.generated_tokens} tokens after D positions (the KV cache filled with synthetic values: ` +
    `attention's cost depends on the number of visible positions, not on their values), ${first.type}, ` +
    `median [min–max] of ${ref?.stats?.n ?? first.reps} runs, the depths alternating round by round. With the 4096 ` +
    `sliding window every step attends to at most 4096 positions and the cache holds 4096 positions, however deep ` +
    `the sequence.`, "");
  L.push("| depth | window | decode t/s | vs first row | KV cache per sequence |");
  L.push("|---|---|---|---|---|");
  for (const x of lc) {
    L.push(`| ${x.ctx_depth} | ${x.sliding_window || "none (full attention)"} | ${spread(x.stats)} | ` +
      `${rx(ratio(x.stats?.median, ref?.stats?.median))} | ${gib(x.kv_bytes)} |`);
  }
  L.push("");
}

// --- goals
L.push("### Goals", "");
if (quick || tiny) L.push("_This was a quick/tiny run: the verdicts below are indicative only._", "");
L.push("| goal | measured | status |", "|---|---|---|");
const verdict = (ok) => (ok == null ? "not measured" : ok ? "met" : "**NOT met**");
for (const t of ["q4_0", "q8_0", "q4_K"]) {
  const r = side[t];
  const dr = ratio(r?.wd?.median, r?.ld?.median);
  L.push(`| decode >= 1.0x llama.cpp (${t}) | ${rx(dr)} | ${verdict(dr == null ? null : dr >= 1.0)} |`);
  // Against the bandwidth of the decode's own round where the run probed per round (older runs: the
  // run's best probe); the ratio to the run's best probe is shown beside it.
  const best = ratio(r?.wd?.median, r?.roof), rr = r?.wround?.median ?? best;
  L.push(`| decode >= 95% of roofline (${t}) | ${pct(rr)}${r?.wround ? ` of its round's probe (${pct(best)} of the run's best probe)` : ""} | ` +
    `${verdict(rr == null ? null : rr >= 0.95)} |`);
}
for (const t of ["q4_0", "q8_0"]) {
  const pr = ratio(side[t]?.wp?.median, side[t]?.lp?.median);
  L.push(`| prefill >= 3x llama.cpp (${t}) | ${rx(pr)} | ${verdict(pr == null ? null : pr >= 3.0)} |`);
}
const br = ratio(b8?.decode?.median, b1?.decode?.median);
L.push(`| batch 8 >= 5x single-sequence decode | ${rx(br)} | ${verdict(br == null ? null : br >= 5.0)} |`);
const firsts = Object.values(side).map((r) => r.first?.median).filter((x) => x != null);
const worst = firsts.length ? Math.max(...firsts) : null;
L.push(`| start-up < 1 s (model load + first token, page cache warm; worst model) | ${worst == null ? "–" : `${worst.toFixed(2)} s`} | ` +
  `${verdict(worst == null ? null : worst < 1.0)} |`);
L.push("");

const failed = text("failed.txt").split("\n").filter(Boolean);
if (failed.length) {
  L.push("### FAILED steps (their numbers are missing above; details in the run's log.txt)", "");
  for (const f of failed) L.push(`- \`${f}\``);
  L.push("");
}

// --- commands and step times
L.push("### Exact commands", "", "```sh", command, "# which ran, in this order:");
L.push(...text("commands.txt").split("\n").filter(Boolean), "```", "");
const steps = text("steps.tsv").split("\n").filter(Boolean).map((l) => l.split("\t"));
if (steps.length) {
  const total = steps.reduce((a, s) => a + Number(s[1]), 0);
  L.push(`### Step times (total ${(total / 60).toFixed(1)} min)`, "", "| step | seconds |", "|---|---|");
  for (const [s, sec] of steps) L.push(`| ${s} | ${sec} |`);
  L.push("");
}
L.push(END);
const section = L.join("\n") + "\n";

let doc = existsSync(out) ? readFileSync(out, "utf8") : "";
const b = doc.indexOf(BEGIN), e = doc.indexOf(END);
if (b >= 0 && e > b) doc = doc.slice(0, b) + section + doc.slice(e + END.length + (doc[e + END.length] === "\n" ? 1 : 0));
else doc = (doc ? doc.replace(/\n*$/, "\n\n") : "# Benchmarks\n\n") + section;
writeFileSync(out, doc);
