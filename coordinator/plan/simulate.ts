/**
 * A discrete-event simulation of a workload on a fleet that drives the leader's real core
 * (coordinator/core LeaderCore): its queue order and deadlines, its sizing (the reservation
 * policy), placement (filters, scorer, groups), ledger, memory-limit re-queues and time limits.
 * Nothing of those is written again here. The simulation only plays the agents: an encode the
 * core assigns runs for its actual duration and ends with a report, or is killed by its memory
 * limit when its actual peak passes what was reserved, as a real agent's would be.
 *
 * A job's actual use is not its prediction: it is the prediction for the cores it was given,
 * times a residual drawn per job (seeded) from the model's own spread. The model's upper bound
 * at coverage c is read as a log-normal quantile, so ln(upper / expected) / z(c) is the spread
 * it claims, and `errorScale` widens or narrows it (a sweep shows what accuracy a target needs).
 * The `oracle` policy reserves each job's actual use: its predictor returns the actuals as both
 * the expected figures and the bound.
 */
import { SLA_CLASSES, validateEncodingSchema, type EncodingSchema, type EncodingTask, type ValidationContext, type Prediction, type ResourceUsage, type TaskStatusReport } from '../../shared/index.js';
import { hardwareClass, seededRandom, type PredictContext, type ResourcePredictor } from '../../models/index.js';
import { LeaderCore, type Effect, type LeaderEvent, type Submission } from '../core/index.js';
import { parseReservationPolicy } from '../sizing/index.js';
import { POLICIES } from '../placement/index.js';
import { ratePerMs, spanMs, type FleetSpec, type WorkloadSpec } from './inputs.js';

/** Simulated time starts here (a fixed instant, so reports do not depend on when they ran). */
export const SIM_EPOCH = Date.UTC(2030, 0, 1);
/** Agents never go silent in the simulation: the lease never runs out. */
const NO_LEASE_MS = 1e15;
/**
 * The core's time limits and housekeeping run on its once-a-second tick; every 30 s is enough
 * here (a hung encode is stopped up to 30 s late), and a tick looks at every job the core holds.
 */
const TICK_MS = 30_000;
/**
 * Events this close together go to the core as one batch, as a real leader takes what arrived
 * in one turn of its event loop: one placement pass for them all. Decisions come up to this
 * much later than their event; at fleet scale that is what keeps a pass per event from costing
 * O(nodes) each.
 */
const BATCH_MS = 100;
/** A memory-limit kill comes partway through an encode: its memory grows as it runs. */
const KILL_AT = 0.5;
const TARGETS = ['cpu_cores', 'memory_gb', 'bandwidth_mbps', 'duration_s'] as const;

export type PlanPolicy = 'predictive' | 'one-core' | 'oracle' | `fixed-slots:${number}`;

export interface SimOptions {
  policy: PlanPolicy;
  seed: number;
  /** Multiplies the model's spread of actual around expected (1: as the model claims). */
  errorScale?: number;
  /** Attempts before a job that keeps being killed fails (as the leader's maxAttempts). */
  maxAttempts?: number;
  /** A sample of the fleet's reserved and used cores every this many ms (for charts); 0: none. */
  sampleMs?: number;
  /** Events within this many ms go to the core together (default BATCH_MS). */
  batchMs?: number;
}

/** One job as the simulation saw it. */
export interface SimJob {
  id: string;
  template: number;
  priority: string;
  arrival_ms: number;
  deadline_ms?: number;
  placed_ms?: number;
  ended_ms?: number;
  state: 'queued' | 'running' | 'succeeded' | 'failed' | 'rejected';
  /** Why it was rejected or failed, as the core said. */
  reason?: string;
  attempts: number;
  memory_kills: number;
}

export interface SimTotals {
  /** Core-milliseconds reserved (held by an attempt) and used (its actual CPU). */
  core_ms_reserved: number;
  core_ms_used: number;
  gb_ms_reserved: number;
  gb_ms_used: number;
  memory_kills: number;
  time_limit_stops: number;
  requeues: number;
  /** Jobs whose actual peak memory passed their reservation (killed, at least once). */
  jobs_over_memory: number;
}

