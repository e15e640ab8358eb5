/**
 * How much a task reserves. Prescient reserves its predicted upper bound; the other two are the
 * guesswork it replaces, kept so that benchmarks can compare them on the same cluster in one run:
 * fixed worker slots per node (Tdarr: N workers, each a 1/N share of the node) and a fixed
 * one core per job with nothing else reserved (Ray's default `num_cpus=1`).
 */
import { ConfigError, GPU_ENCODERS, isActor, type EncodingTask } from '../../shared/index.js';
import type { LedgerSnapshot } from '../ledger/index.js';
import type { PlacementRequest } from '../placement/index.js';

export type ReservationPolicy = { kind: 'predictive' } | { kind: 'fixed-slots'; slots: number } | { kind: 'one-core' };

/** Parses `predictive`, `fixed-slots:N` or `one-core`. */
export function parseReservationPolicy(text: string): ReservationPolicy {
  if (text === 'predictive' || text === 'one-core') return { kind: text };
  const m = /^fixed-slots:(\d{1,3})$/.exec(text);
  if (m && Number(m[1]) >= 1) return { kind: 'fixed-slots', slots: Number(m[1]) };
  throw new ConfigError('--reservation', `must be predictive, one-core or fixed-slots:N (N ≥ 1), got ${JSON.stringify(text)}`);
}

/**
 * What the leader knows, in one placement pass, to size a CPU batch encode for throughput
 * (`throughputCores`). Without it (burst simulation, `fleet` reports) a job reserves the cores
 * its prediction expects it to keep busy.
 */
export interface SizingContext {
  /** The job's predicted time at 1 … curve.length cores, each point asked for only when a rule needs it. */
  curve: SpeedUpCurve;
  /** CPU batch jobs queued behind this one in the same pass. */
  waiting: number;
  /** Cores free on the usable nodes now, and the most free on any one of them. */
  idle_cores: number;
  most_idle_on_a_node: number;
  /**
   * The job's full prediction at c cores on the hardware class being sized for: when given,
   * bandwidth is reserved at its upper bound for the cores chosen (the prediction the agent is
   * then given), and memory at that bound where it is above the admission prediction's.
   */
  at?: (cores: number) => { upper: { memory_gb: number; bandwidth_mbps: number } };
  /** Epoch ms now, and when the job was submitted; its deadline (epoch ms), if it has one. */
  now: number;
  submitted_at: number;
  deadline_at?: number;
}

/**
 * Predicted time (s) at some number of cores: expected, and the calibrated upper bound; and, where
 * known, the CPU cores the encode is expected to keep busy there.
 */
export interface CurvePoint { expected: number; upper: number; cpu_cores?: number }

/**
 * A job's speed-up curve: `at(c)` is its predicted time on c cores (1 ≤ c ≤ length). Points are
 * computed when first asked for: the rules below usually stop at 2 cores, and a prediction per
 * core count up to a 128-core node's was a sixth of a busy leader's CPU (submit-latency bench).
 */
export interface SpeedUpCurve {
  readonly length: number;
  at(c: number): CurvePoint;
}

/** A curve whose points are `predict(c)`, each computed once, when first asked for. */
export function lazyCurve(length: number, predict: (cores: number) => CurvePoint): SpeedUpCurve {
  const known: CurvePoint[] = [];
  return { length, at: (c) => (known[c - 1] ??= predict(c)) };
}

/** A curve of known points: points[c - 1] is at c cores. */
export const curveOf = (points: readonly CurvePoint[]): SpeedUpCurve => ({ length: points.length, at: (c) => points[c - 1] });

/** The size chosen, and why (the placed event's reason); `retry_at`: not now, decide again then. */
export interface Sized {
  cores: number;
  why: string;
  retry_at?: number;
}

/**
 * Efficiency threshold (Sevcik's rule for malleable jobs, as in the efficiency-threshold
 * schedulers): while other jobs wait, a job gets another core only if it would still use its
 * cores at this efficiency, E(c) = T(1) / (c·T(c)). Encoders scale sub-linearly, so on a busy
 * node this gives one core per job unless the model says a job really scales.
 */
export const EFFICIENCY_THRESHOLD = 0.8;
/** With nobody waiting, an idle core is taken only if it shortens the job by at least this much. */
export const MIN_GAIN = 0.05;
/**
 * A job that arrives alone waits this long before taking idle cores beyond its efficient
 * count: the rest of a burst submitted together arrives within it, and then the cores are
 * shared out instead of going to the first job (the packing bench's first job took both cores).
 * Only where idle cores are few (under twice what it would take): on a fleet with plenty idle,
 * the rest of a burst finds cores anyway, and waiting would only delay the job (the
 * submit-latency bench's p99 at 1,000/s was this wait).
 */
export const IDLE_GRACE_MS = 300;

/**
 * E(c) from the predicted times, and never above the share of its c cores the job is expected to
 * keep busy: time and CPU are predicted apart, and a job that keeps 1.2 of 2 cores busy cannot
 * run at 0.9 of them, whatever its predicted time says.
 */
