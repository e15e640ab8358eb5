/**
 * The reports an agent has still to deliver, kept on disk. An agent killed while no leader took
 * its report of a finished encode (a failover in progress) tells the next leader when it starts
 * again; held in memory only, the report died with it and the job ran a second time on another
 * node (the chaos test caught it). `running` reports are not kept: after a restart nothing runs.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { FAILURE_KINDS, checked, describeValue, figure, shortText, v, type TaskStatusReport } from '../shared/index.js';
import type { Log } from '../shared/log.js';

/** A figure as it was written (JSON wrote NaN as null), read back as a number. */
const stored = v.pipe(figure, v.transform((x) => x ?? NaN));
const StoredReport = v.object({
  task_id: shortText, node_id: shortText, state: v.picklist(['succeeded', 'failed']), reason: v.string(),
  actual: v.nullable(v.object({ cpu_cores: stored, gpu_percent: stored, memory_gb: stored, bandwidth_mbps: stored, duration_s: stored })),
  output_bytes: stored, output_path: v.string(), psnr_db: stored, ssim: stored, pinned: v.boolean(), frames: stored, term: stored,
  quality: v.optional(v.string()), amend: v.optional(v.boolean()), quality_method: v.optional(v.string()), failure: v.optional(v.picklist(FAILURE_KINDS)),
});

/** Kept across a restart: what the job's outcome is (a success, a failure, a quality amendment). */
const lasting = (r: TaskStatusReport) => r.state !== 'running';

/**
 * `x`, read back from the outbox file, as a finished report of node `nodeId`, or why it is not
 * one. A malformed entry would fail to serialise on every try and block the reports behind it,
 * so each one is checked field by field.
 */
export function storedReport(x: unknown, nodeId: string): TaskStatusReport | { why: string } {
  const r = checked(StoredReport, x);
  if (!r.ok) return { why: r.why };
  return r.value.node_id === nodeId ? r.value : { why: `node_id ${describeValue(r.value.node_id)} is not this node (${nodeId})` };
}

export class ReportOutbox {
  private readonly queue: TaskStatusReport[] = [];

  /** `file`: where the undelivered reports are kept (in the agent's spool folder, which one agent holds at a time). */
  constructor(private readonly file: string, private readonly nodeId: string, private readonly log: Log) {}

  /** Takes back what an earlier run of this agent left undelivered; an entry that is not a report of this node is dropped, and said. */
  load(): number {
    let raw: string;
    try { raw = readFileSync(this.file, 'utf8'); } catch { return 0; }
    let stored: unknown;
    try { stored = JSON.parse(raw); } catch (e) {
      this.log(`undelivered reports in ${this.file} are not JSON (${(e as Error).message}); none taken`, 'warn');
      return 0;
    }
    if (!Array.isArray(stored)) { this.log(`undelivered reports in ${this.file} are not a list; none taken`, 'warn'); return 0; }
    let taken = 0;
    for (const x of stored) {
      const r = storedReport(x, this.nodeId);
      if ('why' in r) { this.log(`dropped an undelivered report in ${this.file}: ${r.why}`, 'warn'); continue; }
      this.queue.push(r);
      taken++;
    }
    return taken;
  }

  get length(): number { return this.queue.length; }
  get first(): TaskStatusReport | undefined { return this.queue[0]; }

  push(r: TaskStatusReport): void {
    this.queue.push(r);
    if (lasting(r)) this.save();
  }

  /** The first report was delivered (or refused for good): it goes. */
  shift(): void {
    const r = this.queue.shift();
    if (!r || !lasting(r)) return;
    // The usual case, nothing left to deliver: the file goes, with no write to sync (one fsync
    // fewer per finished job). A crash before the unlink lands leaves the old list, and the
    // report is delivered again, as it was when the crash came between delivery and the save.
    if (!this.queue.some(lasting)) this.remove();
    else this.save();
  }

  private remove(): void {
    try {
      unlinkSync(this.file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.save();
    }
  }

  /**
   * Written whole and renamed into place, synced first: a crash leaves the old list or the new
   * one. A write that fails (a full disk) leaves the reports in memory, still delivered while
   * this agent lives.
   */
  private save(): void {
    const tmp = `${this.file}.tmp`;
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeSync(fd, JSON.stringify(this.queue.filter(lasting)));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.file);
    } catch (e) {
      this.log(`undelivered reports could not be saved to ${this.file} (${(e as Error).message}); they are kept in memory only`, 'warn');
    }
  }
}
