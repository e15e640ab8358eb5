/**
 * `prescient jobs` and what `status` and `queue` say of a job no leader has recorded yet. A job
 * is in one of two places: the task store (the KV bucket a leader writes each record to), or,
 * until a leader takes it, the jobs stream in JetStream, where it waits safely (`submitted`).
 * main.ts defines the commands and loads this module when one of them runs.
 */
import { ConfigError, TASK_STATES, validateEncodingSchema, type EncodingSchema, type EncodingTask, type TaskState, type ValidationContext } from '../../shared/index.js';
import type { PendingSubmission } from '../bus/index.js';
import { formatInput, table } from './format.js';

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

/** The schema of a submission if it is valid here (a leader validates it again), for the input line. */
function validSchema(raw: unknown, ctx: ValidationContext): EncodingSchema | undefined {
  try { return validateEncodingSchema(raw, ctx); } catch { return undefined; }
}

/** `status` of a waiting job, as text. */
export function formatWaiting(w: WaitingJob, ctx: ValidationContext): string {
  const schema = validSchema(w.schema, ctx);
  return [
    `${new Date(w.submitted_at).toISOString().slice(11, 23)} ${w.id} submitted: waiting for a leader (kept in JetStream until one records it; is a coordinator running?)`,
    ...(schema ? [`  ${formatInput(schema)}`] : []),
  ].join('\n');
}

/** `--state a,b`: each a job state, else a ConfigError naming the flag and the states there are. */
export function parseStates(v: string | undefined): Set<JobState> | undefined {
  if (v === undefined) return undefined;
  const names = v.split(',').map((x) => x.trim()).filter(Boolean);
  const bad = names.filter((x) => !(JOB_STATES as readonly string[]).includes(x));
  if (!names.length || bad.length) {
    throw new ConfigError('--state', `${bad.length ? `${bad.map((x) => JSON.stringify(x)).join(', ')} ${bad.length > 1 ? 'are not job states' : 'is not a job state'}` : 'is empty'}: use ${JOB_STATES.join(', ')} (several comma-separated)`);
  }
  return new Set(names as JobState[]);
}

/** `--limit N`: a whole number from 1 to 10,000. */
export function parseLimit(v: string, flag = '--limit'): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1 || n > 10_000) throw new ConfigError(flag, `must be a whole number from 1 to 10000, got ${JSON.stringify(v)}`);
  return n;
}

/** One row of `prescient jobs`. */
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

/** `prescient jobs` as a table. */
export function formatJobs(v: { total: number; jobs: JobRow[] }, more: boolean, width?: number): string {
  if (!v.jobs.length) return 'no jobs';
  const lines = [table(['job', 'state', 'class', 'node', 'submitted', 'reason'], v.jobs.map((r) => [
    r.job_id, r.kind === 'actor' ? `${r.state} (live)` : r.state, r.class, r.node_id ?? '-', r.submitted_at.replace('T', ' ').slice(0, 19), r.reason,
  ]), { width, wrap: [5] })];
  if (v.total > v.jobs.length) lines.push(`(${v.jobs.length} newest of ${v.total} shown; --limit shows more)`);
  if (more) lines.push('(the jobs stream holds more submissions than were read: some waiting jobs are not listed)');
  return lines.join('\n');
}
