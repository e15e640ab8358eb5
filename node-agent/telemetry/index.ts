/**
 * Telemetry into QuestDB with nothing lost: every row is appended to a local spool (synced to
 * disk) before `recordRun` / `recordSamples` resolve, and a background flusher posts the spool
 * to QuestDB (ILP over HTTP) in order, deleting a segment only once QuestDB accepted all of it.
 * While QuestDB is unreachable, recording still succeeds and the flusher retries with backoff.
 * Rows sent twice (a segment replayed after a crash) are stored once: every table
 * deduplicates on its timestamp and keys (tables.ts).
 *
 * Linger (`lingerMs`): samples are spooled at once but posted only after up to `lingerMs`, so
 * the samples of every encode running on a node travel in one request instead of one request
 * per sample each; QuestDB's cost is per request (a WAL transaction per table), not per row.
 * A run row is posted at once, in a request after the one holding the samples spooled before
 * it, so a run is never stored ahead of its samples. `flush` and `close` post what lingers.
 */
import http from 'node:http';
import type { EncodeSample } from '../../shared/index.js';
import { encodeRow, encodeRows } from './ilp.js';
import { RejectedLineError, Spool, type SpoolOptions } from './spool.js';
import { ensureTables, RUNS, sampleRows, type RunRecord, type SampleContext, type TableRow } from './tables.js';
import type { Log } from '../../shared/log.js';

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
  /**
   * How long spooled samples may wait before they are posted, so that samples recorded
   * meanwhile (other encodes of the node) join the same request. 0 (the default) posts at
   * once. Run rows, `flush` and `close` never wait.
   */
  lingerMs?: number;
}

/** The node agent's linger: at 1 Hz sampling, one request per second for all its encodes. */
export const AGENT_LINGER_MS = 1000;

const FIRST_BACKOFF_MS = 250;
const NL = 0x0a;
const RUN_LINE = Buffer.from(`${RUNS.name},`);

export class QuestDbTelemetrySink implements TelemetrySink {
  private readonly spool: Spool;
  private readonly maxBackoffMs: number;
  private readonly lingerMs: number;
  private backoffMs = FIRST_BACKOFF_MS;
  private retryTimer?: NodeJS.Timeout;
  /** Set while spooled samples linger; the next drain starts when it fires. */
  private lingerTimer?: NodeJS.Timeout;
  /** Rows wait to be posted that must not linger (a run row, leftovers of an earlier process, a retry). */
  private urgent = true;
  private posted = 0;
  private draining?: Promise<void>;
  private tablesReady = false;
  private closed = false;
  /** When the current outage began; undefined while QuestDB takes rows. */
  private failingSince?: number;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  /** Opens the spool in `spoolDir` and starts delivering what an earlier process left there. */
  constructor(private readonly httpBase: string, spoolDir: string, private readonly log: Log = () => undefined, o: SinkOptions = {}) {
    this.spool = new Spool(spoolDir, { ...o, log });
    this.maxBackoffMs = o.maxBackoffMs ?? 5000;
    this.lingerMs = Math.max(0, o.lingerMs ?? 0);
    this.schedule();
  }

  async recordRun(run: RunRecord): Promise<void> {
    await this.append(encodeRow({ table: RUNS, row: run }), true);
  }

  async recordSamples(samples: readonly EncodeSample[], ctx: SampleContext): Promise<void> {
    const rows: TableRow[] = [];
    for (const s of samples) sampleRows(s, ctx, rows);
    await this.append(encodeRows(rows), false);
  }

  pending(): number {
    return this.spool.pending();
  }

  /** ILP requests QuestDB has accepted since this sink was made. */
  requests(): number {
    return this.posted;
  }

  /**
   * Creates the tables now (best effort) rather than at the first flush: an agent calls it at
   * start, so the one-off DDL round trips (and loading the HTTP client) do not land in the
   * middle of its first encodes. A failure is left for the first flush to retry.
   */
  async prepare(): Promise<void> {
    if (this.tablesReady) return;
    await ensureTables(this.httpBase).then(() => { this.tablesReady = true; }, (e: Error) => this.log(`telemetry: tables not created yet (${e.message}); the first flush tries again`, 'warn'));
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
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    await this.spool.close();
    await this.draining?.catch(() => undefined);
    await this.drain().catch(() => undefined);
    this.agent.destroy();
  }

  /** Spools `lines` (durable when this resolves), then has them posted: at once if `now`, else within the linger. */
  private async append(lines: string, now: boolean): Promise<void> {
    await this.spool.append(lines);
    if (now) this.urgent = true;
    this.schedule();
  }

