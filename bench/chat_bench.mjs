#!/usr/bin/env node
// Multi-turn chat and shared-prefix workloads against the real `wai serve`, with the prefix cache and
// without it (--no-prefix-cache), and the same chat through llama.cpp (node-llama-cpp's
// LlamaChatSession, which keeps its conversation in one context sequence and evaluates only what is
// new), all in one run on one machine:
//
//   chat:     TURNS turns; each adds a user message of ~USER tokens and generates GEN tokens (greedy).
//             Time to first token per turn, measured by the client: from sending the request to the
//             first generated token (wai: the first streamed chunk carrying a token, OpenAI route with
//             logprobs so every token makes a chunk; llama.cpp: the first onToken call).
//   followup: one slot, a raw prompt of FOLLOW_WORDS words, then the same prompt plus 15 words: time
//             to the first token of each and the follow-up's cached share of the prompt.
//   shared:   CHATS conversations at once (--parallel CHATS), each a SYSTEM-token system prompt shared by
//             all plus its own ~50-token question, SHARED_GEN tokens each; the system prompt was seen
//             once before (one warm-up request, not timed). Wall time and aggregate generated tokens/s.
//
// Usage: node bench/chat_bench.mjs -m MODEL [--wai build/bin/wai] [-t 2] [--parts chat,followup,shared]
//          [--turns 10] [--user 100] [--gen 64] [--follow-words 1100] [--chats 8] [--system 1000]
//          [--shared-gen 32] [--no-llama] [--chat-engines cache,no-cache,llama] [--no-system] [--no-warmup]
//          [--quick]
// --chat-engines also picks the shared part's runs (cache, no-cache).
// --no-system: the chat part without a system prompt (node-llama-cpp's MistralChatWrapper renders the
// system prompt inside the last user turn, so with one it re-evaluates the previous exchange each turn).
// --quick: a few tokens of everything (for the smoke test).
// Output: progress on stderr; ONE JSON line on stdout (every measurement, and the settings).
import { spawn } from "node:child_process";
import http from "node:http";
import { basename, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createRequire } from "node:module";
import os from "node:os";

const here = dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const o = { model: null, wai: join(here, "..", "build", "bin", "wai"), t: 2, parts: ["chat", "followup", "shared"],
    turns: 10, user: 100, gen: 64, followWords: 1100, chats: 8, system: 1000, sharedGen: 32, llama: true,
    engines: ["cache", "no-cache", "llama"], systemPrompt: true, warmup: true };
  const num = (name, v) => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < 1) throw new Error(`${name}: expected a positive integer, got '${v}'`);
    return x;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = argv[i + 1];
    switch (a) {
      case "-m": case "--model": o.model = v; i++; break;
      case "--wai": o.wai = v; i++; break;
      case "-t": case "--threads": o.t = num(a, v); i++; break;
      case "--parts": o.parts = v.split(","); i++; break;
      case "--turns": o.turns = num(a, v); i++; break;
      case "--user": o.user = num(a, v); i++; break;
      case "--gen": o.gen = num(a, v); i++; break;
      case "--follow-words": o.followWords = num(a, v); i++; break;
      case "--chats": o.chats = num(a, v); i++; break;
      case "--system": o.system = num(a, v); i++; break;
      case "--shared-gen": o.sharedGen = num(a, v); i++; break;
      case "--no-llama": o.llama = false; break;
      case "--chat-engines": o.engines = v.split(","); i++; break;
      case "--no-system": o.systemPrompt = false; break;
      case "--no-warmup": o.warmup = false; break;
      case "--quick": Object.assign(o, { turns: 3, user: 12, gen: 4, followWords: 150, chats: 3, system: 120, sharedGen: 4 }); break;
      default: throw new Error(`unknown option '${a}'`);
    }
  }
  if (!o.model) throw new Error("-m MODEL is required");
  for (const p of o.parts) if (!["chat", "followup", "shared"].includes(p)) throw new Error(`--parts: unknown part '${p}'`);
  return o;
}

