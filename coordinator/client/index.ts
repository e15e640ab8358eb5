/**
 * The typed client of a Prescient cluster: `import { Prescient } from 'prescient/client'`.
 *
 * ```ts
 * const p = await Prescient.connect();                    // as the CLI: PRESCIENT_STATE_DIR, PRESCIENT_IDENTITY
 * const [id] = await p.submit(job);                        // validated here first: SchemaValidationError names every field
 * for await (const e of p.watch(id)) console.log(e.state); // queued, placed, running, succeeded (ends at the final event)
 * await p.close();
 * ```
 *
 * It speaks NATS as one member, as the CLI does (coordinator/cli/member.ts): a client certificate
 * (`client/<name>`) may publish on its own submit and cancel subjects and follow its own jobs'
 * events only; an operator (`admin/<name>`) may also read the task records and the jobs stream.
 * So `status` and `list` answer from the records for an operator and from the job events for a
 * client (`source` says which; README.md here says what each can see), and `stop` checks a job's
 * kind where it can. It loads nats.js, shared/ and coordinator/bus only: never the models
 * (brain.js), gRPC, Consul, a cloud SDK, the agent or the CLI (test/unit/client-imports.test.ts).
 */
import { AckPolicy, DeliverPolicy, JSONCodec, nanos, nuid, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type NatsConnection } from 'nats';
import {
  ConfigError, EVENTS_STREAM, JOB_ID_PATTERN, NO_OWNER, TERMINAL_STATES, allowedInputRoots, allowedOutputRoots, describeValue, disconnectMember, isFinalEvent, jobEventsSubject, loadEndpoints, loadIdentity,
  newJobId, pkiDirFor, retryUnavailable, stateDir as defaultStateDir, type EncodingSchema, type EncodingTask, type Identity, type Member, type TaskEvent,
  type TaskState, type ValidationContext,
} from '../../shared/index.js';
import { JetStreamTaskStore, connectBus, ensureStreams, pendingSubmissions, publishCancel, publishSubmission } from '../bus/index.js';
import { ClientClosedError, NoSuchJobError, UnknownKindError, WaitTimeoutError, WrongKindError } from './errors.js';
import { defaultMember, parseMember } from './identity.js';
import { JOB_STATES, jobsView, type JobState } from './jobs.js';
import { checkJob, checkJobs } from './validate.js';

export { ClientClosedError, NoSuchJobError, UnknownKindError, WaitTimeoutError, WrongKindError } from './errors.js';
export { ConfigError, SchemaValidationError, isFinalEvent, type EncodeResult, type EncodingSchema, type EncodingTask, type FieldIssue, type Member, type Prediction, type ResourceAllocation, type ResourceUsage, type TaskEvent, type TaskState } from '../../shared/index.js';
export { JOB_STATES, type JobRow, type JobState } from './jobs.js';

/** How to reach the cluster and as whom; every field has the CLI's default. */
export interface ConnectOptions {
  /** Where the local stack keeps its endpoints (`stack.json`) and certificates (`pki/`): PRESCIENT_STATE_DIR, else ~/.prescient. */
  stateDir?: string;
  /** The cluster's NATS (PRESCIENT_NATS_URL, else the stack file's) and certificates folder (PRESCIENT_PKI_DIR, else STATE/pki). */
  endpoints?: { nats_url?: string; pki_dir?: string };
  /**
   * Who to speak as: `'client/<name>'` or `'admin/<name>'`, a member (its certificate read from the
   * certificates folder, issued there on first use where the CA key is), or credentials already
   * loaded (shared/pki loadIdentity). Default: PRESCIENT_IDENTITY, else an operator named after the OS user.
   */
  identity?: string | Member | Identity;
  /** Where input files may be (validation): PRESCIENT_INPUT_ROOTS, else STATE/media. */
  inputRoots?: readonly string[];
  /** Where `output.path` may point (validation): PRESCIENT_OUTPUT_ROOTS, else STATE/output. */
  outputRoots?: readonly string[];
  /** The NATS connection's name, as the server shows it. */
  name?: string;
}

/** A job as submitted: a document as written in YAML (shared/schema/encoding-schema.ts), or a schema already validated. */
export type JobDocument = EncodingSchema | Readonly<Record<string, unknown>>;