export interface SimResult {
  policy: PlanPolicy;
  jobs: SimJob[];
  totals: SimTotals;
  /** Simulated ms from the first arrival to the last job's end. */
  makespan_ms: number;
  /** Samples every SimOptions.sampleMs: [ms since start, cores reserved, cores used, then jobs waiting for their first placement per class of SLA_CLASSES]. */
  samples: number[][];
  /** The workload's template names, by SimJob.template. */
  templates: string[];
}

/** Standard normal draws (Box–Muller) from a uniform source. */
function normals(rand: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) { const s = spare; spare = undefined; return s; }
    const u = Math.max(rand(), 1e-12), w = rand();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * w);
    return r * Math.cos(2 * Math.PI * w);
  };
}

/** The standard normal quantile (Acklam's rational approximation; |error| < 1.2e-9). */
export function normalQuantile(p: number): number {
  const a = [-39.6968302866538, 220.946098424521, -275.928510446969, 138.357751867269, -30.6647980661472, 2.50662827745924];
  const b = [-54.4760987982241, 161.585836858041, -155.698979859887, 66.8013118877197, -13.2806815528857];
  const c = [-0.00778489400243029, -0.322396458041136, -2.40075827716184, -2.54973253934373, 4.37466414146497, 2.93816398269878];
  const d = [0.00778469570904146, 0.32246712907004, 2.445134137143, 3.75440866190742];
  const q = Math.min(Math.max(p, 1e-12), 1 - 1e-12);
  if (q < 0.02425) { const r = Math.sqrt(-2 * Math.log(q)); return (((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) / ((((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1); }
  if (q > 1 - 0.02425) return -normalQuantile(1 - q);
  const r = q - 0.5, s = r * r;
  return (((((a[0] * s + a[1]) * s + a[2]) * s + a[3]) * s + a[4]) * s + a[5]) * r / (((((b[0] * s + b[1]) * s + b[2]) * s + b[3]) * s + b[4]) * s + 1);
}

/** A binary heap of timed events, earliest first, ties in the order pushed (deterministic). */
class Timeline<T> {
  private readonly at: number[] = [];
  private readonly seq: number[] = [];
  private readonly items: T[] = [];
  private n = 0;
  private next = 0;
  get size(): number { return this.n; }
  peek(): number { return this.n ? this.at[0] : Infinity; }
  private less(i: number, j: number): boolean { return this.at[i] < this.at[j] || (this.at[i] === this.at[j] && this.seq[i] < this.seq[j]); }
  private swap(i: number, j: number): void {
    [this.at[i], this.at[j]] = [this.at[j], this.at[i]];
    [this.seq[i], this.seq[j]] = [this.seq[j], this.seq[i]];
    [this.items[i], this.items[j]] = [this.items[j], this.items[i]];
  }
  push(at: number, item: T): void {
    let i = this.n++;
    this.at[i] = at; this.seq[i] = this.next++; this.items[i] = item;
    while (i > 0) { const p = (i - 1) >> 1; if (!this.less(i, p)) break; this.swap(i, p); i = p; }
  }
  pop(): T {
    const top = this.items[0];
    this.n--;
    if (this.n > 0) {
      this.at[0] = this.at[this.n]; this.seq[0] = this.seq[this.n]; this.items[0] = this.items[this.n];
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < this.n && this.less(l, m)) m = l;
        if (r < this.n && this.less(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m); i = m;
      }
    }
    this.items.length = this.at.length = this.seq.length = this.n;
    return top;
  }
}

/**
 * Each job's arrival (ms from the start) and template (an index into `templates(w)`), in arrival
 * order; deterministic for a seed. A ladder's arrival is one job per rung, its rungs in order
 * one after another.
 */
export function arrivals(w: WorkloadSpec, rand: () => number): { at: Float64Array; template: Uint32Array } {
  if (w.trace) return { at: Float64Array.from(w.trace, (e) => Math.round(e.at_ms)), template: Uint32Array.from(w.trace, (e) => e.template) };
  const rungs = rungsOf(w);
  // [time, the arrival's number, template]: rungs of one arrival share a number, so they stay together.
  const out: [number, number, number][] = [];
  let n = 0;
  const arrive = (at: number, k: number) => { for (const r of rungs[k]) out.push([at, n, r]); n++; };
  w.jobs.forEach((t, k) => {
    if (t.count !== undefined) { for (let i = 0; i < t.count; i++) arrive(0, k); return; }
    const base = ratePerMs(t.rate!);
    const peak = t.daily ? Math.max(...t.daily) : 1;
    if (!(base * peak > 0)) return;
    // A Poisson process at the peak rate, thinned by the hour's share of it (a daily curve).
    for (let at = -Math.log(1 - rand()) / (base * peak); at < w.duration_ms; at += -Math.log(1 - rand()) / (base * peak)) {
      const hour = Math.floor(((SIM_EPOCH + at) % 86_400_000) / 3_600_000);
      if (!t.daily || rand() * peak < t.daily[hour]) arrive(at, k);
    }
  });
  out.sort((x, y) => x[0] - y[0] || x[1] - y[1] || x[2] - y[2]);
  return { at: Float64Array.from(out, (x) => Math.round(x[0])), template: Uint32Array.from(out, (x) => x[2]) };
}

/** Per workload template, its templates in `templates(w)`: one, or one per rung of its ladder. */
function rungsOf(w: WorkloadSpec): number[][] {
  let next = 0;
  return w.jobs.map((t) => Array.from({ length: t.ladder?.length ?? 1 }, () => next++));
}

/** A ladder rung's place: its group's size and placement, and its rung (0 first). */
interface Rung { size: number; placement: 'together' | 'spread'; rung: number }

/**
 * Each template's schema (a synthetic input when it names none: nothing is read), its class,
 * deadline and, for a ladder's rung, its place in the group: a ladder is one template per rung,
 * its output the job's with the rung's settings over it. An input in the validated form (`kind`
 * given, as recorded encodes store it) is whole.
 */
function templates(w: WorkloadSpec): { schema: Record<string, unknown>; deadline_ms?: number; rung?: Rung }[] {
  return w.jobs.flatMap((t) => {
    const input = { ...(t.job.input as Record<string, unknown>) };
    if (input.kind === undefined && input.path === undefined && input.synthetic === undefined && input.url === undefined) input.synthetic = { source: 'testsrc2' };
    const one = (output: Record<string, unknown>, rung?: Rung) => ({
      schema: { ...t.job, input, output, priority: t.priority ?? 'standard', submitter: 'plan' } as Record<string, unknown>,
      deadline_ms: t.deadline ? spanMs(t.deadline) : undefined,
      ...(rung && { rung }),
    });
    if (!t.ladder) return [one(t.job.output)];
    const size = t.ladder.length, placement = t.placement ?? 'spread';
    return t.ladder.map((over, rung) => one({ ...t.job.output, ...over }, { size, placement, rung }));
  });
}

/**
 * A job's actual use from a prediction and its scores (its place in the model's spread per target:
 * standard normal scores, drawn once per job, TARGETS' order from `z[at]` on): per target,
 * expected × exp(score × s), where s = ln(upper / expected) / z(coverage) is the spread the bound
 * claims (scaled by `scale`).
 */
function actualFrom(p: Prediction, z: Float64Array, at: number, scale: number): ResourceUsage {
  const zc = normalQuantile(p.coverage ?? 0.95);
  const one = (i: number) => {
    const t = TARGETS[i], e = p.expected[t], u = p.upper[t];
    return e > 0 && u > e ? e * Math.exp((scale * z[at + i] * Math.log(u / e)) / zc) : e;
  };
  return { cpu_cores: one(0), gpu_percent: p.expected.gpu_percent, memory_gb: one(1), bandwidth_mbps: one(2), duration_s: one(3) };
}

/** `p` with other expected figures (copied, then set: a spread with fields after it takes V8's slow path). */
function withExpected(p: Prediction, expected: ResourceUsage): Prediction {
  const q = { ...p };
  q.expected = expected;
  return q;
}

/** A job's actual use given the prediction for the cores it got (undefined: not a simulated job). */
type ActualOf = (jobId: string, p: Prediction, ctx: PredictContext) => ResourceUsage | undefined;

/** Reserves each job's actual use: its predictions are the actuals, expected and bound alike. The job is told by its submitter tag. */
class OraclePredictor implements ResourcePredictor {
  constructor(private readonly base: ResourcePredictor, private readonly actualOf: ActualOf) {}
  get version(): string { return `oracle(${this.base.version})`; }
  predict(schema: EncodingSchema, ctx?: PredictContext): Prediction {
    const p = this.base.predict(schema, ctx);
    const actual = this.actualOf(schema.submitter, p, ctx ?? {});
    if (!actual) return p;
    return { ...p, model_version: this.version, expected: actual, upper: { ...actual }, coverage: 1 };
  }
  predictEach(schema: EncodingSchema, ctxs: readonly PredictContext[]): Prediction[] { return ctxs.map((c) => this.predict(schema, c)); }
}

/**
 * The model's predictions per template and context, made once: a template's jobs differ only
 * in their id and deadline, which the model does not read (the submitter tag tells the template).
 */
class TemplatePredictor implements ResourcePredictor {
  /** By template, then hardware class (none: ''), then cores (none: 0); no key string made per call. */
  private readonly cache: Map<string, Prediction[]>[] = [];
  constructor(private readonly base: ResourcePredictor, private readonly templateOf: (submitter: string) => number | undefined) {}
  get version(): string { return this.base.version; }
  predict(schema: EncodingSchema, ctx?: PredictContext): Prediction {
    const k = this.templateOf(schema.submitter);
    const cores = ctx?.cores;
    // Whole core counts only (any other is predicted each time).
    if (k === undefined || (cores !== undefined && !(Number.isInteger(cores) && cores >= 1))) return this.base.predict(schema, ctx);
    const byClass = (this.cache[k] ??= new Map());
    const cls = ctx?.hw_class ?? '';
    let row = byClass.get(cls);
    if (!row) byClass.set(cls, (row = []));
    return (row[cores ?? 0] ??= this.base.predict(schema, ctx));
  }
  predictEach(schema: EncodingSchema, ctxs: readonly PredictContext[]): Prediction[] { return ctxs.map((c) => this.predict(schema, c)); }
}

/**
 * Submissions checked as the core checks them (validateEncodingSchema), a template's once: its
 * jobs differ only in their submitter tag (the job's id, which tells the template), deadline and
 * (a ladder's rung) group id, all well formed by construction, so each job's schema is its
 * template's first checked schema with those set as the check sets them (the deadline as an ISO instant; the keys keep
 * their order). A refused template is checked again for each job, as before.
 */
export class TemplateValidator {
  private readonly checked = new Map<number, EncodingSchema>();
  constructor(
    private readonly templateOf: (submitter: string) => number | undefined,
    private readonly check: (raw: unknown, ctx: ValidationContext) => EncodingSchema = validateEncodingSchema,
  ) {}
  readonly validate = (raw: unknown, ctx: ValidationContext): EncodingSchema => {
    const doc = raw as { submitter?: unknown; deadline?: unknown; group?: { id?: unknown } } | undefined;
    const k = typeof doc?.submitter === 'string' ? this.templateOf(doc.submitter) : undefined;
    const known = k === undefined ? undefined : this.checked.get(k);
    if (!known || (known.deadline === undefined) !== (doc!.deadline === undefined) || (known.group === undefined) !== (doc!.group === undefined)) {
      const schema = this.check(raw, ctx);
      if (k !== undefined && !known) this.checked.set(k, schema);
      return schema;
    }
    // A copy with the two set (both keys are there already, so they keep their place).
    const schema = { ...known };
    schema.submitter = doc!.submitter as string;
    if (known.deadline !== undefined) schema.deadline = new Date(doc!.deadline as string).toISOString();
    // A ladder's rung: the same group settings, this arrival's group id (made by the simulator, always valid).
    if (known.group !== undefined) schema.group = { ...known.group, id: String(doc!.group!.id) };
    return schema;
  };
}

type SimEvent =
  | { kind: 'end'; task: string; gen: number; report: TaskStatusReport; reserved_cores: number; used_cores: number; reserved_gb: number; used_gb: number; started: number }
  | { kind: 'wake' }
  | { kind: 'tick' };

/** Runs the workload on the fleet under one policy; deterministic for (inputs, options). */
export function simulate(w: WorkloadSpec, fleet: FleetSpec, model: ResourcePredictor, o: SimOptions): SimResult {
  const rand = seededRandom(o.seed);
  const arr = arrivals(w, rand);
  const tpl = templates(w);
  const draw = normals(seededRandom(o.seed ^ 0x5bd1e995));
  const scale = o.errorScale ?? 1;
  const oracle = o.policy === 'oracle';
  /** Each arrived job's number (its index in `jobs` and the arrivals) by id; its scores, TARGETS.length a job, from the job's number times that. */
  const numberOf = new Map<string, number>();
  const scores = new Float64Array(arr.at.length * TARGETS.length);
  const templateOf = (id: string) => { const n = numberOf.get(id); return n === undefined ? undefined : arr.template[n]; };
  const cached = new TemplatePredictor(model, templateOf);
  const trace = w.trace;
  /**
   * Actual use: from the model's spread and the job's scores, or (replaying a trace) what the
   * run used, its duration scaled by the model's speed-up from the cores it had to these. A
   * figure the log lacks is drawn from the model's spread, as a template job's is.
   */
  const actualOf: ActualOf = (id, p, ctx) => {
    if (!trace) { const n = numberOf.get(id); return n === undefined ? undefined : actualFrom(p, scores, n * TARGETS.length, scale); }
    const e = id.startsWith('p') ? trace[Number(id.slice(1))] : undefined;
    if (!e) return undefined;
    // What the model predicts for the cores and hardware it ran on (what a run did not record: the cores and hardware it gets now).
    const had = cached.predict({ ...tpl[e.template].schema, submitter: id } as unknown as EncodingSchema, { cores: e.cores ?? ctx.cores, hw_class: e.cpu_model ? hardwareClass(e.cpu_model) : ctx.hw_class }).expected.duration_s;
    const speed = had > 0 && p.expected.duration_s > 0 ? p.expected.duration_s / had : 1;
    const a = e.actual, n = numberOf.get(id);
    const drawn = n !== undefined && (a.cpu_cores === undefined || a.gpu_percent === undefined || a.memory_gb === undefined || a.bandwidth_mbps === undefined)
      ? actualFrom(p, scores, n * TARGETS.length, scale) : undefined;
    return {
      cpu_cores: a.cpu_cores ?? drawn?.cpu_cores ?? p.expected.cpu_cores, gpu_percent: a.gpu_percent ?? drawn?.gpu_percent ?? p.expected.gpu_percent,
      memory_gb: a.memory_gb ?? drawn?.memory_gb ?? p.expected.memory_gb, bandwidth_mbps: a.bandwidth_mbps ?? drawn?.bandwidth_mbps ?? p.expected.bandwidth_mbps,
      duration_s: a.duration_s * speed,
    };
  };
  const predictor = oracle ? new OraclePredictor(cached, actualOf) : cached;
  const core = new LeaderCore({
    // No input is read: a template's file may be anywhere (the path is only described to the model).
    predictor, validation: { allowedInputRoots: ['/'], allowedOutputRoots: ['/'] }, validate: new TemplateValidator(templateOf).validate, leaseMs: NO_LEASE_MS, maxAttempts: o.maxAttempts ?? 4,
    reservation: parseReservationPolicy(oracle ? 'predictive' : o.policy), policy: POLICIES['best-fit'],
  });
  const jobs: SimJob[] = [];
  const jobOf = (id: string) => { const n = numberOf.get(id); return n === undefined ? undefined : jobs[n]; };
  const totals: SimTotals = { core_ms_reserved: 0, core_ms_used: 0, gb_ms_reserved: 0, gb_ms_used: 0, memory_kills: 0, time_limit_stops: 0, requeues: 0, jobs_over_memory: 0 };
  const overMemory = new Set<string>();
  const timeline = new Timeline<SimEvent>();
  /** The attempt running per task (a generation, so a cancelled attempt's end is ignored). */
  const running = new Map<string, { gen: number; event: Extract<SimEvent, { kind: 'end' }> }>();
  let gen = 0, wakeAt = Infinity, reservedCores = 0, usedCores = 0, lastEnd = 0, tickPending = false;
  /** Jobs waiting for their first placement, per SLA class (SLA_CLASSES order). */
  const queued = SLA_CLASSES.map(() => 0);
  const classIndex = (j: SimJob) => Math.max(0, (SLA_CLASSES as readonly string[]).indexOf(j.priority));
  const samples: SimResult['samples'] = [];

  const handle = (effects: Effect[], now: number) => {
    let recorded: EncodingTask | undefined;
    for (const e of effects) {
      if (e.kind === 'Record') {
        recorded = e.task;
      } else if (e.kind === 'Publish') {
        const j = jobOf(e.event.job_id);
        if (!j) continue;
        const s = e.event.state;
        if ((s === 'placed' || s === 'running') && j.placed_ms === undefined) { j.placed_ms = now - SIM_EPOCH; queued[classIndex(j)]--; }
        if (s === 'queued') { j.state = 'queued'; if (e.event.reason) j.reason = e.event.reason; }
        if (s === 'succeeded' || s === 'failed' || s === 'cancelled' || s === 'rejected') {
          if (j.ended_ms === undefined) {
            if (j.placed_ms === undefined) queued[classIndex(j)]--;
            j.ended_ms = now - SIM_EPOCH;
            j.state = s === 'succeeded' ? 'succeeded' : s === 'rejected' ? 'rejected' : 'failed';
            if (j.state !== 'succeeded') j.reason = e.event.reason;
            lastEnd = Math.max(lastEnd, j.ended_ms);
          }
        }
      } else if (e.kind === 'Assign') {
        const a = e.assignment, j = jobOf(a.task_id);
        if (!j) continue;
        j.state = 'running';
        j.attempts = a.attempt;
        // The prediction it was recorded with (its upper bounds: the spread its actual is drawn from):
        // the core records a task just before it assigns it (dispatch), so that record is the last one.
        const p = recorded?.id === a.task_id ? recorded.predicted : undefined;
        // The oracle's prediction is the actual already.
        const ctx = { cores: a.allocation.core_ids.length, hw_class: hardwareClass(cpuModelOf.get(a.allocation.node_id) ?? '') };
        const actual = (!oracle && p && actualOf(j.id, withExpected(p, a.predicted), ctx)) || { ...a.predicted };
        const cores = a.allocation.core_ids.length;
        const used = Math.min(cores || actual.cpu_cores, actual.cpu_cores);
        // A policy that reserves no memory (one-core, as Ray) sets no limit: nothing is killed, whatever it uses.
        const overrun = a.allocation.memory_gb > 0 && actual.memory_gb > a.allocation.memory_gb + 1e-9;
        const runMs = Math.max(1, Math.round(actual.duration_s * 1000 * (overrun ? KILL_AT : 1)));
        const report: TaskStatusReport = {
          task_id: a.task_id, node_id: a.allocation.node_id, state: overrun ? 'failed' : 'succeeded',
          reason: overrun ? `exceeded its memory reservation (${actual.memory_gb.toFixed(2)} GB peak, ${a.allocation.memory_gb.toFixed(2)} GB reserved)` : '',
          actual: overrun ? null : actual, output_bytes: 0, output_path: '', psnr_db: NaN, ssim: NaN, pinned: true, frames: 0, term: 1,
        };
        if (overrun) report.failure = 'MEMORY_EXCEEDED';
        const g = ++gen;
        const end = { kind: 'end' as const, task: a.task_id, gen: g, report, reserved_cores: cores, used_cores: used, reserved_gb: a.allocation.memory_gb, used_gb: Math.min(actual.memory_gb, a.allocation.memory_gb), started: now };
        running.set(a.task_id, { gen: g, event: end });
        reservedCores += cores; usedCores += used;
        timeline.push(now + runMs, end);
      } else if (e.kind === 'Cancel') {
        // The agent stops the encode at once and says so (a time limit, a superseded attempt).
        const r = running.get(e.task_id);
        if (!r) continue;
        totals.time_limit_stops++;
        const stopped = { ...r.event, gen: ++gen, report: { ...r.event.report, state: 'failed' as const, actual: null, reason: 'stopped by the leader', failure: 'CANCELLED' as const } };
        running.set(e.task_id, { gen: stopped.gen, event: stopped });
        timeline.push(now, stopped);
      } else if (e.kind === 'Wake') {
        if (e.at < wakeAt) { wakeAt = e.at; timeline.push(Math.max(e.at, now), { kind: 'wake' }); }
      }
    }
  };
  const apply = (events: LeaderEvent[], now: number) => handle(core.apply(events).effects, now);

  const cpuModelOf = new Map<string, string>();
  // The term begins and every node registers.
  apply([{ kind: 'ModelChanged', at: SIM_EPOCH, version: predictor.version }, { kind: 'Started', at: SIM_EPOCH, term: 1, leader_id: 'plan', tasks: [] }], SIM_EPOCH);
  // In one batch: a batch per node made the ledger copy its node index once per node (O(nodes²)).
  const registered: LeaderEvent[] = [];
  for (const t of fleet.nodes) {
    for (let i = 0; i < t.count; i++) {
      cpuModelOf.set(`${t.type}-${i}`, t.cpu_model ?? t.type);
      registered.push({
        kind: 'Registered', at: SIM_EPOCH, running: [], capacity: {
          node_id: `${t.type}-${i}`, address: `${t.type}-${i}:0`, core_ids: Array.from({ length: t.cores }, (_, k) => k), memory_gb: t.memory_gb,
          bandwidth_mbps: t.bandwidth_mbps ?? 10_000, cpu_model: t.cpu_model ?? t.type,
          gpus: (t.gpus ?? []).map((g, k) => ({ id: k, name: g.model, memory_gb: g.memory_gb ?? 16, sessions: g.sessions ?? 0, profile: g.sessions === undefined ? '' : 'known' })),
        },
      });
    }
  }
  apply(registered, SIM_EPOCH);

  let next = 0, nextSample = 0, stuckTicks = 0;
  const sampleEvery = o.sampleMs ?? 0;
  const batchMs = o.batchMs ?? BATCH_MS;
  /** A job arriving now: its scores drawn, its record started, its submission made. */
  const arrive = (now: number) => {
    const k = arr.template[next], id = `p${next}`;
    for (let i = 0; i < TARGETS.length; i++) scores[next * TARGETS.length + i] = draw();
    numberOf.set(id, next);
    const j: SimJob = { id, template: k, priority: tpl[k].schema.priority as string, arrival_ms: arr.at[next], state: 'queued', attempts: 0, memory_kills: 0 };
    if (tpl[k].deadline_ms !== undefined) j.deadline_ms = arr.at[next] + tpl[k].deadline_ms!;
    jobs.push(j); queued[classIndex(j)]++;
    next++;
    // A copy of the template's, then set (a spread with fields after it takes V8's slow path: microseconds a job).
    const schema = { ...tpl[k].schema };
    schema.submitter = id;
    if (j.deadline_ms !== undefined) schema.deadline = new Date(SIM_EPOCH + j.deadline_ms).toISOString();
    // A ladder's rungs arrive one after another: the group is named after its first rung's job.
    const rung = tpl[k].rung;
    if (rung) schema.group = { id: `g${next - 1 - rung.rung}`, size: rung.size, placement: rung.placement };
    const submitted = trace?.[next - 1]?.submitted_ms, stored = submitted !== undefined ? SIM_EPOCH + submitted : now;
    return { envelope: { job_id: id, submitted_at: stored, schema }, owner: 'plan', stored_at: stored };
  };
  /** An encode's end (or a stale one, of an attempt since stopped: undefined). */
  const ended = (ev: Extract<SimEvent, { kind: 'end' }>, now: number): LeaderEvent | undefined => {
    const r = running.get(ev.task);
    if (!r || r.gen !== ev.gen) return undefined;
    running.delete(ev.task);
    const held = now - ev.started;
    totals.core_ms_reserved += ev.reserved_cores * held; totals.core_ms_used += ev.used_cores * held;
    totals.gb_ms_reserved += ev.reserved_gb * held; totals.gb_ms_used += ev.used_gb * held;
    reservedCores -= ev.reserved_cores; usedCores -= ev.used_cores;
    if (ev.report.failure === 'MEMORY_EXCEEDED') {
      totals.memory_kills++;
      const j = jobOf(ev.task)!;
      j.memory_kills++;
      if (!overMemory.has(j.id)) { overMemory.add(j.id); totals.jobs_over_memory++; }
    }
    if (ev.report.state === 'failed') totals.requeues++;
    return { kind: 'StatusReported', at: now, report: ev.report };
  };
  while (next < arr.at.length || timeline.size > 0) {
    const until = Math.min(next < arr.at.length ? SIM_EPOCH + arr.at[next] : Infinity, timeline.peek()) + batchMs;
    let now = 0;
    const batch: LeaderEvent[] = [];
    let submissions: Submission[] = [];
    const flush = () => { if (submissions.length) { batch.push({ kind: 'Submitted', at: submissions[0].stored_at!, submissions }); submissions = []; } };
    // Everything within the window, in time order (arrivals first on a tie); runs of arrivals as one Submitted.
    for (;;) {
      const ta = next < arr.at.length ? SIM_EPOCH + arr.at[next] : Infinity, tt = timeline.peek();
      const t = Math.min(ta, tt);
      if (t >= until) break;
      now = t;
      if (sampleEvery > 0) while (SIM_EPOCH + nextSample <= now) { samples.push([nextSample, reservedCores, usedCores, ...queued]); nextSample += sampleEvery; }
      if (ta <= tt) { submissions.push(arrive(now)); continue; }
      flush();
      const ev = timeline.pop();
      if (ev.kind === 'wake') { if (wakeAt <= now) { wakeAt = Infinity; batch.push({ kind: 'Wake', at: now }); } continue; }
      if (ev.kind === 'tick') { tickPending = false; batch.push({ kind: 'Tick', at: now }); continue; }
      const report = ended(ev, now);
      if (report) batch.push(report);
    }
    flush();
    if (batch.length) apply(batch, now);
    // Nothing runs, nothing more arrives, and the core still holds jobs it cannot place: they never will.
    if (running.size === 0 && next >= arr.at.length && timeline.size === (tickPending ? 1 : 0) && core.active.size > 0 && ++stuckTicks > 3) break;
    // The core's housekeeping tick, while it holds any job.
    if (!tickPending && core.active.size > 0) { tickPending = true; timeline.push(now + TICK_MS, { kind: 'tick' }); }
  }
  // A failure that ended the job is not a re-queue.
  totals.requeues -= jobs.filter((j) => j.state === 'failed').length;
  return { policy: o.policy, jobs, totals, makespan_ms: lastEnd - (arr.at[0] ?? 0), samples, templates: w.jobs.flatMap((t) => (t.ladder ? t.ladder.map((_, r) => `${t.name} rung ${r + 1}`) : [t.name])) };
}
