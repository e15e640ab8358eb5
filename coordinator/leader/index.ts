/**
 * What a coordinator does while it leads one term: admit submissions, predict, place, commit
 * reservations, hand work to agents, and settle results. One Leader object lives exactly as
 * long as the leadership; a new term builds a fresh one from the durable task records and
 * from what the agents report.
 *
 *   JetStream submit ──► admit (validate, predict, record) ──► queue ──► place (pure) ──► commit (ledger)
 *                                                                            │
 *   agent ReportStatus ◄── encode ◄── Assign (gRPC, term-fenced) ◄──────────┘
 *        └──► release reservation, record result, publish event
 */
import type { ConsumerMessages, JetStreamClient, JsMsg } from 'nats';
import {
  AgentClient, SchemaValidationError, failureKind, TERMINAL_STATES, QUALITY_AFTER_RELEASE, isActor, fromAllocationMsg, toAllocationMsg, validateEncodingSchema, validateInputPath, validateInputProbe,
  JOB_ID_PATTERN, JOBS_CONSUMER, JOBS_STREAM, CANCEL_SUBJECT,
  type EncodingTask, type HeartbeatReply, type HeartbeatRequest, type RegisterReply, type RegisterRequest,
  type SubmitEnvelope, type CancelEnvelope, type InputProbe, type TaskStatusReport, type ResourceAllocation, type ValidationContext, type Ack, type TaskState,
} from '../../shared/index.js';
import { hardwareClass, keyBucket, predictWork, type ResourcePredictor } from '../../models/index.js';
import { Ledger, StaleLedgerWriteError, type LedgerSnapshot, type LedgerStore } from '../ledger/index.js';
import { POLICIES, place, placeGroup, type PlacementPolicy, type PlacementRequest } from '../placement/index.js';
import { jsonCodec, publishEvent, type TaskStore } from '../bus/index.js';
import { DEFAULT_QUEUE_POLICY, orderQueue, type QueuePolicy } from '../queue/index.js';
import { curveOf, isCpuBatch, lazyCurve, sizeRequest, sizeWithReason, type CurvePoint, type ReservationPolicy, type SizingContext, type SpeedUpCurve } from '../sizing/index.js';
import type { PlacementContext } from '../feedback/index.js';

export interface LeaderOptions {
  id: string;
  term: number;
  js: JetStreamClient;
  store: TaskStore;
  predictor: ResourcePredictor;
  validation: ValidationContext;
  /** An agent silent for this long is declared lost and its tasks re-queued. */
  leaseMs: number;
  heartbeatMs: number;
  /** Attempts before a task that keeps losing its node is failed. */
  maxAttempts?: number;
  /** How queued work is ordered (SLA class delays, submitter spacing). */
  queuePolicy?: QueuePolicy;
  /** How much a task reserves (default: its predicted upper bound). */
  reservation?: ReservationPolicy;
  /** Which node a reservation goes to (default best-fit; coordinator/placement). */
  policy?: PlacementPolicy;
  /** Where the ledger is kept between leaders; without one a new leader rebuilds it from agents' reports alone. */
  ledgerStore?: LedgerStore;
  log: (msg: string) => void;
  now?: () => number;
}

/** What probing a submission's input gave: its probe, or why no node could make one. */
type ProbeOutcome = { probe: InputProbe } | { failed: string };
/** Nodes asked to probe one input at most, and inputs probed at once. */
const PROBE_NODES = 2;
const PROBE_PARALLEL = 8;

/** A placement pass's view of idle cores, for throughput sizing (per node where the fleet has at most PASS_VIEW_NODES). */
interface PassView { idle: number; most: number; hw_class?: string; free?: Map<string, number> }
const PASS_VIEW_NODES = 256;
/** Speed-up curves are predicted up to this many cores (no encoder here scales past it). */
const MAX_CURVE_CORES = 32;

/** How long after a change the ledger is saved (saveSoon). */
const SAVE_EVERY_MS = 100;
/** Submissions admitted in one batch at most. */
const BATCH = 256;
/** How long admitted jobs are remembered for the burst forecast (its window is at most this), and how many at most. */
const ARRIVALS_KEPT_MS = 3_600_000;
const ARRIVALS_KEPT_MAX = 20_000;
const ARRIVALS_TRIM = 1024;

/** Serialises state changes: each runs after the previous one has finished, I/O included. */
class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

export class Leader {
  ledger: Ledger;
  /** Tasks this leader is responsible for that are not yet terminal. */
  private readonly active = new Map<string, EncodingTask>();
  /** The active tasks that are queued (kept by `index`): a pass orders these, not every running task. */
  private readonly waiting = new Set<EncodingTask>();
  /** Tasks recovered from a previous term and placed on a node, awaiting that node's claim until the given time. */
  private readonly unclaimed = new Map<string, number>();
  private readonly agents = new Map<string, AgentClient>();
  /**
   * Nodes not to place on until their agent reports to this leader: restored from the saved
   * ledger (they may be gone), or whose agent could not be reached with an assignment.
   */
  private readonly unheard = new Set<string>();
  /** Burst nodes being scaled down (coordinator/burst): nothing new is placed on them. */
  private readonly draining = new Set<string>();
  /** Admitted jobs of the last ARRIVALS_KEPT_MS, oldest first: the burst forecast's arrival rates. */
  private readonly arrivals: EncodingTask[] = [];
  private readonly serial = new Serial();
  private messages?: ConsumerMessages;
  private readonly inbox: JsMsg[] = [];
  /** Tasks admitted in the current batch and not yet written. */
  private readonly unrecorded = new Set<EncodingTask>();
  private flushing?: Promise<void>;
  private ticker?: NodeJS.Timeout;
  private stopped = false;
  private readonly now: () => number;
  /** Points of speed-up curves already predicted (coordinator/sizing), per task, by model version, cores and hardware class. */
  private readonly curves = new WeakMap<EncodingTask, Map<string, CurvePoint>>();
  private waker?: NodeJS.Timeout;
  private wakeAt = Infinity;
  /** The ledger save in progress or due (saveSoon). */
  private saving?: Promise<void>;
  /** A later term's ledger write refused ours. */
  private deposed = false;

