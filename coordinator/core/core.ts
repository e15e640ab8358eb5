/**
 * The leader's decisions as a state machine: `apply(events)` changes the state and returns the
 * effects the runtime shell (coordinator/leader) carries out. No I/O, no clock and no
 * randomness beyond what events carry, so a log of the events it was fed re-runs to the same
 * decisions (`prescient replay`). Admission, queue order, sizing, placement, leases, groups,
 * retries and cancellation all live here; records, events, assignments and saves are effects.
 *
 *   events ──► apply ──► admit / claim / settle ──► one placement pass ──► effects
 *                                                   (queue order → size → place → commit)
 *
 * One batch of events is applied at once and ends with at most one placement pass: a batch of
 * submissions is admitted together and then placed together, as before this was a core.
 */
import {
  SchemaValidationError, TERMINAL_STATES, QUALITY_AFTER_RELEASE, isActor, fromAllocationMsg, toAllocationMsg, validateEncodingSchema, failureKind,
  JOB_ID_PATTERN, NO_OWNER, describeValue, truncate, effectiveOutput, type GroupOutputs, type OutputMedia,
  type EncodingTask, type RunningTaskMsg, type SubmitEnvelope, type CancelEnvelope, type TaskStatusReport, type ResourceAllocation,
  type ValidationContext, type EncodingSchema, type TaskState, type NodeCapacity, type TaskEvent, type Prediction,
} from '../../shared/index.js';
import path from 'node:path';
import { hardwareClass, predictWork, predictWorkEach, type ResourcePredictor } from '../../models/index.js';
import { FREE, Ledger, type LedgerSnapshot, type LedgerState } from '../ledger/index.js';
import { POLICIES, place, placeGroup, type PlacementPolicy, type PlacementRequest, type PlacementResult } from '../placement/index.js';
import { DEFAULT_QUEUE_POLICY, OrderedQueue, type QueuePolicy } from '../queue/index.js';
import { curveOf, isCpuBatch, lazyCurve, sizeRequest, sizeWithReason, type ReservationPolicy, type SizingContext, type SpeedUpCurve } from '../sizing/index.js';
import type { PlacementContext } from '../feedback/index.js';
import type { Effect, LeaderEvent, Reply, Submission } from './events.js';
import { Recent } from './recent.js';
import type { LineLevel } from '../../shared/log.js';

/** A predictor that can add a node's correction to a prediction it made with no node (coordinator/feedback CorrectedPredictor). */
interface NodeCorrecting {
  forNode(p: Prediction, codec: string, node: string): Prediction;
}

export interface CoreOptions {
  predictor: ResourcePredictor;
  validation: ValidationContext;
  /** An agent silent for this long is declared lost and its tasks re-queued. */
  leaseMs: number;
  /** Attempts before a task that keeps losing its node is failed. */
  maxAttempts?: number;
  queuePolicy?: QueuePolicy;
  reservation?: ReservationPolicy;
  policy?: PlacementPolicy;
  /** When an encode is stopped as hung (default TIME_LIMIT). */
  timeLimit?: TimeLimit;
  /**
   * How a submission's schema is checked (default validateEncodingSchema). `prescient plan`
   * checks each template of its workload once: a template's jobs differ only in their submitter
   * tag and deadline, and checking every job whole was a quarter of a simulation's time.
   */
  validate?: (raw: unknown, ctx: ValidationContext) => EncodingSchema;
}

/**
 * An encode's time limit: `factor` × the upper bound of its predicted duration, and never less
 * than `min_ms`. Past it the leader stops the encode (a hung ffmpeg must not keep its cores) and
 * runs it again, counted as an attempt, so one that always hangs fails after maxAttempts. Three
 * times the bound: the bound already covers 95 % of encodes, so an encode past three times it
 * is stuck rather than slow; the floor keeps short jobs from being judged on start-up noise.
 */
export interface TimeLimit { factor: number; min_ms: number }
export const TIME_LIMIT: TimeLimit = { factor: 3, min_ms: 60_000 };

/** A placement pass's view of one hardware class's idle cores (per node where the fleet has at most PASS_VIEW_NODES). */
interface ClassView { hw_class: string; idle: number; most: number; free?: Map<string, number>; nodes: string[]; others?: ReadonlySet<string> }
/**
 * A placement pass's view of idle cores, for throughput sizing: in all, and per hardware class
 * of the usable nodes (a job is sized for each class from its prediction on that class).
 */
interface PassView { idle: number; classes: Map<string, ClassView>; classOf: Map<string, string>; exclude?: ReadonlySet<string> }
const PASS_VIEW_NODES = 256;
/**
 * A task's predictions made so far: those under the model in service (its key and version) by
 * hardware class and cores, and those under earlier ones by `${key}|${version}`.
 */
interface TaskPredictions { modelKey: string; version: string; byClass: Map<string, Prediction[]>; other?: Map<string, Map<string, Prediction[]>> }
/** A request that did not fit in this pass, and why (among one class's nodes, where hw_class is given). */
interface Misfit { req: PlacementRequest; reason: string; hw_class?: string }
/** A job's request sized for the class it goes to, and on a mixed fleet its placement there. */
interface ClassSized { req: PlacementRequest; why?: string; result?: Extract<PlacementResult, { kind: 'placed' }> }
/** A mixed fleet's classes a job is sized and placed for, at most (the ones with the most idle cores). */
const MAX_CLASSES_SCORED = 8;
/** Speed-up curves are predicted up to this many cores (no encoder here scales past it). */
const MAX_CURVE_CORES = 32;
/** How long admitted jobs are remembered for the burst forecast (its window is at most this), and how many at most. */
const ARRIVALS_KEPT_MS = 3_600_000;
const ARRIVALS_KEPT_MAX = 20_000;
const ARRIVALS_TRIM = 1024;
/** The longest reason a record keeps, and the largest or deepest refused schema it keeps as sent. */
const MAX_REASON = 2_000;
const MAX_KEPT_SCHEMA_BYTES = 16_384;
const MAX_KEPT_SCHEMA_DEPTH = 16;
/** A queued job's reason until a pass gives it another. */
const ADMITTED = 'waiting for placement';
/** Tasks that ended, kept for late reports (a quality amendment), most recent last. */
const ENDED_KEPT = 10_000;
/** Earlier attempts' reservations a task keeps (EncodingTask.earlier). */
const EARLIER_KEPT = 4;

export class LeaderCore {
  term = 0;
  leaderId = '';
  ledger: Ledger;
  /** Tasks this leader is responsible for that are not yet terminal. */
  readonly active = new Map<string, EncodingTask>();
  /** The active tasks that are queued, kept in queue order as they come and go: a pass reads them in order. */
  private readonly waiting: OrderedQueue;
  /** Tasks recovered from a previous term and placed on a node, awaiting that node's claim until the given time. */
  private readonly unclaimed = new Map<string, number>();
  /** Nodes not to place on until their agent reports: restored from the saved ledger, or unreachable with an assignment. */
  private readonly unheard = new Set<string>();
  /** Burst nodes being scaled down: nothing new is placed on them. */
  private readonly draining = new Set<string>();
  /** Nodes whose agent is stopping (its heartbeats say draining): nothing new is placed on them. */
  private readonly leaving = new Set<string>();
  /** Admitted jobs of the last ARRIVALS_KEPT_MS, oldest first: the burst forecast's arrival rates. */
  private readonly arrivals: EncodingTask[] = [];
  /** Tasks admitted whose first write is still to be asked for (or failed: a redelivery asks again). */
  private readonly unrecorded = new Set<EncodingTask>();
  /** Tasks that ended while this core led, by id, for reports that come after the end. */
  private readonly ended = new Recent<EncodingTask>(ENDED_KEPT);
  /**
   * Tasks an earlier attempt's late success ended while a newer attempt held a reservation, by
   * id, to that attempt's node: the reservation stays until the node says the encode stopped
   * (its report, a Cancel answered "not running", a heartbeat without it) or is lost.
   */
  private readonly superseded = new Map<string, string>();
  /** Predictions already made per task, by model version, hardware class and cores (predictionAt). */
  private readonly predictions = new WeakMap<EncodingTask, TaskPredictions>();
  private wakeAt = Infinity;
  /** The model version and correction revision predictions are memoized under (ModelChanged). */
  private modelKey = '';
  stopped = false;
  private now = 0;
  private effects: Effect[] = [];
  private passDue = false;

  constructor(private readonly o: CoreOptions) {
    this.ledger = new Ledger(0, o.leaseMs);
    this.waiting = new OrderedQueue(o.queuePolicy ?? DEFAULT_QUEUE_POLICY);
  }

