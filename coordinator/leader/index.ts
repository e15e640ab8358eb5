/**
 * What a coordinator does while it leads one term: the runtime shell around the leader's core
 * (coordinator/core). The shell turns what arrives (JetStream submissions and cancellations,
 * agents' gRPC calls, its own timers) into events, feeds them to the core in batches, and
 * carries out the effects the core returns: task records and events written pipelined (the
 * acknowledgements awaited per batch), assignments sent in one call per node (AssignBatch),
 * cancellations, ledger saves. One Leader object lives exactly as long as the leadership; a new
 * term builds a fresh one from the durable task records and from what the agents report.
 *
 *   JetStream submit ─► probe (I/O) ─► Submitted ─┐
 *   agent Register / Heartbeat / ReportStatus ────┼─► core.apply ─► effects ─► KV records, events,
 *   timers: Tick, Wake; effect outcomes ──────────┘                           AssignBatch, Cancel, save
 *
 * With `eventLog`, every batch of events fed to the core is appended to that file, with the
 * decisions it led to: `prescient replay FILE` re-runs them through a fresh core and checks it
 * decides the same.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { realpath, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ConsumerMessages, JetStreamClient, JsMsg, NatsConnection, Subscription } from 'nats';
import {
  AgentClient, SchemaValidationError, failureKind, truncate, validateInputPath, validateInputProbe,
  JOBS_CONSUMER, JOBS_STREAM, SUBMIT_MAX_DELIVERIES_ADVISORY, jobsMessageOf, retryUnavailable,
  type EncodingTask, type HeartbeatReply, type HeartbeatRequest, type DeregisterRequest, type RegisterReply, type RegisterRequest,
  type TaskStatusReport, type ValidationContext, type Ack, type Identity,
} from '../../shared/index.js';
import { keyBucket, type ResourcePredictor } from '../../models/index.js';
import { StaleLedgerWriteError, type Ledger, type LedgerStore, type NodeSnapshot } from '../ledger/index.js';
import type { PlacementPolicy } from '../placement/index.js';
import { deadLetterOf, jsonCodec, publishDeadLetter, publishEvent, type TaskStore } from '../bus/index.js';
import type { QueuePolicy } from '../queue/index.js';
import type { ReservationPolicy } from '../sizing/index.js';
import type { CorrectedPredictor } from '../feedback/index.js';
import { Reclaimer } from './reclaim.js';
import { LeaderCore, decisionsOf, type TimeLimit, type CoreConfig, type Effect, type LeaderEvent, type ProbeOutcome, type Reply, type Submission } from '../core/index.js';
import type { Log, LineLevel } from '../../shared/log.js';

export interface LeaderOptions {
  id: string;
  term: number;
  /** The coordinator's certificate, shown to agents (shared/pki). */
  identity: Identity;
  js: JetStreamClient;
  /**
   * Told once when a later term's ledger write deposes this leader: the coordinator gives up
   * its Consul lock at once, so a standby takes over (a deposed leader that kept the lock once
   * stalled the cluster: it placed nothing, and nobody else could).
   */
  onDeposed?: (reason: string) => void;
  /** For JetStream's advisories (a submission delivered MAX_SUBMIT_DELIVERIES times); without it none are followed. */
  nc?: NatsConnection;
  store: TaskStore;
  predictor: ResourcePredictor;
  validation: ValidationContext;
  /** An agent silent for this long is declared lost and its tasks re-queued. */
  leaseMs: number;
  heartbeatMs: number;
  /** Attempts before a task that keeps losing its node is failed. */
  maxAttempts?: number;
  /** When an encode is stopped as hung (default coordinator/core TIME_LIMIT). */
  timeLimit?: TimeLimit;
  /** How queued work is ordered (SLA class delays, submitter spacing). */
  queuePolicy?: QueuePolicy;
  /** How much a task reserves (default: its predicted upper bound). */
  reservation?: ReservationPolicy;
  /** Which node a reservation goes to (default best-fit; coordinator/placement). */
  policy?: PlacementPolicy;
  /** Where the ledger is kept between leaders; without one a new leader rebuilds it from agents' reports alone. */
  ledgerStore?: LedgerStore;
  /** A file the events fed to the core are appended to (JSON lines), for `prescient replay`. */
  eventLog?: string;
  /** Told of every record the leader writes (every state change of every job): the coordinator's metrics count from it. */
  onRecord?: (t: EncodingTask) => void;
  /** The coverage the model was loaded at, for the event log (the predictor already has it). */
  coverage?: number;
  log: Log;
  now?: () => number;
}

