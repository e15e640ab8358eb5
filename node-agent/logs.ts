/**
 * Ships each encode's ffmpeg log to NATS (`prescient logs ID [-f]` reads it back from the
 * PRESCIENT_LOGS stream): lines are batched per encode and sent every half second, or sooner
 * once a batch is large, so a chatty encode costs a few messages a second, not one a line.
 * Without NATS the lines are dropped here (they are still in ffmpeg's error on a failure).
 */
import { JSONCodec, type NatsConnection } from 'nats';
import { jobLogSubject, truncate, type JobLogBatch } from '../shared/index.js';

const FLUSH_MS = 500;
const BATCH_LINES = 200;
const BATCH_BYTES = 32 * 1024;
/** A line longer than this is cut (a log line is never that long unless something is wrong). */
const LINE_MAX = 2000;

interface Pending { owner: string; batch: JobLogBatch; bytes: number }

export class LogShipper {
  private readonly pending = new Map<string, Pending>();
  private timer?: NodeJS.Timeout;
  private readonly codec = JSONCodec<JobLogBatch>();

  constructor(private readonly nc: NatsConnection | undefined, private readonly nodeId: string) {}

  /** One line of `jobId`'s ffmpeg log (attempt, pass). */
  line(owner: string, jobId: string, attempt: number, pass: number, text: string): void {
    if (!this.nc) return;
    const key = `${jobId}\0${attempt}\0${pass}`;
    let p = this.pending.get(key);
    if (!p) {
      p = { owner, batch: { job_id: jobId, node_id: this.nodeId, attempt, pass, at: Date.now(), lines: [] }, bytes: 0 };
      this.pending.set(key, p);
    }
    const l = text.length > LINE_MAX ? truncate(text, LINE_MAX) : text;
    p.batch.lines.push(l);
    p.bytes += l.length;
    if (p.batch.lines.length >= BATCH_LINES || p.bytes >= BATCH_BYTES) this.send(key, p);
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  /** Sends everything pending (at an encode's end, and on stop). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const [key, p] of this.pending) this.send(key, p);
  }

  private send(key: string, p: Pending): void {
    this.pending.delete(key);
    try {
      this.nc?.publish(jobLogSubject(p.owner, p.batch.job_id), this.codec.encode(p.batch));
    } catch { /* a closed connection: the log is best effort */ }
  }
}
