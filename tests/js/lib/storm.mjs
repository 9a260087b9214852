// A disconnect storm against a running `wai serve`, over raw sockets (node:net) so that every client
// controls its own bytes and its own end: a clean close, a TCP reset (RST) or a byte-at-a-time trickle.
//
// The mix (issue 15): `requests` generation requests from `concurrency` clients at once, on the Workers
// AI and OpenAI routes, streamed and not, max_tokens 8..120, `Connection: close`; a quarter of the
// streamed ones reset the connection right after their first event. Meanwhile `slow` clients send
// their request headers one byte every `slowByteMs` (the server's header timeout closes them), and
// `garbage` clients send random bytes or a truncated body and reset, and `idle` clients connect and
// say nothing until the server's idle timeout closes them.
//
// Every client that stays connected must get a complete 200 reply; `lost` lists those that did not.
import net from 'node:net';

const ROUTES = [
  { path: (m) => `/client/v4/accounts/storm/ai/run/${m}`, body: (m, n, s) => ({ prompt: 'Once upon a time', raw: true, max_tokens: n, stream: s }) },
  { path: (m) => `/ai/run/${m}`, body: (m, n, s) => ({ messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: n, stream: s }) },
  { path: () => '/v1/chat/completions', body: (m, n, s) => ({ model: m, messages: [{ role: 'user', content: 'Hi' }], max_tokens: n, stream: s }) },
  { path: () => '/v1/completions', body: (m, n, s) => ({ model: m, prompt: 'The dog', max_tokens: n, stream: s }) },
];

