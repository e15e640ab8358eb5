/**
 * NATS subject and JetStream catalogue. Every subject the system uses is named here, so a
 * reader can see the whole message surface in one file.
 */

/** Stream holding submitted jobs until the leader has recorded them (work-queue retention). */
export const JOBS_STREAM = 'PRESCIENT_JOBS';
/**
 * A member's name as one subject token: node ids may hold dots (host names), which NATS reads
 * as token separators; `~` is outside the name alphabet, so the mapping is one to one.
 */
export function memberToken(name: string): string {
  return name.replace(/\./g, '~');
}
const SUBMIT_PREFIX = 'prescient.jobs.submit.';
const CANCEL_PREFIX = 'prescient.jobs.cancel.';
/**
 * Subject a submitter publishes an EncodingSchema envelope on: its own name is the last token,
 * and NATS lets each client publish on its own only, so the leader knows who submitted.
 */
export function submitSubject(owner: string): string {
  return SUBMIT_PREFIX + memberToken(owner);
}
/** Subject `prescient cancel` publishes on; in the jobs stream, so a cancel waits for a leader like a submission. Only the owner's cancels its jobs. */
export function cancelSubject(owner: string): string {
  return CANCEL_PREFIX + memberToken(owner);
}
export const ALL_SUBMISSIONS = `${SUBMIT_PREFIX}*`;
export const ALL_CANCELS = `${CANCEL_PREFIX}*`;
/** What a message on the jobs stream is, and whose: anything else there is set aside. */
export function jobsMessageOf(subject: string): { kind: 'submit' | 'cancel'; owner: string } | undefined {
  const kind = subject.startsWith(SUBMIT_PREFIX) ? 'submit' : subject.startsWith(CANCEL_PREFIX) ? 'cancel' : undefined;
  if (!kind) return undefined;
  const token = subject.slice(kind === 'submit' ? SUBMIT_PREFIX.length : CANCEL_PREFIX.length);
  return /^[A-Za-z0-9_~-]{1,64}$/.test(token) ? { kind, owner: token.replace(/~/g, '.') } : undefined;
}
/** Durable consumer the leader (whoever it is) pulls submissions and cancellations through. */
export const JOBS_CONSUMER = 'prescient-leader';
/**
 * Deliveries of one submission at most (the consumer's max_deliver). A submission that keeps
 * failing its first write while the task store answers is set aside at once; this limit is for
 * one that never comes back at all (it crashed the leader each time): JetStream's advisory for
 * it makes the leader set it aside then.
 */
export const MAX_SUBMIT_DELIVERIES = 20;
/** Where JetStream announces a submission that reached MAX_SUBMIT_DELIVERIES. */
export const SUBMIT_MAX_DELIVERIES_ADVISORY = `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${JOBS_STREAM}.${JOBS_CONSUMER}`;

/**
 * Stream of submissions that could not be taken (not JSON, no valid job id, a record that could
 * not be written): each with why, kept for `prescient dead-letters` instead of being redelivered
 * forever or dropped without a word.
 */
export const DEAD_LETTER_STREAM = 'PRESCIENT_DEAD_LETTERS';
export const DEAD_LETTER_SUBJECT = 'prescient.jobs.dead';

/** Stream keeping every job's status events, so `submit --wait` can replay them from the start. */
export const EVENTS_STREAM = 'PRESCIENT_EVENTS';
/**
 * Per-job subject carrying that job's status changes and final result, under its owner's name:
 * a client may read its own jobs' events only. `owner` '*' matches any (operators and tests).
 */
export function jobEventsSubject(owner: string, jobId: string): string {
  return `prescient.job.${owner === '*' ? '*' : memberToken(owner)}.${jobId}.events`;
}
export const ALL_JOB_EVENTS = 'prescient.job.*.*.events';
/** Owner of jobs admitted before jobs had owners (their records carry none). */
export const NO_OWNER = '_';

/**
 * Per-job encode progress, published by the agent about once a second on core NATS (not
 * stored: progress is only worth seeing live).
 */
export function jobProgressSubject(owner: string, jobId: string): string {
  return `prescient.job.${owner === '*' ? '*' : memberToken(owner)}.${jobId}.progress`;
}

