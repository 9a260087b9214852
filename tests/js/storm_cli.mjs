// Replays issue 15's disconnect storm (lib/storm.mjs) against a fresh `wai serve` several times and
// prints what each run lost, with the server's log lines for them:
//   WAI_BIN=build/bin/wai WAI_SHARED_DIR=../shared node tests/js/storm_cli.mjs [runs] [first seed] [header timeout s]
import { startServer, STORIES } from './lib/server.mjs';
import { runStorm } from './lib/storm.mjs';

const runs = Number(process.argv[2] ?? 1);
const seed0 = Number(process.argv[3] ?? 1);
const headerTimeout = process.argv[4] ?? '5';
for (let k = 0; k < runs; ++k) {
  const srv = await startServer(['-m', STORIES, '--max-queue', '256', '--header-timeout', headerTimeout]);
  const r = await runStorm({ port: srv.port, model: 'stories260K', seed: seed0 + k });
  await srv.stop();
  const n499 = (srv.stderr.match(/status=499/g) ?? []).length;
  console.log(JSON.stringify({ seed: seed0 + k, ok: r.ok, resets: r.resets, lost: r.lost.length, loadMs: r.loadMs,
    logged499: n499, slowStatuses: [...new Set(r.slowStatuses)] }));
  for (const l of r.lost) console.log('  lost', JSON.stringify(l));
  if (r.lost.length) {
    for (const line of srv.stderr.split('\n').filter((l) => /status=499/.test(l) && !/stream=1/.test(l))) console.log('  ', line);
  }
}