// Deterministic pseudo-random numbers (mulberry32), so a failing mix can be replayed by its seed.
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function httpRequest(path, body) {
  const b = Buffer.from(JSON.stringify(body));
  return Buffer.concat([
    Buffer.from(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Connection: close\r\nContent-Length: ${b.length}\r\n\r\n`),
    b,
  ]);
}

// Decodes a chunked body; returns undefined while it is incomplete or malformed.
function dechunk(buf) {
  const parts = [];
  let pos = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', pos);
    if (eol < 0) return undefined;
    const size = parseInt(buf.subarray(pos, eol).toString('latin1'), 16);
    if (!Number.isFinite(size)) return undefined;
    if (size === 0) return Buffer.concat(parts);
    if (eol + 2 + size + 2 > buf.length) return undefined;
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    pos = eol + 2 + size + 2;
  }
}

// Splits a raw HTTP/1.1 response into status, headers and body (chunked bodies decoded).
export function parseResponse(raw) {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return { status: 0, complete: false };
  const head = raw.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(head[0].split(' ')[1]);
  const headers = {};
  for (const l of head.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = raw.subarray(end + 4);
  let complete;
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const d = dechunk(body);
    complete = d !== undefined;
    if (complete) body = d;
  } else {
    complete = body.length === Number(headers['content-length'] ?? -1);
  }
  return { status, headers, body: body.toString('utf8'), complete };
}

// One request over its own connection. `resetAfterFirstEvent`: send a TCP reset once the first SSE
// event arrived. Resolves with what the client saw.
function oneRequest(port, path, body, { resetAfterFirstEvent = false, timeoutMs = 60000 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => { sock.destroy(); finish({ error: 'client timeout' }); }, timeoutMs);
    sock.on('connect', () => sock.write(httpRequest(path, body)));
    sock.on('data', (d) => {
      chunks.push(d);
      if (resetAfterFirstEvent && Buffer.concat(chunks).includes('\n\n', Buffer.concat(chunks).indexOf('\r\n\r\n') + 4)) {
        sock.resetAndDestroy();
        finish({ reset: true });
      }
    });
    sock.on('error', (e) => finish({ error: e.code ?? e.message, bytes: Buffer.concat(chunks).length }));
    sock.on('close', () => finish({ raw: Buffer.concat(chunks) }));
  });
}

// A client that sends request headers one byte every `byteMs` and never finishes them; resolves when
// the server has closed the connection (its status line, e.g. 408, if it sent one).
function slowClient(port, byteMs, giveUpMs) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const text = 'POST /ai/run/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Slow: ' + 'a'.repeat(4096);
    let i = 0;
    let got = '';
    const tick = setInterval(() => {
      if (i < text.length && sock.writable) sock.write(text[i++]);
    }, byteMs);
    const giveUp = setTimeout(() => sock.destroy(), giveUpMs);
    sock.on('data', (d) => { got += d.toString('latin1'); });
    sock.on('error', () => {});
    sock.on('close', () => {
      clearInterval(tick);
      clearTimeout(giveUp);
      resolve({ status: Number(got.split(' ')[1]) || 0 });
    });
  });
}

// A client that connects and sends nothing; resolves when the server's idle timeout closes it.
function idleClient(port, giveUpMs) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const giveUp = setTimeout(() => sock.destroy(), giveUpMs);
    sock.on('error', () => {});
    sock.on('close', () => { clearTimeout(giveUp); resolve(); });
  });
}

// A client that sends random bytes, or a request whose body stops short, then resets.
function garbageClient(port, rand, model) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.on('connect', () => {
      if (rand() < 0.5) {
        const b = Buffer.alloc(1 + Math.floor(rand() * 2000));
        for (let i = 0; i < b.length; ++i) b[i] = Math.floor(rand() * 256);
        sock.write(b);
      } else {
        const full = httpRequest(`/ai/run/${model}`, { prompt: 'Once upon a time', raw: true, max_tokens: 50 });
        sock.write(full.subarray(0, full.length - 1 - Math.floor(rand() * 20)));
      }
      setTimeout(() => { sock.resetAndDestroy(); resolve(); }, 5 + Math.floor(rand() * 200));
    });
    sock.on('error', () => resolve());
  });
}

// Runs the storm; returns counts and the list of lost requests (each with its route, stream flag and
// what the client saw).
export async function runStorm({ port, model, requests = 2000, concurrency = 128, slow = 30, slowByteMs = 2000,
  slowGiveUpMs = 30000, garbage = 20, idle = 0, seed = 1 }) {
  const rand = rng(seed);
  const jobs = [];
  for (let i = 0; i < requests; ++i) {
    const route = ROUTES[Math.floor(rand() * ROUTES.length)];
    const stream = rand() < 0.5;
    const maxTokens = 8 + Math.floor(rand() * 113);
    const reset = stream && rand() < 0.25;
    jobs.push({ i, route, stream, maxTokens, reset });
  }
  const lost = [];
  let ok = 0;
  let resets = 0;
  const t0 = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const j = jobs[next++];
      const path = j.route.path(model);
      const r = await oneRequest(port, path, j.route.body(model, j.maxTokens, j.stream), { resetAfterFirstEvent: j.reset });
      if (j.reset) {
        if (r.reset) { resets++; continue; }
        // The reply ended before the first event was seen: it must still be a complete reply.
      }
      const res = r.raw ? parseResponse(r.raw) : { status: 0, complete: false };
      const good = res.status === 200 && res.complete &&
        (j.stream ? res.body.includes('data: [DONE]') : res.body.length > 0);
      if (good) ok++;
      else lost.push({ i: j.i, path, stream: j.stream, max_tokens: j.maxTokens, status: res.status, error: r.error, bytes: r.raw?.length ?? r.bytes ?? 0, head: r.raw?.subarray(0, 200).toString('latin1') });
    }
  };
  const slowDone = Array.from({ length: slow }, () => slowClient(port, slowByteMs, slowGiveUpMs));
  const idleDone = Array.from({ length: idle }, () => idleClient(port, slowGiveUpMs));
  const garbageDone = [];
  for (let g = 0; g < garbage; ++g) {
    garbageDone.push(new Promise((r) => setTimeout(r, Math.floor(rand() * 3000))).then(() => garbageClient(port, rand, model)));
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const loadMs = Date.now() - t0;
  const slowResults = await Promise.all(slowDone);
  await Promise.all(garbageDone);
  await Promise.all(idleDone);
  return { ok, resets, lost, loadMs, slowStatuses: slowResults.map((s) => s.status) };
}
