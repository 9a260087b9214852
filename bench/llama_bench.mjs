#!/usr/bin/env node
// llama.cpp's speed on a GGUF model, measured through node-llama-cpp (the pinned oracle in tests/js),
// the same way `wai bench` measures wai:
//   prefill: one p-token prompt of random ids (fixed seed, ids in [3, n_vocab)) evaluated with
//            sequence.evaluateWithoutGeneratingNewTokens (llama.cpp splits it into batchSize chunks);
//   decode:  n tokens generated one at a time (greedy, temperature 0) from the sequence.evaluate
//            generator right after the prompt; the n-th token costs n single-token forward passes.
// Each phase is timed by wall clock around the awaited call. One warm-up repetition (min(p, 64) prompt
// tokens, min(n, 4) decode steps) runs first; then REPS measured repetitions, each on a cleared sequence.
//
// Usage: node bench/llama_bench.mjs -m MODEL [-p 512] [-n 128] [-t 2] [-r 1] [--batch-size 512]
//                                   [--seed 1234] [--flash-attention auto|on|off]
// Output: ONE line on stdout starting with '{' (the JSON result); node-llama-cpp's own logs go to
// stderr or are silenced, and callers should still parse only lines that begin with '{"engine":"llama.cpp"'.
import { createRequire } from "node:module";
import { statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
// node-llama-cpp lives in tests/js/node_modules (ESM resolution is relative to this file, so import
// it by path).
const nlcEntry = join(here, "..", "tests", "js", "node_modules", "node-llama-cpp", "dist", "index.js");
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(nlcEntry).href);
const nlcVersion = createRequire(nlcEntry)("../package.json").version;

function parseArgs(argv) {
  const o = { model: null, p: 512, n: 128, t: 2, r: 1, batchSize: 512, seed: 1234, fa: "auto" };
  const num = (name, v) => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < 0) throw new Error(`${name}: expected a non-negative integer, got '${v}'`);
    return x;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = argv[i + 1];
    switch (a) {
      case "-m": case "--model": o.model = v; i++; break;
      case "-p": o.p = num(a, v); i++; break;
      case "-n": o.n = num(a, v); i++; break;
      case "-t": case "--threads": o.t = num(a, v); i++; break;
      case "-r": case "--reps": o.r = num(a, v); i++; break;
      case "--batch-size": o.batchSize = num(a, v); i++; break;
      case "--seed": o.seed = num(a, v); i++; break;
      case "--flash-attention": o.fa = v; i++; break;
      default: throw new Error(`unknown option '${a}'`);
    }
  }
  if (!o.model) throw new Error("-m MODEL is required");
  if (o.t < 1 || o.r < 1 || o.batchSize < 1) throw new Error("-t, -r and --batch-size must be >= 1");
  if (!["auto", "on", "off"].includes(o.fa)) throw new Error("--flash-attention: auto, on or off");
  return o;
}

// xorshift64*: a fixed, platform-independent id sequence (the ids only need to be valid and fixed).
function randomIds(count, nVocab, seed) {
  const mask = (1n << 64n) - 1n;
  let s = (BigInt(seed) * 0x9E3779B97F4A7C15n + 1n) & mask;
  const ids = [];
  for (let i = 0; i < count; i++) {
    s ^= s >> 12n; s ^= (s << 25n) & mask; s ^= s >> 27n;
    const r = (s * 0x2545F4914F6CDD1Dn) & mask;
    ids.push(3 + Number(r % BigInt(nVocab - 3)));
  }
  return ids;
}

// FNV-1a over the ids, one step per id (the same as `wai bench`'s prompt_hash), as 16 hex digits.
function idsHash(ids) {
  const mask = (1n << 64n) - 1n;
  let h = 14695981039346656037n;
  for (const id of ids) h = ((h ^ BigInt(id >>> 0)) * 1099511628211n) & mask;
  return h.toString(16).padStart(16, "0");
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  const sd = Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, s.length - 1));
  return { median, min: s[0], max: s[s.length - 1], stddev: s.length > 1 ? sd : 0 };
}

