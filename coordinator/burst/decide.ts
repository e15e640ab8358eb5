/**
 * The burst decision: pure functions over the queue, the fleet and the burst instances already
 * running, as Ray's v2 autoscaler schedules (`request → {to_launch, to_terminate}`). No I/O and
 * no clock: `now` is passed in, so the same inputs always give the same decision, and the
 * decision carries its inputs and its reasons in words (as placement results do).
 *
 *   queue + predictions ─► replay (coordinator/queue estimateStarts) ─► waits per SLA class
 *   + forecast arrivals ─┘  (forecast.ts: each class's recent rate over the next boot time)
 *        │                         │ deadline missed / bound broken?
 *        │                         ▼
 *        │              shortfall (late jobs' demand) ─► cheapest fitting type × count that clears it
 *        │                                               (max instances, hourly budget, cooldown)
 *        └─► burst nodes: unjoined past join_timeout → terminate; idle past idle_period → drain;
 *                         draining and empty → terminate; draining but demand is back → undrain
 */
import { SLA_CLASSES, type EncodingTask, type NodeCapacity, type SlaClass } from '../../shared/index.js';
import type { LedgerSnapshot } from '../ledger/index.js';
import { DEFAULT_QUEUE_POLICY, anyLate, estimateStarts, orderQueue, type Demand, type QueueEntry, type QueuePolicy, type StartEstimate } from '../queue/index.js';
import { sizeRequest, type ReservationPolicy } from '../sizing/index.js';
import type { InstanceState, InstanceType } from './providers/types.js';
import { forecastArrivals, isForecast, type ClassForecast, type ForecastPolicy } from './forecast.js';

/** What the decision engine is held to (the validated part of the burst configuration). */
export interface BurstPolicy {
  /** Instance types it may launch, with their prices. */
  catalogue: readonly InstanceType[];
  /** Burst instances alive at once (pending, running or draining), at most. */
  max_instances: number;
  /** USD per hour all burst instances together may cost, at most. */
  budget_per_hour: number;
  /** Launch spot/preemptible capacity where the type has a spot price. */
  spot: boolean;
  /** No new launch within this long of the last one. */
  cooldown_ms: number;
  /** A burst node with no reservation for this long is drained, then terminated. */
  idle_period_ms: number;
  /** A launched instance whose agent has not registered within this long is terminated. */
  join_timeout_ms: number;
  /** Longest predicted wait (submission to start) each class may have before it bursts. */
  max_wait_ms: Record<SlaClass, number>;
  /** How long a capacity refusal rules out a type (spot: its spot capacity). Default 30 min. */
  refusal_ms?: number;
  /** Replay the jobs each class is expected to submit within the horizon too (off when unset). */
  forecast?: ForecastPolicy;
}

/** One burst instance as the controller tracks it (persisted in the burst KV bucket). */
export interface BurstInstance {
  /** The provider's id, which is also its node id in the ledger. */
  id: string;
  instance_type: string;
  spot: boolean;
  /** As the provider last described it. */
  state: InstanceState;
  /** Epoch ms. */
  launched_at: number;
  /** USD per hour it was launched at. */
  price_per_hour: number;
  /** When its agent was first seen in the ledger. */
  joined_at?: number;
  /** Since when it has held no reservation (unset while it holds one). */
  idle_since?: number;
  /** Since when the leader places nothing new on it. */
  draining_since?: number;
}

/** A capacity refusal the provider gave: rules out this type (spot or on-demand) until `until`. */
export interface Refusal { instance_type: string; spot: boolean; until: number }

export interface BurstInputs {
  now: number;
  /** The leader's active tasks: queued ones wait, placed/running ones hold reservations. */
  tasks: readonly EncodingTask[];
  /** Jobs submitted recently, finished ones included (what the forecast's rates come from). */
  arrivals?: readonly EncodingTask[];
  /** The ledger as the leader sees it. */
  snap: LedgerSnapshot;
  instances: readonly BurstInstance[];
  last_launch_at?: number;
  refusals?: readonly Refusal[];
  policy: BurstPolicy;
  queuePolicy?: QueuePolicy;
  reservation?: ReservationPolicy;
}

/** How one SLA class fares with the fleet as it is (and the instances already on their way). */
export interface ClassWait {
  queued: number;
  /** Longest predicted wait of the class's queued jobs, ms; null when some job gets no start at all. */
  max_wait_ms: number | null;
  bound_ms: number;
  /** Jobs whose predicted start is past their latest start (deadline minus upper duration). */
  deadline_misses: string[];
  /** Jobs whose predicted wait is past the class bound, or that no node can run now. */
  over_bound: string[];
  /** Forecast jobs (not yet submitted) that would wait past the bound or miss their deadline. */
  forecast_late: string[];
}

