/**
 * The NATS side of the system: streams, the durable task records, job events and submission.
 * Storage and transport sit behind interfaces named by what they do, so the leader's logic
 * reads as intent ("record the task", "publish its event").
 */
import { createRequire } from 'node:module';
import { AckPolicy, DeliverPolicy, DiscardPolicy, JSONCodec, RetentionPolicy, StorageType, nanos, nuid, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JetStreamPublishOptions, type KV, type MsgRequest, type NatsConnection, type StreamConfig } from 'nats';
import {
  ALL_CANCELS, ALL_JOB_EVENTS, ALL_JOB_LOGS, LOGS_STREAM, ALL_SUBMISSIONS, DEAD_LETTER_STREAM, DEAD_LETTER_SUBJECT, EVENTS_STREAM, META_BUCKET, JOBS_CONSUMER, JOBS_STREAM, JOB_ID_PATTERN,
  MAX_SUBMIT_DELIVERIES, NO_OWNER, TASKS_BUCKET, TASK_STATES, describeValue, memberToken, retryUnavailable, TERMINAL_STATES, cancelSubject, connectMember, isFinalEvent, submitSubject, truncate,
  jobEventsSubject, jobLogSubject, jobsMessageOf, type JobLogBatch, type CancelEnvelope, type EncodingTask, type Identity, type SubmitEnvelope, type TaskEvent,
} from '../../shared/index.js';
import type { Log } from '../../shared/log.js';

const json = JSONCodec();
const require = createRequire(import.meta.url);

/**
 * A JetStream publish answered 503 (no responders: the server reloading its users) is sent again,
 * up to 20 times 250 ms apart; the message id makes a repeat that did land harmless.
 */
// nats.js 2.29's publish reads `retries` and `retry_delay` (jsclient.js), though its types leave them out.
export const UNAVAILABLE_RETRIES = { retries: 20, retry_delay: 250 } as Partial<JetStreamPublishOptions>;

/**
 * nats.js 2.29 ends every request that was answered by rejecting its (already resolved) promise
 * with a new NatsError CANCELLED (RequestOne.cancel), a stack trace captured each time that
 * nobody sees: 6 % of a placing leader's CPU (submit-latency bench profile). Those rejections
 * share one error; a request cancelled before its answer still gets the CANCELLED code.
 */
function shareCancelledError(): void {
  let NatsError: { errorForCode: (code: string, chained?: Error) => Error; shared?: boolean } | undefined;
  // Another nats.js layout (an upgrade): left as it is, which costs CPU, not correctness.
  try { NatsError = require('nats/lib/nats-base-client/core.js').NatsError; } catch { return; }
  if (!NatsError || typeof NatsError.errorForCode !== 'function' || NatsError.shared) return;
  const forCode = NatsError.errorForCode.bind(NatsError);
  const cancelled = forCode('CANCELLED');
  NatsError.errorForCode = (code, chained) => (code === 'CANCELLED' && !chained ? cancelled : forCode(code, chained));
  NatsError.shared = true;
}

/** Connects as `id` (shared/pki connectMember), for a process that speaks NATS all the time. */
export function connectBus(url: string, id: Identity, name: string): Promise<NatsConnection> {
  shareCancelledError();
  // No async traces: nats.js would build an Error with a stack for every request, a tenth of a
  // busy leader's CPU (measured by the submit-latency bench); failures still carry their message.
  return connectMember(url, id, name, { noAsyncTraces: true });
}

/**
 * Creates a stream if missing; one made by an older version that lacks newer subjects takes
 * them (its messages are kept). Another process creating it at the same moment is no error.
 */
export async function ensureStream(jsm: JetStreamManager, cfg: Partial<StreamConfig> & { name: string; subjects: string[] }): Promise<void> {
  const info = await jsm.streams.info(cfg.name).catch(() => undefined);
  if (info) {
    if (cfg.subjects.some((x) => !info.config.subjects?.includes(x))) await jsm.streams.update(cfg.name, { ...info.config, subjects: cfg.subjects });
    return;
  }
  await jsm.streams.add(cfg).catch(async (e) => {
    if (!(await jsm.streams.info(cfg.name).then(() => true, () => false))) throw e;
  });
}

