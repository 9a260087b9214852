#!/usr/bin/env node
// Markdown tables (for docs/BENCHMARKS.md) from one JSON line of bench/chat_bench.mjs.
// Usage: node bench/chat_report.mjs RESULT.json
import { readFileSync } from "node:fs";

const line = readFileSync(process.argv[2], "utf8").split("\n").find((l) => l.startsWith('{"bench":"chat"'));
if (!line) throw new Error(`${process.argv[2]}: no chat_bench result line`);
const r = JSON.parse(line);
const f = (x, d = 2) => (x === null || x === undefined ? "–" : x.toFixed(d));
const out = [];

if (r.chat && r.chat.wai_cache) {
  const { wai_cache: c, wai_no_cache: n, llama_cpp: l } = r.chat;
  out.push(`#### ${c.length}-turn chat: time to first token per turn (s)`, "");
  out.push("| turn | prompt tokens | cached | wai, prefix cache | wai, --no-prefix-cache | llama.cpp | wai cache / llama.cpp |");
  out.push("|---|---|---|---|---|---|---|");
  for (let i = 0; i < c.length; ++i) {
    const lt = l?.turns[i]?.ttft_s;
    out.push(`| ${i + 1} | ${c[i].prompt_tokens} | ${c[i].cached_tokens} (${f((100 * c[i].cached_tokens) / c[i].prompt_tokens, 0)}%) | ` +
      `${f(c[i].ttft_s)} | ${f(n?.[i]?.ttft_s)} | ${f(lt)} | ${lt ? f(c[i].ttft_s / lt) + "x" : "–"} |`);
  }
  const parts = [`${f(c.at(-1).ttft_s / c[1].ttft_s)}x with the cache`];
  if (n) parts.push(`${f(n.at(-1).ttft_s / n[1].ttft_s)}x without`);
  if (l) parts.push(`${f(l.turns.at(-1).ttft_s / l.turns[1].ttft_s)}x llama.cpp`);
  const worst = l ? `Worst turn, wai with the cache / llama.cpp: ${f(Math.max(...c.map((t, i) => t.ttft_s / l.turns[i].ttft_s)))}x. ` : "";
  out.push("", `${worst}Last turn / second turn: ${parts.join(", ")}.`, "");
}
if (r.followup) {
  const u = r.followup;
  out.push(`#### Follow-up after a ${u.words}-word prompt (one slot)`, "");
  out.push("| request | prompt tokens | cached | time to first token |", "|---|---|---|---|");
  out.push(`| first | ${u.first.prompt_tokens} | ${u.first.cached_tokens} | ${f(u.first.ttft_s)} s |`);
  out.push(`| + 15 words | ${u.followup.prompt_tokens} | ${u.followup.cached_tokens} (${f(100 * u.cached_share, 1)}%) | ${f(u.followup.ttft_s, 3)} s |`);
  out.push("", `Follow-up ${f(u.speedup, 1)}x sooner.`, "");
}
if (r.shared && r.shared.cache && r.shared.no_cache) {
  const { cache: c, no_cache: n } = r.shared;
  out.push(`#### ${c.chats} concurrent chats sharing one system prompt`, "");
  const want = c.chats * (r.settings?.sharedGen ?? 32);
  out.push("| | wall | generated tokens | generated tok/s (aggregate) | prompt tokens cached | mean / max time to first token |",
    "|---|---|---|---|---|---|");
  for (const [name, s] of [["prefix cache", c], ["--no-prefix-cache", n]])
    out.push(`| ${name} | ${f(s.wall_s, 1)} s | ${s.generated_tokens} of ${want} | ${f(s.generated_per_s)} | ${s.cached_tokens} of ${s.prompt_tokens} | ` +
      `${f(s.ttft_mean_s, 1)} / ${f(s.ttft_max_s, 1)} s |`);
  const cut = [c, n].filter((s) => s.generated_tokens < want);
  if (cut.length === 0) out.push("", `Sharing: ${f(c.generated_per_s / n.generated_per_s)}x the aggregate throughput, ${f(n.wall_s / c.wall_s, 1)}x less wall time.`, "");
  else out.push("", `Not every chat finished: ${cut.map((s) => s.mode).join(", ")} stopped at the server's request deadline ` +
    `(--timeout, default 600 s, queue wait included) with ${cut.map((s) => s.generated_tokens).join(", ")} of ${want} tokens; ` +
    `wall time and tokens/s above are until then.`, "");
}
process.stdout.write(out.join("\n") + "\n");