export interface LaunchDecision {
  instance_type: InstanceType;
  count: number;
  spot: boolean;
  /** USD per hour of each. */
  price_per_hour: number;
}

export interface BurstDecision {
  at: number;
  /** Launch this many of this type (none when nothing is short, or it may not). */
  launch?: LaunchDecision;
  /** Mark draining: the leader places nothing new on them. */
  drain: Array<{ id: string; why: string }>;
  /** Draining nodes to put back in service (demand came back before they emptied). */
  undrain: Array<{ id: string; why: string }>;
  /** Terminate these (empty drained nodes, and instances that never joined). */
  terminate: Array<{ id: string; why: string }>;
  /** Instances that never joined within join_timeout (also in `terminate`): reported. */
  unjoined: string[];
  /** The tracked instances as they are after this decision (join, idle and drain marks updated). */
  instances: BurstInstance[];
  /** What the late jobs need beyond what the fleet gives them in time. */
  shortfall: Demand;
  waits: Record<SlaClass, ClassWait>;
  /** The arrivals forecast per class, when forecasting is on. */
  forecast?: Record<SlaClass, ClassForecast>;
  /** USD per hour the burst instances alive cost (before this decision's launch). */
  hourly_cost: number;
  /** Everything the decision was made from, in numbers. */
  inputs: {
    queued: number; forecast_jobs: number; running: number; nodes: number; burst_instances: number; pending_instances: number;
    last_launch_at?: number; refusals: Refusal[]; max_instances: number; budget_per_hour: number;
  };
  /** Why, in words: what was short, which class would miss what, why this type, why not more. */
  reason: string;
}

const ALIVE: ReadonlySet<InstanceState> = new Set(['pending', 'running', 'unknown']);
const ZERO: Demand = { cores: 0, gpus: 0, memory_gb: 0, bandwidth_mbps: 0 };

/**
 * What a job asks for, as the leader would size it (coordinator/sizing), except that its cores
 * are not capped at the largest node the fleet has now: a job that wants 16 cores asks a burst
 * instance for 16 (on an 8-core fleet the leader would have capped it at 8).
 */
export function burstDemand(t: EncodingTask, snap: LedgerSnapshot, reservation?: ReservationPolicy): Demand {
  const view = reservation && reservation.kind !== 'predictive' ? snap : ({ max_cores: Number.MAX_SAFE_INTEGER, nodes: snap.nodes } as unknown as LedgerSnapshot);
  const r = sizeRequest(t, view, reservation);
  return { cores: r.cores, gpus: r.gpus, memory_gb: r.memory_gb, bandwidth_mbps: r.bandwidth_mbps };
}

/** A node the replay can place on, for an instance type (pending instances count as capacity). */
export function typeCapacity(id: string, t: InstanceType): NodeCapacity {
  return {
    node_id: id, address: '', cpu_model: t.name, memory_gb: t.memory_gb, bandwidth_mbps: t.bandwidth_mbps,
    core_ids: Array.from({ length: t.vcpus }, (_, i) => i),
    gpus: Array.from({ length: t.gpus }, (_, i) => ({ id: i, name: t.gpu_model ?? 'gpu', memory_gb: 0 })),
  };
}

const fits = (t: InstanceType, d: Demand) => t.vcpus >= d.cores && t.gpus >= d.gpus && t.memory_gb + 1e-9 >= d.memory_gb && t.bandwidth_mbps + 1e-9 >= d.bandwidth_mbps;
const fmt = (x: number, d = 1) => (Number.isInteger(x) ? String(x) : x.toFixed(d));
const mins = (ms: number) => (ms >= 60_000 ? `${fmt(ms / 60_000)} min` : `${fmt(ms / 1000)} s`);
const usd = (x: number) => `$${x.toFixed(2)}/h`;