/**
 * Creates the streams if missing. Submissions use work-queue retention: a message stays until
 * the leader acknowledges it, which it does only after the task is durably recorded.
 */
export async function ensureStreams(nc: NatsConnection): Promise<void> {
  const jsm = await nc.jetstreamManager();
  const want = [
    { name: JOBS_STREAM, subjects: [ALL_SUBMISSIONS, ALL_CANCELS], retention: RetentionPolicy.Workqueue, storage: StorageType.File, duplicate_window: nanos(10 * 60_000) },
    { name: EVENTS_STREAM, subjects: [ALL_JOB_EVENTS], retention: RetentionPolicy.Limits, storage: StorageType.File, max_age: nanos(7 * 24 * 3600_000) },
    // ffmpeg's logs (prescient logs): a day of them, 256 MB at most, a chatty job's newest 2,000 batches.
    {
      name: LOGS_STREAM, subjects: [ALL_JOB_LOGS], retention: RetentionPolicy.Limits, storage: StorageType.File,
      max_age: nanos(24 * 3600_000), max_bytes: 256 * 1024 * 1024, max_msgs_per_subject: 2000, discard: DiscardPolicy.Old,
    },
    // Bounded: a flood of poison keeps the newest 256 MB of it for 30 days, not the disk.
    {
      name: DEAD_LETTER_STREAM, subjects: [DEAD_LETTER_SUBJECT], retention: RetentionPolicy.Limits, storage: StorageType.File,
      max_age: nanos(30 * 24 * 3600_000), max_bytes: 256 * 1024 * 1024, discard: DiscardPolicy.Old, duplicate_window: nanos(10 * 60_000),
    },
  ];
  for (const cfg of want) await ensureStream(jsm, cfg);
  const consumer = { durable_name: JOBS_CONSUMER, ack_policy: AckPolicy.Explicit, ack_wait: nanos(JOBS_ACK_WAIT_MS), max_ack_pending: 1000, max_deliver: MAX_SUBMIT_DELIVERIES };
  const existing = await jsm.consumers.info(JOBS_STREAM, JOBS_CONSUMER).catch(() => undefined);
  if (!existing) await jsm.consumers.add(JOBS_STREAM, consumer).catch(() => undefined); // another process added it first
  // One made by an older version redelivered without limit, and 30 s after a leader died.
  else if (existing.config.max_deliver !== MAX_SUBMIT_DELIVERIES || existing.config.ack_wait !== nanos(JOBS_ACK_WAIT_MS)) {
    await jsm.consumers.update(JOBS_STREAM, JOBS_CONSUMER, { max_deliver: MAX_SUBMIT_DELIVERIES, ack_wait: nanos(JOBS_ACK_WAIT_MS) });
  }
}

/**
 * How long a submission delivered to a leader waits for its answer before it is delivered again.
 * Short, so that one a leader took just before it was killed reaches the next leader within the
 * failover (it was 30 s, and the failover bench placed such a job 30 s after the kill); a live
 * leader tells the consumer it is still working on what it holds every second.
 */
export const JOBS_ACK_WAIT_MS = 4000;

/** A submission set aside, and why (the dead-letter stream's records). */
export interface DeadLetter {
  /** Its job id, where it had a valid one. */
  job_id?: string;
  /** The subject it came on, and where it sat in the jobs stream. */
  subject: string;
  stream_seq: number;
  reason: string;
  /** Times it was delivered to a leader. */
  deliveries: number;
  /** Its size, and its first DEAD_LETTER_HEAD characters as text (the whole of it stays out of logs and records). */
  bytes: number;
  head: string;
  /** When it was set aside (ISO 8601). */
  at: string;
}
const DEAD_LETTER_HEAD = 512;

/** A dead letter for a submission's payload (the reason and the head cut short). */
export function deadLetterOf(payload: Uint8Array, o: { subject: string; stream_seq: number; deliveries: number; reason: string; at: number }): DeadLetter {
  const text = Buffer.from(payload.subarray(0, DEAD_LETTER_HEAD * 4)).toString('utf8');
  const id = /"job_id"\s*:\s*"([^"]{1,64})"/.exec(text)?.[1];
  return {
    ...(id && JOB_ID_PATTERN.test(id) && { job_id: id }), subject: o.subject, stream_seq: o.stream_seq,
    reason: truncate(o.reason, 1000), deliveries: o.deliveries,
    bytes: payload.length, head: text.slice(0, DEAD_LETTER_HEAD), at: new Date(o.at).toISOString(),
  };
}

