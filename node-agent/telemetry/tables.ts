/**
 * The telemetry tables: each one's columns are declared once here, and its DDL, its typed row
 * and its ILP encoding (ilp.ts) all follow from that declaration.
 *
 * Every table has a designated timestamp `ts`, is partitioned by day, written through the WAL
 * and deduplicated on `ts` plus its key columns, so a row sent twice (a spool replayed after a
 * crash) is stored once. node / job_id / codec are SYMBOLs, so `SAMPLE BY` and `WHERE job_id =`
 * stay cheap.
 */
import type { EncodeSample } from '../../shared/index.js';
import { questdbExec, RUNS_TABLE, type RunStatus } from '../../models/data/index.js';

/** How a column is stored; `varchar` values have newlines turned into spaces (one row is one spool line). */
export type ColumnType = 'symbol' | 'long' | 'double' | 'boolean' | 'varchar';
type Columns = Readonly<Record<string, ColumnType>>;

const SQL_TYPE: Record<ColumnType, string> = { symbol: 'SYMBOL', long: 'LONG', double: 'DOUBLE', boolean: 'BOOLEAN', varchar: 'VARCHAR' };

export interface TableSpec<C extends Columns = Columns> {
  name: string;
  /** Every column but `ts`. */
  columns: C;
  /** Deduplication keys besides `ts`. */
  keys: readonly string[];
}

const table = <C extends Columns>(name: string, columns: C, keys: readonly (keyof C & string)[]): TableSpec<C> => ({ name, columns, keys });

type Value<T extends ColumnType> = T extends 'symbol' | 'varchar' ? string : T extends 'boolean' ? boolean : number;
/**
 * One row: `ts` (epoch ms) and the key columns are required; any other column may be left out,
 * as may a non-finite number — both are stored as NULL (false for BOOLEAN).
 */
type Row<C extends Columns, K extends keyof C> = { ts: number } & { -readonly [P in keyof C]?: Value<C[P]> } & { -readonly [P in K]: Value<C[P]> };

const RUN_COLUMNS = {
  /** Node id of the agent that ran the encode. */
  node: 'symbol',
  job_id: 'symbol',
  codec: 'symbol',
  encoder: 'symbol',
  preset: 'symbol',
  status: 'symbol',
  /** `crf` or `bitrate`. */
  rc_mode: 'symbol',
  /** Synthetic source name (testsrc2, …) or `file`. */
  source: 'symbol',
  cpu_model: 'symbol',
  /** Model of the first granted GPU; absent on CPU encodes. */
  gpu_model: 'symbol',
  model_version: 'symbol',
  /** Output resolution. */
  width: 'long',
  height: 'long',
  fps: 'double',
  input_duration_s: 'double',
  crf: 'double',
  bitrate_kbps: 'double',
  passes: 'long',
  /** Frames the schema asks for (fps × duration), when known. */
  total_frames: 'long',
  /** The validated EncodingSchema as JSON, so training can recompute any feature. */
  schema_json: 'varchar',
  /** Cores the node has (its grant), next to the cores this encode was granted. */
  hw_cores: 'long',
  cores_granted: 'long',
  gpus_granted: 'long',
  memory_gb_granted: 'double',
  attempt: 'long',
  /** Content complexity of the input (shared/telemetry.ts ContentComplexity). */
  si_mean: 'double',
  si_max: 'double',
  ti_mean: 'double',
  ti_max: 'double',
  /** Prediction the reservation was made from (expected values). */
  pred_cpu_cores: 'double',
  pred_memory_gb: 'double',
  pred_bandwidth_mbps: 'double',
  pred_duration_s: 'double',
  pred_gpu_percent: 'double',
  /** Measured usage (EncodeResult.actual). */
  cpu_cores: 'double',
  memory_gb: 'double',
  bandwidth_mbps: 'double',
  duration_s: 'double',
  gpu_percent: 'double',
  output_bytes: 'long',
  frames: 'long',
  psnr_db: 'double',
  ssim: 'double',
  vmaf: 'double',
  pinned: 'boolean',
  /** Summary of the run's samples (shared/telemetry.ts UsageSummary). */
  samples: 'long',
  cpu_cores_mean: 'double',
  cpu_cores_peak: 'double',
  memory_gb_peak: 'double',
  bandwidth_mbps_mean: 'double',
  bandwidth_mbps_peak: 'double',
  gpu_percent_mean: 'double',
  stayed_on_cores: 'boolean',
  error: 'varchar',
} as const satisfies Columns;

