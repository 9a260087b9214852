// `wai run` against llama.cpp (node-llama-cpp 3.21.1, CPU): the same greedy continuation, text for
// text, for several prompts and lengths on stories260K (full attention, where llama.cpp is an oracle).
import {test, before, after} from "node:test";
import assert from "node:assert/strict";
import {execFileSync} from "node:child_process";
import path from "node:path";
import {getLlama} from "node-llama-cpp";

const WAI_BIN = process.env.WAI_BIN ?? path.resolve("../../build/bin/wai");
const SHARED = process.env.WAI_SHARED_DIR ?? path.resolve("../../../shared");
const MODEL = path.join(SHARED, "models/stories260K.gguf");

const PROMPTS = [
  "Once upon a time", "Lily and Tom went to the park", "The cat sat", "One day, a little boy",
  "Sam had a red ball.", "The sun was", "There was a big dog named Max", "Mom said",
];

let llama, model, ctx;

before(async () => {
  // One thread: the test machines are small and shared; llama.cpp's spinning workers crawl when
  // cores are oversubscribed.
  llama = await getLlama({gpu: false, build: "never", logLevel: "error", maxThreads: 1});
  model = await llama.loadModel({modelPath: MODEL});
  ctx = await model.createContext({contextSize: 1024, sequences: 1, threads: 1});
});

after(async () => {
  await ctx?.dispose();
  await model?.dispose();
  await llama?.dispose();
});

// llama.cpp's greedy continuation of BOS + prompt: at most n tokens, ending early at end of text.
async function llamaGreedy(prompt, n) {
  const seq = ctx.getSequence();
  try {
    const tokens = [model.tokens.bos, ...model.tokenize(prompt)];
    const out = [];
    if (n > 0) {
      for await (const t of seq.evaluate(tokens, {temperature: 0})) {
        if (model.isEogToken(t)) break;
        out.push(t);
        if (out.length >= n) break;
      }
    }
    return model.detokenize(out, false, tokens);
  } finally {
    seq.dispose();
  }
}

function waiRun(prompt, n, extra = []) {
  return execFileSync(WAI_BIN, ["run", "-m", MODEL, "-p", prompt, "-n", String(n), "--temp", "0", "-t", "1", ...extra],
                      {encoding: "utf8", stdio: ["ignore", "pipe", "ignore"]});
}

test("greedy continuations match llama.cpp for eight prompts", async () => {
  for (const p of PROMPTS) {
    const expected = await llamaGreedy(p, 48);
    assert.ok(expected.length > 0, `llama.cpp produced nothing for '${p}'`);
    assert.equal(waiRun(p, 48), expected, `prompt '${p}'`);
  }
});

test("a long greedy continuation (300 tokens) matches llama.cpp", async () => {
  const expected = await llamaGreedy("Once upon a time", 300);
  assert.equal(waiRun("Once upon a time", 300), expected);
});

test("prefill batch size does not change the output", async () => {
  // A prompt longer than the batch: wai prefills it over several forward passes.
  const p = "Once upon a time, there was a little girl named Lily. She loved to play outside";
  const expected = await llamaGreedy(p, 40);
  assert.equal(waiRun(p, 40, ["--batch-size", "3"]), expected);
  assert.equal(waiRun(p, 40, ["--batch-size", "512"]), expected);
});

// --cpu / WAI_CPU: every kernel level this CPU has gives llama.cpp's continuation; a level it lacks
// and an unknown name are errors that say why; `wai bench --json` reports the level as "isa".
test("every --cpu level this CPU has matches llama.cpp; bad levels are refused", async () => {
  const bench = (env, extra = []) => JSON.parse(execFileSync(WAI_BIN, ["bench", "-m", MODEL, "-p", "4", "-n", "2", "-t", "1", "--json", ...extra],
    {encoding: "utf8", env: {...process.env, ...env}, stdio: ["ignore", "pipe", "ignore"]}).split("\n").find((l) => l.startsWith("{")));
  const best = bench({}).isa;
  const levels = ["portable", "avx2", "avx512", "amx"];
  assert.ok(levels.includes(best), best);
  assert.equal(bench({WAI_CPU: "portable"}).isa, "portable");
  assert.equal(bench({}, ["--cpu", "portable"]).isa, "portable");
  const p = "Once upon a time";
  const expected = await llamaGreedy(p, 48);
  for (const level of levels.slice(0, levels.indexOf(best) + 1)) {
    assert.equal(waiRun(p, 48, ["--cpu", level]), expected, `--cpu ${level}`);
    assert.equal(bench({}, [`--cpu=${level}`]).isa, level);
  }
  const fails = (args, env = {}) => {
    try {
      execFileSync(WAI_BIN, args, {encoding: "utf8", env: {...process.env, ...env}, stdio: ["ignore", "pipe", "pipe"]});
    } catch (e) {
      return {status: e.status, stderr: e.stderr};
    }
    assert.fail(`accepted: ${args.join(" ")}`);
  };
  let r = fails(["bench", "-m", MODEL, "--cpu", "sse9"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown CPU level 'sse9' \(one of portable, avx2, avx512, amx\)/);
  r = fails(["bench", "-m", MODEL], {WAI_CPU: "neon"});
  assert.match(r.stderr, /WAI_CPU=neon: unknown CPU level/);
  if (best !== "amx") {
    r = fails(["bench", "-m", MODEL, "--cpu", "amx"]);
    assert.match(r.stderr, /this CPU lacks .*amx/);
  }
});
