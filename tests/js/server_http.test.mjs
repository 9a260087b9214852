// HTTP-level behaviour of the real `wai serve`: keep-alive, header and idle timeouts, malformed
// requests, Expect: 100-continue, a model file that fails to load, and a non-streaming client that
// disconnects (its generation is cancelled too).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, postJson, metrics, metricValue, sleep, STORIES, TMP } from './lib/server.mjs';

let srv;
before(async () => { srv = await startServer(['-m', STORIES, '--header-timeout', '0.4', '--idle-timeout', '0.8', '--parallel', '1']); });
after(async () => { assert.equal((await srv.stop()).code, 0); });

// Opens a raw TCP connection; returns helpers to send bytes and collect what comes back.
function connect(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    const closed = new Promise((r) => sock.on('close', r));
    sock.on('data', (d) => { data += d; });
    sock.on('error', () => {});
    sock.on('connect', () => resolve({ sock, closed, get data() { return data; } }));
    sock.on('error', reject);
  });
}

test('keep-alive: two requests on one connection', async () => {
  const c = await connect(srv.port);
  c.sock.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n');
  for (let i = 0; i < 50 && (c.data.match(/HTTP\/1\.1 200/g) ?? []).length < 2; ++i) await sleep(20);
  assert.equal((c.data.match(/HTTP\/1\.1 200 OK/g) ?? []).length, 2, c.data);
  c.sock.destroy();
});

test('idle keep-alive connections are closed after --idle-timeout', async () => {
  const c = await connect(srv.port);
  const t0 = Date.now();
  await c.closed;
  const dt = Date.now() - t0;
  assert.ok(dt >= 600 && dt < 3000, `closed after ${dt} ms`);
  assert.equal(c.data, '');
});

test('headers not completed within --header-timeout: 408/3007 and close', async () => {
  const c = await connect(srv.port);
  c.sock.write('POST /ai/run/stories260K HTTP/1.1\r\nHost: x\r\n');
  await c.closed;
  assert.match(c.data, /^HTTP\/1\.1 408/);
  assert.match(c.data, /"code":3007/);
});

test('malformed request: 400/3003', async () => {
  const c = await connect(srv.port);
  c.sock.write('THIS IS NOT HTTP\r\n\r\n');
  await c.closed;
  assert.match(c.data, /^HTTP\/1\.1 400/);
  assert.match(c.data, /"code":3003/);
});

test('Expect: 100-continue is answered', async () => {
  const c = await connect(srv.port);
  const body = JSON.stringify({ prompt: 'Once', raw: true, max_tokens: 2 });
  c.sock.write(`POST /ai/run/stories260K HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`);
  for (let i = 0; i < 50 && !c.data.includes('100 Continue'); ++i) await sleep(20);
  assert.match(c.data, /^HTTP\/1\.1 100 Continue\r\n\r\n/);
  c.sock.write(body);
  for (let i = 0; i < 100 && !c.data.includes('"success":true'); ++i) await sleep(20);
  assert.match(c.data, /HTTP\/1\.1 200 OK/);
  c.sock.destroy();
});

test('a non-streaming client that disconnects cancels its generation', async () => {
  const ctl = new AbortController();
  const req = fetch(srv.base + '/ai/run/stories260K', {
    method: 'POST', body: JSON.stringify({ prompt: 'Once upon a time', raw: true, max_tokens: 2000 }), signal: ctl.signal,
  }).catch(() => 'aborted');
  const active = async () => metricValue(await metrics(srv.base), 'wai_active_sequences{model="stories260K"}');
  for (let i = 0; i < 100 && (await active()) !== 1; ++i) await sleep(10);
  assert.equal(await active(), 1);
  ctl.abort();
  assert.equal(await req, 'aborted');
  const t0 = Date.now();
  while ((await active()) !== 0) {
    assert.ok(Date.now() - t0 < 1000, 'slot freed within a second');
    await sleep(20);
  }
  for (let i = 0; i < 50 && !/status=499.*finish=cancelled/.test(srv.stderr); ++i) await sleep(20);
  assert.match(srv.stderr, /status=499 prompt_tokens=\d+ completion_tokens=\d+ .*finish=cancelled/);
});

test('a catalog model whose file is not a GGUF: 503/5007 naming the file, server stays up', async () => {
  const bad = path.join(TMP, 'broken-model.gguf');
  fs.writeFileSync(bad, 'this is not a gguf file');
  const cat = path.join(TMP, 'server-broken-catalog.json');
  fs.writeFileSync(cat, JSON.stringify({ models: [{ name: '@cf/test/broken', file: bad }, { name: '@cf/test/ok', file: STORIES }] }));
  const s = await startServer(['--catalog', cat]);
  try {
    const r = await postJson(s.base, '/ai/run/@cf/test/broken', { prompt: 'x' });
    assert.equal(r.status, 503);
    assert.equal(r.json.errors[0].code, 5007);
    assert.match(r.json.errors[0].message, /could not be loaded from '.*broken-model\.gguf'/);
    const ok = await postJson(s.base, '/ai/run/@cf/test/ok', { prompt: 'Once', raw: true, max_tokens: 2 });
    assert.equal(ok.status, 200);
    assert.equal((await fetch(s.base + '/health')).status, 200);
  } finally {
    assert.equal((await s.stop()).code, 0);
  }
});

test('--preload loads at start; /health is 200 once ready', async () => {
  const s = await startServer(['-m', STORIES, '--preload']);
  try {
    let h;
    for (let i = 0; i < 100; ++i) {
      h = await fetch(s.base + '/health');
      if (h.status === 200) break;
      assert.equal(h.status, 503);
      assert.deepEqual(await h.json(), { status: 'loading' });
      await sleep(20);
    }
    assert.equal(h.status, 200);
    assert.equal(metricValue(await metrics(s.base), 'wai_model_loaded{model="stories260K"}'), 1, 'loaded before any request');
  } finally {
    await s.stop();
  }
});
