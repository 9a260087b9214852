// The Workers AI REST API of the real `wai serve` (stories260K): routes, envelope, SSE framing, usage
// counts against `wai tokenize`, seeds, catalog routes, and every documented error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  startServer, writeCatalog, postJson, post, sseEvents, tokenize, metrics, metricValue,
  MODEL, MISSING, STORIES, TMP,
} from './lib/server.mjs';

let srv;
const RUN = `/client/v4/accounts/acc123/ai/run/${MODEL}`;

before(async () => { srv = await startServer(['--catalog', writeCatalog(), '--max-body-bytes', '300000']); });
after(async () => {
  const { code } = await srv.stop();
  assert.equal(code, 0, 'SIGTERM exits 0');
});

test('health and metrics', async () => {
  const h = await fetch(srv.base + '/health');
  assert.equal(h.status, 200);
  assert.deepEqual(await h.json(), { status: 'ok' });
  const m = await fetch(srv.base + '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const text = await m.text();
  for (const name of ['wai_requests_total', 'wai_time_to_first_token_seconds', 'wai_time_per_output_token_seconds',
    'wai_queue_depth', 'wai_active_sequences', 'wai_kv_cache_used_bytes', 'wai_kv_cache_budget_bytes',
    'wai_kv_cache_cached_bytes', 'wai_prefix_cache_hit_tokens_total', 'wai_prefix_cache_prompt_tokens_total',
    'wai_kv_cache_evictions_total', 'wai_kv_preemptions_total', 'wai_generated_tokens_total', 'wai_prompt_tokens_total']) {
    assert.match(text, new RegExp(`# TYPE ${name} `), name);
  }
  assert.ok(metricValue(text, 'wai_requests_total{route="health",status="200"}') >= 1);
});

test('prompt shape, raw: envelope and usage match wai tokenize', async () => {
  const prompt = 'Once upon a time, there was a tiny robot';
  const r = await postJson(srv.base, RUN, { prompt, raw: true, max_tokens: 12, temperature: 0 });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(Object.keys(r.json).sort(), ['errors', 'messages', 'result', 'success']);
  assert.equal(r.json.success, true);
  assert.deepEqual(r.json.errors, []);
  const { response, usage } = r.json.result;
  assert.equal(typeof response, 'string');
  assert.ok(response.length > 0);
  assert.equal(usage.prompt_tokens, tokenize(prompt).length);
  assert.equal(usage.completion_tokens, 12);
  assert.equal(usage.total_tokens, usage.prompt_tokens + 12);
  // The same through the short alias and with the model name percent-encoded (as the cloudflare SDK sends it).
  const r2 = await postJson(srv.base, `/ai/run/${encodeURIComponent(MODEL)}`, { prompt, raw: true, max_tokens: 12, temperature: 0 });
  assert.equal(r2.json.result.response, response);
});

test('prompt shape without raw applies the chat template; messages shape', async () => {
  const r = await postJson(srv.base, RUN, { prompt: 'Lily', max_tokens: 3, temperature: 0 });
  assert.equal(r.status, 200);
  // The catalog gives stories260K the "plain" template: BOS + the user text.
  assert.equal(r.json.result.usage.prompt_tokens, tokenize('Lily').length);
  const m = await postJson(srv.base, RUN, { messages: [{ role: 'user', content: 'Lily' }], max_tokens: 3, temperature: 0 });
  assert.equal(m.status, 200);
  assert.equal(m.json.result.usage.prompt_tokens, r.json.result.usage.prompt_tokens);
  assert.equal(m.json.result.response, r.json.result.response);
});

test('no content-type header still parses the JSON body; default max_tokens is 256', async () => {
  const r = await fetch(srv.base + RUN, { method: 'POST', body: JSON.stringify({ prompt: 'Once upon a time', raw: true, temperature: 0 }) });
  assert.equal(r.status, 200);
  const j = await r.json();
  assert.ok(j.result.usage.completion_tokens <= 256);
  assert.ok(j.result.usage.completion_tokens > 12);
});

test('stream: exact SSE framing, padding, end events, same text as not streamed', async () => {
  const body = { prompt: 'The little dog', raw: true, max_tokens: 20, temperature: 0 };
  const plain = await postJson(srv.base, RUN, body);
  const r = await post(srv.base, RUN, { ...body, stream: true });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/event-stream/);
  const events = sseEvents(await r.text());
  assert.equal(events.at(-1), '[DONE]');
  const parsed = events.slice(0, -1).map((e) => JSON.parse(e));
  const usageEvent = parsed.at(-1);
  assert.deepEqual(Object.keys(usageEvent), ['response', 'usage']);
  assert.equal(usageEvent.response, '');
  // The same counts; the streamed request found the whole prompt but its last token in the cache (that
  // one is run again for its logits).
  const { prompt_tokens_details: cachedPlain, ...countsPlain } = plain.json.result.usage;
  const { prompt_tokens_details: cachedStream, ...countsStream } = usageEvent.usage;
  assert.deepEqual(countsStream, countsPlain);
  assert.equal(typeof cachedPlain.cached_tokens, 'number');
  assert.equal(cachedStream.cached_tokens, countsStream.prompt_tokens - 1);
  const endEvent = parsed.at(-2);
  assert.equal(endEvent.response, '');
  const tokens = parsed.slice(0, -2);
  assert.ok(tokens.length >= 1 && tokens.length <= 20);
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(2);
  for (const e of parsed.slice(0, -1)) {
    assert.deepEqual(Object.keys(e), ['response', 'p']);
    assert.ok(e.p.length >= 2 && e.p.length <= 50, `padding length ${e.p.length}`);
    assert.equal(e.p, alphabet.slice(0, e.p.length));
  }
  for (const e of tokens) assert.notEqual(e.response, '', 'an empty response only marks the end');
  assert.equal(tokens.map((e) => e.response).join(''), plain.json.result.response);
});