/** Nodes asked to probe one input at most, and inputs probed at once. */
const PROBE_NODES = 2;
const PROBE_PARALLEL = 8;
/** Submissions admitted in one batch at most. */
const BATCH = 256;
/**
 * Bytes of submissions the inbox holds before it is flushed. Without it a flood of large poison
 * messages (600 KB each) sat in memory 64 at a time and left the leader's RSS 40 % higher after
 * it (poison bench). The pull itself stays 64 messages: pulling by bytes (2 MB, tried) left the
 * poison bench waiting past its limit for the refusals of 600 KB submissions.
 */
const INBOX_BYTES = 2 * 1024 * 1024;
/** How long after a change the ledger is saved (saveSoon). */
const SAVE_EVERY_MS = 100;

/** A redelivered submission waits 2 s, then twice as long each time, up to a minute (the task store may be down for a while). */
const redeliverAfter = (m: JsMsg) => Math.min(60_000, 2000 * 2 ** Math.max(0, Math.min(5, (m.info?.deliveryCount ?? 1) - 1)));
/** A key no task has (task ids are shorter): reading it tells whether the task store answers. */
const STORE_CHECK_KEY = 'prescient-store-check-0000000000000000000000000000000000000000000000000000000000';

/**
 * Deepest nesting a submission may have (a valid one has 5 levels). Deeper ones are not parsed:
 * one nested 5,000 levels deep cost 0.4 MB of arrays to parse and left a leader that took a
 * thousand of them at 2.8 times its RSS (poison bench).
 */
const MAX_DEPTH = 32;
/**
 * Largest submission read (a valid one is a few KB, a probed one with a group under 4 KB):
 * larger ones are set aside unparsed, so a flood of them costs the leader no more than the bytes.
 */
const MAX_SUBMISSION_BYTES = 64 * 1024;

/** Whether JSON text nests arrays and objects deeper than `max`, read byte by byte (strings skipped) without parsing it. */
function nestedDeeperThan(data: Uint8Array, max: number): boolean {
  let depth = 0, inString = false;
  for (let i = 0; i < data.length; i++) {
    const b = data[i];
    if (inString) {
      if (b === 0x5c) i++; // a backslash escapes the next byte
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) inString = true;
    else if (b === 0x5b || b === 0x7b) { if (++depth > max) return true; }
    else if (b === 0x5d || b === 0x7d) depth--;
  }
  return false;
}

/** A record's outcome: written, a duplicate of an earlier job's (dropped), or not written. */
type Written = 'ok' | 'duplicate' | 'failed';

export class Leader {
  private readonly core: LeaderCore;
  private readonly agents = new Map<string, AgentClient>();
  private messages?: ConsumerMessages;
  private readonly inbox: JsMsg[] = [];
  private inboxBytes = 0;
  private readonly reclaimer = new Reclaimer();
  private flushing?: Promise<void>;
  private ticker?: NodeJS.Timeout;
  private waker?: NodeJS.Timeout;
  private wakeAt = Infinity;
  private stopped = false;
  private deposed = false;
  private readonly now: () => number;
  /** The ledger save in progress or due (saveSoon). */
  private saving?: Promise<void>;
  /** Effects being carried out: a stop waits for them. */
  private readonly inFlight = new Set<Promise<unknown>>();
  private modelVersion?: string;
  private correctionRevision?: number;
  private events?: WriteStream;
  /** Why a task's first record could not be written, for its dead letter. */
  private readonly writeErrors = new Map<string, string>();
  private advisories?: Subscription;
  /**
   * Submissions taken from the consumer and not yet answered: told "in progress" every second, so
   * that the consumer's short ack wait (JOBS_ACK_WAIT_MS) redelivers only what a dead leader held.
   */
  private readonly held = new Set<JsMsg>();
  private working?: NodeJS.Timeout;

  constructor(private readonly o: LeaderOptions) {
    this.now = o.now ?? Date.now;
    this.core = new LeaderCore({
      predictor: o.predictor, validation: o.validation, leaseMs: o.leaseMs, maxAttempts: o.maxAttempts,
      queuePolicy: o.queuePolicy, reservation: o.reservation, policy: o.policy, timeLimit: o.timeLimit,
    });
  }

  get term(): number { return this.o.term; }
  /** The ledger as the core holds it (read it; change it only through events). */
  get ledger(): Ledger { return this.core.ledger; }

