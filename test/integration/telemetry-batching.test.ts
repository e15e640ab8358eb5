/**
 * The sink's linger against a real QuestDB: samples of concurrent encodes are spooled at once
 * but reach QuestDB together, one request (one WAL transaction per table) per linger; every row
 * arrives; close() delivers what lingers; a process killed while rows linger loses none of them;
 * and a run row is posted at once, after its samples, so it is never queryable without them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { AGENT_LINGER_MS, CORE_SAMPLES, encodeRow, encodeRows, ensureTables, QuestDbTelemetrySink, questdbQuery, RUNS, SAMPLES, sampleRows, Spool, type TableRow } from '../../node-agent/telemetry/index.js';
import { startStack, waitFor, type TestStack } from '../helpers/cluster.js';
import { keyCounts, syntheticSample, walApplied } from '../helpers/telemetry.js';

let s: TestStack;
let http: string;
const T0 = Date.UTC(2026, 1, 1);
/** Rows per synthetic sample: the sample and one row for each of its 2 cores. */
const ROWS_PER_SAMPLE = 3;

test.before(async () => {
  s = await startStack('telemetry-batching');
  http = s.endpoints.questdb_http;
  // Created up front, so every commit counted below is a request of a test.
  await ensureTables(http);
});
test.after(async () => { await s?.down(); });

const spoolDir = (name: string) => path.join(s.dir, 'spool', name);
const count = async (table: string, where: string) => Number((await questdbQuery(http, `SELECT count() n FROM ${table} WHERE ${where}`))[0].n);
/** WAL transactions QuestDB has committed to a table: one per request that carried rows for it. */
const commits = async (table: string) => Number((await questdbQuery(http, `SELECT sequencerTxn FROM wal_tables() WHERE name = '${table}'`))[0].sequencerTxn);
const commitsOfSamples = async () => ({ samples: await commits(SAMPLES.name), cores: await commits(CORE_SAMPLES.name) });

test('samples of three concurrent encodes recorded within the linger reach QuestDB in one request, every row of them', async () => {
  const node = 'batch-node', where = `node = '${node}'`;
  const sink = new QuestDbTelemetrySink(http, spoolDir('one-request'), s.log, { lingerMs: AGENT_LINGER_MS });
  const before = await commitsOfSamples();
  // Three encodes, each recording its samples one at a time as the recorder does, 150 ms apart.
  let first = 0;
  await Promise.all([0, 1, 2].map(async (e) => {
    await delay(50 * e);
    for (let i = 0; i < 2; i++) {
      await sink.recordSamples([syntheticSample(`batch-${e}`, T0, i)], { node, codec: 'h264' });
      first ||= Date.now();
      await delay(150);
    }
  }));
  assert.ok(Date.now() - first < AGENT_LINGER_MS, 'the samples were recorded within the linger');
  assert.is(sink.pending(), 6 * ROWS_PER_SAMPLE, 'every row is spooled at once');
  assert.is(sink.requests(), 0, 'nothing is posted while the samples linger');
  assert.is(await count(SAMPLES.name, where), 0);

  await waitFor('the linger to end', () => sink.pending() === 0, 10_000, 10);
  assert.ok(Date.now() - first >= AGENT_LINGER_MS - 20, `posted ${Date.now() - first} ms after the first sample was spooled`);
  assert.is(sink.requests(), 1, 'one request');
  await walApplied(http);
  assert.equal(await commitsOfSamples(), { samples: before.samples + 1, cores: before.cores + 1 }, 'one WAL transaction per table');
  assert.equal(await keyCounts(http, SAMPLES, where), { rows: 6, keys: 6 });
  assert.equal(await keyCounts(http, CORE_SAMPLES, where), { rows: 12, keys: 12 });
  await sink.close();
});

