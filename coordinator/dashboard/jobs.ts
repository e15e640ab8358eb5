/**
 * The dashboard's job list: each job's latest state and its prediction against what it used,
 * folded from its events (pure; the server feeds it from NATS). Events carry the prediction when
 * a job is placed and the actuals when it ends, so both are kept as they come.
 */
import type { Prediction, ResourceUsage, TaskEvent, TaskState } from '../../shared/index.js';

export interface JobView {
  id: string;
  owner: string;
  state: TaskState;
  node: string | null;
  /** When its first event was seen, and its latest. */
  first_at: number;
  updated_at: number;
  reason: string;
  predicted: { expected: ResourceUsage; upper: ResourceUsage; model_version: string } | null;
  actual: ResourceUsage | null;
  cores: number | null;
  output_path: string | null;
  /** Its states in order, with when each came. */
  states: Array<{ state: TaskState; at: number }>;
}

/** Jobs kept at most: the oldest-updated go first. */
export const JOBS_KEPT = 500;

export class JobBoard {
  private readonly jobs = new Map<string, JobView>();

  /** Folds one event in; returns the job as it is now. */
  apply(e: TaskEvent): JobView {
    let j = this.jobs.get(e.job_id);
    if (!j) {
      j = { id: e.job_id, owner: e.owner ?? '', state: e.state, node: null, first_at: e.at, updated_at: e.at, reason: '', predicted: null, actual: null, cores: null, output_path: null, states: [] };
      this.jobs.set(e.job_id, j);
      if (this.jobs.size > JOBS_KEPT) this.evict();
    }
    // A follower started again may see an event twice: the same state at the same time is one.
    if (!j.states.some((s) => s.state === e.state && s.at === e.at)) j.states.push({ state: e.state, at: e.at });
    if (e.at >= j.updated_at) {
      j.state = e.state;
      j.updated_at = e.at;
      j.reason = e.reason ?? '';
    }
    if (e.node_id) j.node = e.node_id;
    if (e.allocation) j.cores = e.allocation.core_ids.length;
    if (e.predicted) j.predicted = pick(e.predicted);
    if (e.result?.actual) j.actual = e.result.actual;
    if (e.result?.output_path) j.output_path = e.result.output_path;
    return j;
  }

  /** The jobs, most recently updated first. */
  list(limit = JOBS_KEPT): JobView[] {
    return [...this.jobs.values()].sort((a, b) => b.updated_at - a.updated_at).slice(0, limit);
  }

  get(id: string): JobView | undefined { return this.jobs.get(id); }

  private evict(): void {
    let oldest: JobView | undefined;
    for (const j of this.jobs.values()) if (!oldest || j.updated_at < oldest.updated_at) oldest = j;
    if (oldest) this.jobs.delete(oldest.id);
  }
}

const pick = (p: Prediction) => ({ expected: p.expected, upper: p.upper, model_version: p.model_version });