test('same seed gives the same text, streamed and not', async () => {
  const body = { prompt: 'Once upon a time', raw: true, max_tokens: 30, temperature: 1.0, seed: 4242 };
  const a = await postJson(srv.base, RUN, body);
  const b = await postJson(srv.base, RUN, body);
  assert.equal(a.json.result.response, b.json.result.response);
  const s = sseEvents(await (await post(srv.base, RUN, { ...body, stream: true })).text());
  const text = s.slice(0, -1).map((e) => JSON.parse(e).response).join('');
  assert.equal(text, a.json.result.response);
  const other = await postJson(srv.base, RUN, { ...body, seed: 777 });
  assert.notEqual(other.json.result.response, a.json.result.response, 'a different seed samples differently');
});

function assertEnvelopeError(r, status, code, re) {
  assert.equal(r.status, status, r.text);
  assert.equal(r.json.success, false);
  assert.equal(r.json.result, null);
  assert.deepEqual(r.json.messages, []);
  assert.equal(r.json.errors.length, 1);
  assert.equal(r.json.errors[0].code, code);
  if (re) assert.match(r.json.errors[0].message, re);
}

test('errors: bad JSON, schema violations, empty body', async () => {
  assertEnvelopeError(await postJson(srv.base, RUN, '{"prompt": '), 400, 5006, /AiError: Bad input: .*JSON/);
  assertEnvelopeError(await postJson(srv.base, RUN, {}), 400, 5006, /^AiError: Bad input: required properties at '\/' are 'prompt'/);
  assertEnvelopeError(await postJson(srv.base, RUN, { prompt: 'x', max_tokens: 'many' }), 400, 5006, /'\/max_tokens'/);
  assertEnvelopeError(await postJson(srv.base, RUN, { prompt: 'x', temperature: 9 }), 400, 5006, /<= 5 at '\/temperature'/);
  assertEnvelopeError(await postJson(srv.base, RUN, { prompt: 'x', top_k: 51 }), 400, 5006, /'\/top_k'/);
  assertEnvelopeError(await postJson(srv.base, RUN, { messages: [{ role: 'user' }] }), 400, 5006, /'\/messages\/0'/);
  assertEnvelopeError(await postJson(srv.base, RUN, { prompt: 'x', lora: 'adapter' }), 405, 5005);
  assertEnvelopeError(await postJson(srv.base, RUN, ''), 400, 3003);
});

test('errors: unknown model, missing model file, unknown route', async () => {
  assertEnvelopeError(await postJson(srv.base, '/ai/run/@cf/foo/bar', { prompt: 'x' }), 400, 5007, /No such model @cf\/foo\/bar/);
  const missing = await postJson(srv.base, `/ai/run/${MISSING}`, { prompt: 'x' });
  assertEnvelopeError(missing, 503, 5007, /unavailable.*no-such-model\.gguf/);
  assertEnvelopeError(await postJson(srv.base, '/client/v4/accounts/a/ai/nothing', {}), 404, 3042);
});

test('errors: body too large (413/3006), prompt longer than the context (413/5021)', async () => {
  assertEnvelopeError(await postJson(srv.base, RUN, { prompt: 'a'.repeat(400000) }), 413, 3006, /too large/);
  const long = 'Once upon a time there was a girl. '.repeat(80);
  const n = tokenize(long).length;
  assert.ok(n > 512);
  const r = await postJson(srv.base, RUN, { prompt: long, raw: true });
  assertEnvelopeError(r, 413, 5021);
  assert.match(r.json.errors[0].message, new RegExp(`estimated at ${n} tokens`));
  assert.match(r.json.errors[0].message, /at most 511 input tokens/);
  // The connection and server are still fine afterwards.
  assert.equal((await fetch(srv.base + '/health')).status, 200);
});