  /** Superseded attempts still holding a reservation until their node confirms the stop: task id to node. */
  supersededAttempts(): ReadonlyMap<string, string> { return this.superseded; }

  /** The predictor decisions are made with (ModelChanged events come with a new one from the shell). */
  set predictor(p: ResourcePredictor) { this.o.predictor = p; }
  get predictor(): ResourcePredictor { return this.o.predictor; }

  /**
   * Applies a batch of events in order, then one placement pass if any of them called for it.
   * Returns the effects to carry out, in order, and a reply per event.
   */
  apply(events: readonly LeaderEvent[]): { effects: Effect[]; replies: (Reply | undefined)[] } {
    this.effects = [];
    this.passDue = false;
    this.admitted = [];
    const replies = events.map((e) => { this.now = e.at; return this.handle(e); });
    if (this.passDue && !this.stopped) this.decide();
    // Admitted tasks the pass did not place are written now, as queued or rejected.
    for (const t of this.admitted) if (this.unrecorded.has(t)) this.record(t);
    if (this.ledger.hasChanges()) this.effects.push({ kind: 'SaveLedger' });
    return { effects: this.effects, replies };
  }
  /** Tasks admitted (or handed back for their first write) in the batch being applied. */
  private admitted: EncodingTask[] = [];

  private handle(e: LeaderEvent): Reply | undefined {
    switch (e.kind) {
      case 'Started': this.start(e.term, e.leader_id, e.tasks, e.saved); return;
      case 'Submitted': {
        const dropped: (string | undefined)[] = [];
        const task_ids = e.submissions.map((s, i) => { const t = this.admit(s); if (typeof t === 'string') { dropped[i] = t; return undefined; } return t?.id; });
        return { kind: 'admitted', task_ids, dropped };
      }
      case 'CancelRequested': this.cancel(e.envelope, e.owner); return;
      case 'Registered': this.register(e.capacity, e.running); return;
      case 'Heartbeat':
        if (e.draining) this.leaving.add(e.node_id);
        else if (this.leaving.delete(e.node_id)) this.passDue = true;
        return this.heartbeat(e.node_id, e.running);
      case 'Deregistered': this.deregister(e.node_id, e.reason); return;
      case 'StatusReported': return this.report(e.report, e.stored);
      case 'ModelChanged': this.modelKey = `${e.version}#${e.revision ?? ''}`; return;
      case 'Tick': this.tick(); return;
      case 'Wake': this.wakeAt = Infinity; this.passDue = true; return;
      case 'DrainingSet': this.draining.clear(); for (const id of e.node_ids) this.draining.add(id); return;
      case 'Duplicate': this.dropDuplicate(e.task_id); return;
      case 'RecordFailed': for (const id of e.task_ids) { const t = this.active.get(id); if (t) this.unrecorded.add(t); } return;
      case 'DeadLettered': this.forget(e.task_ids); return;
      case 'AssignFailed': this.assignFailed(e.task_id, e.node_id, e.reason, e.unreachable); return;
      case 'CancelAnswered': this.cancelAnswered(e.task_id, e.not_running, e.reason); return;
      case 'PlaylistWritten': this.playlistWritten(e.task_ids, e.path, e.error); return;
      case 'Deposed': this.alert(`deposed: ${e.reason}; no more placements from term ${this.term}`, 'warn'); this.stopped = true; return;
    }
  }

  // ── queries (read-only, for the shell and the CLI) ───────────────────────────────────

  /** Queued tasks in the order they get resources (coordinator/queue). */
  queue(): EncodingTask[] {
    return [...this.waiting.tasks()];
  }

  /** Whether the core holds this task (active, or ended while it led). */
  knows(taskId: string): boolean { return this.active.has(taskId) || this.ended.has(taskId); }

  /** Nodes a probe may go to: registered, heard from, not draining. */
  probeCandidates(): NodeCapacity[] {
    return this.ledger.snapshot().nodes.filter((n) => !this.unheard.has(n.node_id) && !this.draining.has(n.node_id) && !this.leaving.has(n.node_id)).map((n) => n.capacity);
  }

  /** What the burst controller decides from. */
  burstView(): { tasks: EncodingTask[]; arrivals: EncodingTask[]; snap: LedgerSnapshot; queuePolicy: QueuePolicy; reservation?: ReservationPolicy } {
    this.arrived();
    return {
      tasks: [...this.active.values()], arrivals: this.arrivals.slice(-ARRIVALS_KEPT_MAX), snap: this.ledger.snapshot(),
      queuePolicy: this.o.queuePolicy ?? DEFAULT_QUEUE_POLICY, reservation: this.o.reservation,
    };
  }

  // ── the term's start ─────────────────────────────────────────────────────────────────

  /**
   * Resumes the durable records of active tasks and the previous leader's ledger: its nodes
   * (each given one lease to report again) and the reservations of tasks still active.
   */
  private start(term: number, leaderId: string, tasks: EncodingTask[], saved: LedgerState | undefined): void {
    this.term = term;
    this.leaderId = leaderId;
    this.ledger = new Ledger(term, this.o.leaseMs);
    for (const t of tasks) {
      this.active.set(t.id, t);
      this.index(t);
      this.arrived(t);
      if (t.state === 'placed' || t.state === 'running') this.unclaimed.set(t.id, this.now + this.o.leaseMs);
    }
    if (saved) {
      this.ledger = Ledger.fromState(saved, term, this.o.leaseMs, this.now);
      for (const id of this.ledger.nodeIds()) this.unheard.add(id);
      for (const d of this.ledger.restoreSkipped) this.alert(`saved reservation of ${d.task_id} not restored: ${d.reason}`, 'warn');
      for (const node of this.ledger.nodeIds()) {
        for (const id of this.ledger.reservedTaskIds(node)) {
          const t = this.active.get(id);
          if (!t || t.state === 'queued') { this.ledger.release(id); this.alert(`dropped the saved reservation of ${id}: ${t ? 'it is queued again' : 'it is no longer active'}`); }
          else t.allocation = this.ledger.reservation(id);
        }
      }
    }
    this.alert(`term ${term}: resumed ${this.active.size} active task(s), ${this.unclaimed.size} awaiting their agents, ${this.ledger.nodeIds().length} node(s) from the saved ledger`);
  }

  // ── submissions ──────────────────────────────────────────────────────────────────────

  /**
   * Validates and predicts one submission; a queued task joins the queue. Its first record is
   * written at the end of the batch, as placed when the batch's pass places it: one write, not two.
   */
  private admit(s: Submission): EncodingTask | string | undefined {
    this.passDue = true;
    const env = s.envelope as SubmitEnvelope | undefined;
    if (env === undefined || env === null || typeof env !== 'object') return this.drop('it is not a JSON object');
    if (typeof env.job_id !== 'string' || !JOB_ID_PATTERN.test(env.job_id)) {
      return this.drop(`job_id must match ${JOB_ID_PATTERN}, got ${describeValue(env.job_id)}`);
    }
    // Redelivery of a job already admitted: recorded by an earlier leader, or in memory. One in
    // memory whose first write failed is handed back to be written now. One recorded and ended
    // meets its record at its first write (a Duplicate event).
    const known = this.active.get(env.job_id);
    if (known) {
      if (!this.unrecorded.has(known)) return undefined;
      this.admitted.push(known);
      return known;
    }
    // When JetStream stored the submission, not the client's clock: queue order, SLA delays and the
    // sizing grace all count from it, and a submitter must not jump the queue by back-dating its jobs.
    const submittedAt = s.stored_at ?? this.now;
    let task: EncodingTask;
    try {
      const schema = (this.o.validate ?? validateEncodingSchema)(env.schema, this.o.validation);
      const probed = s.probe;
      if (probed && 'probe' in probed && schema.input.kind === 'file' && !schema.input.probe) schema.input.probe = probed.probe;
      const predicted = predictWork(this.o.predictor, schema);
      if (probed && 'failed' in probed) predicted.flags = [...(predicted.flags ?? []), `input not probed: ${probed.failed}`];
      // Written out rather than spread from common fields: a spread with fields after it takes V8's slow path (microseconds a job).
      task = { id: env.job_id, owner: s.owner, submitted_at: submittedAt, updated_at: this.now, term: this.term, attempts: 0, schema, state: 'queued', predicted, reason: ADMITTED };
    } catch (e) {
      const reason = e instanceof SchemaValidationError ? e.issues.map((i) => `${i.field}: ${i.reason}`).join('; ') : String(e);
      // A refusal is recorded, so it must be recordable: the schema as sent only when it is
      // small and shallow, and the reason cut short (a poison submission once repeated a 600 KB
      // value in its reason, and one nested 5,000 levels deep could not be encoded at all).
      task = { id: env.job_id, owner: s.owner, submitted_at: submittedAt, updated_at: this.now, term: this.term, attempts: 0, schema: keptSchema(env.schema), state: 'rejected', reason: truncate(reason, MAX_REASON) };
    }
    if (task.state === 'queued') { this.active.set(task.id, task); this.index(task); this.arrived(task); }
    this.unrecorded.add(task);
    this.admitted.push(task);
    return task;
  }