/** Stores a dead letter; the same stream position twice within ten minutes is stored once. */
export async function publishDeadLetter(js: JetStreamClient, d: DeadLetter): Promise<void> {
  await js.publish(DEAD_LETTER_SUBJECT, json.encode(d), { msgID: `dead-${d.stream_seq}`, ...UNAVAILABLE_RETRIES });
}

/** The newest `limit` dead letters, oldest first; entries that do not read as dead letters are skipped. */
export async function listDeadLetters(nc: NatsConnection, limit: number): Promise<DeadLetter[]> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(DEAD_LETTER_STREAM).catch(() => undefined);
  if (!info || info.state.messages === 0) return [];
  const out: DeadLetter[] = [];
  for (let seq = info.state.last_seq; seq >= info.state.first_seq && out.length < limit; seq--) {
    const m = await jsm.streams.getMessage(DEAD_LETTER_STREAM, { seq }).catch(() => undefined);
    const d = m && readDeadLetter(m.data);
    if (d) out.push(d);
  }
  return out.reverse();
}

/** A stored dead letter, checked field by field (it is read back from the network). */
function readDeadLetter(data: Uint8Array): DeadLetter | undefined {
  let v: Record<string, unknown>;
  try { v = json.decode(data) as Record<string, unknown>; } catch { return undefined; }
  if (!v || typeof v !== 'object') return undefined;
  const str = (k: string) => typeof v[k] === 'string';
  const int = (k: string) => Number.isSafeInteger(v[k]) && (v[k] as number) >= 0;
  if (!str('subject') || !str('reason') || !str('head') || !str('at') || !int('stream_seq') || !int('deliveries') || !int('bytes')) return undefined;
  if (v.job_id !== undefined && !(typeof v.job_id === 'string' && JOB_ID_PATTERN.test(v.job_id))) return undefined;
  return v as unknown as DeadLetter;
}

/**
 * Asks whichever leader is up (now or later) to cancel one of `owner`'s jobs (a client may
 * publish on its own subject only; an operator on any); a repeat within ten minutes is deduplicated.
 */
export async function publishCancel(js: JetStreamClient, owner: string, env: CancelEnvelope): Promise<void> {
  // The owner is in the id: a cancel refused on another's subject must not hide the owner's own;
  // so is the action, so a cancel right after a refused stop is not dropped as its repeat.
  await js.publish(cancelSubject(owner), json.encode(env), { msgID: `${env.action ?? 'cancel'}-${memberToken(owner)}-${env.job_id}`, ...UNAVAILABLE_RETRIES });
}

/** Publishes a submission as `owner` (its own subject); JetStream deduplicates a re-sent job id within ten minutes. */
export async function publishSubmission(js: JetStreamClient, owner: string, env: SubmitEnvelope): Promise<void> {
  await js.publish(submitSubject(owner), json.encode(env), { msgID: env.job_id, ...UNAVAILABLE_RETRIES });
}

/** A submission still in the jobs stream: no leader has recorded its job yet. */
export interface PendingSubmission {
  job_id: string;
  /** Whose subject it came on. */
  owner: string;
  /** When JetStream stored it (epoch ms): what a leader queues it from. */
  stored_at: number;
  stream_seq: number;
  /** The schema as submitted (not yet validated by a leader). */
  schema: unknown;
}

/** Most messages of the jobs stream one look reads (a stream this long is a leader long gone). */
export const PENDING_SCAN_LIMIT = 10_000;

/**
 * The submissions waiting in the jobs stream, oldest first, read without taking them (a leader
 * takes them through its consumer): those of `jobId` only when given. Cancellations and what is
 * not a submission are skipped. `more` says the stream held more than `scanLimit` messages.
 */