const SAMPLE_COLUMNS = {
  node: 'symbol',
  job_id: 'symbol',
  codec: 'symbol',
  pass: 'long',
  cpu_cores: 'double',
  /** Mean busy share of the reserved cores (per core: encode_core_samples). */
  core_busy_percent_mean: 'double',
  on_reserved_cores: 'boolean',
  rss_gb: 'double',
  peak_rss_gb: 'double',
  read_bytes: 'long',
  write_bytes: 'long',
  disk_read_bytes: 'long',
  disk_write_bytes: 'long',
  net_rx_bytes: 'long',
  net_tx_bytes: 'long',
  bandwidth_mbps: 'double',
  frame: 'long',
  fps: 'double',
  speed: 'double',
  out_bytes: 'long',
  /** Over the granted GPUs (per GPU: encode_gpu_samples); absent on CPU encodes. */
  gpus: 'long',
  gpu_util_percent_mean: 'double',
  gpu_memory_used_gb: 'double',
  gpu_encoder_sessions: 'long',
  gpu_encoder_util_percent_mean: 'double',
} as const satisfies Columns;

const CORE_SAMPLE_COLUMNS = { node: 'symbol', job_id: 'symbol', core: 'long', busy_percent: 'double' } as const satisfies Columns;

const GPU_SAMPLE_COLUMNS = {
  node: 'symbol',
  job_id: 'symbol',
  gpu_id: 'long',
  util_percent: 'double',
  memory_used_gb: 'double',
  encoder_sessions: 'long',
  encoder_util_percent: 'double',
} as const satisfies Columns;

/** One row per finished (or failed) encode: its settings, prediction and what it actually used. */
export const RUNS = table(RUNS_TABLE, RUN_COLUMNS, ['job_id']);
/** One row per EncodeSample (every `sample_interval_ms` while an encode runs). */
export const SAMPLES = table('encode_samples', SAMPLE_COLUMNS, ['job_id']);
/** One row per reserved core per sample. */
export const CORE_SAMPLES = table('encode_core_samples', CORE_SAMPLE_COLUMNS, ['job_id', 'core']);
/** One row per granted GPU per sample. */
export const GPU_SAMPLES = table('encode_gpu_samples', GPU_SAMPLE_COLUMNS, ['job_id', 'gpu_id']);

export const TABLES = [RUNS, SAMPLES, CORE_SAMPLES, GPU_SAMPLES] as const;

/** What the agent fills for each run (`ts` = start of the run). */
export type RunRecord = Row<typeof RUN_COLUMNS, 'node' | 'job_id' | 'codec'> & { status: RunStatus };
export type SampleRow = Row<typeof SAMPLE_COLUMNS, 'node' | 'job_id'>;
export type CoreSampleRow = Row<typeof CORE_SAMPLE_COLUMNS, 'node' | 'job_id' | 'core' | 'busy_percent'>;
export type GpuSampleRow = Row<typeof GPU_SAMPLE_COLUMNS, 'node' | 'job_id' | 'gpu_id'>;

/** A row and the table it belongs to. */
export type TableRow =
  | { table: typeof RUNS; row: RunRecord }
  | { table: typeof SAMPLES; row: SampleRow }
  | { table: typeof CORE_SAMPLES; row: CoreSampleRow }
  | { table: typeof GPU_SAMPLES; row: GpuSampleRow };