  /** A submission taken by no task: the reason goes back to the shell (and to the log, cut short). */
  private drop(reason: string): string {
    this.alert(`dropped a submission: ${reason}`, 'warn');
    return reason;
  }

  /** Tasks whose submissions were set aside as dead letters: whatever they held is released. */
  private forget(ids: readonly string[]): void {
    const gone = new Set(ids);
    for (const t of this.unrecorded) if (gone.has(t.id)) this.unrecorded.delete(t);
    for (const id of gone) {
      const t = this.active.get(id);
      if (!t) continue;
      if (this.ledger.release(id)) this.passDue = true;
      this.active.delete(id);
      this.waiting.delete(t);
      this.unclaimed.delete(id);
      this.alert(`${id}: its record could not be written; set aside as a dead letter`, 'error');
    }
  }

  /**
   * Cancels one job. A queued job ends at once; one holding a reservation keeps it until its
   * agent confirms ffmpeg has stopped (its report, or the node's loss), so the resources are
   * never handed out while the encode may still be using them.
   */
  private cancel(raw: unknown, owner: string): void {
    const env = raw as CancelEnvelope | undefined;
    if (env === undefined) { this.alert('dropped a cancellation that is not JSON', 'warn'); return; }
    const t = typeof env?.job_id === 'string' ? this.active.get(env.job_id) : undefined;
    if (!t) {
      const ended = typeof env?.job_id === 'string' ? this.ended.get(env.job_id) : undefined;
      this.alert(`cancel ${describeValue(env?.job_id)}: ${ended ? `already ${ended.state}` : 'no such active job'}`);
      return;
    }
    // Only its owner cancels a job (an operator publishes on the owner's subject); records from
    // before owners are anyone's.
    if (t.owner !== undefined && t.owner !== owner) {
      this.alert(`cancel ${t.id} refused: it was asked for by ${owner}, and the job is ${t.owner}'s`, 'warn');
      return;
    }
    // `prescient stop` is for live channels: on a batch job it would throw the work away, which is
    // what `cancel` is for, so it is refused here too (a client cannot read the record to check).
    if (env.action === 'stop' && !isActor(t.schema)) {
      this.alert(`stop ${t.id} refused: it is a batch job, not a live channel (cancel it instead)`, 'warn');
      return;
    }
    if (t.state === 'queued') { this.finishCancel(t, 'cancelled on request while queued'); this.passDue = true; return; }
    if (t.cancel_requested_at !== undefined) return;
    t.cancel_requested_at = this.now;
    t.reason = 'cancelling: waiting for the agent to stop the encode';
    this.record(t);
    if (!(t.allocation && this.stopOn(t.allocation.node_id, t.id))) this.cancelAnswered(t.id, false, 'its node is not in the ledger');
  }

  /** Asks `nodeId`'s agent to stop its encode of `taskId`; false when the node is not in the ledger (nothing to ask). */
  private stopOn(nodeId: string, taskId: string): boolean {
    const node = this.ledger.snapshot().node(nodeId);
    if (node) this.effects.push({ kind: 'Cancel', node_id: node.node_id, address: node.capacity.address, task_id: taskId, term: this.term });
    return !!node;
  }

  /** The agent's answer to a Cancel: one not running the task (the assignment never arrived, or it just ended) holds nothing. */
  private cancelAnswered(taskId: string, notRunning: boolean, reason: string): void {
    const stopping = this.superseded.get(taskId);
    if (stopping !== undefined) {
      if (notRunning) this.releaseSuperseded(taskId, stopping);
      else if (reason) this.alert(`stopping the superseded attempt of ${taskId} on ${stopping}: agent did not confirm (${reason}); its reservation is held until the node reports or is lost`, 'warn');
      return;
    }
    const t = this.active.get(taskId);
    if (t && t.time_limit_stop_at !== undefined && t.cancel_requested_at === undefined) {
      if (notRunning) { this.requeue(t, t.reason ?? 'its encode ran past its time limit'); this.passDue = true; }
      else if (reason) this.alert(`stopping ${t.id} past its time limit: agent did not confirm (${reason}); it ends when the node reports or is lost`, 'warn');
      return;
    }
    if (!t || t.cancel_requested_at === undefined) return;
    if (notRunning) {
      this.ledger.release(t.id);
      this.finishCancel(t, 'cancelled on request before its encode started');
      this.passDue = true;
      return;
    }
    if (reason) this.alert(`cancel ${t.id}: agent did not confirm (${reason}); it ends when the node reports or is lost`, 'warn');
  }

  private finishCancel(t: EncodingTask, reason: string): void {
    this.active.delete(t.id);
    this.unclaimed.delete(t.id);
    t.allocation = undefined;
    this.end(Object.assign(t, { state: 'cancelled' as TaskState, reason }));
  }

  // ── placement ────────────────────────────────────────────────────────────────────────