/** Waits per class and the jobs that are late, from one replay. */
function judge(order: readonly QueueEntry[], est: Map<string, StartEstimate>, now: number, policy: BurstPolicy) {
  const waits = Object.fromEntries(SLA_CLASSES.map((c) => [c, { queued: 0, max_wait_ms: 0, bound_ms: policy.max_wait_ms[c], deadline_misses: [], over_bound: [], forecast_late: [] } as ClassWait])) as Record<SlaClass, ClassWait>;
  const late: QueueEntry[] = [];
  for (const e of order) {
    const w = waits[e.task.schema.priority];
    const at = est.get(e.task.id)?.at;
    const wait = at === undefined ? undefined : Math.max(0, at - e.task.submitted_at);
    const missed = e.latest_start !== undefined && (at === undefined || at > Math.max(now, e.latest_start));
    // A job that can start now is not late: no launch would start it sooner.
    const over = wait === undefined || (wait > w.bound_ms && at! > now);
    if (missed || over) late.push(e);
    if (isForecast(e.task.id)) {
      if (missed || over) w.forecast_late.push(e.task.id);
      continue;
    }
    w.queued++;
    if (wait === undefined) w.max_wait_ms = null;
    else if (w.max_wait_ms !== null) w.max_wait_ms = Math.max(w.max_wait_ms, wait);
    if (missed) w.deadline_misses.push(e.task.id);
    if (over) w.over_bound.push(e.task.id);
  }
  return { waits, late };
}

function sum(ds: readonly Demand[]): Demand {
  return ds.reduce((a, d) => ({ cores: a.cores + d.cores, gpus: a.gpus + d.gpus, memory_gb: a.memory_gb + d.memory_gb, bandwidth_mbps: a.bandwidth_mbps + d.bandwidth_mbps }), ZERO);
}

/** The price a launch of `t` would pay now, and whether as spot. */
function offer(t: InstanceType, policy: BurstPolicy, refusals: readonly Refusal[], now: number): { spot: boolean; price: number } | undefined {
  const refused = (spot: boolean) => refusals.some((r) => r.instance_type === t.name && r.spot === spot && r.until > now);
  if (policy.spot && t.spot_price_per_hour !== undefined && !refused(true)) return { spot: true, price: t.spot_price_per_hour };
  if (refused(false)) return undefined;
  return { spot: false, price: t.price_per_hour };
}