  async start(): Promise<void> {
    if (this.o.eventLog) this.events = createWriteStream(this.o.eventLog, { flags: 'a' });
    // A NATS reload makes JetStream unreachable for a moment: that is waited out, not taken for an empty store.
    const tasks = await retryUnavailable(() => this.o.store.listActive());
    const saved = await (this.o.ledgerStore && retryUnavailable(() => this.o.ledgerStore!.load()))?.catch((e: Error) => { this.log(`could not read the saved ledger, rebuilding from agents: ${e.message}`, 'warn'); return undefined; });
    const config: CoreConfig = {
      lease_ms: this.o.leaseMs, max_attempts: this.o.maxAttempts, ...(this.o.timeLimit && { time_limit: this.o.timeLimit }), reservation: this.o.reservation, placement: this.o.policy?.name ?? 'best-fit',
      queue_policy: this.o.queuePolicy, allowed_input_roots: [...this.o.validation.allowedInputRoots], allowed_output_roots: [...(this.o.validation.allowedOutputRoots ?? [])], coverage: this.o.coverage,
    };
    await this.feed([{ kind: 'Started', at: this.now(), term: this.o.term, leader_id: this.o.id, tasks, saved, config }]);
    // The resumed ledger is saved at once: its first save fences out every older term.
    await this.persist();
    this.ticker = setInterval(() => void this.feed([{ kind: 'Tick', at: this.now() }]).catch((e) => this.log(`tick failed: ${e}`, 'error')), 1000);
    void this.consume();
    this.working = setInterval(() => { for (const m of this.held) m.working(); }, 1000);
    this.advisories = this.o.nc?.subscribe(SUBMIT_MAX_DELIVERIES_ADVISORY, { callback: (err, m) => { if (!err) void this.maxDeliveries(m.data).catch((e) => this.log(`could not set aside an undeliverable submission: ${e}`, 'error')); } });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.advisories?.unsubscribe();
    clearInterval(this.working);
    clearInterval(this.ticker);
    clearTimeout(this.waker);
    this.reclaimer.stop();
    await this.messages?.close().catch(() => undefined);
    await this.flushing;
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
    // The last changes are saved before leaving, unless this leader was deposed.
    await this.saving;
    if (!this.deposed) await this.persist(true);
    for (const c of this.agents.values()) c.close();
    this.agents.clear();
    await new Promise<void>((r) => (this.events ? this.events.end(r) : r()));
  }

  /** Queued tasks in the order they get resources (coordinator/queue). */
  queue(): EncodingTask[] { return this.core.queue(); }

  /** The tasks this leader holds that have not ended (read them; change them only through events). */
  activeTasks(): IterableIterator<EncodingTask> { return this.core.active.values(); }

  /** The ledger's nodes as they are now. */
  nodes(): readonly NodeSnapshot[] { return this.core.ledger.snapshot().nodes; }

  /** Marks exactly these nodes draining (the burst controller's scale-down): placement leaves them out. */
  setDraining(ids: Iterable<string>): void {
    void this.feed([{ kind: 'DrainingSet', at: this.now(), node_ids: [...ids] }]).catch((e) => this.log(`could not mark nodes draining: ${e}`, 'warn'));
  }

  /** What the burst controller decides from (read-only): the active tasks, recent arrivals and the ledger as it is now. */
  burstView(): ReturnType<LeaderCore['burstView']> { return this.core.burstView(); }

  // ── feeding the core ─────────────────────────────────────────────────────────────────

  /**
   * Applies a batch of events and carries out its effects. Resolves, once the effects are done
   * (records written, assignments answered), with the core's reply to each event, and the
   * outcome of the first record of each task written in the batch.
   */
  private async feed(events: LeaderEvent[]): Promise<{ replies: (Reply | undefined)[]; written: Map<string, Promise<Written>> }> {
    // The model in service, and the feedback loop's corrections applied to it: a change of
    // either is an event, with the corrections themselves where the events are logged.
    const cs = (this.o.predictor as Partial<CorrectedPredictor>).correctionState?.();
    const revision = cs ? cs.revision : -1;
    if (this.o.predictor.version !== this.modelVersion || revision !== this.correctionRevision) {
      this.modelVersion = this.o.predictor.version;
      this.correctionRevision = revision;
      events = [{ kind: 'ModelChanged', at: this.now(), version: this.modelVersion, revision, ...(this.events && cs && { corrections: cs.table() }) }, ...events];
    }
    // Logged as they were fed: the core changes the objects some events carry (a resumed task's allocation).
    const logged = this.events && JSON.stringify(events);
    const { effects, replies } = this.core.apply(events);
    if (logged && !this.events!.writableEnded) this.events!.write(`{"events":${logged},"decisions":${JSON.stringify(decisionsOf(effects))}}\n`);
    const written = this.execute(effects);
    const done = Promise.allSettled(written.all);
    this.inFlight.add(done);
    try {
      await done;
    } finally {
      this.inFlight.delete(done);
    }
    return { replies, written: written.first };
  }