const efficiency = (curve: SpeedUpCurve, c: number) => {
  const p = curve.at(c), byTime = curve.at(1).expected / (c * p.expected);
  return p.cpu_cores !== undefined && Number.isFinite(p.cpu_cores) ? Math.min(byTime, p.cpu_cores / c) : byTime;
};

/**
 * The cores a CPU batch encode reserves so that the queue as a whole finishes soonest
 * (malleable-job scheduling with an efficiency threshold; coordinator/sizing/README.md says why
 * this rule and not another):
 * - a deadline: the fewest cores whose predicted upper bound meets it (all it may have if none does);
 * - others waiting: the most cores still used at EFFICIENCY_THRESHOLD, and no more than an equal
 *   share of the idle cores;
 * - nobody waiting: idle cores are taken while each shortens the job by MIN_GAIN, after IDLE_GRACE_MS
 *   where they are few.
 * Never more than one node has free now: a job starts on what is free rather than wait for more.
 */
export function throughputCores(x: SizingContext): Sized {
  const most = Math.max(1, Math.min(x.curve.length, x.most_idle_on_a_node));
  const t = (c: number) => x.curve.at(c).expected.toFixed(1);
  if (x.deadline_at !== undefined) {
    const left = (x.deadline_at - x.now) / 1000;
    for (let c = 1; c <= most; c++) if (x.curve.at(c).upper <= left) return { cores: c, why: `${c} core(s): the fewest whose upper bound (${x.curve.at(c).upper.toFixed(1)} s) meets the deadline in ${left.toFixed(1)} s` };
    return { cores: most, why: `${most} core(s), all that one node has free: its deadline in ${left.toFixed(1)} s is not met even so (${x.curve.at(most).upper.toFixed(1)} s)` };
  }
  let efficient = 1;
  while (efficient < most && efficiency(x.curve, efficient + 1) >= EFFICIENCY_THRESHOLD) efficient++;
  if (x.waiting > 0) {
    const share = Math.max(1, Math.floor(x.idle_cores / (x.waiting + 1)));
    const c = Math.min(efficient, share);
    return { cores: c, why: `${c} core(s) for throughput: ${x.waiting} job(s) waiting; ${c > 1 ? `efficiency ${efficiency(x.curve, c).toFixed(2)} ≥ ${EFFICIENCY_THRESHOLD}` : `a 2nd core would run at efficiency ${x.curve.length > 1 ? efficiency(x.curve, 2).toFixed(2) : '-'}`}${share < efficient ? `, an equal share of ${x.idle_cores} idle` : ''} (predicted ${t(c)} s)` };
  }
  let c = efficient;
  while (c < most && x.curve.at(c + 1).expected <= (1 - MIN_GAIN) * x.curve.at(c).expected) c++;
  // The grace matters only where the cores are few: taking them would leave fewer idle than it takes.
  if (c > efficient && x.idle_cores < 2 * c && x.now < x.submitted_at + IDLE_GRACE_MS) {
    return { cores: efficient, retry_at: x.submitted_at + IDLE_GRACE_MS, why: `waiting ${IDLE_GRACE_MS} ms for more jobs before taking idle cores` };
  }
  return { cores: c, why: `${c} core(s): nothing else waiting, ${c > 1 ? `so idle cores are used while each saves ≥ ${MIN_GAIN * 100} % (predicted ${t(c)} s vs ${t(1)} s on one)` : `and a 2nd core would save under ${MIN_GAIN * 100} %`}` };
}

/** Whether `t` is sized by throughputCores: a batch encode on CPU cores (not a live channel, not a GPU encoder). */
export function isCpuBatch(t: EncodingTask): boolean {
  return !isActor(t.schema) && !GPU_ENCODERS.has(t.schema.output.encoder);
}

/** What `t` asks the ledger for under `policy`, given the fleet in `snap` (and, from the leader, the pass's view of the queue). */
export function sizeRequest(t: EncodingTask, snap: LedgerSnapshot, policy: ReservationPolicy = { kind: 'predictive' }, ctx?: SizingContext): PlacementRequest {
  return sizeWithReason(t, snap, policy, ctx).req;
}

/** sizeRequest, with why the cores were chosen and, for a job deferred by IDLE_GRACE_MS, when to decide again. */
export function sizeWithReason(t: EncodingTask, snap: LedgerSnapshot, policy: ReservationPolicy = { kind: 'predictive' }, ctx?: SizingContext): { req: PlacementRequest; why?: string; retry_at?: number } {
  const req = baseRequest(t, snap, policy);
  if (policy.kind !== 'predictive' || !ctx || !isCpuBatch(t)) return { req };
  // No curve is needed when no node has two cores free: one core, now or when one frees up.
  if (!ctx.curve.length) return { req: atCores(t, req, 1, ctx), why: `1 core: no node has more free${ctx.waiting ? ` (${ctx.waiting} job(s) waiting)` : ''}` };
  const sized = throughputCores(ctx);
  return { req: atCores(t, req, sized.cores, ctx), why: sized.why, retry_at: sized.retry_at };
}