const o = parseArgs(process.argv.slice(2));
const log = (...a) => console.error("chat_bench:", ...a);
const MODEL_NAME = basename(o.model).replace(/\.gguf$/, "");  // what `wai serve -m` names it

// Deterministic English-like text: ~1.3 Mistral tokens per word, so `tokens` tokens is ~tokens/1.3 words.
const VOCAB = ("the a little girl boy dog cat sun park happy ran saw big tree friend ball played and she he was very " +
  "red bird sky home mom dad said look jump fun garden river water house small green blue yellow walked found " +
  "together because quickly slowly morning evening rain wind flower book school teacher story window door").split(" ");
function words(n, seed) {
  let x = (seed * 2654435761) >>> 0 || 1;
  const out = [];
  for (let i = 0; i < n; ++i) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out.push(VOCAB[x % VOCAB.length]);
  }
  return out.join(" ");
}
const wordsForTokens = (tokens, seed) => words(Math.max(1, Math.round(tokens / 1.3)), seed);

// ---- wai ----
async function startWai(extra) {
  // (--timeout: the default 600 s deadline would end the slow runs without the cache early)
  const args = ["serve", "-m", o.model, "--port", "0", "-t", String(o.t), "--quiet", "-c", "8192", "--chat-template", "mistral-v0.1",
    "--timeout", "7200", ...extra];
  const proc = spawn(o.wai, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, WAI_API_KEYS: "" } });
  let err = "", out = "";
  proc.stderr.on("data", (d) => { err += d; });
  const port = await new Promise((resolve, reject) => {
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/[^\s]+:(\d+)/);
      if (m) resolve(Number(m[1]));
    });
    proc.on("exit", (c) => reject(new Error(`wai serve exited (${c}): ${err}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  // Load the model before timing anything.
  const r = await fetch(`${base}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL_NAME, prompt: "Hello", max_tokens: 1 }) });
  await r.text();
  // ... and until the background weight repack has finished (its kernels are the ones to time).
  for (;;) {
    const m = await (await fetch(`${base}/metrics`)).text();
    if (/^wai_model_weights_repacked\{[^}]*\} 1$/m.test(m)) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  return { base, stop: () => new Promise((res) => { proc.on("exit", res); proc.kill("SIGTERM"); }), stderr: () => err };
}

// One streamed OpenAI request (chat or completions) with logprobs, so that every token is one chunk.
// Returns { ttft_s, total_s, text, usage }. Through node:http, which (unlike fetch) sets no body
// timeout: without the cache a shared-prompt run waits minutes for its first token.
function waiStream(base, path, body) {
  const payload = JSON.stringify({ ...body, model: MODEL_NAME, stream: true, stream_options: { include_usage: true },
    logprobs: path.endsWith("chat/completions") ? true : 1, temperature: 0 });
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(base + path, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
      let ttft = null, text = "", usage = null, buf = "", raw = "";
      res.setEncoding("utf8");
      res.on("data", (d) => {
        if (res.statusCode !== 200) { raw += d; return; }
        buf += d;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const ev = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
          const j = JSON.parse(ev.slice(6));
          if (j.usage) usage = j.usage;
          const c = j.choices?.[0];
          if (!c) continue;
          const hasToken = c.logprobs && ((c.logprobs.content && c.logprobs.content.length) || (c.logprobs.tokens && c.logprobs.tokens.length));
          if (hasToken && ttft === null) ttft = (performance.now() - t0) / 1000;
          text += c.delta?.content ?? c.text ?? "";
        }
      });
      res.on("end", () => {
        if (res.statusCode !== 200) return reject(new Error(`wai ${path}: HTTP ${res.statusCode}: ${raw}`));
        resolve({ ttft_s: ttft, total_s: (performance.now() - t0) / 1000, text, usage });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(payload);
  });
}