/** How long a wait may last: `timeoutMs` and `signal` both end it (by WaitTimeoutError, or the signal's reason). */
export interface WaitOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Where a job stands, and what said so:
 * - `record`: its task record (an operator reads the task store);
 * - `jobs-stream`: no leader has recorded it yet; it waits in JetStream (operators);
 * - `events`: its last event (a client, which can read its own jobs' events only).
 */
export type JobStatus =
  | { job_id: string; source: 'record'; state: TaskState; task: EncodingTask }
  | { job_id: string; source: 'jobs-stream'; state: 'submitted'; owner: string; /** When JetStream stored it (epoch ms). */ submitted_at: number; schema: unknown }
  | { job_id: string; source: 'events'; state: TaskState; event: TaskEvent };

/**
 * One job of `list`. From records (operators) every field is there; from events (clients) `class`
 * and `kind` are unknown (events do not carry the schema), `submitted_at` is absent, and
 * `updated_at` is its last event's time.
 */
export interface JobSummary {
  job_id: string;
  state: JobState;
  class?: string;
  kind?: 'task' | 'actor';
  node_id: string | null;
  owner: string | null;
  /** ISO 8601. */
  submitted_at?: string;
  updated_at: string;
  reason: string;
}

/** `list`'s answer: newest first, at most `limit`; `total` counts the matching jobs before the limit. */
export interface JobList {
  source: 'records' | 'events';
  total: number;
  jobs: JobSummary[];
  /** The jobs stream held more waiting submissions than were read: some are not listed. */
  incomplete?: boolean;
}

/**
 * What `cancel` and `stop` did:
 * - `requested`: the request is in JetStream; a leader acts on it (now, or when one is up).
 *   `waiting_for_leader`: the job itself still waits there (operators only can tell);
 * - `ended`: with `wait`, the job's final event;
 * - `already_ended`: it had ended; nothing was sent (operators only can tell).
 */
export type EndResult =
  | { job_id: string; outcome: 'requested'; waiting_for_leader?: boolean }
  | { job_id: string; outcome: 'ended'; final: TaskEvent }
  | { job_id: string; outcome: 'already_ended'; state: TaskState };

const json = JSONCodec<TaskEvent>();
/** How long reading the last events of a consumer may take before it is given up (they are already stored). */
const READ_STORED_MS = 10_000;

/** A job id as given: one a job could have, else a ConfigError naming it. */
function jobIdOf(id: unknown): string {
  if (typeof id !== 'string' || !JOB_ID_PATTERN.test(id)) throw new ConfigError('id', `${describeValue(id)} is not a job id (1 to 64 letters, digits, _ or -)`);
  return id;
}

const isIdentity = (v: Member | Identity): v is Identity => 'cert' in v && 'key' in v && 'ca' in v;

/** A JetStream consumer of job events, made for one read and deleted after it. */
interface EventFeed {
  messages: ConsumerMessages;
  /** Messages stored for it when it was made. */
  pending: number;
  /** Stops it and deletes its consumer (once, however often called). */
  dispose(): Promise<void>;
}

export class Prescient {
  /** Jobs submitted through this connection and whether each is a live channel: what `stop` checks for a client. */
  private readonly kinds = new Map<string, 'task' | 'actor'>();
  /** The feeds open now, closed by `close()`. */
  private readonly feeds = new Set<EventFeed>();
  private streamsReady: Promise<void> | undefined;
  private closed = false;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    /** Who this connection speaks as. */
    readonly member: Member,
    private readonly validation: ValidationContext,
  ) {}

  /** Connects to the cluster (see ConnectOptions for the defaults). A bad setting is a ConfigError naming it. */
  static async connect(o: ConnectOptions = {}): Promise<Prescient> {
    const dir = defaultStateDir(o.stateDir);
    const natsUrl = o.endpoints?.nats_url ?? process.env.PRESCIENT_NATS_URL ?? loadEndpoints(dir).nats_url;
    const pkiDir = o.endpoints?.pki_dir ?? pkiDirFor(dir);
    const who = o.identity === undefined ? defaultMember() : typeof o.identity === 'string' ? parseMember(o.identity, 'identity') : o.identity;
    if (who.role !== 'client' && who.role !== 'admin') throw new ConfigError('identity', `must be a client or an admin (operator), got ${who.role} ${who.name}`);
    const id = isIdentity(who) ? who : loadIdentity(pkiDir, who);
    const nc = await connectBus(natsUrl, id, o.name ?? `prescient-client-${id.name}`);
    try {
      const validation = {
        allowedInputRoots: o.inputRoots ? [...o.inputRoots] : allowedInputRoots(dir),
        allowedOutputRoots: o.outputRoots ? [...o.outputRoots] : allowedOutputRoots(dir),
      };
      return new Prescient(nc, nc.jetstream(), await nc.jetstreamManager(), { role: id.role, name: id.name }, validation);
    } catch (e) {
      await nc.close();
      throw e;
    }
  }

  /** Whether this member reads task records and the jobs stream (an operator), or only its own jobs' events (a client). */
  get readsRecords(): boolean {
    return this.member.role !== 'client';
  }

  /** Whose events this member follows: a client its own, an operator anyone's. */
  private get followAs(): string {
    return this.readsRecords ? '*' : this.member.name;
  }

  /**
   * Submits one job or several. Every document is validated first, as the CLI does (shared
   * validateEncodingSchema, and a file input must exist here): if any is wrong, one
   * SchemaValidationError lists every issue of every document (fields prefixed `[i].` when an
   * array was given) and nothing is sent. Inputs are not probed here (the CLI's `submit` does):
   * a node probes a file input before the job is predicted.
   *
   * Resolves with the job ids in order; with `wait`, once every job has ended, with their final
   * events in order (whatever their state: check `.state`). A wait that runs out throws
   * WaitTimeoutError; the jobs carry on.
   */
  submit(jobs: JobDocument | readonly JobDocument[], o?: { wait?: false }): Promise<string[]>;
  submit(jobs: JobDocument | readonly JobDocument[], o: { wait: true } & WaitOptions): Promise<TaskEvent[]>;
  async submit(jobs: JobDocument | readonly JobDocument[], o: { wait?: boolean } & WaitOptions = {}): Promise<string[] | TaskEvent[]> {
    this.checkOpen();
    const many = Array.isArray(jobs);
    const docs: readonly unknown[] = many ? (jobs as readonly unknown[]) : [jobs];
    if (!docs.length) throw new ConfigError('jobs', 'no job given');
    const schemas = many ? checkJobs(docs, this.validation) : [checkJob(jobs, this.validation)];
    await this.streams();
    const ids: string[] = [];
    for (const schema of schemas) {
      const id = newJobId();
      await publishSubmission(this.js, this.member.name, { job_id: id, submitted_at: Date.now(), schema });
      this.kinds.set(id, schema.kind === 'actor' ? 'actor' : 'task');
      ids.push(id);
    }
    if (!o.wait) return ids;
    return this.waitAll(ids, o);
  }

  /**
   * The events of one job, from its first, as they come; the iteration ends after its final
   * event (terminal, and for a success the one with its quality figures: isFinalEvent).
   * Breaking out of the loop, or aborting `signal` (the iteration then throws the signal's
   * reason), stops it and deletes its JetStream consumer. A client sees its own jobs' events only:
   * another's job, like one no leader has taken yet, shows nothing until it has events.
   */
  async *watch(id: string, o: { signal?: AbortSignal } = {}): AsyncGenerator<TaskEvent, void, undefined> {
    this.checkOpen();
    jobIdOf(id);
    o.signal?.throwIfAborted();
    const feed = await this.openFeed(jobEventsSubject(this.followAs, id), DeliverPolicy.All);
    const abort = () => void feed.dispose();
    o.signal?.addEventListener('abort', abort, { once: true });
    if (o.signal?.aborted) abort();
    try {
      // Iterated by hand: leaving a `for await` over the messages early would leave their close() pending.
      const it = feed.messages[Symbol.asyncIterator]();
      for (;;) {
        const r = await it.next();
        if (r.done) break;
        let e: TaskEvent;
        try { e = json.decode(r.value.data); } catch { continue; }
        yield e;
        if (isFinalEvent(e)) return;
      }
      o.signal?.throwIfAborted();
      if (this.closed) throw new ClientClosedError();
      throw new Error(`the events of ${id} stopped before its final event (the connection to NATS was lost)`);
    } finally {
      o.signal?.removeEventListener('abort', abort);
      await feed.dispose();
    }
  }

  /**
   * Where one job stands (JobStatus says from what). A job nobody has is a NoSuchJobError; for a
   * client that is also a job of another member's, or one no leader has taken yet (it has no
   * events, and a client cannot read the jobs stream).
   */
  async status(id: string): Promise<JobStatus> {
    this.checkOpen();
    jobIdOf(id);
    if (!this.readsRecords) {
      const [last] = await this.readStored(jobEventsSubject(this.member.name, id), DeliverPolicy.Last);
      if (!last) throw new NoSuchJobError(id, `no event of it among ${this.member.name}'s jobs (a client sees its own jobs' events only; a job no leader has taken yet has none)`);
      return { job_id: id, source: 'events', state: last.state, event: last };
    }
    const t = await (await JetStreamTaskStore.open(this.js)).get(id);
    if (t) return { job_id: id, source: 'record', state: t.state, task: t };
    const p = (await pendingSubmissions(this.nc, { jobId: id })).submissions[0];
    if (!p) throw new NoSuchJobError(id);
    return { job_id: id, source: 'jobs-stream', state: 'submitted', owner: p.owner, submitted_at: p.stored_at, schema: p.schema };
  }

  /**
   * The jobs, newest first, in `state` (any of them) when given, at most `limit` (default 50,
   * at most 10,000). An operator gets every task record and the submissions waiting in JetStream
   * (as `prescient jobs`); a client gets its own jobs with events (kept 7 days), from their last
   * event: never `submitted` ones.
   */
  async list(o: { state?: JobState | readonly JobState[]; limit?: number } = {}): Promise<JobList> {
    this.checkOpen();
    const states = o.state === undefined ? undefined : new Set<JobState>(typeof o.state === 'string' ? [o.state] : o.state);
    const bad = [...(states ?? [])].filter((x) => !JOB_STATES.includes(x));
    if (bad.length || states?.size === 0) throw new ConfigError('state', `${bad.length ? bad.map((x) => describeValue(x)).join(', ') : 'an empty list'}: use ${JOB_STATES.join(', ')}`);
    const limit = o.limit ?? 50;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) throw new ConfigError('limit', `must be a whole number from 1 to 10000, got ${describeValue(o.limit)}`);
    if (this.readsRecords) {
      const [tasks, pending] = await Promise.all([(await JetStreamTaskStore.open(this.js)).listAll(), pendingSubmissions(this.nc)]);
      const v = jobsView(tasks, pending.submissions, { states, limit });
      return { source: 'records', ...v, ...(pending.more && { incomplete: true }) };
    }
    const events = await this.readStored(jobEventsSubject(this.member.name, '*'), DeliverPolicy.LastPerSubject);
    const rows = events.map((e): JobSummary => ({
      job_id: e.job_id, state: e.state, node_id: e.node_id ?? e.allocation?.node_id ?? null, owner: e.owner ?? this.member.name,
      updated_at: new Date(e.at).toISOString(), reason: e.reason ?? '',
    })).filter((r) => !states || states.has(r.state));
    rows.sort((a, b) => b.updated_at.localeCompare(a.updated_at) || b.job_id.localeCompare(a.job_id));
    return { source: 'events', total: rows.length, jobs: rows.slice(0, limit) };
  }

  /**
   * Cancels a job: a queued one at once, a running one once its agent has stopped ffmpeg (its
   * output discarded; a live channel too: `stop` keeps its playlist). An operator's request is
   * checked first: a job nobody has is a NoSuchJobError and one that has ended is left alone
   * (`already_ended`), nothing sent. With `wait`, resolves with its final event.
   */
  cancel(id: string, o: { wait?: boolean } & WaitOptions = {}): Promise<EndResult> {
    return this.end('cancel', id, o);
  }

  /**
   * Stops a live channel (a job of `kind: actor`): ffmpeg closes its playlist, its reservation is
   * released and it ends `succeeded`. A batch job is refused with WrongKindError (cancel it
   * instead): the leader ends a job by its kind, so the request would cancel it. A client, which
   * cannot read task records, knows the kind only of jobs submitted through this connection;
   * for another it throws UnknownKindError unless `live: true` says the job is a live channel.
   */
  stop(id: string, o: { wait?: boolean; live?: boolean } & WaitOptions = {}): Promise<EndResult> {
    return this.end('stop', id, o);
  }

  /** Ends every watch (they throw ClientClosedError), deletes their consumers and closes the connection. Calling it again does nothing. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.feeds].map((f) => f.dispose()));
    await disconnectMember(this.nc);
  }

  private checkOpen(): void {
    if (this.closed) throw new ClientClosedError();
  }

  /** The streams exist (a coordinator makes them; an operator may, a client may not). */
  private streams(): Promise<void> {
    if (!this.readsRecords) return Promise.resolve();
    this.streamsReady ??= retryUnavailable(() => ensureStreams(this.nc)).catch((e) => { this.streamsReady = undefined; throw e; });
    return this.streamsReady;
  }

  private async end(verb: 'cancel' | 'stop', id: string, o: { wait?: boolean; live?: boolean } & WaitOptions): Promise<EndResult> {
    this.checkOpen();
    jobIdOf(id);
    let owner = this.member.name;
    let waiting: boolean | undefined;
    if (this.readsRecords) {
      await this.streams();
      const t = await (await JetStreamTaskStore.open(this.js)).get(id);
      const p = t ? undefined : (await pendingSubmissions(this.nc, { jobId: id })).submissions[0];
      if (!t && !p) throw new NoSuchJobError(id);
      const kind = t ? t.schema.kind : (p!.schema as { kind?: unknown } | undefined)?.kind;
      if (verb === 'stop' && kind !== 'actor') throw batchJob(id);
      if (t && TERMINAL_STATES.has(t.state)) return { job_id: id, outcome: 'already_ended', state: t.state };
      owner = t?.owner ?? p?.owner ?? NO_OWNER;
      waiting = !t;
    } else if (verb === 'stop' && !o.live) {
      const kind = this.kinds.get(id);
      if (!kind) throw new UnknownKindError(id);
      if (kind !== 'actor') throw batchJob(id);
    }
    await publishCancel(this.js, owner, { job_id: id, requested_at: Date.now(), action: verb });
    if (!o.wait) return { job_id: id, outcome: 'requested', ...(waiting !== undefined && { waiting_for_leader: waiting }) };
    const [final] = await this.waitAll([id], o);
    return { job_id: id, outcome: 'ended', final };
  }

  /** Each job's final event, in order; WaitTimeoutError (with the last event seen of each) when `timeoutMs` passes first. */
  private async waitAll(ids: readonly string[], o: WaitOptions): Promise<TaskEvent[]> {
    const last = new Map<string, TaskEvent | undefined>(ids.map((id) => [id, undefined]));
    const stop = new AbortController();
    const onAbort = () => stop.abort(o.signal!.reason);
    o.signal?.addEventListener('abort', onAbort, { once: true });
    if (o.signal?.aborted) onAbort();
    const timer = o.timeoutMs === undefined ? undefined : setTimeout(() => stop.abort(new WaitTimeoutError(o.timeoutMs!, last)), o.timeoutMs);
    try {
      return await Promise.all(ids.map(async (id) => {
        for await (const e of this.watch(id, { signal: stop.signal })) last.set(id, e);
        return last.get(id)!;
      }));
    } catch (e) {
      // The others stop with the first that fails.
      stop.abort(e);
      throw e;
    } finally {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** A consumer of the events under `filter` (delivered as `deliver` says), deleted by its dispose(). */
  private async openFeed(filter: string, deliver: DeliverPolicy): Promise<EventFeed> {
    // An explicit named consumer, as coordinator/bus followJob makes: its filter is in the subject
    // NATS checks, so a client may make one for its own jobs only. Inactive for a minute (its
    // process gone), the server deletes it.
    const name = `client_${nuid.next()}`;
    const info = await retryUnavailable(() => this.jsm.consumers.add(EVENTS_STREAM, {
      name, filter_subject: filter, deliver_policy: deliver, ack_policy: AckPolicy.None, inactive_threshold: nanos(60_000),
    }));
    let disposed: Promise<void> | undefined;
    const remove = () => this.jsm.consumers.delete(EVENTS_STREAM, name).then(() => undefined, () => undefined);
    let messages: ConsumerMessages;
    try {
      messages = await (await retryUnavailable(() => this.js.consumers.get(EVENTS_STREAM, name))).consume();
    } catch (e) {
      await remove();
      throw e;
    }
    const feed: EventFeed = {
      messages,
      pending: info.num_pending,
      dispose: () => {
        disposed ??= (async () => {
          this.feeds.delete(feed);
          // close() unsubscribes at once; its promise settles only once an iteration reads the end, so it is not awaited.
          void messages.close().catch(() => undefined);
          await remove();
        })();
        return disposed;
      },
    };
    this.feeds.add(feed);
    return feed;
  }

  /** The events stored under `filter` now (as `deliver` picks them), read once. */
  private async readStored(filter: string, deliver: DeliverPolicy.Last | DeliverPolicy.LastPerSubject): Promise<TaskEvent[]> {
    const feed = await this.openFeed(filter, deliver);
    const out: TaskEvent[] = [];
    const timer = setTimeout(() => void feed.messages.close(), READ_STORED_MS);
    try {
      if (feed.pending === 0) return out;
      let read = 0;
      // Closing ends this loop once the last stored one is read (breaking out would leave close() pending).
      for await (const m of feed.messages) {
        try { out.push(json.decode(m.data)); } catch { /* not an event: skipped */ }
        if (++read >= feed.pending) void feed.messages.close();
      }
      return out;
    } finally {
      clearTimeout(timer);
      await feed.dispose();
    }
  }
}

/** `stop` on a batch job. */
function batchJob(id: string): WrongKindError {
  return new WrongKindError('id', `${id} is a batch job, not a live channel: stop ends live channels (kind: actor) only; cancel it instead (its output discarded)`);
}
