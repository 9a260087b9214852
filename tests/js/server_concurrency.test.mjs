// Concurrency and lifecycle of the real `wai serve`: simultaneous streams match solo runs, health and
// metrics answer during generation, a disconnecting client frees its slot, a full queue answers 429,
// deadlines answer 408, SIGTERM drains and exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, post, postJson, sseEvents, metrics, metricValue, sleep, STORIES,
} from './lib/server.mjs';

const NAME = 'stories260K';  // -m serves the file under its stem
const RUN = `/ai/run/${NAME}`;
const active = (m) => metricValue(m, `wai_active_sequences{model="${NAME}"}`);
const queued = (m) => metricValue(m, `wai_queue_depth{model="${NAME}"}`);

// Reads an SSE response until `n` events arrived (or the end); returns the events and the reader.
async function readEvents(response, n) {
  const reader = response.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  while (buf.split('\n\n').length - 1 < n) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
  }
  return { buf, reader };
}

async function waitFor(fn, ms, what) {
  const until = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('8 simultaneous greedy streams produce what each produces alone; health/metrics answer meanwhile', async () => {
  const srv = await startServer(['-m', STORIES, '--parallel', '4']);
  try {
    const prompts = ['Once upon a time', 'The dog', 'Lily and Tom', 'One day, a bird', 'The sun was', 'Max had a red',
      'In the park', 'A little girl'];
    const body = (p) => ({ prompt: p, raw: true, max_tokens: 48, temperature: 0 });
    const solo = [];
    for (const p of prompts) solo.push((await postJson(srv.base, RUN, body(p))).json.result.response);
    const streams = prompts.map(async (p) => {
      const r = await post(srv.base, RUN, { ...body(p), stream: true });
      const events = sseEvents(await r.text());
      assert.equal(events.at(-1), '[DONE]');
      return events.slice(0, -1).map((e) => JSON.parse(e).response).join('');
    });
    const t0 = Date.now();
    const h = await fetch(srv.base + '/health');
    assert.equal(h.status, 200);
    const m = await metrics(srv.base);
    assert.ok(Date.now() - t0 < 2000, 'health and metrics do not wait for generation');
    assert.match(m, /wai_active_sequences/);
    assert.deepEqual(await Promise.all(streams), solo);
  } finally {
    assert.equal((await srv.stop()).code, 0);
  }
});

test('a client that disconnects mid-stream frees its slot within a second', async () => {
  const srv = await startServer(['-m', STORIES, '--parallel', '1']);
  try {
    const ctl = new AbortController();
    const r = await fetch(srv.base + RUN, {
      method: 'POST', body: JSON.stringify({ prompt: 'Once upon a time', raw: true, max_tokens: 2000, temperature: 0, stream: true }),
      signal: ctl.signal,
    });
    await readEvents(r, 3);
    assert.equal(active(await metrics(srv.base)), 1);
    const t0 = Date.now();
    ctl.abort();
    await waitFor(async () => active(await metrics(srv.base)) === 0, 1000, 'the slot to be freed');
    assert.ok(Date.now() - t0 <= 1000);
    await waitFor(() => /status=499/.test(srv.stderr), 1000, 'the request log line');
    const line = srv.stderr.split('\n').find((l) => l.includes('status=499'));
    const done = Number(line.match(/completion_tokens=(\d+)/)[1]);
    assert.ok(done < 2000, `generation stopped early (${done} tokens)`);
    assert.match(line, /finish=cancelled/);
    // The freed slot serves the next request.
    const next = await postJson(srv.base, RUN, { prompt: 'Tim', raw: true, max_tokens: 3 });
    assert.equal(next.status, 200);
  } finally {
    await srv.stop();
  }
});

test('full queue answers 429/3040 with Retry-After; rejectIfBusy fails at once', async () => {
  const srv = await startServer(['-m', STORIES, '--parallel', '1', '--max-queue', '1']);
  const ctls = [];
  const start = async () => {
    const ctl = new AbortController();
    ctls.push(ctl);
    const r = await fetch(srv.base + RUN, {
      method: 'POST', body: JSON.stringify({ prompt: 'Once upon a time', raw: true, max_tokens: 2000, stream: true }),
      signal: ctl.signal,
    });
    assert.equal(r.status, 200);
    return r;
  };
  try {
    const a = await start();
    await readEvents(a, 2);  // A holds the only slot
    await start();           // B waits in the queue
    await waitFor(async () => queued(await metrics(srv.base)) === 1, 2000, 'B to be queued');
    const c = await postJson(srv.base, RUN, { prompt: 'x', raw: true, max_tokens: 2 });
    assert.equal(c.status, 429);
    assert.equal(c.json.errors[0].code, 3040);
    assert.equal(c.headers.get('retry-after'), '1');
    const busy = await postJson(srv.base, '/v1/chat/completions',
      { model: NAME, messages: [{ role: 'user', content: 'x' }], options: { rejectIfBusy: true } });
    assert.equal(busy.status, 429);
    assert.match(busy.json.error.message, /Capacity/);
  } finally {
    for (const c of ctls) c.abort();
    await waitFor(async () => active(await metrics(srv.base)) === 0 && queued(await metrics(srv.base)) === 0, 3000, 'drain');
    await srv.stop();
  }
});

test('request deadline answers 408/3007', async () => {
  const srv = await startServer(['-m', STORIES, '--timeout', '0.3']);
  try {
    const r = await postJson(srv.base, RUN, { prompt: 'Once upon a time', raw: true, max_tokens: 2000 });
    assert.equal(r.status, 408);
    assert.equal(r.json.errors[0].code, 3007);
  } finally {
    await srv.stop();
  }
});

test('SIGTERM: stops accepting, cancels after the grace period, ends streams with [DONE], exits 0', async () => {
  const srv = await startServer(['-m', STORIES, '--grace', '0.3']);
  const r = await post(srv.base, RUN, { prompt: 'Once upon a time', raw: true, max_tokens: 2000, stream: true });
  const { buf, reader } = await readEvents(r, 2);
  const t0 = Date.now();
  srv.proc.kill('SIGTERM');
  let rest = buf;
  const dec = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    rest += dec.decode(value, { stream: true });
  }
  const events = sseEvents(rest);
  assert.equal(events.at(-1), '[DONE]');
  const usage = JSON.parse(events.at(-2)).usage;
  assert.ok(usage.completion_tokens < 2000, `cut short at ${usage.completion_tokens}`);
  const { code } = await srv.exited;
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 < 5000);
  await assert.rejects(fetch(srv.base + '/health'));
});
