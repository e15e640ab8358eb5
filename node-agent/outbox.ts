/**
 * The reports an agent has still to deliver, kept on disk. An agent killed while no leader took
 * its report of a finished encode (a failover in progress) tells the next leader when it starts
 * again; held in memory only, the report died with it and the job ran a second time on another
 * node (the chaos test caught it). `running` reports are not kept: after a restart nothing runs.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { describeValue, figure, shortText, v, whyNot, type TaskStatusReport } from '../shared/index.js';

/** A finished report as it was written: JSON wrote NaN figures as null. */
const usage = v.object({ cpu_cores: figure, gpu_percent: figure, memory_gb: figure, bandwidth_mbps: figure, duration_s: figure });
const StoredReport = v.object({
  task_id: shortText, node_id: shortText, state: v.picklist(['succeeded', 'failed']), reason: v.string(),
  actual: v.nullable(usage), output_bytes: figure, output_path: v.string(), psnr_db: figure, ssim: figure, pinned: v.boolean(), frames: figure, term: figure,
  quality: v.optional(v.string()), amend: v.optional(v.boolean()), quality_method: v.optional(v.string()), failure: v.optional(v.string()),
});
const NUMBERS = ['output_bytes', 'psnr_db', 'ssim', 'frames', 'term'] as const;
const USAGE = Object.keys(usage.entries);

/** Kept across a restart: what the job's outcome is (a success, a failure, a quality amendment). */
const lasting = (r: TaskStatusReport) => r.state !== 'running';

/**
 * Why `x`, read back from the outbox file, is not a finished report of node `nodeId` (undefined
 * when it is one). A malformed entry would fail to serialise on every try and block the reports
 * behind it, so each one is checked field by field.
 */
export function invalidStoredReport(x: unknown, nodeId: string): string | undefined {
  const why = whyNot(StoredReport, x);
  if (why) return why;
  const node = (x as { node_id: string }).node_id;
  return node === nodeId ? undefined : `node_id ${describeValue(node)} is not this node (${nodeId})`;
}

/** `null` back to NaN where JSON wrote a NaN figure. */
function revive(r: Record<string, unknown>): TaskStatusReport {
  for (const k of NUMBERS) if (r[k] === null) r[k] = NaN;
  if (r.actual) for (const k of USAGE) if ((r.actual as Record<string, unknown>)[k] === null) (r.actual as Record<string, unknown>)[k] = NaN;
  return r as unknown as TaskStatusReport;
}

export class ReportOutbox {
  private readonly queue: TaskStatusReport[] = [];

  /** `file`: where the undelivered reports are kept (in the agent's spool folder, which one agent holds at a time). */
  constructor(private readonly file: string, private readonly nodeId: string, private readonly log: (m: string) => void) {}

  /** Takes back what an earlier run of this agent left undelivered; an entry that is not a report of this node is dropped, and said. */
  load(): number {
    let raw: string;
    try { raw = readFileSync(this.file, 'utf8'); } catch { return 0; }
    let stored: unknown;
    try { stored = JSON.parse(raw); } catch (e) {
      this.log(`undelivered reports in ${this.file} are not JSON (${(e as Error).message}); none taken`);
      return 0;
    }
    if (!Array.isArray(stored)) { this.log(`undelivered reports in ${this.file} are not a list; none taken`); return 0; }
    let taken = 0;
    for (const v of stored) {
      const why = invalidStoredReport(v, this.nodeId);
      if (why) { this.log(`dropped an undelivered report in ${this.file}: ${why}`); continue; }
      this.queue.push(revive(v as Record<string, unknown>));
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
    if (r && lasting(r)) this.save();
  }

  /** Keeps only the reports `keep` says to. */
  retain(keep: (r: TaskStatusReport) => boolean): void {
    const before = this.queue.length;
    for (let i = this.queue.length - 1; i >= 0; i--) if (!keep(this.queue[i])) this.queue.splice(i, 1);
    if (this.queue.length !== before) this.save();
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
      this.log(`undelivered reports could not be saved to ${this.file} (${(e as Error).message}); they are kept in memory only`);
    }
  }
}
