/**
 * `prescient jobs` and what `status` and `queue` say of a job no leader has recorded yet. A job
 * is in one of two places: the task store (the KV bucket a leader writes each record to), or,
 * until a leader takes it, the jobs stream in JetStream, where it waits safely (`submitted`).
 * The views themselves are the client's (coordinator/client/jobs.ts); here they are drawn.
 * main.ts defines the commands and loads this module when one of them runs.
 */
import { ConfigError, validateEncodingSchema, type EncodingSchema, type ValidationContext } from '../../shared/index.js';
import { JOB_STATES, type JobRow, type JobState, type WaitingJob } from '../client/jobs.js';
import { formatInput, table } from './format.js';

export { JOB_STATES, WAITING_FOR_LEADER, jobsView, waitingJob, type JobRow, type JobState, type WaitingJob } from '../client/jobs.js';

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
