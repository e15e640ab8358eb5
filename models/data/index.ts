/**
 * Training data: finished runs read back from QuestDB with their settings, prediction and
 * actuals (written by node-agent/telemetry; `runsToRows` labels them), and users' own CSV/TSV
 * logs read through a mapping file (`parseMapping`, `readMappedRows`). Filters become SQL only
 * as validated literals.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { QueryParamError, questdbQuery, sqlSymbol, sqlTimestamp } from './questdb.js';
import { parseDelimited } from './delimited.js';

export * from './delimited.js';
export * from './mapping.js';
export * from './rows.js';

export { questdbExec, questdbQuery, sqlSymbol, sqlTimestamp, QueryParamError, type QuestDbResult } from './questdb.js';

/** Table of one row per run; the node agent writes it, training reads it. */
export const RUNS_TABLE = 'encode_runs';

/**
 * How a run ended: `succeeded`, `failed` (ffmpeg or the quality pass failed), `cancelled`, or
 * `stopped`: a live channel (an actor) stopped on request. Training learns from `succeeded`
 * batch encodes only; a live run's duration is how long it was left on, not what it needed.
 */
export type RunStatus = 'succeeded' | 'failed' | 'cancelled' | 'stopped';
export const RUN_STATUSES: readonly RunStatus[] = ['succeeded', 'failed', 'cancelled', 'stopped'];

/** One run as training sees it. Numbers are null where the run did not record them. */
export interface TrainingRun {
  /** Start of the run, ISO-8601 UTC. */
  ts: string;
  node: string;
  job_id: string;
  codec: string;
  encoder: string | null;
  preset: string | null;
  status: RunStatus;
  rc_mode: string | null;
  source: string | null;
  cpu_model: string | null;
  gpu_model: string | null;
  model_version: string | null;
  /** The validated EncodingSchema as JSON (models/features.ts encodes it). */
  schema_json: string | null;
  width: number | null;
  height: number | null;
  fps: number | null;
  input_duration_s: number | null;
  crf: number | null;
  bitrate_kbps: number | null;
  passes: number | null;
  total_frames: number | null;
  hw_cores: number | null;
  cores_granted: number | null;
  gpus_granted: number | null;
  memory_gb_granted: number | null;
  attempt: number | null;
  si_mean: number | null;
  si_max: number | null;
  ti_mean: number | null;
  ti_max: number | null;
  pred_cpu_cores: number | null;
  pred_memory_gb: number | null;
  pred_bandwidth_mbps: number | null;
  pred_duration_s: number | null;
  pred_gpu_percent: number | null;
  cpu_cores: number | null;
  memory_gb: number | null;
  bandwidth_mbps: number | null;
  duration_s: number | null;
  gpu_percent: number | null;
  output_bytes: number | null;
  frames: number | null;
  psnr_db: number | null;
  ssim: number | null;
  vmaf: number | null;
  pinned: boolean;
  samples: number | null;
  cpu_cores_mean: number | null;
  cpu_cores_peak: number | null;
  memory_gb_peak: number | null;
  bandwidth_mbps_mean: number | null;
  bandwidth_mbps_peak: number | null;
  gpu_percent_mean: number | null;
  stayed_on_cores: boolean;
  error: string | null;
}

/** Column order of exports and of the CSV. */
export const TRAINING_COLUMNS = [
  'ts', 'node', 'job_id', 'codec', 'encoder', 'preset', 'status', 'rc_mode', 'source', 'cpu_model', 'gpu_model', 'model_version', 'schema_json',
  'width', 'height', 'fps', 'input_duration_s', 'crf', 'bitrate_kbps', 'passes', 'total_frames',
  'hw_cores', 'cores_granted', 'gpus_granted', 'memory_gb_granted', 'attempt', 'si_mean', 'si_max', 'ti_mean', 'ti_max',
  'pred_cpu_cores', 'pred_memory_gb', 'pred_bandwidth_mbps', 'pred_duration_s', 'pred_gpu_percent',
  'cpu_cores', 'memory_gb', 'bandwidth_mbps', 'duration_s', 'gpu_percent', 'output_bytes', 'frames', 'psnr_db', 'ssim', 'vmaf', 'pinned',
  'samples', 'cpu_cores_mean', 'cpu_cores_peak', 'memory_gb_peak', 'bandwidth_mbps_mean', 'bandwidth_mbps_peak', 'gpu_percent_mean', 'stayed_on_cores', 'error',
] as const satisfies readonly (keyof TrainingRun)[];