/** One decision: what to launch, drain, undrain and terminate, and why. */
export function decide(i: BurstInputs): BurstDecision {
  const { now, snap, policy } = i;
  const refusals = (i.refusals ?? []).filter((r) => r.until > now);
  const forecast = policy.forecast && i.arrivals ? forecastArrivals(i.arrivals, now, policy.forecast) : undefined;
  const order = orderQueue(forecast ? [...i.tasks, ...forecast.jobs] : i.tasks, i.queuePolicy ?? DEFAULT_QUEUE_POLICY);
  const running = i.tasks.filter((t) => t.allocation && (t.state === 'placed' || t.state === 'running'));
  const demandOf = new Map(order.map((e) => [e.task.id, burstDemand(e.task, snap, i.reservation)]));
  const demand = (t: EncodingTask) => demandOf.get(t.id) ?? burstDemand(t, snap, i.reservation);
  const byName = new Map(policy.catalogue.map((t) => [t.name, t]));
  const why: string[] = [];

  // ── the instances we track: joined? idle? ───────────────────────────────────────────
  const reservedOn = new Map<string, number>();
  for (const t of running) reservedOn.set(t.allocation!.node_id, (reservedOn.get(t.allocation!.node_id) ?? 0) + 1);
  const terminate: BurstDecision['terminate'] = [], drain: BurstDecision['drain'] = [], undrain: BurstDecision['undrain'] = [];
  const unjoined: string[] = [];
  const instances: BurstInstance[] = [];
  for (const prev of i.instances) {
    if (prev.state === 'stopped') {
      // Halted outside Prescient (by hand, or a spot/preemptible stop): it runs nothing, will not
      // come back by itself, and its disk is billed until it is deleted.
      terminate.push({ id: prev.id, why: 'the provider reports it stopped (by hand or a spot stop): it runs nothing and its disk is billed' });
      continue;
    }
    if (!ALIVE.has(prev.state)) continue; // terminated or stopping: the provider has it
    const x: BurstInstance = { ...prev };
    const inLedger = !!snap.node(x.id);
    if (inLedger && x.joined_at === undefined) x.joined_at = now;
    const held = (reservedOn.get(x.id) ?? 0) > 0 || (snap.node(x.id) !== undefined && holdsSomething(snap, x.id));
    if (inLedger) x.idle_since = held ? undefined : x.idle_since ?? now;
    if (!inLedger && x.joined_at === undefined && now - x.launched_at > policy.join_timeout_ms) {
      terminate.push({ id: x.id, why: `its agent did not register within ${mins(policy.join_timeout_ms)} of launch` });
      unjoined.push(x.id);
      continue;
    }
    if (!inLedger && x.joined_at !== undefined) {
      // Drained and gone, or lost (the leader requeued whatever it held): nothing runs there.
      terminate.push({ id: x.id, why: x.draining_since !== undefined ? 'drained and its agent has left the ledger' : 'it joined, then its agent was lost from the ledger' });
      continue;
    }
    instances.push(x);
  }
  const dropped = new Set(terminate.map((t) => t.id));
  const alive = instances; // after this decision's unjoined terminations
  const pending = alive.filter((x) => x.joined_at === undefined);
  const draining = new Set(alive.filter((x) => x.draining_since !== undefined).map((x) => x.id));
  const hourly = i.instances.filter((x) => ALIVE.has(x.state)).reduce((a, x) => a + x.price_per_hour, 0);
  const liveHourly = alive.reduce((a, x) => a + x.price_per_hour, 0);

  // ── how the queue fares with the fleet (draining nodes left out, pending ones counted) ──
  const fleet = (exclude: ReadonlySet<string>, extra: NodeCapacity[] = []) => [
    ...snap.nodes.map((n) => n.capacity).filter((c) => !exclude.has(c.node_id) && !dropped.has(c.node_id)),
    ...pending.flatMap((x) => (byName.has(x.instance_type) ? [typeCapacity(x.id, byName.get(x.instance_type)!)] : [])),
    ...extra,
  ];
  const arrives = forecast ? (t: EncodingTask) => forecast.arrives.get(t.id) : undefined;
  const replay = (nodes: NodeCapacity[]) => judge(order, estimateStarts(order, nodes, running, demand, now, undefined, arrives), now, policy);
  // What judge() calls late, as a due time per job, for the many replays that only ask whether any job is.
  const latestOf = new Map(order.map((e) => [e.task.id, e.latest_start ?? Infinity]));
  const due = (t: EncodingTask) => Math.max(now, Math.min(latestOf.get(t.id) ?? Infinity, t.submitted_at + policy.max_wait_ms[t.schema.priority]));
  const lateOn = (nodes: NodeCapacity[]) => anyLate(order, nodes, running, demand, now, due, arrives);
  const base = replay(fleet(draining));
  const late = base.late;
  const shortfall = sum(late.map((e) => demand(e.task)));
  let launch: LaunchDecision | undefined;

  if (late.length) {
    const classes = SLA_CLASSES.filter((c) => base.waits[c].deadline_misses.length || base.waits[c].over_bound.length || base.waits[c].forecast_late.length).map((c) => {
      const w = base.waits[c];
      const parts = [
        w.deadline_misses.length ? `${w.deadline_misses.length} job(s) would miss their deadline (${w.deadline_misses.slice(0, 3).join(', ')})` : '',
        w.over_bound.length ? `${w.over_bound.length} job(s) would wait ${w.max_wait_ms === null ? 'with no start at all' : `up to ${mins(w.max_wait_ms)}`} against a bound of ${mins(w.bound_ms)}` : '',
        w.forecast_late.length ? `${w.forecast_late.length} of the ${forecast!.classes[c].arriving} job(s) forecast in the next ${mins(policy.forecast!.horizon_ms)} (${fmt(forecast!.classes[c].rate_per_min)}/min) would be late` : '',
      ];
      return `${c}: ${parts.filter(Boolean).join('; ')}`;
    });
    why.push(`short of ${fmt(shortfall.cores)} cores, ${fmt(shortfall.memory_gb, 2)} GB, ${shortfall.gpus} GPU(s), ${fmt(shortfall.bandwidth_mbps)} Mbps for ${late.length} late job(s) — ${classes.join('; ')}`);
    if (draining.size) {
      // Hysteresis: draining nodes are the cheapest capacity there is.
      for (const id of draining) {
        undrain.push({ id, why: 'demand is back before it emptied' });
        const x = alive.find((y) => y.id === id)!;
        x.draining_since = undefined;
        x.idle_since = undefined;
      }
      why.push(`put ${draining.size} draining node(s) back in service instead of launching`);
    } else if (i.last_launch_at !== undefined && now - i.last_launch_at < policy.cooldown_ms) {
      why.push(`no launch: within the cooldown (${mins(now - i.last_launch_at)} since the last launch, cooldown ${mins(policy.cooldown_ms)})`);
    } else {
      launch = chooseLaunch(
        i, late.map((e) => demand(e.task)), late.filter((e) => !isForecast(e.task.id)).map((e) => demand(e.task)),
        alive.length, liveHourly, refusals, (extra) => lateOn(fleet(draining, extra)), why,
      );
    }
  } else {
    const queued = order.length - (forecast?.jobs.length ?? 0);
    const ahead = forecast?.jobs.length ? `; ${forecast.jobs.length} forecast in the next ${mins(policy.forecast!.horizon_ms)} fit too` : '';
    why.push(queued ? `every class within its bound and every deadline met (${queued} queued${ahead})` : `nothing queued${ahead}`);
  }

  // ── scale down: idle past idle_period → drain; drained and empty → terminate ──
  if (!late.length) {
    for (const x of alive) {
      if (x.joined_at === undefined) continue;
      const held = (reservedOn.get(x.id) ?? 0) > 0 || holdsSomething(snap, x.id);
      if (x.draining_since !== undefined) {
        if (held) why.push(`${x.id} draining: still holds ${reservedOn.get(x.id) ?? 'a'} reservation(s)`);
        else terminate.push({ id: x.id, why: `drained and empty (idle since ${new Date(x.idle_since ?? now).toISOString()})` });
        continue;
      }
      if (held || x.idle_since === undefined || now - x.idle_since < policy.idle_period_ms) continue;
      // Only if the queue still fares well without it (no flapping: drain, then launch again).
      const without = new Set([...draining, ...drain.map((d) => d.id), x.id]);
      if (lateOn(fleet(without))) { why.push(`${x.id} idle but kept: without it the queue would be late`); continue; }
      drain.push({ id: x.id, why: `no reservation for ${mins(now - x.idle_since)} (idle period ${mins(policy.idle_period_ms)})` });
      x.draining_since = now;
    }
  }
  const gone = new Set(terminate.map((t) => t.id));
  for (const t of terminate) if (!unjoined.includes(t.id) && !why.some((w) => w.includes(t.id))) why.push(`terminate ${t.id}: ${t.why}`);
  for (const id of unjoined) why.push(`terminate ${id}: never joined within ${mins(policy.join_timeout_ms)}`);
  for (const d of drain) why.push(`drain ${d.id}: ${d.why}`);

  return {
    at: now, launch, drain, undrain, terminate, unjoined,
    instances: alive.filter((x) => !gone.has(x.id)),
    shortfall, waits: base.waits, ...(forecast ? { forecast: forecast.classes } : {}), hourly_cost: hourly,
    inputs: {
      queued: order.length - (forecast?.jobs.length ?? 0), forecast_jobs: forecast?.jobs.length ?? 0, running: running.length, nodes: snap.count, burst_instances: i.instances.filter((x) => ALIVE.has(x.state)).length,
      pending_instances: pending.length, last_launch_at: i.last_launch_at, refusals, max_instances: policy.max_instances, budget_per_hour: policy.budget_per_hour,
    },
    reason: why.join('; '),
  };
}

