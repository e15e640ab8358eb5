/**
 * An agent process killed (SIGKILL) mid-spool while QuestDB is down: its spool survives, a
 * torn last line in it is tolerated, a new sink on the same directory delivers every row once
 * QuestDB is back, and replaying the same spool again stores nothing twice.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { appendFileSync, cpSync, readdirSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import { startService, stopService } from '../../deploy/stack/index.js';
import { CORE_SAMPLES, QuestDbTelemetrySink, questdbQuery, SAMPLES } from '../../node-agent/telemetry/index.js';
import { startStack, waitFor, type TestStack } from '../helpers/cluster.js';
import { keyCounts, walApplied, WRITER_CTX, WRITER_SCRIPT, WRITER_T0 } from '../helpers/telemetry.js';

let s: TestStack;
let http: string;
let spool: string, replay: string;
const JOB = 'crash-job';
const where = `job_id = '${JOB}'`;
/** Complete encode_samples and core-sample lines the killed writer left in its spool. */
let spooled = 0;
let spooledCores = 0;

test.before(async () => {
  s = await startStack('telemetry-crash');
  http = s.endpoints.questdb_http;
  spool = path.join(s.dir, 'spool');
  replay = path.join(s.dir, 'spool-replay');
});
test.after(async () => { await s?.down(); });

const segments = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.ilp')).sort().map((f) => path.join(dir, f));

test('a writer killed mid-spool while QuestDB is down leaves every row it reported durable in its spool files', async () => {
  await stopService({ stateDir: s.dir }, 'questdb', 'SIGKILL');
  const child = spawn(process.execPath, [WRITER_SCRIPT, spool, http, JOB], { stdio: ['ignore', 'pipe', 'inherit'] });
  let durable = 0;
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { for (const m of d.matchAll(/durable (\d+)/g)) durable = Number(m[1]); });
  await waitFor('the writer to spool 3000 samples', () => durable >= 3000, 30_000, 20);
  child.kill('SIGKILL');
  await once(child, 'exit');

  const files = segments(spool);
  assert.ok(files.length > 0, 'the spool survives the process');
  // Whole lines only: the kill can land inside a batch's write, leaving core rows without
  // their sample row, or half a row, at the end of the last segment.
  const lines = files.flatMap((f) => readFileSync(f, 'utf8').split('\n').slice(0, -1));
  spooled = lines.filter((l) => l.startsWith(`${SAMPLES.name},`)).length;
  spooledCores = lines.filter((l) => l.startsWith(`${CORE_SAMPLES.name},`)).length;
  // Each sample's two core rows are written before it: a cut batch may end with one sample's cores alone.
  assert.ok(spooledCores >= 2 * spooled && spooledCores <= 2 * spooled + 2, `${spooledCores} core rows for ${spooled} samples`);
  assert.ok(spooled >= durable, `${spooled} samples spooled, ${durable} reported durable`);
  // The write a crash cuts short: half a row at the end of the last segment.
  appendFileSync(files.at(-1)!, `${SAMPLES.name},node=${WRITER_CTX.node},job_id=${JOB} pass=1i,cpu_co`);
  cpSync(spool, replay, { recursive: true });
});

test('a new sink on that spool delivers every row exactly once when QuestDB is back, skipping the torn line', async () => {
  await startService({ stateDir: s.dir }, 'questdb');
  const logs: string[] = [];
  const sink = new QuestDbTelemetrySink(http, spool, (m) => logs.push(m));
  assert.is(sink.pending(), spooled + spooledCores, 'pending counts whole rows only');
  await waitFor('the spool to drain', () => sink.pending() === 0, 60_000);
  await sink.close();
  assert.equal(segments(spool), [], 'delivered segments are deleted');
  assert.ok(logs.some((l) => /torn line/.test(l)), logs.join('\n'));

  await walApplied(http);
  assert.equal(await keyCounts(http, SAMPLES, where), { rows: spooled, keys: spooled });
  assert.equal(await keyCounts(http, CORE_SAMPLES, where), { rows: spooledCores, keys: spooledCores });
  const [r] = await questdbQuery(http, `SELECT min(ts) first, max(ts) last FROM ${SAMPLES.name} WHERE ${where}`);
  assert.is(Date.parse(String(r.first)), WRITER_T0, 'from the first sample');
  assert.is(Date.parse(String(r.last)) - WRITER_T0, spooled - 1, 'to the last, without a gap');
});

test('replaying the same spool again (a crash after sending, before deleting) stores nothing twice', async () => {
  const sink = new QuestDbTelemetrySink(http, replay, s.log);
  await sink.flush();
  assert.is(sink.pending(), 0);
  await sink.close();
  await walApplied(http);
  assert.equal(await keyCounts(http, SAMPLES, where), { rows: spooled, keys: spooled });
  assert.equal(await keyCounts(http, CORE_SAMPLES, where), { rows: spooledCores, keys: spooledCores });
});

test.run();