test('models search and schema', async () => {
  const all = await (await fetch(srv.base + '/client/v4/accounts/a/ai/models/search')).json();
  assert.equal(all.success, true);
  const names = all.result.map((m) => m.name);
  assert.deepEqual(names.sort(), [MISSING, MODEL].sort());
  const stories = all.result.find((m) => m.name === MODEL);
  assert.equal(stories.task.name, 'Text Generation');
  assert.ok(stories.properties.some((p) => p.property_id === 'context_window'));
  assert.equal(all.result.find((m) => m.name === MISSING).available, false);
  const s = await (await fetch(srv.base + '/ai/models/search?search=mistral')).json();
  assert.deepEqual(s.result.map((m) => m.name), [MISSING]);
  const byAuthor = await (await fetch(srv.base + '/ai/models/search?author=karpathy')).json();
  assert.deepEqual(byAuthor.result.map((m) => m.name), [MODEL]);
  const byTask = await (await fetch(srv.base + '/ai/models/search?task=Text%20Generation')).json();
  assert.equal(byTask.result.length, 2);
  const paged = await (await fetch(srv.base + '/ai/models/search?per_page=1&page=2')).json();
  assert.equal(paged.result.length, 1);
  assert.equal(paged.result_info.total_count, 2);
  const schema = await (await fetch(srv.base + `/ai/models/schema?model=${encodeURIComponent(MODEL)}`)).json();
  assert.equal(schema.success, true);
  assert.ok(schema.result.input && schema.result.output);
  const bad = await fetch(srv.base + '/ai/models/schema?model=@cf/nope');
  assert.equal(bad.status, 400);
  const v1 = await (await fetch(srv.base + '/client/v4/accounts/a/ai/v1/models')).json();
  assert.equal(v1.object, 'list');
  assert.deepEqual(v1.data.map((m) => m.id), [MODEL]);  // the unavailable model is not offered
});

test('auth: bearer tokens from WAI_API_KEYS and --api-key-file', async () => {
  const keyFile = path.join(TMP, 'server-test-keys.txt');
  fs.writeFileSync(keyFile, '# keys\nfile-token\n');
  const s = await startServer(['-m', STORIES, '--api-key-file', keyFile], { env: { WAI_API_KEYS: 'env-token,second' } });
  try {
    assert.equal((await fetch(s.base + '/health')).status, 200, '/health needs no token');
    const name = path.basename(STORIES, '.gguf');
    const body = { prompt: 'Once', raw: true, max_tokens: 2 };
    assertEnvelopeError(await postJson(s.base, `/ai/run/${name}`, body), 401, 10000, /Authentication error/);
    assertEnvelopeError(await postJson(s.base, `/ai/run/${name}`, body, { authorization: 'Bearer wrong' }), 401, 10000);
    assert.equal((await fetch(s.base + '/metrics')).status, 401);
    for (const t of ['env-token', 'second', 'file-token']) {
      const r = await postJson(s.base, `/ai/run/${name}`, body, { authorization: `Bearer ${t}` });
      assert.equal(r.status, 200, t);
    }
    // -m serves the file under its stem and its path.
    const byPath = await postJson(s.base, `/ai/run/${encodeURIComponent(STORIES)}`, body, { authorization: 'Bearer second' });
    assert.equal(byPath.status, 200);
  } finally {
    assert.equal((await s.stop()).code, 0);
  }
});

test('--no-sse-padding drops the p field', async () => {
  const s = await startServer(['-m', STORIES, '--no-sse-padding']);
  try {
    const r = await post(s.base, '/ai/run/stories260K', { prompt: 'Once', raw: true, max_tokens: 4, stream: true });
    const events = sseEvents(await r.text());
    for (const e of events.slice(0, -1)) assert.ok(!('p' in JSON.parse(e)));
  } finally {
    await s.stop();
  }
});

test('request log: one structured line per request', async () => {
  await postJson(srv.base, RUN, { prompt: 'Log me', raw: true, max_tokens: 3 });
  const line = srv.stderr.split('\n').find((l) => l.includes('route=ai_run') && l.includes('completion_tokens=3'));
  assert.ok(line, srv.stderr.slice(-2000));
  assert.match(line, /method=POST .* model=@cf\/wai\/stories260k status=200 prompt_tokens=\d+ completion_tokens=3 ttft_ms=[\d.]+ total_ms=[\d.]+/);
});