/** Who produced a sample: the sample itself only knows its job. */
export interface SampleContext {
  node: string;
  codec: string;
}

/**
 * The rows one EncodeSample becomes (appended to `out`): one in encode_samples, one per reserved
 * core, one per GPU. Rows are plain literals with every column present and no spreads or intermediate arrays:
 * V8 then keeps them as fast objects and the GC has less to do, which at 200k rows/s is a
 * good part of the sink's CPU.
 */
export function sampleRows(s: EncodeSample, ctx: SampleContext, out: TableRow[] = []): TableRow[] {
  const { ts_ms: ts, job_id, gpus } = s;
  const node = ctx.node;
  let busySum = 0, cores = 0;
  for (const core in s.core_busy_percent) {
    const busy_percent = s.core_busy_percent[core];
    busySum += busy_percent;
    cores++;
    out.push({ table: CORE_SAMPLES, row: { ts, node, job_id, core: Number(core), busy_percent } });
  }
  let util = 0, mem = 0, sessions = 0, encUtil = 0;
  for (const g of gpus) {
    util += g.util_percent;
    mem += g.memory_used_gb;
    sessions += g.encoder_sessions;
    encUtil += g.encoder_util_percent;
    out.push({ table: GPU_SAMPLES, row: {
      ts, node, job_id, gpu_id: g.gpu_id, util_percent: g.util_percent, memory_used_gb: g.memory_used_gb,
      encoder_sessions: g.encoder_sessions, encoder_util_percent: g.encoder_util_percent,
    } });
  }
  const n = gpus.length || undefined; // no GPU: the GPU columns stay NULL
  out.push({
    table: SAMPLES,
    row: {
      ts, node, job_id, codec: ctx.codec, pass: s.pass, cpu_cores: s.cpu_cores,
      core_busy_percent_mean: cores ? busySum / cores : undefined, on_reserved_cores: s.on_reserved_cores,
      rss_gb: s.rss_gb, peak_rss_gb: s.peak_rss_gb, read_bytes: s.read_bytes, write_bytes: s.write_bytes,
      disk_read_bytes: s.disk_read_bytes, disk_write_bytes: s.disk_write_bytes, net_rx_bytes: s.net_rx_bytes, net_tx_bytes: s.net_tx_bytes,
      bandwidth_mbps: s.bandwidth_mbps, frame: s.frame, fps: s.fps, speed: s.speed, out_bytes: s.out_bytes,
      gpus: n, gpu_util_percent_mean: n && util / n, gpu_memory_used_gb: n && mem,
      gpu_encoder_sessions: n && sessions, gpu_encoder_util_percent_mean: n && encUtil / n,
    },
  });
  return out;
}

/** CREATE TABLE for a fresh database. */
export function createTableSql(t: TableSpec): string {
  const cols = Object.entries(t.columns).map(([name, type]) => `${name} ${SQL_TYPE[type]}`);
  return `CREATE TABLE IF NOT EXISTS ${t.name} (ts TIMESTAMP, ${cols.join(', ')}) `
    + `TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, ${t.keys.join(', ')})`;
}

/**
 * Creates every table, and adds the columns an older version of a table lacks (encode_runs
 * predates most of its columns). Without this, ILP would create a missing table itself:
 * without deduplication, and with types guessed from the first row.
 */
export async function ensureTables(httpBase: string): Promise<void> {
  for (const t of TABLES) {
    await questdbExec(httpBase, createTableSql(t));
    const have = new Set((await questdbExec(httpBase, `SELECT "column" FROM table_columns('${t.name}')`)).dataset.map((r) => r[0]));
    // One column per statement: WAL tables take no multi-column ALTER. IF NOT EXISTS: another agent may be migrating too.
    for (const [name, type] of Object.entries(t.columns)) {
      if (!have.has(name)) await questdbExec(httpBase, `ALTER TABLE ${t.name} ADD COLUMN IF NOT EXISTS ${name} ${SQL_TYPE[type]}`);
    }
  }
}