/**
 * Per-job ffmpeg log lines, published by the agent running the encode in batches (JobLogBatch)
 * and kept in LOGS_STREAM for a day: `prescient logs ID [-f]` reads them, a client its own jobs'.
 */
export function jobLogSubject(owner: string, jobId: string): string {
  return `prescient.job.${owner === '*' ? '*' : memberToken(owner)}.${jobId}.log`;
}
export const ALL_JOB_LOGS = 'prescient.job.*.*.log';
export const LOGS_STREAM = 'PRESCIENT_LOGS';

/** One batch of an encode's log lines, as the agent publishes it. */
export interface JobLogBatch {
  job_id: string;
  node_id: string;
  attempt: number;
  /** 1 or 2 (two-pass encodes). */
  pass: number;
  /** When the first line of the batch was written (epoch ms). */
  at: number;
  lines: string[];
}

/** JetStream KV bucket with one entry per task: the durable record a new leader resumes from. */
export const TASKS_BUCKET = 'prescient_tasks';

/** JetStream KV bucket for cluster-wide facts that must survive a Consul restart (the highest term). */
export const META_BUCKET = 'prescient_meta';

/**
 * JetStream KV bucket holding the resource ledger (one entry per node plus `meta`), so a new
 * leader resumes from its predecessor's reservations; writes are fenced by term and revision.
 */
export const LEDGER_BUCKET = 'prescient_ledger';

/**
 * Stream of the model's error signal: agents' feedback reports (predicted against actual) and
 * the coordinator's model alerts. Reports wait here while no leader is up.
 */
export const FEEDBACK_STREAM = 'PRESCIENT_FEEDBACK';
/**
 * Subject an agent publishes a FeedbackReport on (shared/feedback.ts): its own node's, the only
 * one NATS lets it publish on; the leader takes a report only if it names that node.
 */
export function feedbackSubject(nodeId: string): string {
  return `prescient.feedback.report.${memberToken(nodeId)}`;
}
export const ALL_FEEDBACK = 'prescient.feedback.report.*';
/** The node a feedback or delta subject was published for (its last token). */
export function nodeOfSubject(subject: string): string {
  return subject.slice(subject.lastIndexOf('.') + 1).replace(/~/g, '.');
}
/** Durable consumer the leader (whoever it is) reads feedback reports through. */
export const FEEDBACK_CONSUMER = 'prescient-feedback';
/** Subject model alerts (ModelAlert: error, drift, recovered, margin) are published on; kept in the feedback stream. */
export const MODEL_ALERTS_SUBJECT = 'prescient.alerts.model';
/**
 * JetStream KV bucket of the rolling error figures, online corrections and memory margins per
 * model version (coordinator/feedback), read by `prescient model status`.
 */
export const FEEDBACK_BUCKET = 'prescient_feedback';

/**
 * JetStream KV bucket of cloud burst (coordinator/burst): the instances the controller launched
 * (`state`, so a new leader knows what is running) and its last decisions with their inputs and
 * reasons (`decisions`), read by `prescient scale status`.
 */
export const BURST_BUCKET = 'prescient_burst';

/** Consul KV key of the leadership lock; its value names the leader and its term. */
export const LEADER_KEY = 'prescient/leader';
/** Consul KV key holding the last issued leader term (a fencing token, only ever increased). */
export const TERM_KEY = 'prescient/term';

/** Job ids are used inside subjects, so they are limited to a safe alphabet. */
export const JOB_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Stream of federated learning (models/federated): agents' weight deltas, kept until a leader
 * has judged them (nothing is lost while no leader is up), and the announcements of each
 * global model version put in service.
 */
export const MODELS_STREAM = 'PRESCIENT_MODELS';
/** Subject an agent publishes a WeightDelta on. */
export function modelDeltaSubject(nodeId: string): string {
  return `prescient.models.delta.${memberToken(nodeId)}`;
}
export const ALL_MODEL_DELTAS = 'prescient.models.delta.*';
/** Subject the leader announces a new global model version on (a VersionAnnouncement); the last one is kept. */
export const MODEL_VERSIONS_SUBJECT = 'prescient.models.versions';
/** Durable consumer the leader (whoever it is) reads weight deltas through. */
export const MODEL_DELTAS_CONSUMER = 'prescient-federation';
/** JetStream Object Store bucket holding each published model file under its version name. */
export const MODELS_BUCKET = 'prescient_models';
