/**
 * QuestDB is killed (SIGKILL) while telemetry streams into it and started again: recording
 * never fails, the rows wait in the spool, and every row arrives exactly once.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { startService, stopService } from '../../deploy/stack/index.js';
import { CORE_SAMPLES, QuestDbTelemetrySink, questdbQuery, RUNS, SAMPLES } from '../../node-agent/telemetry/index.js';
import { startStack, waitFor, type TestStack } from '../helpers/cluster.js';
import { keyCounts, syntheticSample, walApplied } from '../helpers/telemetry.js';

let s: TestStack;
test.before(async () => { s = await startStack('telemetry-outage'); });
test.after(async () => { await s?.down(); });

const NODE = 'outage-node';
const SAMPLES_PER_JOB = 400;

test('rows recorded while QuestDB is killed and restarted all arrive, each exactly once', async () => {
  const http = s.endpoints.questdb_http;
  const sink = new QuestDbTelemetrySink(http, path.join(s.dir, 'spool'), s.log, { maxBackoffMs: 1000 });
  const t0 = Date.now();
  const jobOf = (i: number) => `outage-${Math.floor(i / SAMPLES_PER_JOB)}`;
  let samples = 0, runs = 0, stop = false;
  // A steady stream, as from a few encodes at once: 20 samples every few ms, a run row per job.
  const writer = (async () => {
    while (!stop) {
      await sink.recordSamples(Array.from({ length: 20 }, (_, k) => syntheticSample(jobOf(samples + k), t0, samples + k)), { node: NODE, codec: 'h264' });
      samples += 20;
      if (samples % SAMPLES_PER_JOB === 0) {
        await sink.recordRun({ ts: t0 + samples - SAMPLES_PER_JOB, node: NODE, job_id: jobOf(samples - 1), codec: 'h264', status: 'succeeded', samples: SAMPLES_PER_JOB, cpu_cores: 1.5 });
        runs++;
      }
      await delay(5);
    }
  })();

  const count = async () => Number((await questdbQuery(http, `SELECT count() n FROM ${SAMPLES.name} WHERE node = '${NODE}'`))[0].n);
  await waitFor('samples to reach QuestDB', async () => (await count()) > 1000);
  await stopService({ stateDir: s.dir }, 'questdb', 'SIGKILL');
  const atKill = samples;
  await delay(3000);
  assert.ok(samples - atKill >= 500, `recording went on while QuestDB was down (${samples - atKill} samples)`);
  assert.ok(sink.pending() > 0, 'rows wait in the spool');
  await startService({ stateDir: s.dir }, 'questdb');
  await delay(1000); // and while it comes back
  stop = true;
  await writer;

  await waitFor('the spool to drain', () => sink.pending() === 0, 60_000);
  await sink.close();
  await walApplied(http);
  const where = `node = '${NODE}'`;
  assert.equal(await keyCounts(http, SAMPLES, where), { rows: samples, keys: samples }, 'encode_samples');
  assert.equal(await keyCounts(http, CORE_SAMPLES, where), { rows: 2 * samples, keys: 2 * samples }, 'encode_core_samples');
  assert.equal(await keyCounts(http, RUNS, where), { rows: runs, keys: runs }, 'encode_runs');
  // The values arrived intact, not just the keys: frame of sample i is 25·i.
  const [sum] = await questdbQuery(http, `SELECT sum(frame) frames, min(ts) first, max(ts) last FROM ${SAMPLES.name} WHERE ${where}`);
  assert.is(Number(sum.frames), 25 * (samples * (samples - 1)) / 2);
  assert.is(Date.parse(String(sum.last)) - Date.parse(String(sum.first)), samples - 1, 'no gap in the sample times');
});

test.run();