  /**
   * Carries out effects in order without waiting between them, except where one depends on
   * another: a task's event, assignment or cancellation goes out once its record is written.
   * Outcomes the core must know (a duplicate, a refusal, an agent's answer) are fed back.
   */
  private execute(effects: Effect[]): { all: Promise<unknown>[]; first: Map<string, Promise<Written>> } {
    const all: Promise<unknown>[] = [];
    const first = new Map<string, Promise<Written>>();
    const last = new Map<string, Promise<Written>>();
    const failedFirst: string[] = [];
    const after = (id: string) => last.get(id) ?? Promise.resolve<Written>('ok');
    for (const e of effects) {
      switch (e.kind) {
        case 'Record': {
          this.o.onRecord?.(e.task);
          const w = this.write(e.task, e.first, failedFirst);
          last.set(e.task.id, w);
          if (e.first) first.set(e.task.id, w);
          all.push(w);
          break;
        }
        case 'Publish':
          all.push(after(e.event.job_id).then((w) => (w === 'ok' ? publishEvent(this.o.js, e.event) : undefined)).catch((err) => this.log(`could not publish ${e.event.job_id}'s event: ${err}`, 'warn')));
          break;
        case 'Assign':
          all.push(after(e.assignment.task_id).then((w) => this.assign(e, w)));
          break;
        case 'Cancel':
          all.push(after(e.task_id).then(() => this.cancel(e)));
          break;
        case 'SaveLedger': this.saveSoon(); break;
        case 'Wake': this.wake(e.at); break;
        case 'Alert': this.log(e.message, e.level); break;
        // After the records before it: the members' records say `writing` before they can say `written`.
        case 'WritePlaylist': all.push(Promise.allSettled([...last.values()]).then(() => this.writePlaylist(e))); break;
      }
    }
    // First writes that failed: their submissions are redelivered, and written again then.
    const records = [...last.values()];
    if (records.length) all.push(Promise.allSettled(records).then(() => (failedFirst.length ? this.feed([{ kind: 'RecordFailed', at: this.now(), task_ids: failedFirst }]) : undefined)));
    return { all, first };
  }

  /**
   * Writes a task's record. A job's first record is created only where its id has none: a
   * `duplicate` when another submission of that id was recorded first (by an earlier leader, or
   * before JetStream's ten-minute duplicate window), which the core then drops. One write admits
   * a job once; no read before it.
   */
  private async write(t: EncodingTask, first: boolean, failedFirst: string[]): Promise<Written> {
    try {
      if (!first) await this.o.store.put(t);
      else if ((await this.o.store.create(t)) === 'exists' && !(await this.writtenByUs(t))) {
        await this.feed([{ kind: 'Duplicate', at: this.now(), task_id: t.id }]);
        return 'duplicate';
      }
      return 'ok';
    } catch (e) {
      this.log(`could not record ${t.id} (${t.state}): ${(e as Error).message}`, first ? 'warn' : 'error');
      if (first) { failedFirst.push(t.id); this.writeErrors.set(t.id, (e as Error).message); }
      return 'failed';
    }
  }

  /**
   * Whether the record found under a new task's id is this leader's own earlier write of it (a
   * write that timed out but landed): then it is overwritten.
   */
  private async writtenByUs(t: EncodingTask): Promise<boolean> {
    const stored = await this.o.store.get(t.id);
    if (stored && (stored.term !== this.o.term || stored.submitted_at !== t.submitted_at)) return false;
    await this.o.store.put(t);
    return true;
  }

  private async assign(e: Effect & { kind: 'Assign' }, written: Written): Promise<void> {
    if (written === 'duplicate') return;
    const reply = written === 'failed'
      ? { refused: 'its record could not be written', unreachable: false }
      : await this.agent(e.address, e.node_id).assign(e.assignment)
        // An agent that is stopping (DRAINING) counts as unreachable: the attempt is not the job's, and nothing more goes there.
        .then((r) => ({ refused: r.accepted ? undefined : r.reason, unreachable: failureKind(r.refusal) === 'DRAINING' }), (err: Error) => ({ refused: err.message, unreachable: true }));
    if (reply.refused === undefined) return;
    await this.feed([{ kind: 'AssignFailed', at: this.now(), task_id: e.assignment.task_id, node_id: e.node_id, reason: reply.refused, unreachable: reply.unreachable }]);
  }