  /**
   * Starts a drain unless one runs, a retry is already timed, or nothing is undelivered; rows
   * that may linger start the linger instead (once: later rows join the same drain).
   */
  private schedule(): void {
    if (this.closed || this.draining || this.retryTimer) return;
    if (!this.spool.hasUndelivered()) {
      this.urgent = false;
      return;
    }
    if (!this.urgent && this.lingerMs > 0) {
      this.lingerTimer ??= setTimeout(() => { this.lingerTimer = undefined; this.urgent = true; this.schedule(); }, this.lingerMs).unref();
      return;
    }
    this.drain().catch(() => undefined);
  }

  /** One drain at a time; on success the next one starts if rows came in meanwhile, on failure one is timed with backoff. */
  private drain(): Promise<void> {
    if (!this.draining) {
      // This drain takes everything spooled so far, lingering or not.
      clearTimeout(this.lingerTimer);
      this.lingerTimer = undefined;
      this.urgent = false;
    }
    this.draining ??= (async () => {
      if (!this.spool.hasUndelivered()) return;
      if (!this.tablesReady) {
        await ensureTables(this.httpBase);
        this.tablesReady = true;
      }
      await this.spool.drain(this.deliver);
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
          this.log(`telemetry: QuestDB does not take rows (${e.message}); ${this.spool.pending()} row(s) kept in ${this.spool.dir}${this.closed ? ' for the next start' : ', retrying with backoff'}`, 'warn');
        }
        this.failingSince ??= Date.now();
        // A QuestDB that comes back may have lost its tables; ILP would recreate them without dedup.
        this.tablesReady = false;
        if (!this.closed && !this.retryTimer) {
          // The retry takes every row then waiting; the linger already ran out while QuestDB was away.
          this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.urgent = true; this.schedule(); }, this.backoffMs).unref();
          this.backoffMs = Math.min(this.backoffMs * 2, this.maxBackoffMs);
        }
        throw e;
      },
    );
    return this.draining;
  }

  /**
   * Posts a chunk of spooled lines, cut before each run row that follows other rows: the
   * samples spooled ahead of a run are accepted by QuestDB before the run row is sent. Run rows
   * are one per encode, so this costs a request per finished encode at most. A refused line is
   * reported by its place in the whole chunk, as the spool expects.
   */
  private readonly deliver = async (lines: Buffer): Promise<void> => {
    let start = 0, before = 0;
    for (let cut = runCut(lines, 0); ; cut = runCut(lines, cut + 1)) {
      const part = lines.subarray(start, cut);
      try {
        await this.post(part);
      } catch (e) {
        if (e instanceof RejectedLineError && before) throw new RejectedLineError(e.line + before, e.reason);
        throw e;
      }
      if (cut === lines.length) return;
      before += countLines(part);
      start = cut;
    }
  };

  /**
   * Posts ILP lines to `/write`. A 400 naming a line means QuestDB will never take that row:
   * it is set aside (RejectedLineError) so the rows behind it still arrive. Anything else
   * (refused connection, timeout, 5xx) is an outage and is retried later.
   */
  private readonly post = async (lines: Buffer): Promise<void> => {
    const { status, text } = await postIlp(this.agent, `${this.httpBase}/write?precision=n`, lines);
    if (status === 204) {
      this.posted++;
      return;
    }
    let err: { message?: string; line?: number } = {};
    try { if (status === 400) err = JSON.parse(text); } catch { /* not QuestDB's JSON error: an outage like any other */ }
    if (typeof err.line === 'number' && err.line > 0) throw new RejectedLineError(err.line - 1, err.message ?? text);
    throw new Error(`QuestDB /write answered ${status}: ${text.slice(0, 500)}`);
  };
}

/**
 * Where the next request of `lines` (whole ILP lines) ends, looking from `from`: before the
 * first run row that follows another row, else at the end. Only a run row may begin with
 * `encode_runs,` (every row has a node).
 */
function runCut(lines: Buffer, from: number): number {
  for (let i = lines.indexOf(RUN_LINE, from); i >= 0; i = lines.indexOf(RUN_LINE, i + 1)) {
    if (i > 0 && lines[i - 1] === NL && !isRunLine(lines, i - 1)) return i;
  }
  return lines.length;
}

/** Whether the line that ends with the newline at `nl` is a run row. */
function isRunLine(lines: Buffer, nl: number): boolean {
  const start = nl > 0 ? lines.lastIndexOf(NL, nl - 1) + 1 : 0; // lastIndexOf(x, -1) would search from the end
  return lines.subarray(start, start + RUN_LINE.length).equals(RUN_LINE);
}

function countLines(buf: Buffer): number {
  let n = 0;
  for (let i = buf.indexOf(NL); i >= 0; i = buf.indexOf(NL, i + 1)) n++;
  return n;
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