const SYSTEM_CHAT = "You are a helpful assistant who answers briefly.";
const userTurn = (t) => `Question ${t + 1}: ${wordsForTokens(o.user, 100 + t)}?`;

async function waiChat(mode) {
  const srv = await startWai(["--parallel", "1", ...(mode === "cache" ? [] : ["--no-prefix-cache"])]);
  const messages = o.systemPrompt ? [{ role: "system", content: SYSTEM_CHAT }] : [];
  const turns = [];
  try {
    for (let t = 0; t < o.turns; ++t) {
      messages.push({ role: "user", content: userTurn(t) });
      const r = await waiStream(srv.base, "/v1/chat/completions", { messages, max_tokens: o.gen });
      messages.push({ role: "assistant", content: r.text });
      turns.push({ turn: t + 1, ttft_s: r.ttft_s, total_s: r.total_s, prompt_tokens: r.usage.prompt_tokens,
        cached_tokens: r.usage.prompt_tokens_details?.cached_tokens ?? 0, completion_tokens: r.usage.completion_tokens });
      log(`wai ${mode} turn ${t + 1}: ttft ${r.ttft_s.toFixed(3)} s, prompt ${r.usage.prompt_tokens} (${turns.at(-1).cached_tokens} cached)`);
    }
  } finally {
    await srv.stop();
  }
  return turns;
}

// ---- llama.cpp ----
let nlc = null, nlcVersion = null;
async function llamaLib() {
  if (!nlc) {
    const entry = join(here, "..", "tests", "js", "node_modules", "node-llama-cpp", "dist", "index.js");
    nlc = await import(pathToFileURL(entry).href);
    nlcVersion = createRequire(entry)("../package.json").version;
  }
  return nlc;
}

async function llamaChat() {
  const { getLlama, LlamaLogLevel, LlamaChatSession, MistralChatWrapper } = await llamaLib();
  const llama = await getLlama({ gpu: false, build: "never", maxThreads: o.t, logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: o.model, gpuLayers: 0 });
  const context = await model.createContext({ contextSize: 8192, batchSize: 512, threads: { ideal: o.t, min: o.t } });
  const session = new LlamaChatSession({ contextSequence: context.getSequence(), chatWrapper: new MistralChatWrapper(),
    ...(o.systemPrompt ? { systemPrompt: SYSTEM_CHAT } : { systemPrompt: "" }) });
  const turns = [];
  try {
    for (let t = 0; t < o.turns; ++t) {
      let ttft = null, n = 0;
      const t0 = performance.now();
      await session.prompt(userTurn(t), { maxTokens: o.gen, temperature: 0,
        onToken: (toks) => { if (ttft === null) ttft = (performance.now() - t0) / 1000; n += toks.length; } });
      turns.push({ turn: t + 1, ttft_s: ttft, total_s: (performance.now() - t0) / 1000, completion_tokens: n,
        context_tokens: session.sequence.contextTokens.length });
      log(`llama.cpp turn ${t + 1}: ttft ${ttft?.toFixed(3)} s, context ${turns.at(-1).context_tokens} tokens`);
    }
  } finally {
    await context.dispose();
    await model.dispose();
  }
  return { version: nlcVersion, turns };
}

