// Starts and stops the real `wai serve` for the server tests, and small helpers around it.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const BIN = process.env.WAI_BIN;
export const SHARED = process.env.WAI_SHARED_DIR;
export const TMP = process.env.WAI_TEST_TMP || '/tmp';
export const STORIES = path.join(SHARED ?? '', 'models/stories260K.gguf');
export const MODEL = '@cf/wai/stories260k';
export const MISSING = '@cf/mistral/mistral-7b-instruct-v0.1';

// A catalog in WAI_TEST_TMP: stories260K under MODEL, and an entry whose file does not exist.
export function writeCatalog(name = 'server-test-catalog.json') {
  fs.mkdirSync(TMP, { recursive: true });
  const file = path.join(TMP, name);
  fs.writeFileSync(file, JSON.stringify({
    models: [
      { name: MODEL, aliases: ['stories260k'], file: STORIES, task: 'text-generation', author: 'karpathy',
        description: 'tiny stories model', chat_template: 'plain', context_length: 512 },
      { name: MISSING, file: path.join(TMP, 'no-such-model.gguf'), task: 'text-generation', author: 'mistral',
        description: 'Mistral 7B Instruct v0.1', chat_template: 'mistral-v0.1', sliding_window: 4096 },
    ],
  }, null, 2));
  return file;
}

// Starts `wai serve --port 0 ARGS...`; resolves once it prints the port it listens on.
export async function startServer(args = [], { env = {} } = {}) {
  if (!BIN) throw new Error('WAI_BIN is not set');
  const proc = spawn(BIN, ['serve', '--port', '0', '-t', '1', ...args], {
    env: { ...process.env, WAI_API_KEYS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wai serve did not start: ${stderr}`)), 30000);
    proc.stdout.on('data', (d) => {
      stdout += d;
      const m = stdout.match(/listening on http:\/\/[^\s]+:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`wai serve exited (${code}): ${stderr}`)); });
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    port, base, proc, exited,
    get stderr() { return stderr; },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill(signal);
      return exited;
    },
  };
}

export async function post(base, p, body, headers = {}) {
  return fetch(base + p, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

export async function postJson(base, p, body, headers = {}) {
  const r = await post(base, p, body, headers);
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, headers: r.headers, text, json };
}

// Splits an SSE body into its `data:` payloads, asserting the exact framing
// ("data: <payload>\n\n" repeated, nothing else).
export function sseEvents(text) {
  const events = [];
  let rest = text;
  while (rest.length > 0) {
    const m = rest.match(/^data: ([^\n]*)\n\n/);
    if (!m) throw new Error(`bad SSE framing at: ${JSON.stringify(rest.slice(0, 80))}`);
    events.push(m[1]);
    rest = rest.slice(m[0].length);
  }
  return events;
}

// Token ids from `wai tokenize` (with BOS unless bos = false).
export function tokenize(text, { bos = true } = {}) {
  const args = ['tokenize', '-m', STORIES, text];
  if (!bos) args.push('--no-bos');
  return execFileSync(BIN, args, { encoding: 'utf8' }).trim().split(/\s+/).filter(Boolean).map(Number);
}

export async function metrics(base, headers = {}) {
  return (await fetch(base + '/metrics', { headers })).text();
}

// Value of one metric line (exact name + labels), or undefined.
export function metricValue(text, series) {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
