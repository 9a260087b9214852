// The official clients, unchanged, against the real `wai serve`: the `cloudflare` SDK (ai.run) and the
// `openai` SDK (chat.completions, completions, models; streamed and not; errors surfaced).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Cloudflare from 'cloudflare';
import OpenAI from 'openai';
import { startServer, writeCatalog, postJson, tokenize, MODEL } from './lib/server.mjs';

const TOKEN = 'test-token-123';
let srv;
before(async () => { srv = await startServer(['--catalog', writeCatalog()], { env: { WAI_API_KEYS: TOKEN } }); });
after(async () => { assert.equal((await srv.stop()).code, 0); });

const openai = () => new OpenAI({ apiKey: TOKEN, baseURL: `${srv.base}/client/v4/accounts/acc123/ai/v1`, maxRetries: 0 });

test('cloudflare SDK: client.ai.run returns the result', async () => {
  const client = new Cloudflare({ apiToken: TOKEN, baseURL: `${srv.base}/client/v4`, maxRetries: 0 });
  const prompt = 'Once upon a time';
  const result = await client.ai.run(MODEL, { account_id: 'acc123', prompt, raw: true, max_tokens: 10, temperature: 0 });
  assert.equal(typeof result.response, 'string');
  assert.ok(result.response.length > 0);
  const n = tokenize(prompt).length;
  const { prompt_tokens_details: details, ...counts } = result.usage;
  assert.deepEqual(counts, { prompt_tokens: n, completion_tokens: 10, total_tokens: n + 10 });
  assert.ok(Number.isInteger(details.cached_tokens) && details.cached_tokens >= 0 && details.cached_tokens < n);
  const direct = await postJson(srv.base, `/ai/run/${MODEL}`, { prompt, raw: true, max_tokens: 10, temperature: 0 },
    { authorization: `Bearer ${TOKEN}` });
  assert.equal(result.response, direct.json.result.response);
  const messages = await client.ai.run(MODEL, { account_id: 'acc123', messages: [{ role: 'user', content: 'Tim' }], max_tokens: 5 });
  assert.equal(messages.usage.completion_tokens, 5);
});

test('cloudflare SDK: errors surface with the envelope message', async () => {
  const client = new Cloudflare({ apiToken: TOKEN, baseURL: `${srv.base}/client/v4`, maxRetries: 0 });
  await assert.rejects(client.ai.run('@cf/foo/bar', { account_id: 'a', prompt: 'x' }), (e) => {
    assert.equal(e.status, 400);
    assert.match(e.message, /No such model @cf\/foo\/bar/);
    return true;
  });
  const bad = new Cloudflare({ apiToken: 'wrong', baseURL: `${srv.base}/client/v4`, maxRetries: 0 });
  await assert.rejects(bad.ai.run(MODEL, { account_id: 'a', prompt: 'x' }), (e) => e.status === 401);
});

test('openai SDK: chat.completions, not streamed', async () => {
  const r = await openai().chat.completions.create({
    model: MODEL, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Lily' }],
    max_tokens: 8, temperature: 0,
  });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, MODEL);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.ok(r.usage.completion_tokens <= 8);
});

test('openai SDK: chat.completions streamed equals not streamed; include_usage', async () => {
  const params = { model: MODEL, messages: [{ role: 'user', content: 'The cat' }], max_completion_tokens: 15, temperature: 0.8, seed: 99 };
  const whole = await openai().chat.completions.create(params);
  const stream = await openai().chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  let first = true;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (first) { assert.equal(chunk.choices[0].delta.role, 'assistant'); first = false; }
    if (chunk.usage) { usage = chunk.usage; assert.deepEqual(chunk.choices, []); continue; }
    text += chunk.choices[0].delta.content ?? '';
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  // The streamed request reused the whole prompt but its last token from the first one's cache.
  assert.deepEqual({ ...usage, prompt_tokens_details: null }, { ...whole.usage, prompt_tokens_details: null });
  assert.equal(usage.prompt_tokens_details.cached_tokens, usage.prompt_tokens - 1);
});

test('openai SDK: completions with stop sequences and logprobs', async () => {
  const base = { model: MODEL, prompt: 'Once upon a time', max_tokens: 40, temperature: 0 };
  const full = await openai().completions.create(base);
  assert.equal(full.object, 'text_completion');
  const text = full.choices[0].text;
  assert.ok(text.startsWith(' ') || text.startsWith(','), `raw continuation keeps its leading space: ${JSON.stringify(text)}`);
  // Stop at the second word of the greedy text: the reply is the text before it, finish_reason stop.
  const words = text.trim().split(/\s+/);
  const stopWord = words[2];
  const cut = text.slice(0, text.indexOf(stopWord));
  const stopped = await openai().completions.create({ ...base, stop: [stopWord, 'zzzz'] });
  assert.equal(stopped.choices[0].text, cut);
  assert.equal(stopped.choices[0].finish_reason, 'stop');
  const lp = await openai().completions.create({ ...base, max_tokens: 5, logprobs: 0 });
  assert.equal(lp.choices[0].logprobs.token_logprobs.length, 5);
  for (const v of lp.choices[0].logprobs.token_logprobs) assert.ok(v <= 0);
  const chatLp = await openai().chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Tom' }], max_tokens: 4, temperature: 0, logprobs: true });
  assert.equal(chatLp.choices[0].logprobs.content.length, 4);
});

test('openai SDK: completions streamed equals not streamed', async () => {
  const params = { model: MODEL, prompt: 'The big tree', max_tokens: 20, temperature: 0 };
  const whole = await openai().completions.create(params);
  let text = '';
  let finish = null;
  for await (const chunk of await openai().completions.create({ ...params, stream: true })) {
    assert.equal(chunk.object, 'text_completion');
    text += chunk.choices[0].text;
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.equal(text, whole.choices[0].text);
  assert.equal(finish, 'length');
});

test('openai SDK: models.list and errors', async () => {
  const models = [];
  for await (const m of openai().models.list()) models.push(m.id);
  assert.deepEqual(models, [MODEL]);
  await assert.rejects(openai().chat.completions.create({ model: '@cf/foo/bar', messages: [{ role: 'user', content: 'x' }] }), (e) => {
    assert.equal(e.status, 400);
    assert.match(e.message, /No such model @cf\/foo\/bar/);
    return true;
  });
  await assert.rejects(openai().chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], temperature: 7 }), (e) => {
    assert.equal(e.status, 400);
    assert.match(e.message, /temperature/);
    return true;
  });
  const unauth = new OpenAI({ apiKey: 'nope', baseURL: `${srv.base}/v1`, maxRetries: 0 });
  await assert.rejects(unauth.models.list(), (e) => e.status === 401);
});