test('three encodes sampling at 2 Hz for four seconds send about one request per linger, not one per sample, and every row arrives', async () => {
  const node = 'steady-node', where = `node = '${node}'`;
  const sink = new QuestDbTelemetrySink(http, spoolDir('steady'), s.log, { lingerMs: AGENT_LINGER_MS });
  const before = await commitsOfSamples();
  const t0 = Date.now();
  let samples = 0;
  await Promise.all([0, 1, 2].map(async (e) => {
    await delay(170 * e);
    for (let i = 0; Date.now() - t0 < 4000; i++) {
      await sink.recordSamples([syntheticSample(`steady-${e}`, T0 + 60_000, i)], { node, codec: 'h264' });
      samples++;
      await delay(500);
    }
  }));
  const elapsed = Date.now() - t0;
  await sink.close();
  const requests = sink.requests();
  // One request per linger, one at close, and now and then one more for a sample spooled while a post was under way.
  assert.ok(requests <= Math.ceil(elapsed / AGENT_LINGER_MS) + 2, `${requests} requests in ${elapsed} ms`);
  assert.ok(requests * 2 <= samples, `${requests} requests for ${samples} samples`);
  await walApplied(http);
  const after = await commitsOfSamples();
  assert.equal(after, { samples: before.samples + requests, cores: before.cores + requests }, 'QuestDB saw as many transactions as the sink sent requests');
  assert.equal(await keyCounts(http, SAMPLES, where), { rows: samples, keys: samples });
  assert.equal(await keyCounts(http, CORE_SAMPLES, where), { rows: 2 * samples, keys: 2 * samples });
});

test('close() posts what still lingers and leaves nothing in the spool for the next start', async () => {
  const node = 'close-node', where = `node = '${node}'`;
  const dir = spoolDir('close');
  const sink = new QuestDbTelemetrySink(http, dir, s.log, { lingerMs: 60_000 });
  for (let i = 0; i < 5; i++) await sink.recordSamples([syntheticSample('close-0', T0 + 120_000, i)], { node, codec: 'h264' });
  await delay(300);
  assert.is(sink.requests(), 0, 'still lingering');
  await sink.close();
  assert.is(sink.requests(), 1);
  assert.is(sink.pending(), 0);
  await walApplied(http);
  assert.equal(await keyCounts(http, SAMPLES, where), { rows: 5, keys: 5 });
  assert.equal(await keyCounts(http, CORE_SAMPLES, where), { rows: 10, keys: 10 });
  const next = new QuestDbTelemetrySink(http, dir, s.log);
  assert.is(next.pending(), 0, 'the next start finds nothing to send');
  await next.close();
});