  constructor(private readonly o: LeaderOptions) {
    this.now = o.now ?? Date.now;
    this.ledger = new Ledger(o.term, o.leaseMs);
  }

  get term(): number { return this.o.term; }

  async start(): Promise<void> {
    for (const t of await this.o.store.listActive()) {
      this.active.set(t.id, t);
      this.index(t);
      this.arrived(t);
      if (t.state === 'placed' || t.state === 'running') this.unclaimed.set(t.id, this.now() + this.o.leaseMs);
    }
    await this.restoreLedger();
    this.log(`term ${this.o.term}: resumed ${this.active.size} active task(s), ${this.unclaimed.size} awaiting their agents, ${this.ledger.nodeIds().length} node(s) from the saved ledger`);
    this.ticker = setInterval(() => void this.locked(() => this.tick()).catch((e) => this.log(`tick failed: ${e}`)), 1000);
    void this.consume();
  }

  /**
   * Resumes the previous leader's ledger: its nodes (each given one lease to report again) and
   * the reservations of tasks still active. Reservations of tasks that ended meanwhile are
   * dropped; agents' reports then confirm, correct or add the rest (claim).
   */
  private async restoreLedger(): Promise<void> {
    const saved = await this.o.ledgerStore?.load().catch((e: Error) => { this.log(`could not read the saved ledger, rebuilding from agents: ${e.message}`); return undefined; });
    if (!saved) return;
    this.ledger = Ledger.fromState(saved, this.o.term, this.o.leaseMs, this.now());
    for (const id of this.ledger.nodeIds()) this.unheard.add(id);
    for (const d of this.ledger.restoreSkipped) this.log(`saved reservation of ${d.task_id} not restored: ${d.reason}`);
    for (const node of this.ledger.nodeIds()) {
      for (const id of this.ledger.reservedTaskIds(node)) {
        const t = this.active.get(id);
        if (!t || t.state === 'queued') { this.ledger.release(id); this.log(`dropped the saved reservation of ${id}: ${t ? 'it is queued again' : 'it is no longer active'}`); }
        else t.allocation = this.ledger.reservation(id);
      }
    }
    await this.persist();
  }