  /**
   * Writes a group's master playlist beside its renditions (a temporary file renamed over any
   * earlier one), where its directory resolves inside this leader's output roots: the renditions
   * are on the nodes that encoded them, so this host must see the same filesystem (a shared mount
   * for a ladder spread over nodes). The outcome goes back to the core.
   */
  private async writePlaylist(e: Effect & { kind: 'WritePlaylist' }): Promise<void> {
    let error: string | undefined;
    try {
      const dir = await realpath(path.dirname(e.path)).catch((err: NodeJS.ErrnoException) => {
        throw new Error(`${path.dirname(e.path)} is not reachable from this leader's host (${err.code ?? err.message}): the renditions are on their nodes; a shared filesystem mounted here too lets the leader write it`);
      });
      const roots = await Promise.all((this.o.validation.allowedOutputRoots ?? []).map((r) => realpath(r).catch(() => undefined)));
      if (!roots.some((r) => r && (dir === r || dir.startsWith(r.endsWith(path.sep) ? r : r + path.sep)))) {
        throw new Error(`${dir} is outside this leader's output roots (PRESCIENT_OUTPUT_ROOTS)`);
      }
      const file = path.join(dir, path.basename(e.path));
      const tmp = `${file}.${process.pid}.tmp`;
      try {
        await writeFile(tmp, e.text, { mode: 0o644, flag: 'wx' });
        await rename(tmp, file);
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
    } catch (err) {
      error = (err as Error).message;
    }
    await this.feed([{ kind: 'PlaylistWritten', at: this.now(), group: e.group, task_ids: e.task_ids, path: e.path, ...(error && { error }) }]);
  }

  private async cancel(e: Effect & { kind: 'Cancel' }): Promise<void> {
    const a: Ack = await this.agent(e.address, e.node_id).cancel({ task_id: e.task_id, term: e.term }).then((r) => r, (err: Error): Ack => ({ ok: false, reason: err.message }));
    await this.feed([{ kind: 'CancelAnswered', at: this.now(), task_id: e.task_id, not_running: !a.ok && failureKind(a.refusal) === 'NOT_RUNNING', reason: a.ok ? '' : a.reason }]);
  }

  /** Runs a placement pass at `at` (epoch ms), unless one is already due sooner. */
  private wake(at: number): void {
    if (this.stopped || at >= this.wakeAt) return;
    clearTimeout(this.waker);
    this.wakeAt = at;
    this.waker = setTimeout(() => {
      this.wakeAt = Infinity;
      void this.feed([{ kind: 'Wake', at: this.now() }]).catch((e) => this.log(`placement pass failed: ${e}`, 'error'));
    }, Math.max(0, at - this.now()));
  }

  // ── the ledger's saves ───────────────────────────────────────────────────────────────

  /**
   * Saves the ledger's changes SAVE_EVERY_MS after the first unsaved one, one save at a time.
   * A save writes each changed node's whole record, reservations included: saving after every
   * batch was an eighth of a busy leader's CPU (submit-latency bench). A leader that dies between
   * saves loses at most that window of changes, which its successor gets back from the agents'
   * reports (they list what they run; the core's claim), as it does for any unsaved change.
   */
  private saveSoon(): void {
    if (this.saving || !this.o.ledgerStore || this.stopped) return;
    this.saving = new Promise<void>((r) => setTimeout(r, SAVE_EVERY_MS)).then(() => this.persist()).then((saved) => {
      this.saving = undefined;
      // After a failed save, the next change tries again (an unreachable store is not retried in a loop).
      if (saved && this.core.ledger.hasChanges()) this.saveSoon();
    });
  }

  /**
   * Writes the ledger's changes. A refusal because a later term has written means this leader
   * was deposed: it stops placing at once (its Consul session is gone or going).
   */
  private async persist(final = false): Promise<boolean> {
    if (!this.o.ledgerStore || (this.stopped && !final)) return false;
    const ledger = this.core.ledger;
    const changes = ledger.takeChanges();
    if (!changes.nodes.length && !changes.removed.length) return true;
    try {
      await this.o.ledgerStore.save(changes);
      return true;
    } catch (e) {
      if (e instanceof StaleLedgerWriteError) {
        this.stopped = this.deposed = true;
        this.core.apply([{ kind: 'Deposed', at: this.now(), reason: e.message }]).effects.forEach((x) => x.kind === 'Alert' && this.log(x.message, x.level));
        this.o.onDeposed?.(e.message);
        return false;
      }
      // Not saved this time: the next save writes these changes too.
      ledger.returnChanges(changes);
      this.log(`could not save the ledger (will retry with the next change): ${(e as Error).message}`, 'warn');
      return false;
    }
  }

  // ── submissions ──────────────────────────────────────────────────────────────────────

  private async consume(): Promise<void> {
    while (!this.stopped) {
      try {
        const consumer = await this.o.js.consumers.get(JOBS_STREAM, JOBS_CONSUMER);
        this.messages = await consumer.consume({ max_messages: 64, expires: 5000 });
        if (this.stopped) break;
        for await (const m of this.messages) {
          // Messages that arrive together are admitted together; the flush runs once the
          // consumer has handed over what it has buffered.
          this.inbox.push(m);
          this.inboxBytes += m.data.length;
          this.reclaimer.took(m.data.length);
          this.held.add(m);
          this.flushing ??= new Promise((r) => setImmediate(r)).then(() => this.flushInbox());
          if (this.inbox.length >= BATCH || this.inboxBytes >= INBOX_BYTES) await this.flushing;
        }
      } catch (e) {
        if (!this.stopped) this.log(`submission consumer failed, retrying: ${(e as Error).message}`, 'warn');
      }
      if (!this.stopped) await new Promise((r) => setTimeout(r, 500));
    }
  }

  private async flushInbox(): Promise<void> {
    while (this.inbox.length) {
      const batch = this.inbox.splice(0, BATCH);
      for (const m of batch) this.inboxBytes -= m.data.length;
      await this.admitBatch(batch).catch((e) => {
        this.log(`could not take a batch of submissions, they will be redelivered: ${e}`, 'warn');
        for (const m of batch) m.nak(redeliverAfter(m));
      });
      for (const m of batch) this.held.delete(m);
    }
    this.flushing = undefined;
  }

  /**
   * Admits a batch of submissions: probed (outside the core), then one Submitted event and the
   * batch's cancellations after it, so a cancel that follows its job in the stream finds it. A
   * message is acknowledged only once its task's first record is written (a failed one is
   * redelivered).
   */
  private async admitBatch(batch: JsMsg[]): Promise<void> {
    // A submission that cannot be read is set aside without reaching the core.
    const aside: Array<{ m: JsMsg; reason: string; id?: string }> = [];
    const submits: JsMsg[] = [];
    const owners: string[] = [];
    const envelopes: unknown[] = [];
    const cancels: Array<{ m: JsMsg; owner: string }> = [];
    for (const m of batch) {
      // Who sent it is the subject's last token, which NATS lets only that member publish on.
      // Anything else in the stream (a reply or a push delivery someone aimed at it) is no submission.
      const what = jobsMessageOf(m.subject);
      if (!what) { aside.push({ m, reason: `not taken: ${truncate(m.subject, 200)} is neither a submit nor a cancel subject` }); continue; }
      if (what.kind === 'cancel') { cancels.push({ m, owner: what.owner }); continue; }
      const d = this.decode(m.data);
      if ('unreadable' in d) aside.push({ m, reason: `not taken: ${d.unreadable}` });
      else { submits.push(m); owners.push(what.owner); envelopes.push(d.value); }
    }
    // Each submission is decoded once: probing and admission read the same envelope.
    const probes = await this.probeInputs(envelopes);
    const submissions: Submission[] = submits.map((m, i) => ({ envelope: envelopes[i], owner: owners[i], stored_at: streamTime(m), ...(probes.has(i) && { probe: probes.get(i) }) }));
    const at = this.now();
    const { replies, written } = await this.feed([
      { kind: 'Submitted', at, submissions },
      ...cancels.map(({ m, owner }): LeaderEvent => { const d = this.decode(m.data); return { kind: 'CancelRequested', at, envelope: 'value' in d ? d.value : undefined, owner }; }),
    ]);
    const { task_ids: ids, dropped } = replies.find((r) => r?.kind === 'admitted') as Reply & { kind: 'admitted' };
    const outcomes = await Promise.all(submits.map((_m, i) => (ids[i] === undefined ? 'ok' : written.get(ids[i]!) ?? 'ok')));
    // A first write that fails while the task store answers is the submission's own fault (too
    // large a record, say): it would fail on every delivery, so it is set aside now, not retried.
    const storeAnswers = outcomes.includes('failed') && await this.o.store.get(STORE_CHECK_KEY).then(() => true, () => false);
    // Acknowledged in one go: one write to NATS for the batch.
    submits.forEach((m, i) => {
      const id = ids[i];
      if (dropped[i] !== undefined) aside.push({ m, reason: `not taken: ${dropped[i]}` });
      else if (outcomes[i] !== 'failed') m.ack();
      else if (storeAnswers) aside.push({ m, id, reason: `its record could not be written while the task store answered: ${this.writeErrors.get(id!) ?? 'unknown error'}` });
      else m.nak(redeliverAfter(m));
    });
    for (const id of ids) if (id !== undefined) this.writeErrors.delete(id);
    for (const { m } of cancels) m.ack();
    if (aside.length) await this.setAside(aside);
  }

  /**
   * Submissions that cannot be taken go to the dead-letter stream with why, and are terminated
   * (never redelivered, never lost without a word); the core forgets their tasks. One whose
   * dead letter cannot be stored is redelivered instead.
   */
  private async setAside(aside: Array<{ m: JsMsg; reason: string; id?: string }>): Promise<void> {
    const gone: string[] = [];
    await Promise.all(aside.map(async ({ m, reason, id }) => {
      const d = deadLetterOf(m.data, { subject: m.subject, stream_seq: m.info.streamSequence, deliveries: m.info.deliveryCount, reason, at: this.now() });
      try {
        await publishDeadLetter(this.o.js, d);
      } catch (e) {
        this.log(`could not store a dead letter for submission #${d.stream_seq}, it will be redelivered: ${(e as Error).message}`, 'warn');
        m.nak(redeliverAfter(m));
        return;
      }
      m.term(truncate(reason, 200));
      // A work queue keeps a terminated message (nats-server 2.9): the dead letter holds it now.
      await this.o.js.jetstreamManager().then((jsm) => jsm.streams.deleteMessage(JOBS_STREAM, d.stream_seq)).catch(() => undefined);
      this.log(`submission #${d.stream_seq}${d.job_id ? ` (${d.job_id})` : ''} set aside as a dead letter: ${truncate(d.reason, 300)}`, 'warn');
      if (id !== undefined) gone.push(id);
    }));
    if (gone.length) await this.feed([{ kind: 'DeadLettered', at: this.now(), task_ids: gone }]);
  }

  /**
   * JetStream's advisory that a submission reached MAX_SUBMIT_DELIVERIES without being acknowledged
   * (it never came back from a leader, every time): it is set aside with that reason and removed
   * from the jobs stream, where it would otherwise sit undelivered.
   */
  private async maxDeliveries(data: Uint8Array): Promise<void> {
    if (this.stopped) return;
    const a = jsonCodec.decode(data) as { stream?: unknown; stream_seq?: unknown; deliveries?: unknown };
    // Read from the network: only a well-formed advisory about our own stream is acted on.
    if (a?.stream !== JOBS_STREAM || !Number.isSafeInteger(a.stream_seq) || (a.stream_seq as number) < 1) return;
    const seq = a.stream_seq as number, deliveries = Number.isSafeInteger(a.deliveries) ? (a.deliveries as number) : 0;
    const jsm = await this.o.js.jetstreamManager();
    const sm = await jsm.streams.getMessage(JOBS_STREAM, { seq }).catch(() => undefined);
    if (!sm) return; // taken after all, or removed already
    const reason = `delivered ${deliveries} times and never acknowledged: a leader failed on it each time`;
    await publishDeadLetter(this.o.js, deadLetterOf(sm.data, { subject: sm.subject, stream_seq: seq, deliveries, reason, at: this.now() }));
    await jsm.streams.deleteMessage(JOBS_STREAM, seq);
    this.log(`submission #${seq} set aside as a dead letter: ${reason}`, 'warn');
  }

  /**
   * The file inputs of a batch's submissions that came without a probe (their submitter could not
   * read them), probed by a node of the cluster before they are predicted: each path once, on the
   * first of up to PROBE_NODES nodes that can read it (the same nodes for the same path, whose
   * cache then answers), PROBE_PARALLEL paths at a time. Only this batch waits. A path no node
   * could probe is admitted anyway, predicted from training means with the wider bound measured
   * for that case and the reason among its flags.
   */
  private async probeInputs(envelopes: unknown[]): Promise<Map<number, ProbeOutcome>> {
    const out = new Map<number, ProbeOutcome>();
    const wanted = new Map<string, number[]>();
    envelopes.forEach((env, i) => {
      const input = (env as { schema?: { input?: { path?: unknown; probe?: unknown } } } | undefined)?.schema?.input;
      if (!input || typeof input !== 'object' || input.path === undefined || input.probe !== undefined) return;
      let file: string;
      try {
        file = validateInputPath(input.path, this.o.validation);
      } catch {
        return; // admission rejects it, naming the field
      }
      wanted.set(file, [...(wanted.get(file) ?? []), i]);
    });
    const paths = [...wanted.keys()];
    for (let i = 0; i < paths.length; i += PROBE_PARALLEL) {
      await Promise.all(paths.slice(i, i + PROBE_PARALLEL).map(async (file) => {
        const outcome = await this.probeOnNodes(file);
        for (const k of wanted.get(file)!) out.set(k, outcome);
      }));
    }
    return out;
  }

  private async probeOnNodes(file: string): Promise<ProbeOutcome> {
    const nodes = this.core.probeCandidates()
      .sort((a, b) => keyBucket(`${file}\0${a.node_id}`) - keyBucket(`${file}\0${b.node_id}`)).slice(0, PROBE_NODES);
    if (!nodes.length) return { failed: 'no node is registered to probe it' };
    const why: string[] = [];
    for (const n of nodes) {
      try {
        const reply = await this.agent(n.address, n.node_id).probe({ path: file, term: this.o.term });
        if (reply.ok) return { probe: { ...validateInputProbe(JSON.parse(reply.probe_json)), by: 'node' } };
        why.push(`${n.node_id}: ${reply.reason}`);
      } catch (e) {
        why.push(`${n.node_id}: ${e instanceof SchemaValidationError ? `sent an invalid probe (${e.message})` : (e as Error).message}`);
      }
    }
    this.log(`could not probe ${file}: ${why.join('; ')}`, 'warn');
    return { failed: why.join('; ') };
  }

  // ── agents ───────────────────────────────────────────────────────────────────────────

  async register(req: RegisterRequest): Promise<RegisterReply> {
    await this.feed([{ kind: 'Registered', at: this.now(), capacity: req.capacity, running: req.running }]);
    return { term: this.o.term, leader_id: this.o.id, heartbeat_interval_ms: this.o.heartbeatMs };
  }

  async heartbeat(req: HeartbeatRequest): Promise<HeartbeatReply> {
    const { replies } = await this.feed([{ kind: 'Heartbeat', at: this.now(), node_id: req.node_id, running: req.running, ...(req.draining && { draining: true }) }]);
    return { term: this.o.term, reregister: (replies.at(-1) as Reply & { kind: 'heartbeat' }).reregister };
  }

  /** An agent that is stopping: its node leaves the ledger now, and what it held runs elsewhere. */
  async deregister(req: DeregisterRequest): Promise<Ack> {
    await this.feed([{ kind: 'Deregistered', at: this.now(), node_id: req.node_id, reason: truncate(String(req.reason ?? ''), 500) }]);
    return { ok: true, reason: '' };
  }

  async reportStatus(rep: TaskStatusReport): Promise<Ack> {
    // A task the core no longer holds (ended under an earlier leader): its record comes with the report.
    const stored = this.core.knows(rep.task_id) ? undefined : await this.o.store.get(rep.task_id);
    const { replies } = await this.feed([{ kind: 'StatusReported', at: this.now(), report: rep, ...(stored && { stored }) }]);
    const r = replies.at(-1) as Reply & { kind: 'ack' };
    return { ok: r.ok, reason: r.reason };
  }

  /** The client for one node: its certificate must name that node (a node re-registered at another's address is not dialled as it). */
  private agent(address: string, nodeId: string): AgentClient {
    const key = `${nodeId}@${address}`;
    let c = this.agents.get(key);
    if (!c) this.agents.set(key, (c = new AgentClient(address, this.o.identity, nodeId)));
    return c;
  }

  /** A message's JSON, or undefined (the core logs and drops it: redelivering it would not help). */
  /** A message's JSON, or why it cannot be read: nesting past MAX_DEPTH is refused before it is parsed. */
  private decode(data: Uint8Array): { value: unknown } | { unreadable: string } {
    if (data.length > MAX_SUBMISSION_BYTES) return { unreadable: `${data.length} bytes, over the ${MAX_SUBMISSION_BYTES} a submission may have` };
    if (nestedDeeperThan(data, MAX_DEPTH)) return { unreadable: `nested deeper than ${MAX_DEPTH} levels` };
    try {
      return { value: jsonCodec.decode(data) };
    } catch {
      return { unreadable: 'it is not JSON' };
    }
  }

  private log(msg: string, level?: LineLevel) { this.o.log(`[leader ${this.o.id} t${this.o.term}] ${msg}`, level); }
}

/** When JetStream stored a message (epoch ms, the server's clock), if it says. */
function streamTime(m: JsMsg): number | undefined {
  const ns = m.info?.timestampNanos;
  return typeof ns === 'number' && ns > 0 ? Math.floor(ns / 1e6) : undefined;
}

