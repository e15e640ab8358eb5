/**
 * Per-run telemetry into QuestDB. Rows are appended to a local spool file first and only then
 * sent (ILP over HTTP), so a QuestDB outage or an agent crash never loses one; the table
 * deduplicates on (ts, job_id), so a row sent twice after a crash is stored once.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import path from 'node:path';
import { Sender } from '@questdb/nodejs-client';

export const RUNS_TABLE = 'encode_runs';

/** One finished (or failed) encode: its settings, prediction and what it actually used. */
export interface RunRow {
  /** Start of the run, epoch ms; with job_id, the row's identity. */
  ts: number;
  symbols: { node: string; job_id: string; codec: string; encoder: string; preset: string; status: string; rc_mode: string; source: string; cpu_model: string; model_version: string };
  /** DOUBLE columns; non-finite values are left out (stored as NULL). */
  floats: Record<string, number>;
  /** LONG columns. */
  ints: Record<string, number>;
  booleans?: Record<string, boolean>;
  strings?: Record<string, string>;
}

const DDL = `CREATE TABLE IF NOT EXISTS ${RUNS_TABLE} (
  ts TIMESTAMP, node SYMBOL, job_id SYMBOL, codec SYMBOL, encoder SYMBOL, preset SYMBOL, status SYMBOL,
  rc_mode SYMBOL, source SYMBOL, cpu_model SYMBOL, model_version SYMBOL,
  width LONG, height LONG, fps DOUBLE, input_duration_s DOUBLE, crf DOUBLE, bitrate_kbps DOUBLE, passes LONG,
  cores_granted LONG, attempt LONG,
  pred_cpu_cores DOUBLE, pred_memory_gb DOUBLE, pred_bandwidth_mbps DOUBLE, pred_duration_s DOUBLE,
  cpu_cores DOUBLE, memory_gb DOUBLE, bandwidth_mbps DOUBLE, duration_s DOUBLE,
  output_bytes LONG, frames LONG, psnr_db DOUBLE, ssim DOUBLE, pinned BOOLEAN, error STRING
) TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, job_id)`;

/** Runs one SQL statement on QuestDB's REST endpoint. */
export async function questdbExec(httpBase: string, sql: string): Promise<{ columns: { name: string; type: string }[]; dataset: unknown[][]; count: number }> {
  const res = await fetch(`${httpBase}/exec?query=${encodeURIComponent(sql)}`, { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { error?: string; columns?: { name: string; type: string }[]; dataset?: unknown[][]; count?: number };
  if (!res.ok || body.error) throw new Error(`QuestDB: ${body.error ?? res.status}`);
  return { columns: body.columns ?? [], dataset: body.dataset ?? [], count: body.count ?? 0 };
}

/** Rows as objects keyed by column name. */
export async function questdbQuery(httpBase: string, sql: string): Promise<Record<string, unknown>[]> {
  const r = await questdbExec(httpBase, sql);
  return r.dataset.map((row) => Object.fromEntries(r.columns.map((c, i) => [c.name, row[i]])));
}

/** Where run telemetry goes. */
export interface TelemetrySink {
  recordRun(row: RunRow): Promise<void>;
  /** Rows written locally but not yet confirmed by the database. */
  pending(): number;
  close(): Promise<void>;
}

export class QuestDbTelemetrySink implements TelemetrySink {
  private readonly spoolFile: string;
  private ready = false;
  private flushing?: Promise<void>;
  private timer: NodeJS.Timeout;

  constructor(private readonly httpBase: string, spoolDir: string, private readonly log: (m: string) => void = () => undefined) {
    mkdirSync(spoolDir, { recursive: true });
    this.spoolFile = path.join(spoolDir, 'runs.jsonl');
    // Replays whatever an earlier process or an outage left behind.
    this.timer = setInterval(() => void this.flush(), 5000);
    this.timer.unref();
  }

  async recordRun(row: RunRow): Promise<void> {
    const fd = openSync(this.spoolFile, 'a');
    try {
      appendFileSync(fd, JSON.stringify(row) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    await this.flush();
  }

  pending(): number {
    return existsSync(this.spoolFile) ? readFileSync(this.spoolFile, 'utf8').split('\n').filter(Boolean).length : 0;
  }

  /** Sends every spooled row; the spool is emptied only once QuestDB has accepted them all. */
  flush(): Promise<void> {
    this.flushing ??= this.sendSpool().finally(() => { this.flushing = undefined; });
    return this.flushing;
  }

  private async sendSpool(): Promise<void> {
    if (!existsSync(this.spoolFile)) return;
    const text = readFileSync(this.spoolFile, 'utf8');
    const rows = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as RunRow);
    if (!rows.length) return;
    let sender: Sender | undefined;
    try {
      if (!this.ready) { await questdbExec(this.httpBase, DDL); this.ready = true; }
      sender = await Sender.fromConfig(`http::addr=${this.httpBase.replace(/^https?:\/\//, '')};auto_flush=off;retry_timeout=2000`);
      for (const r of rows) {
        sender.table(RUNS_TABLE);
        for (const [k, v] of Object.entries(r.symbols)) sender.symbol(k, v || 'unknown');
        for (const [k, v] of Object.entries(r.floats)) if (Number.isFinite(v)) sender.floatColumn(k, v);
        for (const [k, v] of Object.entries(r.ints)) if (Number.isFinite(v)) sender.intColumn(k, Math.round(v));
        for (const [k, v] of Object.entries(r.booleans ?? {})) sender.booleanColumn(k, v);
        for (const [k, v] of Object.entries(r.strings ?? {})) sender.stringColumn(k, v);
        await sender.at(BigInt(r.ts) * 1000n, 'us');
      }
      await sender.flush();
      // Rows appended while we were sending stay in the spool for the next flush.
      const now = readFileSync(this.spoolFile, 'utf8');
      writeFileSync(this.spoolFile, now.slice(text.length));
    } catch (e) {
      this.log(`telemetry: QuestDB unavailable, ${rows.length} row(s) kept in ${this.spoolFile}: ${(e as Error).message}`);
    } finally {
      await sender?.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