  /** Runs a state change after the previous one; what it changed in the ledger is saved soon after (saveSoon). */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    return this.serial.run(async () => {
      try {
        return await fn();
      } finally {
        this.saveSoon();
      }
    });
  }

  /**
   * Saves the ledger's changes SAVE_EVERY_MS after the first unsaved one, one save at a time.
   * A save writes each changed node's whole record, reservations included: saving after every
   * batch was an eighth of a busy leader's CPU (submit-latency bench). A leader that dies between
   * saves loses at most that window of changes, which its successor gets back from the agents'
   * reports (they list what they run; restoreLedger, claim), as it does for any unsaved change.
   */
  private saveSoon(): void {
    if (this.saving || !this.o.ledgerStore || this.stopped || !this.ledger.hasChanges()) return;
    this.saving = new Promise<void>((r) => setTimeout(r, SAVE_EVERY_MS)).then(() => this.persist()).then((saved) => {
      this.saving = undefined;
      // After a failed save, the next change tries again (an unreachable store is not retried in a loop).
      if (saved) this.saveSoon();
    });
  }

  /**
   * Writes the ledger's changes. A refusal because a later term has written means this leader
   * was deposed: it stops placing at once (its Consul session is gone or going).
   */
  private async persist(final = false): Promise<boolean> {
    if (!this.o.ledgerStore || (this.stopped && !final)) return false;
    const changes = this.ledger.takeChanges();
    if (!changes.nodes.length && !changes.removed.length) return true;
    try {
      await this.o.ledgerStore.save(changes);
      return true;
    } catch (e) {
      if (e instanceof StaleLedgerWriteError) {
        this.log(`deposed: ${e.message}; no more placements from term ${this.o.term}`);
        this.stopped = this.deposed = true;
        return false;
      }
      // Not saved this time: the next save writes these changes too.
      this.ledger.returnChanges(changes);
      this.log(`could not save the ledger (will retry with the next change): ${(e as Error).message}`);
      return false;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.ticker);
    clearTimeout(this.waker);
    await this.messages?.close().catch(() => undefined);
    await this.serial.run(async () => undefined);
    // The last changes are saved before leaving, unless this leader was deposed (persist says so).
    await this.saving;
    if (!this.deposed) await this.persist(true);
    for (const c of this.agents.values()) c.close();
    this.agents.clear();
  }

  /** Queued tasks in the order they get resources (coordinator/queue). */
  queue(): EncodingTask[] {
    return orderQueue([...this.waiting], this.o.queuePolicy ?? DEFAULT_QUEUE_POLICY).map((e) => e.task);
  }

  /** Keeps `waiting` in step with a task's state; called wherever that changes (record() included). */
  private index(t: EncodingTask): void {
    if (t.state === 'queued' && this.active.get(t.id) === t) this.waiting.add(t);
    else this.waiting.delete(t);
  }

  // ── submissions ──────────────────────────────────────────────────────────────────────

  private async consume(): Promise<void> {
    while (!this.stopped) {
      try {
        const consumer = await this.o.js.consumers.get(JOBS_STREAM, JOBS_CONSUMER);
        this.messages = await consumer.consume({ max_messages: 64, expires: 5000 });
        if (this.stopped) break;
        for await (const m of this.messages) {
          // Messages that arrive together are admitted together (see admitBatch); the flush
          // runs once the consumer has handed over what it has buffered.
          this.inbox.push(m);
          this.flushing ??= new Promise((r) => setImmediate(r)).then(() => this.flushInbox());
          if (this.inbox.length >= BATCH) await this.flushing;
        }
      } catch (e) {
        if (!this.stopped) this.log(`submission consumer failed, retrying: ${(e as Error).message}`);
      }
      if (!this.stopped) await new Promise((r) => setTimeout(r, 500));
    }
  }

  private async flushInbox(): Promise<void> {
    while (this.inbox.length) {
      const batch = this.inbox.splice(0, BATCH);
      // Each submission is decoded once: probing (outside the lock) and admission read the same envelope.
      const envelopes = new Map(batch.filter((m) => m.subject !== CANCEL_SUBJECT).map((m) => [m, this.decode<SubmitEnvelope>(m.data, 'submission')]));
      const probes = await this.probeInputs(envelopes);
      await this.locked(() => this.admitBatch(batch, envelopes, probes)).catch((e) => {
        this.log(`could not take a batch of submissions, they will be redelivered: ${e}`);
        for (const m of batch) m.nak(2000);
      });
    }
    this.flushing = undefined;
  }

  /**
   * Admits a batch of submissions with their reads and writes in flight together, then places
   * once for the whole batch, then acknowledges: a message is acknowledged only after its task
   * is durably recorded (a failed one is redelivered). Cancellations run after the submissions
   * of their batch, so a cancel that follows its job in the stream finds it.
   */
  private async admitBatch(batch: JsMsg[], envelopes: ReadonlyMap<JsMsg, SubmitEnvelope | undefined>, probes: ReadonlyMap<JsMsg, ProbeOutcome>): Promise<void> {
    const submits = batch.filter((m) => m.subject !== CANCEL_SUBJECT);
    const admitted = await Promise.allSettled(submits.map((m) => this.admit(envelopes.get(m), probes.get(m), streamTime(m))));
    const done = new Map<JsMsg, EncodingTask | undefined>();
    admitted.forEach((r, i) => {
      if (r.status === 'fulfilled') done.set(submits[i], r.value);
      else { this.log(`could not admit a submission, it will be redelivered: ${r.reason}`); submits[i].nak(2000); }
    });
    for (const m of batch) {
      if (m.subject !== CANCEL_SUBJECT) continue;
      await this.cancel(m.data).then(() => done.set(m, undefined), (e) => { this.log(`could not cancel, it will be redelivered: ${e}`); m.nak(2000); });
    }
    await this.schedule();
    // A task placed by this pass was recorded as placed; the rest are recorded now, before the ack.
    await Promise.all([...done].map(async ([m, t]) => {
      try {
        if (t && this.unrecorded.has(t)) await this.record(t);
        m.ack();
      } catch (e) {
        this.log(`could not record ${t?.id}, it will be redelivered: ${e}`);
        m.nak(2000);
      }
    }));
  }

  /**
   * Validates and predicts one submission; a queued task joins the queue. Its first record is
   * written by the batch (admitBatch), as placed when the same pass places it: one write, not two.
   */
  private async admit(env: SubmitEnvelope | undefined, probed?: ProbeOutcome, storedAt?: number): Promise<EncodingTask | undefined> {
    if (!env) return;
    if (typeof env?.job_id !== 'string' || !JOB_ID_PATTERN.test(env.job_id)) {
      this.log(`dropped a submission with an invalid job id ${JSON.stringify(env?.job_id)}`);
      return;
    }
    // Redelivery of a job already admitted: recorded by an earlier leader, or in memory. One in
    // memory whose first write failed (its batch was refused) is handed back to be written now.
    const known = this.active.get(env.job_id);
    if (known) return this.unrecorded.has(known) ? known : undefined;
    // One recorded by an earlier leader and ended: its first write below finds it (record).
    const now = this.now();
    // When JetStream stored the submission, not the client's clock: queue order, SLA delays and the
    // sizing grace all count from it, and a submitter must not jump the queue by back-dating its jobs.
    const base = { id: env.job_id, submitted_at: storedAt ?? now, updated_at: now, term: this.o.term, attempts: 0 };
    let task: EncodingTask;
    try {
      const schema = validateEncodingSchema(env.schema, this.o.validation);
      if (probed && 'probe' in probed && schema.input.kind === 'file' && !schema.input.probe) schema.input.probe = probed.probe;
      const predicted = predictWork(this.o.predictor, schema);
      if (probed && 'failed' in probed) predicted.flags = [...(predicted.flags ?? []), `input not probed: ${probed.failed}`];
      task = { ...base, schema, state: 'queued', predicted, reason: 'waiting for placement' };
    } catch (e) {
      const reason = e instanceof SchemaValidationError ? e.issues.map((i) => `${i.field}: ${i.reason}`).join('; ') : String(e);
      task = { ...base, schema: env.schema as EncodingTask['schema'], state: 'rejected', reason };
    }
    if (task.state === 'queued') { this.active.set(task.id, task); this.index(task); this.arrived(task); }
    this.unrecorded.add(task);
    return task;
  }

  /**
   * The file inputs of a batch's submissions that came without a probe (their submitter could not
   * read them), probed by a node of the cluster before they are predicted: each path once, on the
   * first of up to PROBE_NODES nodes that can read it (the same nodes for the same path, whose
   * cache then answers), PROBE_PARALLEL paths at a time. Outside the lock: only this batch waits.
   * A path no node could probe is admitted anyway, predicted from training means with the wider
   * bound measured for that case and the reason among its flags.
   */
  private async probeInputs(envelopes: ReadonlyMap<JsMsg, SubmitEnvelope | undefined>): Promise<Map<JsMsg, ProbeOutcome>> {
    const out = new Map<JsMsg, ProbeOutcome>();
    const wanted = new Map<string, JsMsg[]>();
    for (const [m, env] of envelopes) {
      const input = (env?.schema as { input?: { path?: unknown; probe?: unknown } } | undefined)?.input;
      if (!input || typeof input !== 'object' || input.path === undefined || input.probe !== undefined) continue;
      let file: string;
      try {
        file = validateInputPath(input.path, this.o.validation);
      } catch {
        continue; // admit rejects it, naming the field
      }
      wanted.set(file, [...(wanted.get(file) ?? []), m]);
    }
    const paths = [...wanted.keys()];
    for (let i = 0; i < paths.length; i += PROBE_PARALLEL) {
      await Promise.all(paths.slice(i, i + PROBE_PARALLEL).map(async (file) => {
        const outcome = await this.probeOnNodes(file);
        for (const m of wanted.get(file)!) out.set(m, outcome);
      }));
    }
    return out;
  }

  private async probeOnNodes(file: string): Promise<ProbeOutcome> {
    const nodes = this.ledger.snapshot().nodes.filter((n) => !this.unheard.has(n.node_id) && !this.draining.has(n.node_id))
      .sort((a, b) => keyBucket(`${file}\0${a.node_id}`) - keyBucket(`${file}\0${b.node_id}`)).slice(0, PROBE_NODES);
    if (!nodes.length) return { failed: 'no node is registered to probe it' };
    const why: string[] = [];
    for (const n of nodes) {
      try {
        const reply = await this.agent(n.capacity.address).probe({ path: file, term: this.o.term });
        if (reply.ok) return { probe: { ...validateInputProbe(JSON.parse(reply.probe_json)), by: 'node' } };
        why.push(`${n.node_id}: ${reply.reason}`);
      } catch (e) {
        why.push(`${n.node_id}: ${e instanceof SchemaValidationError ? `sent an invalid probe (${e.message})` : (e as Error).message}`);
      }
    }
    this.log(`could not probe ${file}: ${why.join('; ')}`);
    return { failed: why.join('; ') };
  }

  /**
   * Cancels one job. A queued job ends at once; one holding a reservation keeps it until its
   * agent confirms ffmpeg has stopped (its report, or the node's loss), so the resources are
   * never handed out while the encode may still be using them.
   */
  private async cancel(data: Uint8Array): Promise<void> {
    const env = this.decode<CancelEnvelope>(data, 'cancellation');
    if (!env) return;
    const t = typeof env?.job_id === 'string' ? this.active.get(env.job_id) : undefined;
    if (!t) {
      const known = typeof env?.job_id === 'string' && JOB_ID_PATTERN.test(env.job_id) ? await this.o.store.get(env.job_id) : undefined;
      this.log(`cancel ${JSON.stringify(env?.job_id)}: ${known ? `already ${known.state}` : 'no such job'}`);
      return;
    }
    if (t.state === 'queued') return this.finishCancel(t, 'cancelled on request while queued');
    if (t.cancel_requested_at !== undefined) return;
    t.cancel_requested_at = this.now();
    t.reason = 'cancelling: waiting for the agent to stop the encode';
    await this.record(t);
    const node = t.allocation && this.ledger.snapshot().node(t.allocation.node_id);
    const stopped = node
      ? await this.agent(node.capacity.address).cancel({ task_id: t.id, term: this.o.term }).then((a): Ack => a, (e: Error): Ack => ({ ok: false, reason: e.message }))
      : { ok: false, reason: 'its node is not in the ledger' } as Ack;
    // The agent is not running it (the assignment never arrived, or it just ended): nothing holds the resources.
    if (!stopped.ok && failureKind(stopped.refusal) === 'NOT_RUNNING') {
      this.ledger.release(t.id);
      return this.finishCancel(t, 'cancelled on request before its encode started');
    }
    if (!stopped.ok) this.log(`cancel ${t.id}: agent did not confirm (${stopped.reason}); it ends when the node reports or is lost`);
  }

  private async finishCancel(t: EncodingTask, reason: string): Promise<void> {
    this.active.delete(t.id);
    this.unclaimed.delete(t.id);
    t.allocation = undefined;
    await this.record(Object.assign(t, { state: 'cancelled' as TaskState, reason }));
  }

  // ── placement ────────────────────────────────────────────────────────────────────────

  /**
   * Tries to place every queued task, most urgent first; a group's members all at once. The
   * decisions and commits happen in queue order; the records and assignments they lead to are
   * then written together, so a pass over a long queue costs one round trip, not one per task.
   */
  private async schedule(): Promise<void> {
    const writes: Promise<void>[] = [];
    try {
      this.decide(writes);
    } finally {
      await Promise.all(writes);
    }
  }

  private decide(writes: Promise<void>[]): void {
    const groupsSeen = new Set<string>();
    // Requests that did not fit in this pass: the ledger only fills up during a pass, so the
    // same request will not fit either (a queue of hundreds of like jobs behind a full fleet
    // costs one placement, not hundreds).
    const misfits: Array<{ req: PlacementRequest; reason: string }> = [];
    const queue = this.queue();
    // What throughput sizing needs to know about this pass (coordinator/sizing): how many CPU
    // batch jobs are still waiting behind each one, and the cores left idle.
    let cpuWaiting = queue.filter((t) => t.state === 'queued' && !t.schema.group && isCpuBatch(t)).length;
    let view: PassView | undefined;
    for (const t of queue) {
      if (this.stopped) return;
      if (t.state !== 'queued') continue; // placed earlier in this pass, as part of its group
      const g = t.schema.group;
      if (g) {
        const key = groupKey(t);
        if (groupsSeen.has(key)) continue;
        groupsSeen.add(key);
        const members = [...this.active.values()].filter((x) => groupKey(x) === key);
        const queued = members.filter((x) => x.state === 'queued').sort((a, b) => a.id.localeCompare(b.id));
        // A group is placed whole the first time; a member re-queued later (its node was lost) goes alone.
        if (!members.some((x) => x.attempts > 0)) {
          if (queued.length < g.size) {
            writes.push(this.setReason(queued, `waiting for ${g.size - queued.length} more job(s) of group ${g.id} (${queued.length} of ${g.size} arrived)`));
            continue;
          }
          this.placeGroupOf(queued, g.placement, writes);
          continue;
        }
      }
      // One snapshot per decision: sizing the request and placing it see the same ledger.
      const snap = this.ledger.snapshot();
      let sizing: SizingContext | undefined;
      if (isCpuBatch(t) && (this.o.reservation ?? { kind: 'predictive' }).kind === 'predictive') {
        cpuWaiting--;
        view ??= this.passView(snap);
        sizing = this.sizingContext(t, view, cpuWaiting);
      }
      const { req, why, retry_at } = sizeWithReason(t, snap, this.o.reservation, sizing);
      if (retry_at !== undefined) { this.wake(retry_at); continue; }
      const known = misfits.find((m) => sameAsk(req, m.req));
      if (known) { writes.push(this.setReason([t], known.reason)); continue; }
      const result = place(req, snap, this.policy, this.avoid());
      if (result.kind !== 'placed') {
        const reason = result.kind === 'infeasible' ? `infeasible: ${result.reason}` : result.reason;
        misfits.push({ req, reason });
        writes.push(this.setReason([t], reason));
        continue;
      }
      const commit = this.ledger.commit(result.plan, this.now());
      if (!commit.ok) { this.log(`plan for ${t.id} refused: ${commit.reason}`); continue; }
      if (view) this.spent(view, commit.allocation.node_id, commit.allocation.core_ids.length);
      writes.push(this.dispatch(t, commit.allocation, snap, req, why));
    }
  }

  /** Idle cores on the nodes this pass may place on (recounted per node for fleets small enough to track). */
  private passView(snap: LedgerSnapshot): PassView {
    const { exclude } = this.avoid();
    const free = new Map<string, number>();
    let idle = 0, most = 0, hw_class: string | undefined;
    for (const n of snap.nodes) {
      if (exclude?.has(n.capacity.node_id)) continue;
      const f = n.free_core_ids.length;
      idle += f;
      if (f > most) { most = f; hw_class = hardwareClass(n.capacity.cpu_model); }
      if (snap.count <= PASS_VIEW_NODES) free.set(n.capacity.node_id, f);
    }
    return { idle, most, hw_class, free: snap.count <= PASS_VIEW_NODES ? free : undefined };
  }

  /** Takes a commit's cores out of the pass's view. */
  private spent(v: PassView, node: string, cores: number): void {
    v.idle -= cores;
    if (!v.free) { v.most = Math.min(v.most, v.idle); return; }
    v.free.set(node, (v.free.get(node) ?? cores) - cores);
    v.most = Math.max(0, ...v.free.values());
  }

  private sizingContext(t: EncodingTask, v: PassView, waiting: number): SizingContext {
    const deadline = t.schema.deadline ? Date.parse(t.schema.deadline) : NaN;
    return {
      curve: v.most > 1 || Number.isFinite(deadline) ? this.speedUpCurve(t, Math.max(1, v.most), v.hw_class) : curveOf([]),
      waiting, idle_cores: v.idle, most_idle_on_a_node: v.most,
      now: this.now(), submitted_at: t.submitted_at, deadline_at: Number.isFinite(deadline) ? deadline : undefined,
    };
  }

  /**
   * The job's predicted time at 1…`upTo` cores on `hw_class`: each point predicted when sizing
   * first reads it and kept for the job (a new model version predicts afresh).
   */
  private speedUpCurve(t: EncodingTask, upTo: number, hw_class: string | undefined): SpeedUpCurve {
    let known = this.curves.get(t);
    if (!known) this.curves.set(t, (known = new Map()));
    const points = known;
    return lazyCurve(Math.min(upTo, MAX_CURVE_CORES), (cores) => {
      const key = `${this.o.predictor.version}|${cores}|${hw_class ?? ''}`;
      let p = points.get(key);
      if (!p) {
        const w = predictWork(this.o.predictor, t.schema, { cores, hw_class });
        points.set(key, (p = { expected: w.expected.duration_s, upper: w.upper.duration_s }));
      }
      return p;
    });
  }

  /** Runs a placement pass at `at` (epoch ms), unless one is already due sooner. */
  private wake(at: number): void {
    if (this.stopped || at >= this.wakeAt) return;
    clearTimeout(this.waker);
    this.wakeAt = at;
    this.waker = setTimeout(() => {
      this.wakeAt = Infinity;
      void this.locked(() => this.schedule()).catch((e) => this.log(`placement pass failed: ${e}`));
    }, Math.max(0, at - this.now()));
  }

  private get policy(): PlacementPolicy { return this.o.policy ?? POLICIES['best-fit']; }

  private avoid(): { exclude?: ReadonlySet<string>; excludeReason?: string } {
    if (!this.draining.size) return this.unheard.size ? { exclude: this.unheard, excludeReason: 'its agent has not reported to this leader yet' } : {};
    if (!this.unheard.size) return { exclude: this.draining, excludeReason: 'it is draining (burst scale-down)' };
    return { exclude: new Set([...this.unheard, ...this.draining]), excludeReason: 'its agent has not reported to this leader yet, or it is draining (burst scale-down)' };
  }

  /** Marks exactly these nodes draining (the burst controller's scale-down): placement leaves them out. */
  setDraining(ids: Iterable<string>): void {
    this.draining.clear();
    for (const id of ids) this.draining.add(id);
  }

  /** What the burst controller decides from (read-only): the active tasks, recent arrivals and the ledger as it is now. */
  burstView(): { tasks: EncodingTask[]; arrivals: EncodingTask[]; snap: LedgerSnapshot; queuePolicy: QueuePolicy; reservation?: ReservationPolicy } {
    this.arrived();
    return {
      tasks: [...this.active.values()], arrivals: this.arrivals.slice(-ARRIVALS_KEPT_MAX), snap: this.ledger.snapshot(),
      queuePolicy: this.o.queuePolicy ?? DEFAULT_QUEUE_POLICY, reservation: this.o.reservation,
    };
  }

  /**
   * Notes an admitted job (kept in submission order), and forgets ones older than
   * ARRIVALS_KEPT_MS or beyond ARRIVALS_KEPT_MAX, a block at a time (not one shift per job).
   */
  private arrived(t?: EncodingTask): void {
    if (t) {
      let i = this.arrivals.length;
      while (i > 0 && this.arrivals[i - 1].submitted_at > t.submitted_at) i--;
      if (i === this.arrivals.length) this.arrivals.push(t);
      else this.arrivals.splice(i, 0, t);
    }
    const since = this.now() - ARRIVALS_KEPT_MS;
    if (this.arrivals.length <= ARRIVALS_KEPT_MAX + ARRIVALS_TRIM && !(this.arrivals[0]?.submitted_at < since)) return;
    let drop = Math.max(0, this.arrivals.length - ARRIVALS_KEPT_MAX);
    while (drop < this.arrivals.length && this.arrivals[drop].submitted_at < since) drop++;
    if (drop) this.arrivals.splice(0, drop);
  }

  /** All of a group's members reserved in one commit, or none (with the reason on each). */
  private placeGroupOf(members: EncodingTask[], mode: 'together' | 'spread', writes: Promise<void>[]): void {
    const snap = this.ledger.snapshot();
    const reqs = members.map((m) => sizeRequest(m, snap, this.o.reservation));
    const result = placeGroup(reqs, snap, { mode, ...this.avoid() }, this.policy);
    if (result.kind !== 'placed') {
      writes.push(this.setReason(members, `group ${result.kind === 'infeasible' ? 'infeasible' : 'queued'} (${mode}): ${result.reason}`));
      return;
    }
    const commit = this.ledger.commitAll(result.plans, this.now());
    if (!commit.ok) { this.log(`group plan for ${members.map((m) => m.id).join(', ')} refused: ${commit.reason}`); return; }
    members.forEach((m, i) => writes.push(this.dispatch(m, commit.allocations[i], snap, reqs[i])));
  }

  private async setReason(tasks: EncodingTask[], reason: string): Promise<void> {
    const changed = tasks.filter((t) => t.reason !== reason);
    for (const t of changed) t.reason = reason;
    await Promise.all(changed.map((t) => this.record(t)));
  }

  /** Records a committed reservation and hands the task to its agent; re-queues it if the agent refuses. */
  private async dispatch(t: EncodingTask, allocation: ResourceAllocation, snap: LedgerSnapshot, req: PlacementRequest, why?: string): Promise<void> {
    // Everything about the decision is set before the first await: the pass goes on deciding meanwhile.
    const node = snap.node(allocation.node_id)!;
    t.allocation = allocation;
    const gpu = node.capacity.gpus.find((g) => g.id === allocation.gpu_ids[0]);
    // The node travels in the context for the feedback loop's per-node correction (coordinator/feedback); the model ignores it.
    const ctx: PlacementContext = { cores: req.cores, hw_class: hardwareClass(node.capacity.cpu_model, gpu?.name), node: allocation.node_id };
    t.predicted = predictWork(this.o.predictor, t.schema, ctx);
    t.attempts += 1;
    t.reason = why;
    t.state = 'placed';
    t.started_at = this.now();
    if (!(await this.record(t))) return; // a duplicate of a recorded job: dropped, its reservation released
    const reply = await this.agent(node.capacity.address)
      .assign({ task_id: t.id, schema_json: JSON.stringify(t.schema), allocation: toAllocationMsg(allocation), predicted: t.predicted.expected, attempt: t.attempts, model_version: t.predicted.model_version })
      .then((r) => ({ refused: r.accepted ? undefined : r.reason, unreachable: false }), (e: Error) => ({ refused: e.message, unreachable: true }));
    if (!reply.refused) return;
    this.log(`agent ${allocation.node_id} ${reply.unreachable ? 'unreachable' : 'refused'} for ${t.id}: ${reply.refused}`);
    if (reply.unreachable) {
      // Its agent is gone or restarting: place nothing more there until it reports again, and
      // do not count the attempt against the job (the job did nothing wrong).
      this.unheard.add(allocation.node_id);
      t.attempts -= 1;
    }
    await this.requeue(t, `node ${allocation.node_id} ${reply.unreachable ? 'could not be reached' : 'refused the assignment'}: ${reply.refused}`);
  }

  private async requeue(t: EncodingTask, reason: string): Promise<void> {
    this.ledger.release(t.id);
    this.unclaimed.delete(t.id);
    t.allocation = undefined;
    t.started_at = undefined;
    if (t.cancel_requested_at !== undefined) return this.finishCancel(t, `cancelled (${reason})`);
    if (t.attempts >= (this.o.maxAttempts ?? 5)) {
      this.active.delete(t.id);
      await this.record(Object.assign(t, { state: 'failed' as TaskState, reason: `gave up after ${t.attempts} attempts; last: ${reason}` }));
      return;
    }
    await this.record(Object.assign(t, { state: 'queued' as TaskState, reason }));
  }

  // ── agents ───────────────────────────────────────────────────────────────────────────

  register(req: RegisterRequest): Promise<RegisterReply> {
    return this.locked(async () => {
      const cap = req.capacity;
      this.unheard.delete(cap.node_id);
      for (const d of this.ledger.upsertNode(cap, this.now())) {
        const t = this.active.get(d.task_id);
        if (t) await this.requeue(t, `node ${cap.node_id} re-registered with less capacity: ${d.reason}`);
      }
      this.log(`node ${cap.node_id} registered at ${cap.address}: cores [${cap.core_ids.join(',')}], ${cap.memory_gb.toFixed(1)} GB, ${cap.gpus.length} GPU(s)`);
      await this.claim(cap.node_id, req.running);
      await this.schedule();
      return { term: this.o.term, leader_id: this.o.id, heartbeat_interval_ms: this.o.heartbeatMs };
    });
  }

  heartbeat(req: HeartbeatRequest): Promise<HeartbeatReply> {
    return this.locked(async () => {
      if (!this.ledger.touch(req.node_id, this.now())) return { term: this.o.term, reregister: true };
      this.unheard.delete(req.node_id);
      await this.claim(req.node_id, req.running);
      return { term: this.o.term, reregister: false };
    });
  }

  /** Adopts reservations of tasks a node says it is running (after a failover, or a missed report). */
  private async claim(nodeId: string, running: RegisterRequest['running']): Promise<void> {
    for (const r of running) {
      const t = this.active.get(r.task_id);
      if (!t || !r.allocation || this.ledger.reservation(t.id)) { this.unclaimed.delete(r.task_id); continue; }
      const adopted = this.ledger.adopt(t.id, { ...fromAllocationMsg(r.allocation), node_id: nodeId }, this.now());
      if (!adopted.ok) { this.log(`cannot adopt ${t.id} on ${nodeId}: ${adopted.reason}`); continue; }
      this.unclaimed.delete(t.id);
      t.allocation = adopted.allocation;
      if (t.state === 'queued') t.state = 'running';
      await this.record(t);
    }
  }

  reportStatus(rep: TaskStatusReport): Promise<Ack> {
    return this.locked(async () => {
      const t = this.active.get(rep.task_id) ?? (await this.o.store.get(rep.task_id));
      if (!t) return { ok: false, reason: `unknown task ${rep.task_id}` };
      if (rep.amend) return this.amendQuality(t, rep);
      if (TERMINAL_STATES.has(t.state)) return { ok: true, reason: `already ${t.state}` };
      if (t.allocation && t.allocation.node_id !== rep.node_id) return { ok: false, reason: `task ${t.id} is assigned to ${t.allocation.node_id}, not ${rep.node_id}` };
      this.unclaimed.delete(t.id);
      if (rep.state === 'running') {
        t.state = 'running';
        await this.record(t);
        return { ok: true, reason: '' };
      }
      // Stopped by its memory limit: the prediction was short, not the job wrong. It runs
      // again with more memory reserved (the bound it broke, doubled), within maxAttempts.
      if (rep.state === 'failed' && t.cancel_requested_at === undefined && failureKind(rep.failure) === 'MEMORY_EXCEEDED' && t.allocation) {
        t.memory_floor_gb = Math.max(t.memory_floor_gb ?? 0, 2 * t.allocation.memory_gb);
        await this.requeue(t, `${rep.reason}; re-queued to run with ${t.memory_floor_gb.toFixed(2)} GB reserved`);
        await this.schedule();
        return { ok: true, reason: '' };
      }
      // A live channel that stopped without being asked to is restarted (on any node with room).
      if (rep.state === 'failed' && t.cancel_requested_at === undefined && isActor(t.schema)) {
        await this.requeue(t, `live channel stopped unexpectedly on ${rep.node_id}: ${rep.reason}; restarting it`);
        await this.schedule();
        return { ok: true, reason: '' };
      }
      this.ledger.release(t.id);
      this.active.delete(t.id);
      t.state = rep.state === 'succeeded' ? 'succeeded' : t.cancel_requested_at !== undefined ? 'cancelled' : 'failed';
      t.reason = t.state === 'cancelled' ? 'cancelled on request; the encode was stopped'
        : t.state === 'succeeded' && isActor(t.schema) ? `live channel stopped on request after ${rep.actual ? rep.actual.duration_s.toFixed(1) : '?'} s; its playlist is closed`
          : rep.reason || undefined;
      if (rep.state === 'succeeded' && rep.actual) {
        t.result = {
          actual: rep.actual, output_bytes: rep.output_bytes, output_path: rep.output_path,
          psnr_db: Number.isFinite(rep.psnr_db) ? rep.psnr_db : undefined, ssim: Number.isFinite(rep.ssim) ? rep.ssim : undefined,
          pinned: rep.pinned, frames: rep.frames,
          ...(rep.quality === 'pending' && { quality: 'pending' as const, quality_method: describedQuality(rep.quality_method) }),
        };
      }
      await this.record(t);
      await this.schedule();
      return { ok: true, reason: '' };
    });
  }

  /**
   * A success's quality figures, measured after its reservation was released: the record gets
   * them, and a second `succeeded` event (the job's last, shared isFinalEvent) carries them.
   * Taken only from the node that ran it, for a success still waiting for them.
   */
  private async amendQuality(t: EncodingTask, rep: TaskStatusReport): Promise<Ack> {
    if (t.allocation?.node_id !== rep.node_id) return { ok: false, reason: `task ${t.id} ran on ${t.allocation?.node_id}, not ${rep.node_id}` };
    if (rep.quality !== 'measured' && rep.quality !== 'unavailable') return { ok: false, reason: `quality must be measured or unavailable, got ${JSON.stringify(rep.quality)}` };
    if (t.state !== 'succeeded' || t.result?.quality !== 'pending') return { ok: true, reason: `${t.id} is ${t.state}${t.result?.quality ? ` with quality ${t.result.quality}` : ''}: nothing to amend` };
    const psnr = Number.isFinite(rep.psnr_db) && rep.psnr_db >= 0 && rep.psnr_db <= 1000 ? rep.psnr_db : undefined;
    const ssim = Number.isFinite(rep.ssim) && rep.ssim >= -1 && rep.ssim <= 1 ? rep.ssim : undefined;
    t.result = { ...t.result, psnr_db: psnr, ssim, quality: psnr !== undefined || ssim !== undefined ? 'measured' : 'unavailable' };
    await this.record(t);
    return { ok: true, reason: '' };
  }

  private agent(address: string): AgentClient {
    let c = this.agents.get(address);
    if (!c) this.agents.set(address, (c = new AgentClient(address)));
    return c;
  }

  // ── housekeeping ─────────────────────────────────────────────────────────────────────

  /** Once a second: declare silent nodes lost, re-queue unclaimed tasks, and retry the queue. */
  private async tick(): Promise<void> {
    const now = this.now();
    for (const n of this.ledger.snapshot().nodes) {
      if (now - n.last_seen <= this.o.leaseMs) continue;
      this.log(`node ${n.capacity.node_id} lost: no heartbeat for ${((now - n.last_seen) / 1000).toFixed(1)} s`);
      this.unheard.delete(n.capacity.node_id);
      for (const { task_id } of this.ledger.removeNode(n.capacity.node_id)) {
        const t = this.active.get(task_id);
        if (t) await this.requeue(t, `node ${n.capacity.node_id} was lost`);
      }
    }
    for (const [id, deadline] of this.unclaimed) {
      if (now < deadline) continue;
      const t = this.active.get(id);
      if (t) await this.requeue(t, `no agent claimed it after leader failover`);
      else this.unclaimed.delete(id);
    }
    await this.schedule();
  }

  /**
   * Persists a task and publishes its state on the job's subject. A job's first record is
   * created only where its id has none: false when another submission of that id was recorded
   * first (by an earlier leader, or before JetStream's ten-minute duplicate window), and this
   * one is then dropped. One write admits a job once; no read before it.
   */
  private async record(t: EncodingTask): Promise<boolean> {
    this.index(t);
    t.updated_at = this.now();
    t.term = this.o.term;
    if (!this.unrecorded.has(t)) await this.o.store.put(t);
    else if ((await this.o.store.create(t)) === 'exists' && !(await this.writtenByUs(t))) {
      this.dropDuplicate(t);
      return false;
    }
    // Only once written: a job whose first write failed is still unrecorded when it is redelivered (admit).
    this.unrecorded.delete(t);
    this.log(`${t.id} ${t.state}${t.allocation ? ` on ${t.allocation.node_id}` : ''}${t.reason ? `: ${t.reason}` : ''}`);
    await publishEvent(this.o.js, {
      job_id: t.id, state: t.state, at: t.updated_at, term: this.o.term, node_id: t.allocation?.node_id,
      reason: t.reason, predicted: t.predicted, allocation: t.allocation, result: t.result,
    });
    return true;
  }

  /**
   * Whether the record found under a new task's id is this leader's own earlier write of it (a
   * write that timed out but landed, or two writes of one pass): then it is overwritten.
   */
  private async writtenByUs(t: EncodingTask): Promise<boolean> {
    const stored = await this.o.store.get(t.id);
    if (stored && (stored.term !== this.o.term || stored.submitted_at !== t.submitted_at)) return false;
    await this.o.store.put(t);
    return true;
  }

  private dropDuplicate(t: EncodingTask): void {
    this.log(`${t.id}: a job of this id is already recorded; this submission of it is dropped`);
    this.unrecorded.delete(t);
    if (this.active.get(t.id) === t) this.active.delete(t.id);
    this.index(t);
    if (t.allocation) this.ledger.release(t.id);
    t.allocation = undefined;
  }

  /** A message's JSON, or undefined (logged and dropped: redelivering it would not help). */
  private decode<T>(data: Uint8Array, what: string): T | undefined {
    try {
      return jsonCodec.decode(data) as T;
    } catch {
      this.log(`dropped a ${what} that is not JSON`);
      return undefined;
    }
  }

  private log(msg: string) { this.o.log(`[leader ${this.o.id} t${this.o.term}] ${msg}`); }
}

/** The agent's account of its quality method, if it reads as one (it is shown to users), else the default. */
const describedQuality = (m: string | undefined) => (m && m.length <= 300 && /^[\w\s.,:;%()'’-]+$/.test(m) ? m : QUALITY_AFTER_RELEASE);

/** When JetStream stored a message (epoch ms, the server's clock), if it says. */
function streamTime(m: JsMsg): number | undefined {
  const ns = m.info?.timestampNanos;
  return typeof ns === 'number' && ns > 0 ? Math.floor(ns / 1e6) : undefined;
}

/** Groups are named by their submitter: two submitters' `ladder-1` are different groups. */
const groupKey = (t: EncodingTask) => (t.schema.group ? `${t.schema.submitter}/${t.schema.group.id}` : '');

/** Whether `r` asks for exactly what `m` asked for (then it fares as `m` did, reason included). */
const sameAsk = (r: PlacementRequest, m: PlacementRequest) =>
  r.cores === m.cores && r.gpus === m.gpus && r.memory_gb === m.memory_gb && r.bandwidth_mbps === m.bandwidth_mbps;
