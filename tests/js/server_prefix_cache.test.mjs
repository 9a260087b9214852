// The prefix cache through the real `wai serve` (stories260K): greedy outputs are the same with it and
// with --no-prefix-cache (chained raw turns, a three-turn chat on the Workers AI and OpenAI routes),
// a follow-up turn takes >= 90% of its prompt from the cache (usage.prompt_tokens_details), a KV pool
// of 1 MiB serves dozens of distinct long prompts at once without ever reporting more bytes in use
// than its budget, and a prompt larger than the whole pool gets a 413 that names the numbers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, writeCatalog, postJson, post, sseEvents, metrics, metricValue, MODEL, STORIES, sleep } from './lib/server.mjs';

const RUN = `/ai/run/${MODEL}`;
let cached, uncached;

before(async () => {
  const catalog = writeCatalog('prefix-cache-catalog.json');
  cached = await startServer(['--catalog', catalog]);
  uncached = await startServer(['--catalog', catalog, '--quiet', '--no-prefix-cache']);
});
after(async () => {
  await cached?.stop();
  await uncached?.stop();
});

// Deterministic story-ish text of about n words.
function words(n, seed) {
  const vocab = ['the', 'little', 'girl', 'dog', 'sun', 'park', 'happy', 'ran', 'saw', 'big', 'tree', 'friend', 'ball',
    'played', 'and', 'she', 'he', 'was', 'very', 'red', 'bird', 'sky', 'home', 'mom', 'said', 'look', 'jump', 'fun'];
  let x = seed >>> 0 || 1;
  const out = [];
  for (let i = 0; i < n; ++i) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out.push(vocab[x % vocab.length]);
  }
  return out.join(' ');
}

const usageOf = (r) => r.json.result?.usage ?? r.json.usage;
const cachedOf = (r) => usageOf(r).prompt_tokens_details.cached_tokens;

test('raw turns chained on earlier answers: same text with and without the cache; later turns hit', async () => {
  let prompt = 'Once upon a time, there was a little girl named Lily. She loved to play in the park with her friends.';
  for (let turn = 0; turn < 3; ++turn) {
    const body = { prompt, raw: true, max_tokens: 24, temperature: 0 };
    const [a, b] = [await postJson(cached.base, RUN, body), await postJson(uncached.base, RUN, body)];
    assert.equal(a.status, 200, a.text);
    assert.equal(b.status, 200, b.text);
    assert.equal(a.json.result.response, b.json.result.response, `turn ${turn}`);
    assert.equal(usageOf(a).prompt_tokens, usageOf(b).prompt_tokens);
    assert.equal(cachedOf(b), 0, 'nothing is cached with --no-prefix-cache');
    if (turn > 0) assert.ok(cachedOf(a) >= 0.6 * usageOf(a).prompt_tokens, JSON.stringify(usageOf(a)));
    prompt += a.json.result.response + ' Then ' + words(6, turn + 1) + '.';
  }
});

// A long first message and short follow-ups: each follow-up prompt is the previous prompt, the answer
// (as generated: the answer memo keeps its ids) and a few new tokens.
const SYSTEM = 'You tell short stories for children. ' + words(150, 7);
const FOLLOW_UPS = ['Tell me more about the dog.', 'What did the bird say?'];

async function chatWorkersAi(server, headers = {}) {
  const messages = [{ role: 'system', content: SYSTEM }, { role: 'user', content: 'Tell me a story about a dog.' }];
  const turns = [];
  for (let t = 0; t <= FOLLOW_UPS.length; ++t) {
    const stream = t === 1;  // one turn streamed: its usage comes in the last event
    const body = { messages, max_tokens: 16, temperature: 0, stream };
    let answer, usage;
    if (stream) {
      const r = await post(server.base, RUN, body, headers);
      assert.equal(r.status, 200);
      const events = sseEvents(await r.text()).slice(0, -1).map((e) => JSON.parse(e));
      answer = events.map((e) => e.response).join('');
      usage = events.at(-1).usage;
    } else {
      const r = await postJson(server.base, RUN, body, headers);
      assert.equal(r.status, 200, r.text);
      answer = r.json.result.response;
      usage = r.json.result.usage;
    }
    turns.push({ answer, usage });
    messages.push({ role: 'assistant', content: answer });
    if (t < FOLLOW_UPS.length) messages.push({ role: 'user', content: FOLLOW_UPS[t] });
  }
  return turns;
}

test('three-turn chat (Workers AI messages): same answers; follow-ups >= 90% cached', async () => {
  const a = await chatWorkersAi(cached, { 'x-session-affinity': 'chat-session-1' });
  const b = await chatWorkersAi(uncached);
  assert.deepEqual(a.map((t) => t.answer), b.map((t) => t.answer));
  for (let t = 0; t < a.length; ++t) {
    assert.equal(a[t].usage.prompt_tokens, b[t].usage.prompt_tokens, `turn ${t}`);
    assert.equal(b[t].usage.prompt_tokens_details.cached_tokens, 0);
  }
  assert.ok(a[0].usage.prompt_tokens > 150, 'a long first prompt');
  for (let t = 1; t < a.length; ++t) {
    const { prompt_tokens: n, prompt_tokens_details: { cached_tokens: c } } = a[t].usage;
    assert.ok(c >= 0.9 * n, `turn ${t}: ${c} of ${n} prompt tokens cached`);
  }
  // x-session-affinity is accepted and shows in the request log.
  assert.match(cached.stderr, /route=ai_run .*cached_tokens=\d+ .*session=chat-session-1 /);
});