/** Whether the ledger shows anything reserved on the node (cores, memory or a GPU session in use). */
function holdsSomething(snap: LedgerSnapshot, id: string): boolean {
  const n = snap.node(id);
  if (!n) return false;
  return n.free_core_ids.length < n.capacity.core_ids.length || n.free_gpu_sessions < n.gpu_sessions || n.free_memory_gb + 1e-9 < n.capacity.memory_gb;
}

/**
 * The cheapest launch (type × count, per hour) that clears the late jobs in time: types that fit
 * the largest late job, counts up to what max_instances and the budget leave. When no count
 * clears it within those limits, the most the limits allow of the cheapest fitting type. The
 * count starts from what the late jobs queued now need at once (`lateNow`; forecast ones arrive
 * spread over the horizon, so only the replay can tell how many more they need).
 */
function chooseLaunch(
  i: BurstInputs, late: Demand[], lateNow: Demand[], alive: number, hourly: number, refusals: readonly Refusal[],
  lateWith: (extra: NodeCapacity[]) => boolean, why: string[],
): LaunchDecision | undefined {
  const { policy, now } = i;
  const largest: Demand = {
    cores: Math.max(...late.map((d) => d.cores)), gpus: Math.max(...late.map((d) => d.gpus)),
    memory_gb: Math.max(...late.map((d) => d.memory_gb)), bandwidth_mbps: Math.max(...late.map((d) => d.bandwidth_mbps)),
  };
  const need = `${largest.cores} cores, ${fmt(largest.memory_gb, 2)} GB${largest.gpus ? `, ${largest.gpus} GPU(s)` : ''}`;
  const fitting = policy.catalogue.filter((t) => fits(t, largest));
  if (!fitting.length) { why.push(`no launch: no catalogue type fits the largest late job (${need})`); return undefined; }
  const bySlots = policy.max_instances - alive;
  if (bySlots < 1) { why.push(`no launch: ${alive} burst instance(s) already, the maximum is ${policy.max_instances}`); return undefined; }
  const total = sum(lateNow);
  type Option = { t: InstanceType; spot: boolean; price: number; count: number; clears: boolean; cap: number; capWhy: string };
  const options: Option[] = [];
  const refusedAll: string[] = [];
  for (const t of fitting) {
    const o = offer(t, policy, refusals, now);
    if (!o) { refusedAll.push(t.name); continue; }
    const byBudget = Math.floor((policy.budget_per_hour - hourly) / o.price + 1e-9);
    const cap = Math.min(bySlots, byBudget);
    const capWhy = byBudget < bySlots ? `the budget of ${usd(policy.budget_per_hour)} (${usd(hourly)} in use) allows ${Math.max(0, byBudget)}` : `max_instances ${policy.max_instances} leaves ${bySlots}`;
    if (cap < 1) { options.push({ t, ...o, count: 0, clears: false, cap, capWhy }); continue; }
    // At least what the late jobs need in sum; then more until the replay says they are on time.
    const floor = Math.max(1, Math.ceil(Math.max(total.cores / t.vcpus, total.memory_gb / t.memory_gb, t.gpus ? total.gpus / t.gpus : 0, total.bandwidth_mbps / t.bandwidth_mbps) - 1e-9));
    // The replay packs jobs one node at a time; the sum bound is only a lower one. More instances
    // make the queue later only in rare list-scheduling anomalies, so the fewest that clear it are
    // found by bisection (each try is a replay of the whole queue).
    const clearsWith = (n: number) => !lateWith(Array.from({ length: n }, (_, k) => typeCapacity(`burst-${t.name}-${k}`, t)));
    let lo = Math.min(cap, floor), hi = cap;
    const clears = clearsWith(hi);
    if (clears) {
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2);
        if (clearsWith(mid)) hi = mid;
        else lo = mid + 1;
      }
    }
    options.push({ t, ...o, count: hi, clears, cap, capWhy });
  }
  const usable = options.filter((o) => o.count >= 1);
  if (!usable.length) {
    why.push(`no launch: ${refusedAll.length === fitting.length ? `every fitting type was refused for capacity (${refusedAll.join(', ')})` : `the hourly budget ${usd(policy.budget_per_hour)} is used (${usd(hourly)})`}`);
    return undefined;
  }
  const cost = (o: Option) => o.count * o.price;
  const clearing = usable.filter((o) => o.clears).sort((a, b) => cost(a) - cost(b) || a.count - b.count || a.t.name.localeCompare(b.t.name));
  const pick = clearing[0] ?? usable.sort((a, b) => a.price - b.price || b.count - a.count)[0];
  const others = clearing.slice(1, 3).map((o) => `${o.count} × ${o.t.name} ${usd(cost(o))}`);
  const smaller = policy.catalogue.filter((t) => !fits(t, largest)).map((t) => t.name);
  why.push(
    `launch ${pick.count} × ${pick.t.name}${pick.spot ? ' (spot)' : ''} at ${usd(pick.price)} each: the cheapest that fits the largest late job (${need})`
    + (smaller.length ? `, which ${smaller.join(', ')} cannot hold` : '')
    + (pick.clears ? ` and clears the shortfall in time (${usd(cost(pick))} in all${others.length ? `; next: ${others.join(', ')}` : ''})` : `; not enough to clear it: ${pick.capWhy}`)
    + (refusedAll.length ? `; ${refusedAll.join(', ')} refused for capacity` : '')
    + (pick.spot === false && policy.spot && pick.t.spot_price_per_hour !== undefined ? '; on-demand after a spot capacity refusal' : ''),
  );
  return { instance_type: pick.t, count: pick.count, spot: pick.spot, price_per_hour: pick.price };
}

/** USD spent on burst instances in the clock hour holding `now` (each billed by the second). */
export function spentThisHour(instances: readonly { launched_at: number; price_per_hour: number; ended_at?: number }[], now: number): number {
  const hour = now - (now % 3_600_000);
  return instances.reduce((a, x) => {
    const from = Math.max(hour, x.launched_at), to = Math.min(now, x.ended_at ?? now);
    return a + (to > from ? ((to - from) / 3_600_000) * x.price_per_hour : 0);
  }, 0);
}