// ---- follow-up ----
async function followup() {
  const srv = await startWai(["--parallel", "1"]);
  try {
    const base = wordsForTokens(o.followWords * 1.3, 7);
    const first = await waiStream(srv.base, "/v1/completions", { prompt: base, max_tokens: 1 });
    const second = await waiStream(srv.base, "/v1/completions", { prompt: base + " " + words(15, 8), max_tokens: 1 });
    const r = {
      words: o.followWords,
      first: { ttft_s: first.ttft_s, prompt_tokens: first.usage.prompt_tokens, cached_tokens: first.usage.prompt_tokens_details.cached_tokens },
      followup: { ttft_s: second.ttft_s, prompt_tokens: second.usage.prompt_tokens, cached_tokens: second.usage.prompt_tokens_details.cached_tokens },
    };
    r.speedup = first.ttft_s / second.ttft_s;
    r.cached_share = r.followup.cached_tokens / r.followup.prompt_tokens;
    log(`follow-up: first ${first.ttft_s.toFixed(3)} s (${r.first.prompt_tokens} tokens), follow-up ${second.ttft_s.toFixed(3)} s ` +
      `(${r.followup.cached_tokens}/${r.followup.prompt_tokens} cached): ${r.speedup.toFixed(1)}x`);
    return r;
  } finally {
    await srv.stop();
  }
}

// ---- shared system prompt ----
async function shared(mode) {
  const srv = await startWai(["--parallel", String(o.chats), ...(mode === "cache" ? [] : ["--no-prefix-cache"])]);
  const system = "You are the storyteller of a children's library. " + wordsForTokens(o.system, 11);
  const msgs = (i) => [{ role: "system", content: system }, { role: "user", content: `Child ${i}: ${wordsForTokens(50, 300 + i)}?` }];
  try {
    // Warm-up: the system prompt seen once (--no-warmup: the chats arrive together with it uncached).
    if (o.warmup) await waiStream(srv.base, "/v1/chat/completions", { messages: msgs(-1), max_tokens: 1 });
    const t0 = performance.now();
    const rs = await Promise.all(Array.from({ length: o.chats }, (_, i) =>
      waiStream(srv.base, "/v1/chat/completions", { messages: msgs(i), max_tokens: o.sharedGen })));
    const wall = (performance.now() - t0) / 1000;
    const gen = rs.reduce((a, r) => a + r.usage.completion_tokens, 0);
    const r = { mode, chats: o.chats, wall_s: wall, generated_tokens: gen, generated_per_s: gen / wall,
      prompt_tokens: rs.reduce((a, r) => a + r.usage.prompt_tokens, 0),
      cached_tokens: rs.reduce((a, r) => a + r.usage.prompt_tokens_details.cached_tokens, 0),
      ttft_mean_s: rs.reduce((a, r) => a + r.ttft_s, 0) / rs.length, ttft_max_s: Math.max(...rs.map((r) => r.ttft_s)) };
    log(`shared (${mode}): ${o.chats} chats in ${wall.toFixed(2)} s, ${r.generated_per_s.toFixed(2)} generated tok/s, ` +
      `${r.cached_tokens}/${r.prompt_tokens} prompt tokens cached, mean ttft ${r.ttft_mean_s.toFixed(2)} s`);
    return r;
  } finally {
    await srv.stop();
  }
}

const result = { bench: "chat", model: o.model, threads: o.t, cpu: os.cpus()[0]?.model, settings: { ...o, model: undefined, wai: undefined } };
// Each part's numbers also go to stderr as soon as it ends (a later failure keeps them).
const done = (name, v) => { log(`${name} = ${JSON.stringify(v)}`); return v; };
if (o.parts.includes("chat")) {
  result.chat = {};
  if (o.engines.includes("cache")) result.chat.wai_cache = done("chat.wai_cache", await waiChat("cache"));
  if (o.engines.includes("no-cache")) result.chat.wai_no_cache = done("chat.wai_no_cache", await waiChat("no-cache"));
  if (o.llama && o.engines.includes("llama")) result.chat.llama_cpp = done("chat.llama_cpp", await llamaChat());
}
if (o.parts.includes("followup")) result.followup = done("followup", await followup());
if (o.parts.includes("shared")) {
  result.shared = {};
  if (o.engines.includes("cache")) result.shared.cache = done("shared.cache", await shared("cache"));
  if (o.engines.includes("no-cache")) result.shared.no_cache = done("shared.no_cache", await shared("no-cache"));
}
process.stdout.write(JSON.stringify(result) + "\n");