/**
 * `req` with `cores`, and memory and bandwidth at the upper bound predicted for that many cores
 * (where the context has the prediction). Memory is not elastic (going over it stops the encode),
 * so it never drops below the admission bound `req` was made from: the packing bench's wide batch
 * had one encode over its bound when one-core jobs were reserved at the one-core bound alone.
 */
function atCores(t: EncodingTask, req: PlacementRequest, cores: number, ctx: SizingContext): PlacementRequest {
  // Fields written out, not spread: a spread with fields after it takes V8's slow path (a microsecond, per job sized).
  if (!ctx.at) return { task_id: req.task_id, cores, gpus: req.gpus, memory_gb: req.memory_gb, bandwidth_mbps: req.bandwidth_mbps };
  const r = reservedFor(ctx.at(cores).upper, t);
  return { task_id: req.task_id, cores, gpus: req.gpus, memory_gb: Math.max(req.memory_gb, r.memory_gb), bandwidth_mbps: r.bandwidth_mbps };
}

/**
 * Memory and bandwidth reserved for an upper bound: memory at least a raised floor (a task its
 * limit stopped), both rounded up to 0.01 GB and 0.1 Mbit/s (floating-point noise below that,
 * as in 0.1 + 0.05, does not round up).
 */
const reservedFor = (up: { memory_gb: number; bandwidth_mbps: number }, t: EncodingTask) => ({
  memory_gb: Math.ceil(Math.max(up.memory_gb, t.memory_floor_gb ?? 0) * 100 - 1e-9) / 100,
  bandwidth_mbps: Math.ceil(up.bandwidth_mbps * 10 - 1e-9) / 10,
});

function baseRequest(t: EncodingTask, snap: LedgerSnapshot, policy: ReservationPolicy): PlacementRequest {
  const gpu = GPU_ENCODERS.has(t.schema.output.encoder);
  if (policy.kind === 'one-core') return { task_id: t.id, cores: 1, gpus: gpu ? 1 : 0, memory_gb: 0, bandwidth_mbps: 0 };
  if (policy.kind === 'fixed-slots') {
    // A slot is 1/N of the smallest node, so every node can hold N of them.
    const small = smallestNode(snap);
    return {
      task_id: t.id,
      cores: Math.max(1, Math.floor(small.cores / policy.slots)),
      gpus: gpu ? 1 : 0,
      memory_gb: Math.floor((100 * small.memory_gb) / policy.slots) / 100,
      bandwidth_mbps: Math.floor((10 * small.bandwidth_mbps) / policy.slots) / 10,
    };
  }
  const up = t.predicted!.upper, expected = t.predicted!.expected;
  // CPU is elastic and pinned: fewer cores make an encode slower, never fail it, and cores
  // reserved beyond what it keeps busy stand idle. So it reserves the whole cores it is
  // expected to keep busy (never more than the biggest node has), and the calibrated bound is
  // kept for memory and bandwidth, which are not elastic. (The packing bench measured the
  // upper bound rounded up: 2 cores for jobs averaging 1.08, one job at a time on 2 cores.)
  // A live channel is the exception: with fewer cores it falls behind real time, so it gets
  // the whole cores its bound needs (5% of a core's slack rounds down).
  const biggest = Math.max(1, snap.max_cores);
  // A task its memory limit stopped reserves at least its raised floor (the core's report handling).
  const r = reservedFor(up, t);
  return {
    task_id: t.id,
    cores: gpu ? 1 : Math.min(biggest, Math.max(1, isActor(t.schema) ? Math.ceil(up.cpu_cores - 0.05) : Math.round(expected.cpu_cores))),
    gpus: gpu ? 1 : 0,
    memory_gb: r.memory_gb, bandwidth_mbps: r.bandwidth_mbps,
  };
}

type Smallest = { cores: number; memory_gb: number; bandwidth_mbps: number };
const smallestOf = new WeakMap<LedgerSnapshot, Smallest>();

/**
 * The fewest cores, memory and bandwidth of any node in `snap` (0 without nodes), worked out once
 * per snapshot: a pass sizes every queued job against the same one, and a fixed-slot queue of
 * thousands behind a full fleet read every node's capacity for each of them (most of a saturated
 * fleet bench's time).
 */
function smallestNode(snap: LedgerSnapshot): Smallest {
  let s = smallestOf.get(snap);
  if (s) return s;
  s = { cores: Infinity, memory_gb: Infinity, bandwidth_mbps: Infinity };
  for (let i = 0; i < snap.slots; i++) {
    const c = snap.at(i)?.capacity;
    if (!c) continue;
    s.cores = Math.min(s.cores, c.core_ids.length);
    s.memory_gb = Math.min(s.memory_gb, c.memory_gb);
    s.bandwidth_mbps = Math.min(s.bandwidth_mbps, c.bandwidth_mbps);
  }
  if (s.cores === Infinity) s = { cores: 0, memory_gb: 0, bandwidth_mbps: 0 };
  smallestOf.set(snap, s);
  return s;
}
