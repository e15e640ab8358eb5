/**
 * Runs written through the telemetry sink come back from the training export (models/data)
 * with their values, filtered by time window, node, codec and status, and as CSV.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { exportTrainingRuns, QueryParamError, TRAINING_COLUMNS, trainingRunsCsv } from '../../models/data/index.js';
import { QuestDbTelemetrySink, questdbExec, questdbQuery, RUNS, type RunRecord } from '../../node-agent/telemetry/index.js';
import { startStack, type TestStack } from '../helpers/cluster.js';
import { walApplied } from '../helpers/telemetry.js';

let s: TestStack;
let httpBase: string;
const DAY = 86_400_000;
const T0 = Date.UTC(2026, 2, 1);
const runs: RunRecord[] = [];

test.before(async () => {
  s = await startStack('telemetry-export');
  httpBase = s.endpoints.questdb_http;
  // Two nodes × two codecs × three days; every third run failed.
  for (let day = 0; day < 3; day++) {
    for (const node of ['enc-1', 'enc-2']) {
      for (const codec of ['h264', 'av1']) {
        const i = runs.length;
        runs.push({
          ts: T0 + day * DAY + i * 1000, node, job_id: `job-${i}`, codec, encoder: codec === 'h264' ? 'libx264' : 'libsvtav1', preset: 'fast',
          status: i % 3 === 2 ? 'failed' : 'succeeded', rc_mode: 'crf', crf: 20 + i, width: 1280, height: 720, fps: 30, passes: 1,
          schema_json: JSON.stringify({ output: { codec, crf: 20 + i } }), hw_cores: 8, cores_granted: 2, memory_gb_granted: 1.5,
          pred_cpu_cores: 1.8, cpu_cores: 1.5 + i / 10, memory_gb: 0.3, duration_s: 4.2, output_bytes: 123_456 + i, pinned: true,
          samples: 5, stayed_on_cores: true, si_mean: 40.5, vmaf: i % 3 === 2 ? undefined : 93.1, error: i % 3 === 2 ? 'ffmpeg exited 1: "bad, input"' : undefined,
        });
      }
    }
  }
  // The table as the previous version created it: the sink must add what is missing.
  await questdbExec(httpBase, `CREATE TABLE encode_runs (ts TIMESTAMP, node SYMBOL, job_id SYMBOL, codec SYMBOL, status SYMBOL, width LONG, cpu_cores DOUBLE, pinned BOOLEAN, error STRING)
    TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, job_id)`);
  const sink = new QuestDbTelemetrySink(httpBase, path.join(s.dir, 'spool'), s.log);
  for (const r of runs) await sink.recordRun(r);
  await sink.flush();
  await sink.close();
  await walApplied(httpBase);
});
test.after(async () => { await s?.down(); });

test('an encode_runs table from the previous version gains every new column', async () => {
  const have = (await questdbQuery(httpBase, `SELECT "column", type FROM table_columns('encode_runs')`)).map((r) => `${r.column} ${r.type}`);
  for (const [name, type] of Object.entries(RUNS.columns)) assert.ok(have.some((h) => h.startsWith(`${name} `)), `${name} ${type} missing`);
  assert.ok(have.includes('gpu_model SYMBOL') && have.includes('vmaf DOUBLE') && have.includes('schema_json VARCHAR'), have.join(', '));
});

const ids = (rows: { job_id: string }[]) => rows.map((r) => r.job_id);
const expected = (keep: (r: RunRecord) => boolean) => runs.filter(keep).map((r) => r.job_id);

test('every run comes back, oldest first, with its settings, prediction and actuals as written', async () => {
  const all = await exportTrainingRuns({ httpBase });
  assert.equal(ids(all), runs.map((r) => r.job_id));
  const [a, w] = [all[4], runs[4]];
  assert.is(a.ts, new Date(w.ts).toISOString().replace('Z', '000Z'));
  assert.equal(
    { node: a.node, codec: a.codec, encoder: a.encoder, status: a.status, crf: a.crf, width: a.width, cores_granted: a.cores_granted, pred_cpu_cores: a.pred_cpu_cores, cpu_cores: a.cpu_cores, output_bytes: a.output_bytes, pinned: a.pinned, stayed_on_cores: a.stayed_on_cores, vmaf: a.vmaf },
    { node: w.node, codec: w.codec, encoder: w.encoder, status: w.status, crf: w.crf, width: w.width, cores_granted: w.cores_granted, pred_cpu_cores: w.pred_cpu_cores, cpu_cores: w.cpu_cores, output_bytes: w.output_bytes, pinned: true, stayed_on_cores: true, vmaf: w.vmaf },
  );
  assert.equal(JSON.parse(a.schema_json!), JSON.parse(w.schema_json!));
  assert.is(a.gpu_model, null, 'what a run did not record is null');
  assert.is(all[2].error, runs[2].error);
});

test('the export is filtered by time window, node, codec and status', async () => {
  const from = T0 + DAY, to = T0 + 2 * DAY;
  assert.equal(ids(await exportTrainingRuns({ httpBase, from: new Date(from).toISOString(), to })), expected((r) => r.ts >= from && r.ts < to));
  assert.equal(ids(await exportTrainingRuns({ httpBase, node: 'enc-2' })), expected((r) => r.node === 'enc-2'));
  assert.equal(ids(await exportTrainingRuns({ httpBase, node: 'enc-1', codec: 'av1', from })), expected((r) => r.node === 'enc-1' && r.codec === 'av1' && r.ts >= from));
  assert.equal(ids(await exportTrainingRuns({ httpBase, status: 'failed' })), expected((r) => r.status === 'failed'));
  assert.equal(await exportTrainingRuns({ httpBase, node: 'enc-3' }), []);
});

test('a filter that is not a plain value is refused without reaching QuestDB', async () => {
  const e = await exportTrainingRuns({ httpBase, node: "enc-1' OR '1'='1" }).catch((x: Error) => x);
  assert.instance(e, QueryParamError);
});

test('the CSV holds a header and one record per exported run', async () => {
  const rows = await exportTrainingRuns({ httpBase, codec: 'h264' });
  const csv = trainingRunsCsv(rows);
  const records = csv.trimEnd().split('\r\n');
  assert.is(records[0], TRAINING_COLUMNS.join(','));
  assert.is(records.length, 1 + expected((r) => r.codec === 'h264').length);
  assert.ok(records.slice(1).every((l, i) => l.startsWith(`${rows[i].ts},${rows[i].node},${rows[i].job_id},h264,`)));
});

test.run();