export async function pendingSubmissions(nc: NatsConnection, o: { jobId?: string; scanLimit?: number } = {}): Promise<{ submissions: PendingSubmission[]; more: boolean }> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(JOBS_STREAM).catch(() => undefined);
  const out: PendingSubmission[] = [];
  if (!info || info.state.messages === 0) return { submissions: out, more: false };
  const limit = o.scanLimit ?? PENDING_SCAN_LIMIT;
  let seq = info.state.first_seq, read = 0;
  while (seq <= info.state.last_seq && read < limit) {
    // The next submission at or after `seq`: taken ones are gone from a work-queue stream.
    // (STREAM.MSG.GET takes next_by_subj since nats-server 2.9; nats.js 2.29 types it for direct gets only.)
    const m = await jsm.streams.getMessage(JOBS_STREAM, { seq, next_by_subj: ALL_SUBMISSIONS } as unknown as MsgRequest).catch((e: { api_error?: { err_code?: number } }) => {
      if (e.api_error?.err_code === 10037) return undefined; // no message found: none after `seq`
      throw e;
    });
    if (!m) break;
    seq = m.seq + 1;
    read++;
    const what = jobsMessageOf(m.subject);
    if (what?.kind !== 'submit') continue;
    // The message id is the job id when the CLI published it: the payload is read only for a match.
    const msgId = m.header?.get('Nats-Msg-Id');
    if (o.jobId !== undefined && msgId && msgId !== o.jobId) continue;
    let env: Partial<SubmitEnvelope> | undefined;
    try { env = json.decode(m.data) as Partial<SubmitEnvelope>; } catch { continue; }
    if (!env || typeof env.job_id !== 'string' || !JOB_ID_PATTERN.test(env.job_id)) continue;
    if (o.jobId !== undefined && env.job_id !== o.jobId) continue;
    out.push({ job_id: env.job_id, owner: what.owner, stored_at: m.time.getTime(), stream_seq: m.seq, schema: env.schema });
  }
  return { submissions: out, more: seq <= info.state.last_seq && read >= limit };
}

/** Durable record of every task; the state a new leader resumes from. */
export interface TaskStore {
  put(task: EncodingTask): Promise<void>;
  /**
   * Writes a task's first record, only if no record of that id exists: 'exists' otherwise, and
   * nothing is written. One write where a read and a write were needed to admit a job once.
   */
  create(task: EncodingTask): Promise<'created' | 'exists'>;
  get(id: string): Promise<EncodingTask | undefined>;
  /** Tasks not yet in a terminal state. */
  listActive(): Promise<EncodingTask[]>;
  /** Every task record, ended ones too (in no particular order). */
  listAll(): Promise<EncodingTask[]>;
}

const TASK_STATE_SET: ReadonlySet<unknown> = new Set(TASK_STATES);

/**
 * Why a task record read back from the bucket is not one (undefined when it is): anyone who can
 * write the bucket could have written it, and a leader must not start from, or stall on, a
 * record that is not JSON or lacks what the core relies on.
 */
export function invalidTaskRecord(key: string, v: unknown): string | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'not a JSON object';
  const t = v as Record<string, unknown>;
  if (t.id !== key) return `its id ${describeValue(t.id)} is not its key`;
  if (!TASK_STATE_SET.has(t.state)) return `state ${describeValue(t.state)} is not a task state`;
  if (!t.schema || typeof t.schema !== 'object') return 'it has no schema';
  for (const k of ['submitted_at', 'updated_at', 'term', 'attempts'] as const) {
    if (!Number.isFinite(t[k])) return `${k} ${describeValue(t[k])} is not a number`;
  }
  if (t.owner !== undefined && typeof t.owner !== 'string') return 'owner is not a name';
  if (t.earlier !== undefined && !(Array.isArray(t.earlier) && t.earlier.every((a) => typeof a?.node_id === 'string' && Array.isArray(a.core_ids)))) return 'earlier is not a list of reservations';
  return undefined;
}