  /**
   * Tries to place every queued task, most urgent first; a group's members all at once. The
   * decisions and commits happen in queue order; their records and assignments are effects.
   */
  private decide(): void {
    const groupsSeen = new Set<string>();
    // Requests that did not fit in this pass: the ledger only fills up during a pass, so the
    // same request will not fit either (a queue of hundreds of like jobs behind a full fleet
    // costs one placement, not hundreds).
    const misfits: Misfit[] = [];
    const queue = this.waiting.tasks();
    // What throughput sizing needs to know about this pass (coordinator/sizing): how many CPU
    // batch jobs are still waiting behind each one, and the cores left idle.
    let cpuWaiting = queue.filter((t) => t.state === 'queued' && !t.schema.group && isCpuBatch(t)).length;
    let view: PassView | undefined;
    // Every request asks for at least one core: once no usable node has one free, nothing more
    // fits in this pass, and the rest of the queue keeps the reasons earlier passes gave it. A
    // report that frees a node's cores costs a pass over the jobs that fill them, not the queue.
    let free = this.usableFreeCores();
    for (const [i, t] of queue.entries()) {
      if (free <= 0) {
        this.setReason(queue.slice(i).filter((x) => x.state === 'queued' && x.reason === ADMITTED), 'no node has room now: every core of the nodes it may use is taken');
        break;
      }
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
            this.setReason(queued, `waiting for ${g.size - queued.length} more job(s) of group ${g.id} (${queued.length} of ${g.size} arrived)`);
            continue;
          }
          free -= this.placeGroupOf(queued, g.placement);
          continue;
        }
      }
      // One snapshot per decision: sizing the request and placing it see the same ledger.
      const snap = this.ledger.snapshot();
      let sized: ClassSized | undefined;
      if (isCpuBatch(t) && (this.o.reservation ?? { kind: 'predictive' }).kind === 'predictive') {
        cpuWaiting--;
        view ??= this.passView(snap);
        if (view.classes.size > 1) {
          const across = this.placeAcrossClasses(t, snap, view, cpuWaiting, misfits);
          if (across === 'deferred' || across === 'reason-set') continue;
          sized = across;
        } else {
          const { req, why, retry_at } = sizeWithReason(t, snap, this.o.reservation, this.sizingContext(t, view, view.classes.values().next().value, cpuWaiting));
          if (retry_at !== undefined) { this.wake(retry_at); continue; }
          sized = { req, why };
        }
      }
      const { req, why } = sized ?? sizeWithReason(t, snap, this.o.reservation);
      let result = sized?.result;
      if (!result) {
        const known = misfits.find((m) => m.hw_class === undefined && sameAsk(req, m.req));
        if (known) { this.setReason([t], known.reason); continue; }
        const r = place(req, snap, this.policy, this.avoid());
        if (r.kind !== 'placed') {
          const reason = r.kind === 'infeasible' ? `infeasible: ${r.reason}` : r.reason;
          misfits.push({ req, reason });
          this.setReason([t], reason);
          continue;
        }
        result = r;
      }
      const commit = this.ledger.commit(result.plan, this.now);
      if (!commit.ok) { this.alert(`plan for ${t.id} refused: ${commit.reason}`, 'warn'); continue; }
      free -= commit.allocation.core_ids.length;
      if (view) this.spent(view, commit.allocation.node_id, commit.allocation.core_ids.length);
      this.dispatch(t, commit.allocation, snap, req, why, sized !== undefined);
    }
  }

  /**
   * A CPU batch job on a fleet of several hardware classes: sized for each class from its
   * prediction there (predicted for every class in one batch), placed among that class's nodes,
   * and the placement whose prediction ends soonest is taken (the policy's score breaks a tie).
   * `'deferred'`: a class asked to wait for more jobs (IDLE_GRACE_MS); `'reason-set'`: no class
   * had room, and the job says why for each.
   */
  private placeAcrossClasses(t: EncodingTask, snap: LedgerSnapshot, v: PassView, waiting: number, misfits: Misfit[]): ClassSized | 'deferred' | 'reason-set' {
    const all = [...v.classes.values()];
    const full = all.filter((c) => c.most === 0).map((c) => c.hw_class);
    const scored = all.filter((c) => c.most > 0).sort((a, b) => b.idle - a.idle || (a.hw_class < b.hw_class ? -1 : 1)).slice(0, MAX_CLASSES_SCORED);
    this.predictClasses(t, scored.map((c) => c.hw_class), scored.some((c) => c.most > 1) ? 2 : 1);
    let best: (ClassSized & { hw_class: string; seconds: number; score: number }) | undefined;
    const seen: string[] = [], short: string[] = [];
    for (const c of scored) {
      const s = sizeWithReason(t, snap, this.o.reservation, this.sizingContext(t, v, c, waiting));
      if (s.retry_at !== undefined) { this.wake(s.retry_at); return 'deferred'; }
      let known = misfits.find((m) => m.hw_class === c.hw_class && sameAsk(s.req, m.req));
      if (!known) {
        const result = place(s.req, snap, this.policy, { exclude: this.excludeBut(v, c), excludeReason: 'another hardware class' });
        if (result.kind === 'placed') {
          const seconds = this.predictionAt(t, s.req.cores, c.hw_class).expected.duration_s;
          seen.push(`${seconds.toFixed(1)} s on ${c.hw_class}`);
          if (!best || seconds < best.seconds || (seconds === best.seconds && result.score > best.score)) {
            best = { req: s.req, why: s.why, result, hw_class: c.hw_class, seconds, score: result.score };
          }
          continue;
        }
        misfits.push((known = { req: s.req, reason: result.reason, hw_class: c.hw_class }));
      }
      short.push(`on ${c.hw_class}: ${known.reason}`);
    }
    if (!best) {
      this.setReason([t], short.length ? `no hardware class has room for it now; ${short.join('; ')}` : 'no node has room now: every core of the nodes it may use is taken');
      return 'reason-set';
    }
    const others = (seen.length > 1 ? `, the soonest of ${seen.join(', ')}` : '') + (full.length ? ` (no core free on ${full.join(', ')})` : '');
    return { req: best.req, result: best.result, why: `${best.why ?? `${best.req.cores} core(s)`}; on ${best.hw_class}: predicted ${best.seconds.toFixed(1)} s${others}` };
  }

  /** Nodes a class-restricted placement may not use: every other class's, and those the pass avoids. */
  private excludeBut(v: PassView, c: ClassView): ReadonlySet<string> {
    if (c.others) return c.others;
    const out = new Set(v.exclude);
    for (const other of v.classes.values()) if (other !== c) for (const n of other.nodes) out.add(n);
    return (c.others = out);
  }

  /** The job's predictions at 1…`upTo` cores on each class not yet predicted, in one batch. */
  private predictClasses(t: EncodingTask, classes: string[], upTo: number): void {
    const want: { cores: number; hw_class: string }[] = [];
    for (const hw_class of classes) { const known = this.predictionsOf(t, hw_class); for (let cores = 1; cores <= upTo; cores++) if (!known[cores]) want.push({ cores, hw_class }); }
    if (!want.length) return;
    predictWorkEach(this.o.predictor, t.schema, want).forEach((p, i) => { this.predictionsOf(t, want[i].hw_class)[want[i].cores] = p; });
  }

  /** Idle cores on the nodes this pass may place on, in all and per hardware class (recounted per node for fleets small enough to track). */
  private passView(snap: LedgerSnapshot): PassView {
    const { exclude } = this.avoid();
    const track = snap.count <= PASS_VIEW_NODES;
    const p = this.classPartition(snap);
    const classes = new Map<string, ClassView>();
    let idle = 0;
    // One class, nothing excluded, too many nodes to track each: the idle sum and the most on a
    // node come from the free-core column block by block.
    if (!track && !exclude && p.byClass.size === 1) {
      const [hw_class, nodes] = p.byClass.entries().next().value!;
      let most = 0;
      for (let b = 0; b * snap.blockSize < snap.slots; b++) {
        const m = snap.blockMax(b, FREE.cores);
        if (m <= 0) continue;
        if (m > most) most = m;
        const free = snap.blockFree(b), base = FREE.cores * snap.blockSize;
        for (let j = 0; j < snap.blockSize; j++) { const f = free[base + j]; if (f > 0) idle += f; }
      }
      classes.set(hw_class, { hw_class, idle, most, nodes });
      return { idle, classes, classOf: p.classOf, exclude };
    }
    // Free cores read from the snapshot's columns: no node object is opened, nothing allocated per node.
    for (let i = 0; i < snap.slots; i++) {
      const hw_class = p.slotClass[i];
      if (hw_class === undefined) continue;
      const id = p.slotId[i]!;
      if (exclude?.has(id)) continue;
      let c = classes.get(hw_class);
      if (!c) classes.set(hw_class, (c = { hw_class, idle: 0, most: 0, free: track ? new Map() : undefined, nodes: p.byClass.get(hw_class)! }));
      const f = snap.amount(i, FREE.cores);
      idle += f;
      c.idle += f;
      if (f > c.most) c.most = f;
      c.free?.set(id, f);
    }
    return { idle, classes, classOf: p.classOf, exclude };
  }

  /**
   * Each slot's node id and hardware class, and the nodes of each class: worked out again only
   * for slots whose node changed (joined, left, registered again) since the last pass, so a pass
   * over thousands of nodes reads numbers rather than rebuilding maps.
   */
  private classPartition(snap: LedgerSnapshot): { slotId: (string | undefined)[]; slotClass: (string | undefined)[]; classOf: Map<string, string>; byClass: Map<string, string[]> } {
    const p = (this.partition ??= { ledger: this.ledger, membership: -1, caps: [], slotId: [], slotClass: [], classOf: new Map(), byClass: new Map() });
    if (p.ledger === this.ledger && p.membership === this.ledger.membership && p.caps.length === snap.slots) return p;
    p.ledger = this.ledger;
    p.membership = this.ledger.membership;
    let changed = p.caps.length !== snap.slots;
    p.caps.length = p.slotId.length = p.slotClass.length = snap.slots;
    for (let i = 0; i < snap.slots; i++) {
      const cap = snap.at(i)?.capacity;
      if (cap === p.caps[i]) continue;
      changed = true;
      p.caps[i] = cap;
      p.slotId[i] = cap?.node_id;
      p.slotClass[i] = cap ? hardwareClass(cap.cpu_model) : undefined;
    }
    if (changed) {
      p.classOf = new Map();
      p.byClass = new Map();
      for (let i = 0; i < snap.slots; i++) {
        const id = p.slotId[i], c = p.slotClass[i];
        if (id === undefined || c === undefined) continue;
        p.classOf.set(id, c);
        let list = p.byClass.get(c);
        if (!list) p.byClass.set(c, (list = []));
        list.push(id);
      }
    }
    return p;
  }
  private partition?: { ledger: Ledger; membership: number; caps: (NodeCapacity | undefined)[]; slotId: (string | undefined)[]; slotClass: (string | undefined)[]; classOf: Map<string, string>; byClass: Map<string, string[]> };

  /** Takes a commit's cores out of the pass's view. */
  private spent(v: PassView, node: string, cores: number): void {
    v.idle -= cores;
    const c = v.classes.get(v.classOf.get(node) ?? '');
    if (!c) return;
    c.idle -= cores;
    if (!c.free) { c.most = Math.min(c.most, c.idle); return; }
    c.free.set(node, (c.free.get(node) ?? cores) - cores);
    c.most = Math.max(0, ...c.free.values());
  }

  /** What sizing knows of the pass for `t` on class `c` (no class: no usable node has a free core). */
  private sizingContext(t: EncodingTask, v: PassView, c: ClassView | undefined, waiting: number): SizingContext {
    const deadline = t.schema.deadline ? Date.parse(t.schema.deadline) : NaN;
    const most = c?.most ?? 0, hw_class = c?.hw_class;
    return {
      curve: most > 1 || Number.isFinite(deadline) ? this.speedUpCurve(t, Math.max(1, most), hw_class) : curveOf([]),
      at: (cores) => this.predictionAt(t, cores, hw_class),
      waiting, idle_cores: v.idle, most_idle_on_a_node: most,
      now: this.now, submitted_at: t.submitted_at, deadline_at: Number.isFinite(deadline) ? deadline : undefined,
    };
  }

  /**
   * The job's prediction at `cores` on `hw_class`, made once per job, model version, size and
   * class: sizing reads it (the speed-up curve, the memory reserved) and the agent is handed the
   * same one, corrected for its node (dispatch).
   */
  private predictionAt(t: EncodingTask, cores: number, hw_class: string | undefined): Prediction {
    const known = this.predictionsOf(t, hw_class);
    return (known[cores] ??= predictWork(this.o.predictor, t.schema, { cores, hw_class }));
  }

  /**
   * The job's predictions on `hw_class` (none: '') under the model in service, by cores. Looked
   * up without making a key string per read: sizing reads a few per job, and the string was most
   * of their cost. Those made under another model are kept, for when it is in service again.
   */
  private predictionsOf(t: EncodingTask, hw_class: string | undefined): Prediction[] {
    const version = this.o.predictor.version;
    let known = this.predictions.get(t);
    if (!known) this.predictions.set(t, (known = { modelKey: this.modelKey, version, byClass: new Map() }));
    else if (known.modelKey !== this.modelKey || known.version !== version) {
      (known.other ??= new Map()).set(`${known.modelKey}|${known.version}`, known.byClass);
      known.byClass = known.other.get(`${this.modelKey}|${version}`) ?? new Map();
      known.modelKey = this.modelKey;
      known.version = version;
    }
    const cls = hw_class ?? '';
    let list = known.byClass.get(cls);
    if (!list) known.byClass.set(cls, (list = []));
    return list;
  }

  /** The job's predicted time at 1…`upTo` cores on `hw_class`, each point predicted when sizing first reads it. */
  private speedUpCurve(t: EncodingTask, upTo: number, hw_class: string | undefined): SpeedUpCurve {
    return lazyCurve(Math.min(upTo, MAX_CURVE_CORES), (cores) => {
      const p = this.predictionAt(t, cores, hw_class);
      return { expected: p.expected.duration_s, upper: p.upper.duration_s, cpu_cores: p.expected.cpu_cores };
    });
  }

  /** Asks for a pass at `at` (epoch ms), unless one is already due sooner. */
  private wake(at: number): void {
    if (this.stopped || at >= this.wakeAt) return;
    this.wakeAt = at;
    this.effects.push({ kind: 'Wake', at });
  }

  private get policy(): PlacementPolicy { return this.o.policy ?? POLICIES['best-fit']; }

  private avoid(): { exclude?: ReadonlySet<string>; excludeReason?: string } {
    // The usual case, asked once per decision, without building the lists below.
    if (!this.unheard.size && !this.draining.size && !this.leaving.size) return {};
    const sets = ([[this.unheard, 'its agent has not reported to this leader yet'], [this.draining, 'it is draining (burst scale-down)'], [this.leaving, 'its agent is stopping']] as const)
      .filter(([s]) => s.size);
    if (!sets.length) return {};
    if (sets.length === 1) return { exclude: sets[0][0], excludeReason: sets[0][1] };
    return { exclude: new Set(sets.flatMap(([s]) => [...s])), excludeReason: sets.map(([, why]) => why).join(', or ') };
  }

  /** All of a group's members reserved in one commit, or none (with the reason on each). Returns the cores committed. */
  private placeGroupOf(members: EncodingTask[], mode: 'together' | 'spread'): number {
    const snap = this.ledger.snapshot();
    const reqs = members.map((m) => sizeRequest(m, snap, this.o.reservation));
    const result = placeGroup(reqs, snap, { mode, ...this.avoid() }, this.policy);
    if (result.kind !== 'placed') {
      this.setReason(members, `group ${result.kind === 'infeasible' ? 'infeasible' : 'queued'} (${mode}): ${result.reason}`);
      return 0;
    }
    const commit = this.ledger.commitAll(result.plans, this.now);
    if (!commit.ok) { this.alert(`group plan for ${members.map((m) => m.id).join(', ')} refused: ${commit.reason}`, 'warn'); return 0; }
    members.forEach((m, i) => this.dispatch(m, commit.allocations[i], snap, reqs[i]));
    return commit.allocations.reduce((n, a) => n + a.core_ids.length, 0);
  }

  /** Free cores on the nodes a pass may place on. */
  private usableFreeCores(): number {
    const { exclude } = this.avoid();
    const snap = this.ledger.snapshot();
    // Summed from the snapshot's free-core column (an empty slot reads negative), then the excluded nodes' taken out.
    let n = 0;
    for (let b = 0; b * snap.blockSize < snap.slots; b++) {
      if (snap.blockMax(b, FREE.cores) <= 0) continue;
      const free = snap.blockFree(b), base = FREE.cores * snap.blockSize;
      for (let j = 0; j < snap.blockSize; j++) { const f = free[base + j]; if (f > 0) n += f; }
    }
    if (exclude) for (const id of exclude) { const x = snap.node(id); if (x) n -= x.free_core_ids.length; }
    return n;
  }

  private setReason(tasks: EncodingTask[], reason: string): void {
    for (const t of tasks) {
      if (t.reason === reason) continue;
      t.reason = reason;
      this.record(t);
    }
  }

  /** Records a committed reservation and asks for the task to be handed to its agent. */
  private dispatch(t: EncodingTask, allocation: ResourceAllocation, snap: LedgerSnapshot, req: PlacementRequest, why?: string, sized = false): void {
    const node = snap.node(allocation.node_id)!;
    t.allocation = allocation;
    const gpu = node.capacity.gpus.find((g) => g.id === allocation.gpu_ids[0]);
    const hw_class = hardwareClass(node.capacity.cpu_model, gpu?.name);
    const forNode = (this.o.predictor as Partial<NodeCorrecting>).forNode?.bind(this.o.predictor);
    if (sized) {
      // Sized from its prediction for this class and size: the agent gets that same prediction, with the node's correction.
      const p = this.predictionAt(t, req.cores, hw_class);
      t.predicted = forNode ? forNode(p, t.schema.output.codec, allocation.node_id) : p;
    } else {
      // The node travels in the context for the feedback loop's per-node correction (coordinator/feedback); the model ignores it.
      const ctx: PlacementContext = { cores: req.cores, hw_class, node: allocation.node_id };
      t.predicted = predictWork(this.o.predictor, t.schema, ctx);
    }
    t.attempts += 1;
    t.reason = why;
    t.state = 'placed';
    t.started_at = this.now;
    this.record(t);
    // The schema's JSON is made when first read: the shell sends it once, and a simulation
    // (`prescient plan`) never reads it, where serialising it was a tenth of the time. A schema
    // does not change once admitted, so reading it later gives the same text.
    const schema = t.schema;
    let json: string | undefined;
    this.effects.push({
      kind: 'Assign', node_id: allocation.node_id, address: node.capacity.address,
      assignment: { task_id: t.id, get schema_json() { return (json ??= JSON.stringify(schema)); }, allocation: toAllocationMsg(allocation), predicted: t.predicted.expected, attempt: t.attempts, model_version: t.predicted.model_version, owner: t.owner ?? NO_OWNER },
    });
  }

  /** An assignment the agent refused or could not be sent: the task is re-queued. */
  private assignFailed(taskId: string, nodeId: string, reason: string, unreachable: boolean): void {
    const t = this.active.get(taskId);
    if (!t || t.allocation?.node_id !== nodeId || t.state !== 'placed') return;
    this.alert(`agent ${nodeId} ${unreachable ? 'unreachable' : 'refused'} for ${t.id}: ${reason}`, 'warn');
    if (unreachable) {
      // Its agent is gone or restarting: place nothing more there until it reports again, and
      // do not count the attempt against the job (the job did nothing wrong).
      this.unheard.add(nodeId);
      t.attempts -= 1;
    }
    this.requeue(t, `node ${nodeId} ${unreachable ? 'could not be reached' : 'refused the assignment'}: ${reason}`);
    this.passDue = true;
  }

  private requeue(t: EncodingTask, reason: string): void {
    this.ledger.release(t.id);
    this.unclaimed.delete(t.id);
    if (t.allocation) t.earlier = [...(t.earlier ?? []), t.allocation].slice(-EARLIER_KEPT);
    t.allocation = undefined;
    t.time_limit_stop_at = undefined;
    t.started_at = undefined;
    if (t.cancel_requested_at !== undefined) return this.finishCancel(t, `cancelled (${reason})`);
    if (t.attempts >= (this.o.maxAttempts ?? 5)) {
      this.active.delete(t.id);
      this.end(Object.assign(t, { state: 'failed' as TaskState, reason: `gave up after ${t.attempts} attempts; last: ${reason}` }));
      return;
    }
    this.record(Object.assign(t, { state: 'queued' as TaskState, reason }));
  }

  // ── agents ───────────────────────────────────────────────────────────────────────────

  private register(cap: NodeCapacity, running: RunningTaskMsg[]): void {
    this.unheard.delete(cap.node_id);
    this.leaving.delete(cap.node_id);
    for (const d of this.ledger.upsertNode(cap, this.now)) {
      const t = this.active.get(d.task_id);
      if (t) this.requeue(t, `node ${cap.node_id} re-registered with less capacity: ${d.reason}`);
    }
    this.alert(`node ${cap.node_id} registered at ${cap.address}: cores [${cap.core_ids.join(',')}], ${cap.memory_gb.toFixed(1)} GB, ${cap.gpus.length} GPU(s)`);
    this.claim(cap.node_id, running);
    this.passDue = true;
  }

  /** The agent stopped: its node leaves now (not a lease later), and what it held runs elsewhere, the attempt not counted against the job. */
  private deregister(nodeId: string, reason: string): void {
    if (!this.ledger.snapshot().node(nodeId)) { this.leaving.delete(nodeId); this.unheard.delete(nodeId); return; }
    this.alert(`node ${nodeId} left: its agent stopped${reason ? ` (${reason})` : ''}`);
    this.dropNode(nodeId, `its node ${nodeId} stopped before it finished; it runs elsewhere`, false);
    this.passDue = true;
  }

  /** Takes a node out of the ledger (lost, or its agent left); its tasks are re-queued, the attempt counted only when `counted`. */
  private dropNode(nodeId: string, why: string, counted: boolean): void {
    this.unheard.delete(nodeId);
    this.leaving.delete(nodeId);
    for (const { task_id } of this.ledger.removeNode(nodeId)) {
      this.superseded.delete(task_id);
      const t = this.active.get(task_id);
      if (!t) continue;
      if (!counted) t.attempts = Math.max(0, t.attempts - 1);
      this.requeue(t, why);
    }
  }

  private heartbeat(nodeId: string, running: RunningTaskMsg[]): Reply {
    if (!this.ledger.touch(nodeId, this.now)) return { kind: 'heartbeat', reregister: true };
    this.unheard.delete(nodeId);
    this.claim(nodeId, running);
    return { kind: 'heartbeat', reregister: false };
  }

  /**
   * Adopts reservations of tasks a node says it is running (after a failover, or a missed
   * report), and releases those of superseded attempts it no longer runs.
   */
  private claim(nodeId: string, running: RunningTaskMsg[]): void {
    if (this.superseded.size) {
      const runs = new Set(running.map((r) => r.task_id));
      for (const [id, node] of this.superseded) if (node === nodeId && !runs.has(id)) this.releaseSuperseded(id, node);
    }
    for (const r of running) {
      const t = this.active.get(r.task_id);
      if (!t || !r.allocation || this.ledger.reservation(t.id)) { this.unclaimed.delete(r.task_id); continue; }
      const adopted = this.ledger.adopt(t.id, { ...fromAllocationMsg(r.allocation), node_id: nodeId }, this.now);
      if (!adopted.ok) { this.alert(`cannot adopt ${t.id} on ${nodeId}: ${adopted.reason}`, 'warn'); continue; }
      this.unclaimed.delete(t.id);
      t.allocation = adopted.allocation;
      if (t.state === 'queued') t.state = 'running';
      this.record(t);
    }
  }

  private report(rep: TaskStatusReport, stored?: EncodingTask): Reply {
    const ack = (ok: boolean, reason = ''): Reply => ({ kind: 'ack', ok, reason });
    const t = this.active.get(rep.task_id) ?? this.ended.get(rep.task_id) ?? stored;
    if (!t) return ack(false, `unknown task ${rep.task_id}`);
    if (rep.amend) return this.amendQuality(t, rep);
    if (TERMINAL_STATES.has(t.state)) {
      if (rep.state !== 'running' && this.superseded.get(t.id) === rep.node_id) this.releaseSuperseded(t.id, rep.node_id);
      return ack(true, `already ${t.state}`);
    }
    // Only the node it is given to speaks for a task, or one that ran an earlier attempt: a task
    // re-queued while its node's report was on the way (a failover, a lease run out, the agent
    // killed and restarted) takes that late success rather than run the job twice (the chaos test).
    if (t.allocation?.node_id !== rep.node_id) {
      const earlier = [...(t.earlier ?? [])].reverse().find((a) => a.node_id === rep.node_id);
      if (!earlier) return ack(false, t.allocation ? `task ${t.id} is assigned to ${t.allocation.node_id}, not ${rep.node_id}` : `task ${t.id} was not assigned to ${rep.node_id}`);
      // That attempt was given up when the task was re-queued: only its success is still news.
      if (rep.state !== 'succeeded') return ack(true, `a report of an earlier attempt of ${t.id}, given up since`);
      this.supersede(t, earlier);
    }
    this.unclaimed.delete(t.id);
    if (rep.state === 'running') {
      t.state = 'running';
      this.record(t);
      return ack(true);
    }
    this.passDue = true;
    // Stopped for running past its time limit: it runs again (an attempt counted), or fails after maxAttempts.
    if (rep.state === 'failed' && t.time_limit_stop_at !== undefined && t.cancel_requested_at === undefined) {
      this.requeue(t, t.reason ?? 'its encode ran past its time limit');
      return ack(true);
    }
    // Stopped by its memory limit: the prediction was short, not the job wrong. It runs
    // again with more memory reserved (the bound it broke, doubled), within maxAttempts.
    if (rep.state === 'failed' && t.cancel_requested_at === undefined && failureKind(rep.failure) === 'MEMORY_EXCEEDED' && t.allocation) {
      t.memory_floor_gb = Math.max(t.memory_floor_gb ?? 0, 2 * t.allocation.memory_gb);
      this.requeue(t, `${rep.reason}; re-queued to run with ${t.memory_floor_gb.toFixed(2)} GB reserved`);
      return ack(true);
    }
    // A live channel that stopped without being asked to is restarted (on any node with room).
    if (rep.state === 'failed' && t.cancel_requested_at === undefined && isActor(t.schema)) {
      this.requeue(t, `live channel stopped unexpectedly on ${rep.node_id}: ${rep.reason}; restarting it`);
      return ack(true);
    }
    if (!this.superseded.has(t.id)) this.ledger.release(t.id);
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
      };
      // Set after, not spread in: a spread there takes V8's slow path for every success (see record).
      if (rep.quality === 'pending') { t.result.quality = 'pending'; t.result.quality_method = describedQuality(rep.quality_method); }
      const media = outputMedia(rep.output_json);
      if (media) t.result.media = media;
    }
    this.end(t);
    if (t.state === 'succeeded') this.groupSucceeded(t);
    return ack(true);
  }

  /**
   * The last of a group's members to succeed: every member's record gets where the group's outputs
   * are, and a group of HLS renditions its master playlist (written by the shell, beside them, in
   * their common directory, named `<group id>.m3u8`). A group with a member that did not succeed
   * gets none. Members are those this leader knows (active, or ended while it led).
   */
  private groupSucceeded(t: EncodingTask): void {
    const g = t.schema.group;
    if (!g) return;
    const key = groupKey(t);
    const members = new Map<string, EncodingTask>();
    for (const x of [...this.active.values(), ...this.ended.values()]) if (groupKey(x) === key) members.set(x.id, x);
    const done = [...members.values()].filter((m) => m.state === 'succeeded' && m.result);
    if (done.length !== g.size || members.size !== g.size || done.some((m) => m.result!.group_outputs)) return;
    const height = (m: EncodingTask) => m.result!.media?.height ?? m.schema.output.resolution?.height ?? 0;
    const bw = (m: EncodingTask) => bandwidthOf(m);
    done.sort((a, b) => height(b) - height(a) || bw(b) - bw(a) || a.id.localeCompare(b.id));
    const renditions = done.map((m) => ({
      job_id: m.id, ...(m.allocation && { node_id: m.allocation.node_id }), output_path: m.result!.output_path,
      ...((m.result!.media?.rendition ?? m.schema.output.rendition) && { rendition: m.result!.media?.rendition ?? m.schema.output.rendition }),
    }));
    const paths = renditions.map((r) => r.output_path);
    const clash = paths.find((p, i) => paths.indexOf(p) !== i);
    const hls = done.every((m) => m.schema.output.format === 'hls' && m.result!.media);
    const dir = commonDir(paths);
    const master = path.join(dir, `${g.id}.m3u8`);
    const outputs = (o: Pick<GroupOutputs, 'master' | 'reason' | 'master_playlist'>): GroupOutputs => ({ group: g.id, renditions, ...o });
    let set: GroupOutputs;
    if (!hls) set = outputs({ master: 'none', reason: 'its renditions are not all HLS (output.format: hls): a master playlist lists HLS renditions only' });
    else if (clash) set = outputs({ master: 'failed', reason: `two renditions were written to ${clash}: give output.path a {rendition}, {height} or {job_id}` });
    else if (paths.includes(master)) set = outputs({ master: 'failed', reason: `a rendition was written to ${master}, where the master playlist goes` });
    else {
      set = outputs({ master: 'writing', master_playlist: master });
      this.effects.push({ kind: 'WritePlaylist', group: g.id, path: master, text: masterPlaylist(done, dir), task_ids: done.map((m) => m.id) });
    }
    for (const m of done) {
      m.result!.group_outputs = set;
      if (m !== t) this.rewrite(m);
    }
  }

  /** The shell wrote a group's master playlist, or could not: each member's record says which. */
  private playlistWritten(taskIds: string[], file: string, error?: string): void {
    for (const id of taskIds) {
      const m = this.active.get(id) ?? this.ended.get(id);
      const o = m?.result?.group_outputs;
      if (!m || !o || o.master_playlist !== file) continue;
      m.result!.group_outputs = { ...o, master: error ? 'failed' : 'written', ...(error && { reason: `the master playlist could not be written: ${error}` }) };
      this.rewrite(m);
    }
    this.alert(error ? `master playlist ${file} not written: ${error}` : `master playlist ${file} written`, error ? 'error' : 'info');
  }

  /** Writes a task's record again without an event: what changed is not a state (a group's outputs). */
  private rewrite(t: EncodingTask): void {
    t.updated_at = this.now;
    t.term = this.term;
    this.effects.push({ kind: 'Record', task: t, first: false });
  }

  /**
   * An earlier attempt's late success is the job's: it ran there, and the attempt now holding a
   * reservation (if any) is stopped, that reservation kept until its node confirms the stop.
   */
  private supersede(t: EncodingTask, earlier: ResourceAllocation): void {
    const current = t.allocation;
    t.allocation = earlier;
    this.alert(`${t.id}: attempt on ${earlier.node_id} reported success late${current ? `; stopping the newer attempt on ${current.node_id}` : ''}`, 'warn');
    if (!current) return;
    if (this.stopOn(current.node_id, t.id)) this.superseded.set(t.id, current.node_id);
    else this.ledger.release(t.id);
  }

  /** The superseded attempt of `taskId` on `nodeId` has stopped: its reservation is free. */
  private releaseSuperseded(taskId: string, nodeId: string): void {
    this.superseded.delete(taskId);
    this.ledger.release(taskId);
    this.alert(`${taskId}: the superseded attempt on ${nodeId} stopped; its reservation is released`);
    this.passDue = true;
  }

  /**
   * A success's quality figures, measured after its reservation was released: the record gets
   * them, and a second `succeeded` event (the job's last, shared isFinalEvent) carries them.
   * Taken only from the node that ran it, for a success still waiting for them.
   */
  private amendQuality(t: EncodingTask, rep: TaskStatusReport): Reply {
    const ack = (ok: boolean, reason = ''): Reply => ({ kind: 'ack', ok, reason });
    if (t.allocation?.node_id !== rep.node_id) return ack(false, `task ${t.id} ran on ${t.allocation?.node_id}, not ${rep.node_id}`);
    if (rep.quality !== 'measured' && rep.quality !== 'unavailable') return ack(false, `quality must be measured or unavailable, got ${JSON.stringify(rep.quality)}`);
    if (t.state !== 'succeeded' || t.result?.quality !== 'pending') return ack(true, `${t.id} is ${t.state}${t.result?.quality ? ` with quality ${t.result.quality}` : ''}: nothing to amend`);
    const psnr = Number.isFinite(rep.psnr_db) && rep.psnr_db >= 0 && rep.psnr_db <= 1000 ? rep.psnr_db : undefined;
    const ssim = Number.isFinite(rep.ssim) && rep.ssim >= -1 && rep.ssim <= 1 ? rep.ssim : undefined;
    t.result = { ...t.result, psnr_db: psnr, ssim, quality: psnr !== undefined || ssim !== undefined ? 'measured' : 'unavailable' };
    this.record(t);
    return ack(true);
  }

  // ── housekeeping ─────────────────────────────────────────────────────────────────────

  /** Once a second: declare silent nodes lost, re-queue unclaimed tasks, and retry the queue. */
  private tick(): void {
    // Slot by slot rather than through `nodes`, which builds a list of every node once per snapshot (and a tick's is new).
    const snap = this.ledger.snapshot();
    for (let i = 0; i < snap.slots; i++) {
      const n = snap.at(i);
      if (!n || this.now - n.last_seen <= this.o.leaseMs) continue;
      this.alert(`node ${n.capacity.node_id} lost: no heartbeat for ${((this.now - n.last_seen) / 1000).toFixed(1)} s`, 'warn');
      this.dropNode(n.capacity.node_id, `node ${n.capacity.node_id} was lost`, true);
    }
    this.checkTimes();
    for (const [id, deadline] of this.unclaimed) {
      if (this.now < deadline) continue;
      const t = this.active.get(id);
      if (t) this.requeue(t, 'no agent claimed it after leader failover');
      else this.unclaimed.delete(id);
    }
    this.passDue = true;
  }

  /**
   * Once a second: an encode past its time limit is stopped (its node asked to, the task re-queued
   * when it confirms), and a job whose deadline passed before it ended says so, once.
   */
  private checkTimes(): void {
    const limit = this.o.timeLimit ?? TIME_LIMIT;
    for (const t of this.active.values()) {
      if (t.schema.deadline && t.deadline_missed_at === undefined && this.now > Date.parse(t.schema.deadline)) {
        t.deadline_missed_at = this.now;
        this.record(t, 'deadline_missed');
      }
      if (isActor(t.schema) || !t.allocation || t.started_at === undefined || t.cancel_requested_at !== undefined || t.time_limit_stop_at !== undefined) continue;
      const upper = t.predicted?.upper.duration_s;
      const ms = Math.max(limit.min_ms, limit.factor * (Number.isFinite(upper) && upper! > 0 ? upper! : 0) * 1000);
      if (this.now - t.started_at <= ms) continue;
      t.time_limit_stop_at = this.now;
      const secs = (x: number) => (x < 10_000 ? (x / 1000).toFixed(1) : (x / 1000).toFixed(0));
      t.reason = `its encode ran ${secs(this.now - t.started_at)} s, past its time limit of ${secs(ms)} s (${limit.factor}× the upper bound of its predicted duration, at least ${limit.min_ms / 1000} s): stopping it to run again`;
      this.record(t, 'time_limit');
      if (!this.stopOn(t.allocation.node_id, t.id)) this.requeue(t, t.reason);
    }
  }

  /** A task that ended: recorded, and remembered a while for late reports. */
  private end(t: EncodingTask): void {
    this.ended.set(t.id, t);
    // Ended after its deadline, before a tick saw it pass: its last event says so.
    const late = t.deadline_missed_at === undefined && !!t.schema.deadline && this.now > Date.parse(t.schema.deadline);
    if (late) t.deadline_missed_at = this.now;
    this.record(t, late ? 'deadline_missed' : undefined);
  }

  /** Asks for a task's record and event (its state now), keeping the queue index in step. */
  private record(t: EncodingTask, notice?: TaskEvent['notice']): void {
    this.index(t);
    t.updated_at = this.now;
    t.term = this.term;
    const first = this.unrecorded.delete(t);
    this.effects.push({ kind: 'Record', task: t, first });
    this.alert(`${t.id} ${t.state}${t.allocation ? ` on ${t.allocation.node_id}` : ''}${t.reason ? `: ${t.reason}` : ''}`, t.state === 'failed' ? 'error' : t.state === 'rejected' ? 'warn' : 'info');
    // Built field by field (the optional ones only when set), not with spreads: a spread with
    // fields after it takes V8's slow path, about a microsecond, and every job has a few events.
    const event = { job_id: t.id } as TaskEvent;
    if (t.owner !== undefined) event.owner = t.owner;
    event.state = t.state; event.at = t.updated_at; event.term = this.term; event.node_id = t.allocation?.node_id;
    event.reason = t.reason; event.predicted = t.predicted; event.allocation = t.allocation; event.result = t.result;
    if (notice) event.notice = notice;
    if (t.deadline_missed_at !== undefined) event.deadline_missed_at = t.deadline_missed_at;
    this.effects.push({ kind: 'Publish', event });
  }

  /** Another submission of this id was recorded first: this one is dropped, and what it holds released. */
  private dropDuplicate(taskId: string): void {
    const t = this.active.get(taskId);
    if (!t) return;
    this.alert(`${t.id}: a job of this id is already recorded; this submission of it is dropped`, 'warn');
    this.unrecorded.delete(t);
    if (this.active.get(t.id) === t) this.active.delete(t.id);
    this.index(t);
    if (t.allocation) { this.ledger.release(t.id); this.passDue = true; }
    t.allocation = undefined;
  }

  /** Keeps `waiting` in step with a task's state. */
  private index(t: EncodingTask): void {
    if (t.state === 'queued' && this.active.get(t.id) === t) this.waiting.add(t);
    else this.waiting.delete(t);
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
    const since = this.now - ARRIVALS_KEPT_MS;
    if (this.arrivals.length <= ARRIVALS_KEPT_MAX + ARRIVALS_TRIM && !(this.arrivals[0]?.submitted_at < since)) return;
    let drop = Math.max(0, this.arrivals.length - ARRIVALS_KEPT_MAX);
    while (drop < this.arrivals.length && this.arrivals[drop].submitted_at < since) drop++;
    if (drop) this.arrivals.splice(0, drop);
  }

  /** A line for the operator's log (info unless `level` says otherwise). */
  private alert(message: string, level: LineLevel = 'info'): void { this.effects.push({ kind: 'Alert', message, level }); }
}

