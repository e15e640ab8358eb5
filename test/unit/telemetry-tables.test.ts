/** The telemetry tables' DDL, how a sample becomes rows, and the ILP each row is sent as. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CORE_SAMPLES, createTableSql, encodeRow, GPU_SAMPLES, RUNS, SAMPLES, sampleRows, TABLES, TelemetryRowError, type TableRow,
} from '../../node-agent/telemetry/index.js';
import { syntheticSample } from '../helpers/telemetry.js';

const T0 = Date.UTC(2026, 0, 1);
const ctx = { node: 'enc-1', codec: 'hevc' };

test('a sample becomes one encode_samples row, one row per reserved core and one per GPU', () => {
  const s = syntheticSample('job-1', T0, 5, 3);
  s.gpus = [
    { gpu_id: 0, util_percent: 40, memory_used_gb: 1, encoder_sessions: 1, encoder_util_percent: 30 },
    { gpu_id: 1, util_percent: 60, memory_used_gb: 2, encoder_sessions: 2, encoder_util_percent: 50 },
  ];
  const rows = sampleRows(s, ctx);
  assert.equal(rows.map((r) => r.table.name).sort(), ['encode_core_samples', 'encode_core_samples', 'encode_core_samples', 'encode_gpu_samples', 'encode_gpu_samples', 'encode_samples']);
  assert.ok(rows.every((r) => r.row.ts === T0 + 5 && r.row.job_id === 'job-1' && r.row.node === 'enc-1'));
  const main = rows.find((r) => r.table === SAMPLES)!.row as Record<string, unknown>;
  assert.is(main.codec, 'hevc');
  assert.is(main.cpu_cores, s.cpu_cores);
  assert.is(main.gpus, 2);
  assert.is(main.gpu_util_percent_mean, 50);
  assert.is(main.gpu_memory_used_gb, 3);
  assert.is(main.gpu_encoder_sessions, 3);
  const busy = Object.values(s.core_busy_percent);
  assert.ok(Math.abs((main.core_busy_percent_mean as number) - busy.reduce((a, b) => a + b) / 3) < 1e-9);
  const cores = rows.filter((r) => r.table === CORE_SAMPLES).map((r) => r.row as Record<string, unknown>);
  assert.equal(cores.map((r) => [r.core, r.busy_percent]), Object.entries(s.core_busy_percent).map(([c, b]) => [Number(c), b]));
  assert.equal(rows.filter((r) => r.table === GPU_SAMPLES).map((r) => (r.row as Record<string, unknown>).gpu_id), [0, 1]);
});

test('a CPU encode leaves the GPU columns out rather than storing zeros', () => {
  const line = encodeRow(sampleRows(syntheticSample('job-1', T0, 0), ctx).find((r) => r.table === SAMPLES)!);
  assert.not.match(line, /gpu/);
});

test('each value is sent as its column type, and non-finite numbers are left out', () => {
  const line = encodeRow({ table: RUNS, row: {
    ts: T0, node: 'n', job_id: 'j', codec: 'h264', status: 'succeeded', width: 1280.4, crf: 23, psnr_db: NaN, ssim: Infinity, pinned: true, stayed_on_cores: false,
  } });
  assert.is(line, `encode_runs,node=n,job_id=j,codec=h264,status=succeeded width=1280i,crf=23,pinned=t,stayed_on_cores=f ${T0}000000\n`);
});

test('symbols and strings are escaped, and no value can split a row across lines', () => {
  const line = encodeRow({ table: RUNS, row: {
    ts: T0, node: 'a b,c=d\\e\nf', job_id: 'j', codec: 'h264', status: 'failed', error: 'ffmpeg said "no"\nC:\\path\r\n',
  } });
  assert.is(line.indexOf('\n'), line.length - 1, 'exactly one newline, at the end');
  assert.match(line, /^encode_runs,node=a\\ b\\,c\\=d\\\\e\\ f,/);
  assert.match(line, / error="ffmpeg said \\"no\\" C:\\\\path  " /);
});

test('a row without its key columns or with an impossible time is refused before it is spooled', () => {
  const base = { ts: T0, node: 'n', job_id: 'j', codec: 'h264', status: 'succeeded' as const };
  assert.throws(() => encodeRow({ table: RUNS, row: { ...base, job_id: '' } }), (e: Error) => e instanceof TelemetryRowError && /job_id/.test(e.message));
  assert.throws(() => encodeRow({ table: CORE_SAMPLES, row: { ts: T0, node: 'n', job_id: 'j', core: NaN, busy_percent: 1 } } as TableRow), /core/);
  assert.throws(() => encodeRow({ table: RUNS, row: { ...base, ts: -1 } }), /ts/);
  assert.throws(() => encodeRow({ table: RUNS, row: { ...base, ts: NaN } }), /ts/);
});

test('every table has a designated timestamp, day partitions, the WAL and dedup on ts plus its keys', () => {
  const ddl = Object.fromEntries(TABLES.map((t) => [t.name, createTableSql(t)]));
  for (const sql of Object.values(ddl)) assert.match(sql, /\(ts TIMESTAMP, .*\) TIMESTAMP\(ts\) PARTITION BY DAY WAL DEDUP UPSERT KEYS\(ts, job_id/);
  assert.match(ddl.encode_runs, /UPSERT KEYS\(ts, job_id\)$/);
  assert.match(ddl.encode_core_samples, /UPSERT KEYS\(ts, job_id, core\)$/);
  assert.match(ddl.encode_gpu_samples, /UPSERT KEYS\(ts, job_id, gpu_id\)$/);
  assert.match(ddl.encode_samples, /node SYMBOL, job_id SYMBOL, codec SYMBOL/);
  assert.match(ddl.encode_runs, /gpu_model SYMBOL.*vmaf DOUBLE.*stayed_on_cores BOOLEAN/);
});

test.run();
