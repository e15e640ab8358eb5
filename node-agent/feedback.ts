/**
 * The agent's half of the model's error signal: after an encode, its predicted figures against
 * what it used, target by target; during one, usage above what was reserved, at once. Reports go
 * to the PRESCIENT_FEEDBACK stream (JetStream, so they wait there while no leader is up; while
 * NATS itself is unreachable they wait here, up to a limit).
 *
 * Live channels (actors) get no completion report: their prediction is a steady state at real
 * time (models/live.ts) and their "duration" is how long someone left them on, so predicted
 * against actual would only teach the figures noise. Their overruns are reported: memory above
 * its reservation is the same problem whatever the kind of work.
 */
import type { NatsConnection } from 'nats';
import { JSONCodec } from 'nats';
import {
  feedbackSubject, isActor,
  type EncodeSample, type EncodingSchema, type FeedbackReport, type FeedbackTarget, type ResourceAllocation, type ResourceUsage, type TargetFeedback,
} from '../shared/index.js';
import type { Log } from '../shared/log.js';

export interface ReportBasis {
  job_id: string;
  attempt: number;
  node: string;
  model_version: string;
  schema: EncodingSchema;
  hw_class?: string;
  allocation: ResourceAllocation;
}

const basis = (b: ReportBasis) => ({
  job_id: b.job_id, attempt: b.attempt, node: b.node, model_version: b.model_version, codec: b.schema.output.codec, encoder: b.schema.output.encoder,
  hw_class: b.hw_class, work: isActor(b.schema) ? 'actor' as const : 'task' as const,
});

/** What the allocation held of each target it holds (0 or absent: not held). */
function reserved(a: ResourceAllocation): Partial<Record<FeedbackTarget, number>> {
  return { cpu_cores: a.core_ids.length || undefined, memory_gb: a.memory_gb || undefined, bandwidth_mbps: a.bandwidth_mbps || undefined };
}

/**
 * The report of a finished batch encode, every measured target; undefined for a live channel.
 * GPU share only where a GPU was granted and its use measured.
 */
export function completionReport(b: ReportBasis, predicted: ResourceUsage, actual: ResourceUsage, at = Date.now()): FeedbackReport | undefined {
  if (isActor(b.schema)) return undefined;
  const held = reserved(b.allocation);
  const targets: Partial<Record<FeedbackTarget, TargetFeedback>> = {};
  const keys: FeedbackTarget[] = ['cpu_cores', 'memory_gb', 'bandwidth_mbps', 'duration_s'];
  if (b.allocation.gpu_ids.length && actual.gpu_percent > 0) keys.push('gpu_percent');
  for (const t of keys) targets[t] = { predicted: predicted[t], actual: actual[t], ...(held[t] !== undefined ? { reserved: held[t] } : {}) };
  return { kind: 'completion', ...basis(b), targets, at };
}

export function overrunReport(b: ReportBasis, target: FeedbackTarget, observed: number, held: number, after_s: number, predicted?: number, reason?: string, at = Date.now()): FeedbackReport {
  return {
    kind: 'overrun', ...basis(b), at,
    targets: predicted !== undefined ? { [target]: { predicted, actual: observed, reserved: held } } : {},
    overrun: { target, reserved: held, observed, after_s, ...(reason ? { reason } : {}) },
  };
}

/** A core's worth of CPU is measured over short intervals; this much over the cores held is an overrun, not jitter. */
const CPU_TOLERANCE = 1.2;

/**
 * Watches an encode's samples for usage above its reservation: resident memory above the
 * memory held, CPU above the cores held (only possible where CPU is not pinned). Calls `emit`
 * once per target, the first time. Bandwidth is a mean over the encode and a sample's is a
 * burst (an input read ahead), so it is judged on completion only.
 */
export class OverrunWatch {
  private readonly seen = new Set<FeedbackTarget>();
  /** Highest resident memory seen (GB), for a report of the encode being stopped. */
  peakMemoryGb = 0;

  constructor(private readonly allocation: ResourceAllocation, private readonly startedAt: number,
    private readonly emit: (target: FeedbackTarget, observed: number, held: number, after_s: number) => void) {}

  sample(s: EncodeSample): void {
    this.peakMemoryGb = Math.max(this.peakMemoryGb, s.rss_gb, s.peak_rss_gb);
    const after = (s.ts_ms - this.startedAt) / 1000;
    const mem = this.allocation.memory_gb;
    if (mem > 0 && s.rss_gb > mem) this.once('memory_gb', s.rss_gb, mem, after);
    const cores = this.allocation.core_ids.length;
    if (cores > 0 && s.cpu_cores > cores * CPU_TOLERANCE) this.once('cpu_cores', s.cpu_cores, cores, after);
  }

  private once(t: FeedbackTarget, observed: number, held: number, after: number): void {
    if (this.seen.has(t)) return;
    this.seen.add(t);
    this.emit(t, observed, held, after);
  }
}

/** Most reports kept while NATS is unreachable; the oldest go first beyond this. */
const MAX_PENDING = 1000;

/**
 * Publishes reports to JetStream, each with a message id (job, attempt, kind, target) so a
 * retry is stored once; keeps what could not be published and retries every second.
 */
export class FeedbackPublisher {
  private readonly pending: Array<{ id: string; report: FeedbackReport }> = [];
  private timer?: NodeJS.Timeout;
  private sending = false;
  private readonly codec = JSONCodec<FeedbackReport>();

  constructor(private readonly nc: NatsConnection | undefined, private readonly log: Log) {}

  publish(r: FeedbackReport): void {
    if (!this.nc) return;
    const id = `${r.job_id}.${r.attempt}.${r.kind}${r.overrun ? `.${r.overrun.target}` : ''}`;
    this.pending.push({ id, report: r });
    if (this.pending.length > MAX_PENDING) this.log(`feedback: ${this.pending.splice(0, this.pending.length - MAX_PENDING).length} report(s) dropped, NATS unreachable too long`, 'warn');
    void this.send();
  }

  /** Reports not yet stored in JetStream. */
  get unsent(): number { return this.pending.length; }

  private async send(): Promise<void> {
    if (this.sending || !this.nc) return;
    this.sending = true;
    const js = this.nc.jetstream();
    try {
      while (this.pending.length) {
        const { id, report } = this.pending[0];
        await js.publish(feedbackSubject(report.node), this.codec.encode(report), { msgID: id, timeout: 5000 });
        this.pending.shift();
      }
    } catch (e) {
      this.log(`feedback: ${this.pending.length} report(s) not published yet: ${(e as Error).message}`, 'warn');
      this.timer ??= setTimeout(() => { this.timer = undefined; void this.send(); }, 1000);
    } finally {
      this.sending = false;
    }
  }

  /** One last attempt at what is pending, then stops retrying. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.send();
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