export class JetStreamTaskStore implements TaskStore {
  private constructor(private readonly kv: KV, private readonly onInvalid: (why: string) => void) {}
  /** `onInvalid`: told of each record that is not a task (it is then read as absent). */
  static async open(js: JetStreamClient, onInvalid: (why: string) => void = () => undefined): Promise<JetStreamTaskStore> {
    return new JetStreamTaskStore(await js.views.kv(TASKS_BUCKET, { history: 1, storage: StorageType.File }), onInvalid);
  }
  async put(task: EncodingTask): Promise<void> {
    await this.kv.put(task.id, json.encode(task));
  }
  async create(task: EncodingTask): Promise<'created' | 'exists'> {
    try {
      await this.kv.create(task.id, json.encode(task));
      return 'created';
    } catch (e) {
      // 10071: JetStream's "wrong last sequence", the key has a value.
      if ((e as { api_error?: { err_code?: number } }).api_error?.err_code === 10071) return 'exists';
      throw e;
    }
  }
  async get(id: string): Promise<EncodingTask | undefined> {
    const e = await this.kv.get(id);
    if (!e || e.operation !== 'PUT' || !e.value.length) return undefined;
    let v: unknown;
    try { v = json.decode(e.value); } catch { v = undefined; }
    const why = invalidTaskRecord(id, v);
    if (why) { this.onInvalid(`task record ${truncate(id, 80)} ignored: ${why}`); return undefined; }
    return v as EncodingTask;
  }
  async listActive(): Promise<EncodingTask[]> {
    return this.list((t) => !TERMINAL_STATES.has(t.state));
  }
  async listAll(): Promise<EncodingTask[]> {
    return this.list(() => true);
  }
  private async list(keep: (t: EncodingTask) => boolean): Promise<EncodingTask[]> {
    // Collect the keys first: awaiting a get inside the keys() iteration loses keys (its
    // ordered consumer against nats-server 2.9 ends early), and a new leader would then miss tasks.
    const keys: string[] = [];
    for await (const key of await this.kv.keys()) keys.push(key);
    const out: EncodingTask[] = [];
    for (let i = 0; i < keys.length; i += 64) {
      for (const t of await Promise.all(keys.slice(i, i + 64).map((k) => this.get(k)))) if (t && keep(t)) out.push(t);
    }
    return out;
  }
}

/** The highest leader term issued, kept in a JetStream KV bucket so it outlives Consul's memory. */
export class JetStreamTermRecord {
  private constructor(private readonly kv: KV) {}
  static async open(js: JetStreamClient): Promise<JetStreamTermRecord> {
    return new JetStreamTermRecord(await js.views.kv(META_BUCKET, { history: 1, storage: StorageType.File }));
  }
  async highest(): Promise<number> {
    const e = await this.kv.get('term');
    return e && e.operation === 'PUT' ? Number(e.string()) || 0 : 0;
  }
  async advance(term: number): Promise<void> {
    if (term > (await this.highest())) await this.kv.put('term', String(term));
  }
}

export async function publishEvent(js: JetStreamClient, ev: TaskEvent): Promise<void> {
  await js.publish(jobEventsSubject(ev.owner ?? NO_OWNER, ev.job_id), json.encode(ev), UNAVAILABLE_RETRIES);
}

/**
 * Follows one job's events from the first, calling `onEvent` for each, until `timeoutMs`
 * passes or the job has ended: with `until = 'final'` (default) at its last event (a success's
 * quality figures included, shared isFinalEvent); with `'released'` at its first terminal
 * event, when its reservation is released. Resolves with the last event seen.
 */
export async function followJob(js: JetStreamClient, job: { owner: string; id: string }, onEvent: (e: TaskEvent) => void, timeoutMs: number, until: 'final' | 'released' = 'final'): Promise<TaskEvent | undefined> {
  // An explicit ephemeral consumer: the client's "ordered consumer" stalls against nats-server 2.9.
  // Named, so its filter is in the subject NATS checks: a client may follow its own jobs only.
  // (`owner` '*': any owner's, for members allowed to.)
  const jsm = await js.jetstreamManager();
  const name = `follow_${nuid.next()}`;
  const info = await retryUnavailable(() => jsm.consumers.add(EVENTS_STREAM, {
    name, filter_subject: jobEventsSubject(job.owner, job.id), deliver_policy: DeliverPolicy.All, ack_policy: AckPolicy.None, inactive_threshold: nanos(60_000),
  }));
  const messages = await (await retryUnavailable(() => js.consumers.get(EVENTS_STREAM, info.name))).consume();
  let last: TaskEvent | undefined;
  // Closing ends the iteration below; breaking out of it instead leaves close() pending forever.
  const timer = setTimeout(() => void messages.close(), timeoutMs);
  for await (const m of messages) {
    last = json.decode(m.data) as TaskEvent;
    onEvent(last);
    if (until === 'final' ? isFinalEvent(last) : TERMINAL_STATES.has(last.state)) void messages.close();
  }
  clearTimeout(timer);
  await jsm.consumers.delete(EVENTS_STREAM, info.name).catch(() => undefined);
  return last;
}