test('three-turn chat (OpenAI chat completions): same answers; usage.prompt_tokens_details', async () => {
  const run = async (server) => {
    const messages = [{ role: 'system', content: SYSTEM + ' ' + words(10, 99) }, { role: 'user', content: 'A story about a bird.' }];
    const out = [];
    for (let t = 0; t <= FOLLOW_UPS.length; ++t) {
      const r = await postJson(server.base, '/v1/chat/completions', { model: MODEL, messages, max_tokens: 16, temperature: 0 });
      assert.equal(r.status, 200, r.text);
      const content = r.json.choices[0].message.content;
      out.push({ content, usage: r.json.usage });
      messages.push({ role: 'assistant', content });
      if (t < FOLLOW_UPS.length) messages.push({ role: 'user', content: FOLLOW_UPS[t] });
    }
    return out;
  };
  const a = await run(cached);
  const b = await run(uncached);
  assert.deepEqual(a.map((t) => t.content), b.map((t) => t.content));
  for (let t = 1; t < a.length; ++t) {
    const { prompt_tokens: n, prompt_tokens_details: { cached_tokens: c } } = a[t].usage;
    assert.ok(c >= 0.9 * n, `turn ${t}: ${c} of ${n}`);
    assert.equal(b[t].usage.prompt_tokens_details.cached_tokens, 0);
  }
});

test('a 1 MiB KV pool: dozens of distinct long prompts at once all succeed; used <= budget throughout', async () => {
  const small = await startServer(['-m', STORIES, '--chat-template', 'plain', '--quiet', '--kv-cache-mib', '1', '-c', '4096',
    '--parallel', '6']);
  try {
    const prompts = Array.from({ length: 40 }, (_, i) => `Story ${i}: ` + words(180, 1000 + i));
    let polling = true;
    let polls = 0;
    const seen = [];
    const poller = (async () => {
      while (polling) {
        const m = await metrics(small.base);
        const used = metricValue(m, 'wai_kv_cache_used_bytes{model="stories260K"}');
        const cachedBytes = metricValue(m, 'wai_kv_cache_cached_bytes{model="stories260K"}');
        const budget = metricValue(m, 'wai_kv_cache_budget_bytes{model="stories260K"}');
        if (budget > 0) {
          seen.push(used);
          assert.ok(used <= budget, `used ${used} > budget ${budget}`);
          assert.ok(used + cachedBytes <= budget, `used ${used} + cached ${cachedBytes} > budget ${budget}`);
          assert.ok(budget <= 1 << 20);
        }
        polls++;
        await sleep(5);
      }
    })();
    const results = new Array(prompts.length);
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < prompts.length) {
        const i = next++;
        results[i] = await postJson(small.base, '/ai/run/stories260K', { prompt: prompts[i], raw: true, max_tokens: 40, temperature: 0 });
      }
    }));
    polling = false;
    await poller;
    assert.ok(polls > 3 && Math.max(...seen) > 0, `polled ${polls} times`);
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, 200, `prompt ${i}: ${r.text}`);
      assert.ok(usageOf(r).completion_tokens > 0);
    }
    const m = await metrics(small.base);
    assert.ok(metricValue(m, 'wai_kv_cache_evictions_total{model="stories260K"}') > 0, 'the pool had to evict');
    // The same answers as an unconstrained server, one request at a time.
    for (const i of [0, 17, 39]) {
      const ref = await postJson(uncached.base, RUN, { prompt: prompts[i], raw: true, max_tokens: 40, temperature: 0 });
      assert.equal(ref.status, 200, ref.text);
      assert.equal(results[i].json.result.response, ref.json.result.response, `prompt ${i}`);
    }

    // A prompt whose keys and values alone exceed the pool: 413 naming the numbers.
    const huge = await postJson(small.base, '/ai/run/stories260K', { prompt: words(1000, 5), raw: true, max_tokens: 4 });
    assert.equal(huge.status, 413, huge.text);
    assert.equal(huge.json.success, false);
    assert.match(huge.json.errors[0].message, /the prompt has \d+ tokens, whose keys and values need \d+ KV blocks \([\d.]+ MiB\), but the whole KV cache holds \d+ blocks \([\d.]+ MiB; see --kv-cache-mib\)/);
    const oa = await postJson(small.base, '/v1/completions', { model: 'stories260K', prompt: words(1000, 5), max_tokens: 4 });
    assert.equal(oa.status, 413);
    assert.match(oa.json.error.message, /KV cache/);
    // And the server still serves.
    const ok = await postJson(small.base, '/ai/run/stories260K', { prompt: 'Once upon a time', raw: true, max_tokens: 4 });
    assert.equal(ok.status, 200);
  } finally {
    await small.stop();
  }
});

test('--kv-cache-mib and --kv-block-size are checked', async () => {
  for (const bad of [['--kv-cache-mib', '0'], ['--kv-cache-mib', 'x'], ['--kv-block-size', '0']]) {
    await assert.rejects(startServer(['-m', STORIES, ...bad]), /kv-cache-mib|kv-block-size|number|integer/);
  }
});