/** The agent's account of its quality method, if it reads as one (it is shown to users), else the default. */
const describedQuality = (m: string | undefined) => (m && m.length <= 300 && /^[\w\s.,:;%()'’-]+$/.test(m) ? m : QUALITY_AFTER_RELEASE);

/**
 * An output's BANDWIDTH where its node measured none: the bitrate mode's cap (1.5× the target,
 * node-agent/ffmpeg/args.ts), else its mean rate over its length.
 */
function bandwidthOf(m: EncodingTask): number {
  const media = m.result?.media;
  if (media?.bandwidth_bps) return media.bandwidth_bps;
  const rc = m.schema.output.rate_control;
  if (rc.mode === 'bitrate') return Math.ceil(rc.bitrate_kbps * 1500);
  const secs = effectiveOutput(m.schema).duration_s;
  return secs ? Math.ceil(((m.result?.output_bytes ?? 0) * 8) / secs) : 0;
}

/** The deepest directory holding every one of `files`. */
function commonDir(files: readonly string[]): string {
  const split = files.map((f) => path.dirname(f).split(path.sep));
  const common: string[] = [];
  for (let i = 0; split.every((s) => i < s.length && s[i] === split[0][i]); i++) common.push(split[0][i]);
  return common.join(path.sep) || path.sep;
}

/**
 * An HLS master playlist (RFC 8216 §4.3.4.2) of `renditions`, highest first, each by its path
 * relative to `dir` (percent-encoded per segment). RESOLUTION, FRAME-RATE, CODECS and
 * AVERAGE-BANDWIDTH where the node measured them.
 */
export function masterPlaylist(renditions: readonly EncodingTask[], dir: string): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-INDEPENDENT-SEGMENTS'];
  for (const m of renditions) {
    const media = m.result!.media;
    const attrs = [`BANDWIDTH=${Math.max(1, bandwidthOf(m))}`];
    if (media?.average_bandwidth_bps) attrs.push(`AVERAGE-BANDWIDTH=${media.average_bandwidth_bps}`);
    if (media?.width && media.height) attrs.push(`RESOLUTION=${media.width}x${media.height}`);
    if (media?.frame_rate) attrs.push(`FRAME-RATE=${media.frame_rate.toFixed(3)}`);
    if (media?.codecs) attrs.push(`CODECS="${media.codecs}"`);
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`, path.relative(dir, m.result!.output_path).split(path.sep).map(encodeURIComponent).join('/'));
  }
  return `${lines.join('\n')}\n`;
}

/** An agent's OutputMedia, every figure checked (it goes into a playlist as it is); undefined when absent or not one. */
function outputMedia(json: string | undefined): OutputMedia | undefined {
  if (!json) return undefined;
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null || o.format !== 'hls') return undefined;
  const int = (v: unknown, hi: number) => (Number.isSafeInteger(v) && (v as number) > 0 && (v as number) <= hi ? (v as number) : undefined);
  const fps = typeof o.frame_rate === 'number' && Number.isFinite(o.frame_rate) && o.frame_rate > 0 && o.frame_rate <= 240 ? o.frame_rate : undefined;
  const codecs = typeof o.codecs === 'string' && /^[A-Za-z0-9.-]{1,64}(,[A-Za-z0-9.-]{1,64}){0,7}$/.test(o.codecs) ? o.codecs : undefined;
  const rendition = typeof o.rendition === 'string' && /^[A-Za-z0-9_-]{1,32}$/.test(o.rendition) ? o.rendition : undefined;
  const width = int(o.width, 8192), height = int(o.height, 8192);
  const out: OutputMedia = {
    format: 'hls', ...(width && height && { width, height }), ...(fps !== undefined && { frame_rate: fps }), ...(codecs && { codecs }),
    ...(int(o.bandwidth_bps, 1e10) && { bandwidth_bps: o.bandwidth_bps as number }), ...(int(o.average_bandwidth_bps, 1e10) && { average_bandwidth_bps: o.average_bandwidth_bps as number }),
    ...(rendition && { rendition }),
  };
  return out;
}

/**
 * Groups are named by their owner (the identity that submitted them, as authenticated): two
 * owners' `ladder-1` are different groups, and no client joins another's group by writing its
 * `submitter` label (which is the client's own word). Records from before owners go by that label.
 */
const groupKey = (t: EncodingTask) => (t.schema.group ? `${t.owner !== undefined ? `o:${t.owner}` : `s:${t.schema.submitter}`}/${t.schema.group.id}` : '');

/** Whether `r` asks for exactly what `m` asked for (then it fares as `m` did, reason included). */
const sameAsk = (r: PlacementRequest, m: PlacementRequest) =>
  r.cores === m.cores && r.gpus === m.gpus && r.memory_gb === m.memory_gb && r.bandwidth_mbps === m.bandwidth_mbps;

/**
 * A refused submission's schema as its record keeps it: as sent when it is small and shallow,
 * else a note of why not (measured without recursion, so no depth can overflow the stack).
 */
function keptSchema(raw: unknown): EncodingTask['schema'] {
  const stack: Array<[unknown, number]> = [[raw, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > MAX_KEPT_SCHEMA_DEPTH) return { not_kept: `nested deeper than ${MAX_KEPT_SCHEMA_DEPTH} levels` } as unknown as EncodingTask['schema'];
    for (const x of Object.values(v)) stack.push([x, depth + 1]);
    if (stack.length > MAX_KEPT_SCHEMA_BYTES) return { not_kept: `over ${MAX_KEPT_SCHEMA_BYTES} values` } as unknown as EncodingTask['schema'];
  }
  const text = JSON.stringify(raw) ?? '';
  if (text.length > MAX_KEPT_SCHEMA_BYTES) return { not_kept: `${text.length} bytes, over ${MAX_KEPT_SCHEMA_BYTES}` } as unknown as EncodingTask['schema'];
  return raw as EncodingTask['schema'];
}
