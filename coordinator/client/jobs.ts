/**
 * Where a job stands, as the client and the CLI show it. A job is in one of two places: the task
 * store (the KV bucket a leader writes each record to), or, until a leader takes it, the jobs
 * stream in JetStream, where it waits safely (`submitted`). Pure: the reads are the caller's.
 */
import { TASK_STATES, type EncodingTask, type TaskState } from '../../shared/index.js';
import type { PendingSubmission } from '../bus/index.js';

/** A job's state as the CLI shows it: a task state, or `submitted` (in JetStream, no leader has recorded it yet). */
export type JobState = TaskState | 'submitted';
export const JOB_STATES: readonly JobState[] = ['submitted', ...TASK_STATES];

/** Why a `submitted` job has not moved, in the words `status` and `queue` use. */
export const WAITING_FOR_LEADER = 'submitted, waiting for a leader: it is kept in JetStream until one records it';

/** What `status --json` prints for a job still in JetStream (the fields a task record would have where they are known). */
export interface WaitingJob {
  id: string;
  state: 'submitted';
  owner: string;
  /** When JetStream stored it (epoch ms). */
  submitted_at: number;
  reason: string;
  /** Its place in the jobs stream. */
  stream_seq: number;
  schema: unknown;
}

export function waitingJob(p: PendingSubmission): WaitingJob {
  return { id: p.job_id, state: 'submitted', owner: p.owner, submitted_at: p.stored_at, reason: WAITING_FOR_LEADER, stream_seq: p.stream_seq, schema: p.schema };
}

/** One row of `prescient jobs` (and of the client's `list` for an operator). */
export interface JobRow {
  job_id: string;
  state: JobState;
  class: string;
  kind: 'task' | 'actor';
  node_id: string | null;
  owner: string | null;
  /** ISO 8601. */
  submitted_at: string;
  updated_at: string;
  reason: string;
}

const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * The jobs, newest submitted first: the task records and the submissions waiting in JetStream
 * (one of them recorded meanwhile shows once, as its record), filtered by state, at most `limit`.
 * `total` counts those matching before the limit.
 */
export function jobsView(tasks: readonly EncodingTask[], pending: readonly PendingSubmission[], o: { states?: ReadonlySet<JobState>; limit: number }): { total: number; jobs: JobRow[] } {
  const recorded = new Set(tasks.map((t) => t.id));
  const rows: JobRow[] = [
    ...tasks.map((t): JobRow => ({
      job_id: t.id, state: t.state, class: t.schema.priority, kind: t.schema.kind === 'actor' ? 'actor' : 'task',
      node_id: t.allocation?.node_id ?? t.earlier?.at(-1)?.node_id ?? null, owner: t.owner ?? null,
      submitted_at: new Date(t.submitted_at).toISOString(), updated_at: new Date(t.updated_at).toISOString(), reason: t.reason ?? '',
    })),
    ...pending.filter((p) => !recorded.has(p.job_id)).map((p): JobRow => {
      const s = (p.schema && typeof p.schema === 'object' ? p.schema : {}) as Record<string, unknown>;
      return {
        job_id: p.job_id, state: 'submitted', class: text(s.priority) ?? 'standard', kind: s.kind === 'actor' ? 'actor' : 'task', node_id: null, owner: p.owner,
        submitted_at: new Date(p.stored_at).toISOString(), updated_at: new Date(p.stored_at).toISOString(), reason: 'waiting for a leader (kept in JetStream)',
      };
    }),
  ].filter((r) => !o.states || o.states.has(r.state));
  // Newest first; the id breaks ties, so the order is the same every time.
  rows.sort((a, b) => b.submitted_at.localeCompare(a.submitted_at) || b.job_id.localeCompare(a.job_id));
  return { total: rows.length, jobs: rows.slice(0, o.limit) };
}
