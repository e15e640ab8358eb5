/**
 * Telemetry into QuestDB with nothing lost: every row is appended to a local spool (synced to
 * disk) before `recordRun` / `recordSamples` resolve, and a background flusher posts the spool
 * to QuestDB (ILP over HTTP) in order, deleting a segment only once QuestDB accepted all of it.
 * While QuestDB is unreachable, recording still succeeds and the flusher retries with backoff.
 * Rows sent twice (a segment replayed after a crash) are stored once: every table
 * deduplicates on its timestamp and keys (tables.ts).
 */
import http from 'node:http';
import type { EncodeSample } from '../../shared/index.js';
import { encodeRow, encodeRows } from './ilp.js';
import { RejectedLineError, Spool, type SpoolOptions } from './spool.js';
import { ensureTables, RUNS, sampleRows, type RunRecord, type SampleContext, type TableRow } from './tables.js';

export { questdbExec, questdbQuery, RUNS_TABLE } from '../../models/data/index.js';
export { TABLES, RUNS, SAMPLES, CORE_SAMPLES, GPU_SAMPLES, sampleRows, ensureTables, createTableSql } from './tables.js';
export type { RunRecord, SampleRow, CoreSampleRow, GpuSampleRow, SampleContext, TableRow, TableSpec, ColumnType } from './tables.js';
export { encodeRow, encodeRows, TelemetryRowError } from './ilp.js';
export { Spool, RejectedLineError, SpoolLockedError, segmentName, type SpoolOptions } from './spool.js';

/** Where telemetry goes. `record*` resolve once the rows are durable locally, not in the database. */
export interface TelemetrySink {
  /** One row per finished (or failed) run. */
  recordRun(run: RunRecord): Promise<void>;
  /** Samples of one running encode (see sampleRows for the rows each becomes). */
  recordSamples(samples: readonly EncodeSample[], ctx: SampleContext): Promise<void>;
  /** Rows recorded but not yet accepted by the database. */
  pending(): number;
  /** Delivers every row recorded so far now; rejects (the rows stay spooled) if the database does not take them. */
  flush(): Promise<void>;
  /** Finishes recording, tries one last delivery and stops retrying; what is left stays spooled for the next start. */
  close(): Promise<void>;
}

export interface SinkOptions extends Omit<SpoolOptions, 'log'> {
  /** Longest wait between delivery attempts while QuestDB is unreachable (default 5 s; the first wait is 250 ms). */
  maxBackoffMs?: number;
}

const FIRST_BACKOFF_MS = 250;

export class QuestDbTelemetrySink implements TelemetrySink {
  private readonly spool: Spool;
  private readonly maxBackoffMs: number;
  private backoffMs = FIRST_BACKOFF_MS;
  private retryTimer?: NodeJS.Timeout;
  private draining?: Promise<void>;
  private tablesReady = false;
  private closed = false;
  /** When the current outage began; undefined while QuestDB takes rows. */
  private failingSince?: number;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  /** Opens the spool in `spoolDir` and starts delivering what an earlier process left there. */
  constructor(private readonly httpBase: string, spoolDir: string, private readonly log: (m: string) => void = () => undefined, o: SinkOptions = {}) {
    this.spool = new Spool(spoolDir, { ...o, log });
    this.maxBackoffMs = o.maxBackoffMs ?? 5000;
    this.schedule();
  }

  async recordRun(run: RunRecord): Promise<void> {
    await this.append(encodeRow({ table: RUNS, row: run }));
  }

  async recordSamples(samples: readonly EncodeSample[], ctx: SampleContext): Promise<void> {
    const rows: TableRow[] = [];
    for (const s of samples) sampleRows(s, ctx, rows);
    await this.append(encodeRows(rows));
  }

  pending(): number {
    return this.spool.pending();
  }

  async flush(): Promise<void> {
    await this.draining?.catch(() => undefined);
    // An explicit flush does not wait out the backoff.
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.drain();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.spool.close();
    await this.draining?.catch(() => undefined);
    await this.drain().catch(() => undefined);
    this.agent.destroy();
  }

  private async append(lines: string): Promise<void> {
    await this.spool.append(lines);
    this.schedule();
  }

  /** Starts a drain unless one runs, a retry is already timed, or nothing is undelivered. */
  private schedule(): void {
    if (this.closed || this.draining || this.retryTimer || !this.spool.hasUndelivered()) return;
    this.drain().catch(() => undefined);
  }

  /** One drain at a time; on success the next one starts if rows came in meanwhile, on failure one is timed with backoff. */
  private drain(): Promise<void> {
    this.draining ??= (async () => {
      if (!this.spool.hasUndelivered()) return;
      if (!this.tablesReady) {
        await ensureTables(this.httpBase);
        this.tablesReady = true;
      }
      await this.spool.drain(this.post);
    })().then(
      () => {
        this.draining = undefined;
        this.backoffMs = FIRST_BACKOFF_MS;
        if (this.failingSince !== undefined) this.log(`telemetry: QuestDB takes rows again after ${((Date.now() - this.failingSince) / 1000).toFixed(1)} s`);
        this.failingSince = undefined;
        this.schedule();
      },
      (e: Error) => {
        this.draining = undefined;
        // One line per outage (and at close), not one per retry.
        if (this.failingSince === undefined || this.closed) {
          this.log(`telemetry: QuestDB does not take rows (${e.message}); ${this.spool.pending()} row(s) kept in ${this.spool.dir}${this.closed ? ' for the next start' : ', retrying with backoff'}`);
        }
        this.failingSince ??= Date.now();
        // A QuestDB that comes back may have lost its tables; ILP would recreate them without dedup.
        this.tablesReady = false;
        if (!this.closed && !this.retryTimer) {
          this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.schedule(); }, this.backoffMs).unref();
          this.backoffMs = Math.min(this.backoffMs * 2, this.maxBackoffMs);
        }
        throw e;
      },
    );
    return this.draining;
  }

  /**
   * Posts ILP lines to `/write`. A 400 naming a line means QuestDB will never take that row:
   * it is set aside (RejectedLineError) so the rows behind it still arrive. Anything else
   * (refused connection, timeout, 5xx) is an outage and is retried later.
   */
  private readonly post = async (lines: Buffer): Promise<void> => {
    const { status, text } = await postIlp(this.agent, `${this.httpBase}/write?precision=n`, lines);
    if (status === 204) return;
    let err: { message?: string; line?: number } = {};
    try { if (status === 400) err = JSON.parse(text); } catch { /* not QuestDB's JSON error: an outage like any other */ }
    if (typeof err.line === 'number' && err.line > 0) throw new RejectedLineError(err.line - 1, err.message ?? text);
    throw new Error(`QuestDB /write answered ${status}: ${text.slice(0, 500)}`);
  };
}

/**
 * One POST on a kept-alive connection. node:http rather than fetch: fetch copies every body
 * once more, which at 60 MB/s is a tenth of the sink's CPU.
 */
function postIlp(agent: http.Agent, url: string, body: Buffer): Promise<{ status: number; text: string }> {
  const timeoutMs = 10_000 + (body.length >> 10); // 10 s plus 1 s per MiB: a hung QuestDB must not hold close() long
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, timeout: timeoutMs, headers: { 'content-length': body.length } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`QuestDB did not answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