export interface TrainingQuery {
  /** QuestDB REST base, e.g. http://127.0.0.1:9000. */
  httpBase: string;
  /** Runs that started at or after `from` and before `to`. */
  from?: Date | number | string;
  to?: Date | number | string;
  node?: string;
  codec?: string;
  status?: RunStatus;
}

/** The SELECT behind exportTrainingRuns; every filter value validated (QueryParamError otherwise). */
export function trainingRunsSql(q: Omit<TrainingQuery, 'httpBase'>): string {
  const where: string[] = [];
  if (q.from !== undefined) where.push(`ts >= ${sqlTimestamp('from', q.from)}`);
  if (q.to !== undefined) where.push(`ts < ${sqlTimestamp('to', q.to)}`);
  if (q.node !== undefined) where.push(`node = ${sqlSymbol('node', q.node)}`);
  if (q.codec !== undefined) where.push(`codec = ${sqlSymbol('codec', q.codec)}`);
  if (q.status !== undefined) {
    if (!RUN_STATUSES.includes(q.status)) throw new QueryParamError('status', `${JSON.stringify(q.status)} is not one of ${RUN_STATUSES.join(', ')}`);
    where.push(`status = '${q.status}'`);
  }
  return `SELECT ${TRAINING_COLUMNS.join(', ')} FROM ${RUNS_TABLE}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY ts, job_id`;
}

/** Runs matching the filters, oldest first; none before the first run created the table. */
export async function exportTrainingRuns(q: TrainingQuery): Promise<TrainingRun[]> {
  try {
    // A long window is many rows: allow it time a 10 s status query would not get.
    return (await questdbQuery(q.httpBase, trainingRunsSql(q), 300_000)) as unknown as TrainingRun[];
  } catch (e) {
    if (/table does not exist/.test((e as Error).message)) return [];
    throw e;
  }
}

/** RFC 4180 CSV with a header row; null is an empty field. */
export function trainingRunsCsv(rows: readonly TrainingRun[]): string {
  const field = (v: unknown) => {
    const s = v === null || v === undefined ? '' : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [TRAINING_COLUMNS.join(','), ...rows.map((r) => TRAINING_COLUMNS.map((c) => field(r[c])).join(','))].join('\r\n') + '\r\n';
}

/** Columns of the export that are text or true/false; all others are numbers. */
const TEXT_COLUMNS = new Set(['ts', 'node', 'job_id', 'codec', 'encoder', 'preset', 'status', 'rc_mode', 'source', 'cpu_model', 'gpu_model', 'model_version', 'schema_json', 'error']);
const BOOLEAN_COLUMNS = new Set(['pinned', 'stayed_on_cores']);

/** Runs from a CSV `trainingRunsCsv` wrote, typed as read from QuestDB; undefined when the header is another. */
export function trainingRunsFromCsv(text: string): TrainingRun[] | undefined {
  const t = parseDelimited(text, { delimiter: ',' });
  if (!TRAINING_COLUMNS.every((c) => t.header.includes(c))) return undefined;
  return t.records.map(({ fields }) => Object.fromEntries(t.header.map((c, i) => {
    const v = fields[i] ?? '';
    if (TEXT_COLUMNS.has(c)) return [c, v === '' ? null : v];
    if (BOOLEAN_COLUMNS.has(c)) return [c, v === 'true'];
    return [c, v === '' ? null : Number(v)];
  })) as unknown as TrainingRun);
}

/** Where the shipped model's training encodes are kept: one `calibration-runs-DATE.csv` per recording (models/scripts/calibration-data.sh). */
export const DEFAULT_DATA_DIR = fileURLToPath(new URL('../../../models/default/', import.meta.url));

/** The shipped model's training encodes: every calibration export in models/default, oldest first. */
export function defaultCalibrationRuns(dir = DEFAULT_DATA_DIR): { files: string[]; runs: TrainingRun[] } {
  const files = readdirSync(dir).filter((f) => /^calibration-runs-\d{8}\.csv$/.test(f)).sort().map((f) => path.join(dir, f));
  const runs = files.flatMap((f) => {
    const rs = trainingRunsFromCsv(readFileSync(f, 'utf8'));
    if (!rs) throw new Error(`${f} is not a training export`);
    return rs;
  });
  return { files, runs };
}