const o = parseArgs(process.argv.slice(2));
const t0 = performance.now();
const llama = await getLlama({ gpu: false, build: "never", maxThreads: o.t, logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: o.model, gpuLayers: 0 });
const context = await model.createContext({
  contextSize: Math.max(o.p + o.n + 8, 256),
  batchSize: o.batchSize,
  threads: { ideal: o.t, min: o.t },
  flashAttention: o.fa === "auto" ? undefined : o.fa === "on",
});
const sequence = context.getSequence();
const loadS = (performance.now() - t0) / 1000;
// n_vocab = rows of token_embd (ggml dims {dim, n_vocab}).
const embd = model.fileInfo.tensorInfo?.find((t) => t.name === "token_embd.weight");
if (!embd) throw new Error("token_embd.weight not found in the GGUF tensor table");
const nVocab = Number(embd.dimensions[1]);
// ids[0..p) are the prompt, ids[p] the first decode input (as in `wai bench`).
const ids = randomIds(o.p + 1, nVocab, o.seed);
const prompt = ids.slice(0, o.p);

// One repetition of the first pRun prompt tokens and nDecode steps: returns [prefill seconds,
// decode seconds, tokens decoded].
async function rep(pRun, nDecode) {
  await sequence.clearHistory();
  let t = performance.now();
  if (pRun > 0) await sequence.evaluateWithoutGeneratingNewTokens(prompt.slice(0, pRun));
  const prefillS = (performance.now() - t) / 1000;
  // Decode: the generator evaluates its input token(s) and yields the greedy next token; each further
  // iteration evaluates the token just yielded. With a p-token prompt already in the cache, the input
  // is one new token, so every one of the nDecode yields is one single-token forward pass.
  let got = 0;
  t = performance.now();
  if (nDecode > 0) {
    for await (const _tok of sequence.evaluate([ids[o.p]], { temperature: 0 })) {
      if (++got >= nDecode) break;
    }
  }
  const decodeS = (performance.now() - t) / 1000;
  return [prefillS, decodeS, got];
}

// Warm-up (as in `wai bench`): min(p, 64) prompt tokens and min(n, 4) steps fault the weights in.
await rep(Math.min(o.p, 64), Math.min(o.n, 4));
const pre = [], dec = [];
let decoded = 0;
for (let i = 0; i < o.r; i++) {
  const [ps, ds, got] = await rep(o.p, o.n);
  if (o.p > 0) pre.push(o.p / ps);
  if (got > 0) dec.push(got / ds);
  decoded = got;
}
const ps = pre.length ? stats(pre) : null, ds = dec.length ? stats(dec) : null;
const out = {
  engine: "llama.cpp",
  version: `node-llama-cpp ${nlcVersion}, llama.cpp ${llama.llamaCppRelease.release}`,
  system_info: llama.systemInfo.trim(),
  model: o.model,
  size_bytes: statSync(o.model).size,
  threads: o.t,
  batch: 1,
  batch_size: context.batchSize,
  context_size: context.contextSize,
  flash_attention: context.flashAttention,
  prompt_tokens: o.p,
  generated_tokens: decoded,
  prompt_hash: idsHash(ids),
  reps: o.r,
  load_s: loadS,
  prefill_tokens_per_s: ps?.median ?? null,
  prefill_min: ps?.min ?? null, prefill_max: ps?.max ?? null, prefill_stddev: ps?.stddev ?? null,
  decode_tokens_per_s: ds?.median ?? null,
  decode_min: ds?.min ?? null, decode_max: ds?.max ?? null, decode_stddev: ds?.stddev ?? null,
  prefill_samples: pre, decode_samples: dec,
  rss_peak_bytes: process.resourceUsage().maxRSS * 1024,
};
process.stdout.write(JSON.stringify(out) + "\n");
await context.dispose();
await model.dispose();
await llama.dispose();