test('samples lingering when their process is killed are in its spool, and the next start delivers every one', async () => {
  const node = 'killed-node', where = `node = '${node}'`, dir = spoolDir('killed');
  const sinkModule = fileURLToPath(new URL('../../node-agent/telemetry/index.js', import.meta.url));
  const helperModule = fileURLToPath(new URL('../helpers/telemetry.js', import.meta.url));
  // A writer whose linger outlasts it: it reports each sample once recordSamples has resolved.
  const code = `
    const { QuestDbTelemetrySink } = await import(${JSON.stringify(sinkModule)});
    const { syntheticSample } = await import(${JSON.stringify(helperModule)});
    const sink = new QuestDbTelemetrySink(${JSON.stringify(http)}, ${JSON.stringify(dir)}, undefined, { lingerMs: 600000 });
    for (let i = 0; i < 40; i++) {
      await sink.recordSamples([syntheticSample('killed-' + (i % 2), ${T0 + 180_000}, i)], { node: ${JSON.stringify(node)}, codec: 'h264' });
      process.stdout.write('durable ' + (i + 1) + '\\n');
    }
    setInterval(() => undefined, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let durable = 0;
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { for (const m of d.matchAll(/durable (\d+)/g)) durable = Number(m[1]); });
  await waitFor('the writer to spool its 40 samples', () => durable === 40, 30_000, 20);
  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.is(await count(SAMPLES.name, where), 0, 'nothing was posted before the kill');

  // What an earlier process left is posted at once: a linger longer than the test is not waited out.
  const next = new QuestDbTelemetrySink(http, dir, s.log, { lingerMs: 600_000 });
  assert.is(next.pending(), 40 * ROWS_PER_SAMPLE, 'every row is in the spool');
  await waitFor('the spool to drain', () => next.pending() === 0, 20_000, 10);
  await next.close();
  await walApplied(http);
  assert.equal(await keyCounts(http, SAMPLES, where), { rows: 40, keys: 40 });
  assert.equal(await keyCounts(http, CORE_SAMPLES, where), { rows: 80, keys: 80 });
});

test('a run row is posted at once, after the samples spooled before it, and is never queryable without them', async () => {
  const node = 'run-node', job = 'run-job', where = `job_id = '${job}'`;
  const N = 20;
  // A linger far longer than the test: only the run row can set the samples off.
  const sink = new QuestDbTelemetrySink(http, spoolDir('run'), s.log, { lingerMs: 600_000 });
  for (let i = 0; i < N; i++) await sink.recordSamples([syntheticSample(job, T0 + 240_000, i)], { node, codec: 'h264' });
  assert.is(sink.requests(), 0);

  // Polls what a reader sees: the run first, then its samples, so a run seen without all its
  // samples is a run stored before them.
  const seen: { run: number; samples: number; cores: number }[] = [];
  let stop = false;
  const poller = (async () => {
    while (!stop) {
      const run = await count(RUNS.name, where);
      seen.push({ run, samples: await count(SAMPLES.name, where), cores: await count(CORE_SAMPLES.name, where) });
      await delay(5);
    }
  })();
  const t0 = Date.now();
  await sink.recordRun({ ts: T0 + 240_000, node, job_id: job, codec: 'h264', status: 'succeeded', samples: N, cpu_cores: 1.8 });
  await waitFor('the run and its samples to be posted', () => sink.pending() === 0, 10_000, 5);
  assert.ok(Date.now() - t0 < 5000, `posted ${Date.now() - t0} ms after the run row, not after the linger`);
  assert.is(sink.requests(), 2, 'the samples in one request, the run row in the next');
  await walApplied(http);
  await waitFor('the poller to see the run', () => seen.some((o) => o.run === 1), 10_000, 10);
  stop = true;
  await poller;
  await sink.close();

  assert.ok(seen.some((o) => o.run === 0), 'the poller saw the time before the run was stored');
  const early = seen.filter((o) => o.run === 1 && (o.samples !== N || o.cores !== 2 * N));
  assert.equal(early, [], 'whenever the run was queryable, all its samples were');
  assert.equal(await keyCounts(http, RUNS, where), { rows: 1, keys: 1 });
  assert.equal(await keyCounts(http, SAMPLES, where), { rows: N, keys: N });
});

test('a line QuestDB refuses in the request after a run row is set aside, and every other row arrives', async () => {
  const node = 'refused-node', dir = spoolDir('refused');
  const ctx = { node, codec: 'h264' };
  const t = T0 + 300_000;
  const bad = `${SAMPLES.name},node=${node},job_id=refused-bad cpu_cores="not a number" ${t}000000`;
  // What an earlier process left: two samples, their run row, a row QuestDB will refuse, a sample of the next encode.
  const rows: TableRow[] = [];
  for (let i = 0; i < 2; i++) sampleRows(syntheticSample('refused-a', t, i), ctx, rows);
  const left = new Spool(dir);
  await left.append(encodeRows(rows) + encodeRow({ table: RUNS, row: { ts: t, node, job_id: 'refused-a', codec: 'h264', status: 'succeeded', samples: 2 } })
    + `${bad}\n` + encodeRows(sampleRows(syntheticSample('refused-b', t, 5), ctx)));
  await left.close();

  const sink = new QuestDbTelemetrySink(http, dir, s.log, { lingerMs: 600_000 });
  await waitFor('the spool to drain', () => sink.pending() === 0, 20_000, 10);
  await sink.close();
  const rejected = readFileSync(path.join(dir, 'rejected.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { line: string });
  assert.equal(rejected.map((r) => r.line), [bad], 'exactly the refused line is set aside');
  await walApplied(http);
  const where = `node = '${node}'`;
  assert.equal(await keyCounts(http, SAMPLES, where), { rows: 3, keys: 3 });
  assert.equal(await keyCounts(http, CORE_SAMPLES, where), { rows: 6, keys: 6 });
  assert.equal(await keyCounts(http, RUNS, where), { rows: 1, keys: 1 });
});

test.run();