/**
 * Follows every job's events from `sinceMs` on (then live), calling `onEvent` for each, until
 * stopped: the dashboard's feed. A consumer that fails (NATS restarted) is made again after a
 * second, from the last event seen, while the follower runs.
 */
export function followAllJobs(js: JetStreamClient, sinceMs: number, onEvent: (e: TaskEvent) => void, log: Log = () => undefined): { stop(): Promise<void> } {
  let stopped = false;
  let messages: ConsumerMessages | undefined;
  let name: string | undefined;
  let from = sinceMs;
  const run = async () => {
    while (!stopped) {
      const jsm = await js.jetstreamManager();
      try {
        name = `dashboard_${nuid.next()}`;
        await retryUnavailable(() => jsm.consumers.add(EVENTS_STREAM, {
          name, filter_subject: ALL_JOB_EVENTS, deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(from).toISOString(),
          ack_policy: AckPolicy.None, inactive_threshold: nanos(60_000),
        }));
        messages = await (await js.consumers.get(EVENTS_STREAM, name)).consume();
        if (stopped) await messages.close();
        for await (const m of messages) {
          let e: TaskEvent;
          try { e = json.decode(m.data) as TaskEvent; } catch { continue; }
          from = Math.max(from, (m.info?.timestampNanos ?? 0) / 1e6);
          onEvent(e);
        }
      } catch (e) {
        if (!stopped) log(`job events follower failed, following again: ${(e as Error).message}`, 'warn');
      }
      await jsm.consumers.delete(EVENTS_STREAM, name!).catch(() => undefined);
      if (!stopped) await new Promise((r) => setTimeout(r, 1000));
    }
  };
  const done = run();
  return {
    async stop() {
      stopped = true;
      await messages?.close();
      await done;
    },
  };
}

/**
 * Reads one job's ffmpeg log batches from the logs stream, oldest first, calling `onBatch` for
 * each. Without `follow` it ends once it has read what is stored; with it, it goes on until
 * `until` resolves (the job's final event), then reads what came meanwhile and ends.
 */
export async function readJobLogs(js: JetStreamClient, job: { owner: string; id: string }, onBatch: (b: JobLogBatch) => void, o: { follow?: Promise<unknown> } = {}): Promise<number> {
  const jsm = await js.jetstreamManager();
  const name = `logs_${nuid.next()}`;
  // A named consumer, its filter in the subject NATS checks: a client may read its own jobs' logs only.
  const info = await retryUnavailable(() => jsm.consumers.add(LOGS_STREAM, {
    name, filter_subject: jobLogSubject(job.owner, job.id), deliver_policy: DeliverPolicy.All, ack_policy: AckPolicy.None, inactive_threshold: nanos(60_000),
  }));
  let read = 0;
  try {
    if (!o.follow && info.num_pending === 0) return 0;
    const messages = await (await retryUnavailable(() => js.consumers.get(LOGS_STREAM, info.name))).consume();
    void o.follow?.then(async () => {
      // What was published just before the end is read before stopping.
      await new Promise((r) => setTimeout(r, 1000));
      void messages.close();
    });
    for await (const m of messages) {
      try { onBatch(json.decode(m.data) as JobLogBatch); } catch { /* not a batch: skipped */ }
      read++;
      if (!o.follow && m.info.pending === 0) void messages.close(); // not awaited: close ends this loop
    }
  } finally {
    await jsm.consumers.delete(LOGS_STREAM, name).catch(() => undefined);
  }
  return read;
}

export { json as jsonCodec };
