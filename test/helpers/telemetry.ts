/**
 * Telemetry test scaffolding: synthetic encode samples, row counts that see through QuestDB's
 * WAL, and (run as a script) the writer process of the spool crash test:
 *
 *   node dist/test/helpers/telemetry.js SPOOL_DIR QUESTDB_HTTP JOB_ID
 *
 * records batches of WRITER_BATCH samples of JOB_ID until it is killed, printing `durable N`
 * once the first N samples are synced to the spool.
 */
import { fileURLToPath } from 'node:url';
import type { EncodeSample } from '../../shared/index.js';
import { QuestDbTelemetrySink, questdbQuery, type TableSpec } from '../../node-agent/telemetry/index.js';
import { waitFor } from './cluster.js';

/** Sample `i` of a job: its timestamp is `t0 + i` ms, so (ts, job_id) is unique per `i`. */
export function syntheticSample(jobId: string, t0: number, i: number, cores = 2): EncodeSample {
  const core_busy_percent: Record<number, number> = {};
  for (let c = 0; c < cores; c++) core_busy_percent[c] = 50 + ((i * 7 + c * 13) % 50);
  return {
    ts_ms: t0 + i, job_id: jobId, pass: 1, cpu_cores: cores * 0.9 + (i % 10) / 100, core_busy_percent, on_reserved_cores: true,
    rss_gb: 0.25 + (i % 100) / 1000, peak_rss_gb: 0.35, read_bytes: 1_000_000 + i * 4096, write_bytes: 200_000 + i * 1500,
    disk_read_bytes: i * 4096, disk_write_bytes: i * 1500, net_rx_bytes: 0, net_tx_bytes: 0, bandwidth_mbps: 40 + (i % 17),
    gpus: [], frame: i * 25, fps: 25 + (i % 5), speed: 1 + (i % 3) / 10, out_bytes: i * 1500,
  };
}

/** Waits until QuestDB has applied every committed WAL transaction, so counts are final. */
export async function walApplied(http: string, timeoutMs = 60_000): Promise<void> {
  await waitFor('QuestDB to apply its WAL', async () => {
    const [r] = await questdbQuery(http, 'SELECT count() n, sum(suspended::int) suspended FROM wal_tables() WHERE writerTxn < sequencerTxn OR suspended');
    if (Number(r.suspended)) throw new Error('a WAL table is suspended');
    return Number(r.n) === 0;
  }, timeoutMs, 100);
}

/** Rows of a table matching `where`, and how many distinct dedup keys (ts + the table's keys) they hold. */
export async function keyCounts(http: string, t: TableSpec, where: string): Promise<{ rows: number; keys: number }> {
  const [a] = await questdbQuery(http, `SELECT count() n FROM ${t.name} WHERE ${where}`);
  const [b] = await questdbQuery(http, `SELECT count() n FROM (SELECT DISTINCT ts, ${t.keys.join(', ')} FROM ${t.name} WHERE ${where})`);
  return { rows: Number(a.n), keys: Number(b.n) };
}

export const WRITER_SCRIPT = fileURLToPath(import.meta.url);
export const WRITER_CTX = { node: 'crash-node', codec: 'h264' };
export const WRITER_T0 = Date.UTC(2026, 0, 1);
const WRITER_BATCH = 50;

if (process.argv[1] === WRITER_SCRIPT) {
  const [spoolDir, httpBase, jobId] = process.argv.slice(2);
  const sink = new QuestDbTelemetrySink(httpBase, spoolDir);
  for (let n = 0; ; n += WRITER_BATCH) {
    await sink.recordSamples(Array.from({ length: WRITER_BATCH }, (_, k) => syntheticSample(jobId, WRITER_T0, n + k)), WRITER_CTX);
    process.stdout.write(`durable ${n + WRITER_BATCH}\n`);
  }
}
