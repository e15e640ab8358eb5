/**
 * The SLA queue: in which order queued tasks get resources, and when each is likely to start.
 * Pure functions over task records and node capacities, so the leader (placing) and the CLI
 * (`prescient queue`, reading the same records from JetStream) rank the queue the same way.
 *
 * Order is by a virtual start time, as in virtual-clock and earliest-deadline schedulers:
 *
 *   key = submitted_at + class delay + k × submitter spacing
 *   key = min(key, deadline − upper predicted duration)          when the job has a deadline
 *
 * where k is the job's rank among its submitter's queued jobs of its class. The class delay is
 * how much longer a class is expected to wait (premium 0, standard 2 min, batch 15 min): a
 * fresh premium job goes before a batch job that has waited less than 15 minutes and after one
 * that has waited longer, so every job ages into the front and nothing starves. The spacing
 * interleaves submitters within a class: one who sends 500 jobs at once does not hold back
 * everybody else's. A deadline pulls a job forward to the latest time it can start and still
 * finish on its upper bound.
 */
import { SLA_CLASSES, isActor, type EncodingTask, type NodeCapacity, type SlaClass } from '../../shared/index.js';
import { sessionsOf } from '../ledger/index.js';

export interface QueuePolicy {
  /** Head start each class has over the next (milliseconds added to its submission time). */
  classDelayMs: Record<SlaClass, number>;
  /** Between one submitter's consecutive jobs of a class. */
  submitterSpacingMs: Record<SlaClass, number>;
}

export const DEFAULT_QUEUE_POLICY: QueuePolicy = {
  classDelayMs: { premium: 0, standard: 120_000, batch: 900_000 },
  submitterSpacingMs: { premium: 1_000, standard: 5_000, batch: 30_000 },
};

export interface QueueEntry {
  task: EncodingTask;
  /** 1-based place in the queue. */
  position: number;
  /** Virtual start time (epoch ms) the order is by. */
  key: number;
  /** Latest start that still meets the deadline on the upper bound, when it has one. */
  latest_start?: number;
}

const CLASS_RANK = Object.fromEntries(SLA_CLASSES.map((c, i) => [c, i])) as Record<SlaClass, number>;

/** Upper predicted duration in ms (0 when the task has no prediction). */
const upperMs = (t: EncodingTask) => 1000 * (t.predicted?.upper.duration_s ?? 0);

export function latestStart(t: EncodingTask): number | undefined {
  if (!t.schema.deadline) return undefined;
  const d = Date.parse(t.schema.deadline);
  return Number.isFinite(d) ? d - upperMs(t) : undefined;
}

/** Queued tasks in the order they get resources. Ties go to the higher class, then the older, then the lower id. */
export function orderQueue(tasks: readonly EncodingTask[], policy: QueuePolicy = DEFAULT_QUEUE_POLICY): QueueEntry[] {
  const queued = tasks.filter((t) => t.state === 'queued');
  const bySubmitter = new Map<string, EncodingTask[]>();
  for (const t of queued) {
    const k = groupOf(t);
    const list = bySubmitter.get(k);
    if (list) list.push(t);
    else bySubmitter.set(k, [t]);
  }
  const entries: QueueEntry[] = [];
  for (const list of bySubmitter.values()) {
    list.sort(older);
    list.forEach((t, k) => {
      const latest = latestStart(t);
      entries.push({ task: t, position: 0, key: keyOf(t, k, latest, policy), ...(latest !== undefined ? { latest_start: latest } : {}) });
    });
  }
  entries.sort(inOrder);
  entries.forEach((e, i) => { e.position = i + 1; });
  return entries;
}

/** The submitter group a task is ranked in: its class and its submitter. */
const groupOf = (t: EncodingTask) => `${t.schema.priority}\u0000${t.schema.submitter}`;

/** The virtual start time of `t`, the `k`-th (from 0) oldest of its submitter group, given its latest start. */
const keyOf = (t: EncodingTask, k: number, latest: number | undefined, policy: QueuePolicy) => {
  const cls = t.schema.priority;
  const fair = t.submitted_at + policy.classDelayMs[cls] + k * policy.submitterSpacingMs[cls];
  return latest === undefined ? fair : Math.min(fair, latest);
};

/** Queue order: by key, then the higher class, then the older, then the lower id. */
const inOrder = (a: { task: EncodingTask; key: number }, b: { task: EncodingTask; key: number }) =>
  a.key - b.key || CLASS_RANK[a.task.schema.priority] - CLASS_RANK[b.task.schema.priority] || older(a.task, b.task);

/**
 * The queue kept in order while tasks join and leave it, for the leader's placement passes: the
 * order orderQueue gives the same tasks, but worked out again only for what changed. A job's key
 * depends on its rank among its submitter group's queued jobs, so a group a job joined or left has
 * its members keyed again and sorted, and merged with the other groups' entries, which keep their
 * keys and their order. A pass after a few jobs came and went then costs a merge, O(queue), not a
 * sort of the whole queue, O(queue log queue) with a key per job: a saturated fleet's thousands of
 * queued jobs cost that at every pass.
 *
 * It holds what it is given: the caller adds a task when it is queued and deletes it when it is
 * not (as the core's index does), and adds it again if its prediction changes while queued (the
 * deadline's latest start reads its upper bound).
 */
export class OrderedQueue {
  /** Each task's group and the prediction its key was made with. */
  private readonly held = new Map<EncodingTask, { group: Group; predicted: EncodingTask['predicted'] }>();
  private readonly groups = new Map<string, Group>();
  /** Groups changed since the order was last worked out. */
  private readonly changed = new Set<Group>();
  private order: Keyed[] = [];
  private tasksInOrder: readonly EncodingTask[] = [];

  constructor(private readonly policy: QueuePolicy = DEFAULT_QUEUE_POLICY) {}

  get size(): number { return this.held.size; }
  has(t: EncodingTask): boolean { return this.held.has(t); }
  values(): IterableIterator<EncodingTask> { return this.held.keys(); }

  /** Adds `t`, or notes that its prediction changed. */
  add(t: EncodingTask): void {
    const h = this.held.get(t);
    if (h) {
      if (h.predicted !== t.predicted) { h.predicted = t.predicted; this.changed.add(h.group); }
      return;
    }
    const name = groupOf(t);
    let group = this.groups.get(name);
    if (!group) this.groups.set(name, (group = { name, members: new Set(), stale: false }));
    group.members.add(t);
    this.held.set(t, { group, predicted: t.predicted });
    this.changed.add(group);
  }

  delete(t: EncodingTask): boolean {
    const h = this.held.get(t);
    if (!h) return false;
    this.held.delete(t);
    h.group.members.delete(t);
    if (!h.group.members.size) this.groups.delete(h.group.name);
    this.changed.add(h.group);
    return true;
  }

  /** The tasks in queue order (orderQueue's); the array is not changed later, and must not be changed by the caller. */
  tasks(): readonly EncodingTask[] {
    if (!this.changed.size) return this.tasksInOrder;
    const fresh: Keyed[] = [];
    for (const g of this.changed) {
      g.stale = true;
      [...g.members].sort(older).forEach((t, k) => fresh.push({ task: t, key: keyOf(t, k, latestStart(t), this.policy), group: g }));
    }
    fresh.sort(inOrder);
    // The unchanged groups' entries, in their order, merged with the changed groups' new ones.
    const out: Keyed[] = [];
    let j = 0;
    for (const e of this.order) {
      if (e.group.stale) continue;
      while (j < fresh.length && inOrder(fresh[j], e) < 0) out.push(fresh[j++]);
      out.push(e);
    }
    while (j < fresh.length) out.push(fresh[j++]);
    for (const g of this.changed) g.stale = false;
    this.changed.clear();
    this.order = out;
    return (this.tasksInOrder = out.map((e) => e.task));
  }
}

interface Group { name: string; members: Set<EncodingTask>; /** Its entries in the last order are being replaced. */ stale: boolean }
interface Keyed { task: EncodingTask; key: number; group: Group }

const older = (a: EncodingTask, b: EncodingTask) => a.submitted_at - b.submitted_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** What a task holds or will hold, in counts (estimation does not need core ids). */
export interface Demand { cores: number; gpus: number; memory_gb: number; bandwidth_mbps: number }

export interface StartEstimate {
  /** Epoch ms; undefined when no node could ever run it, or beyond the horizon. */
  at?: number;
  why: string;
}

interface SimNode { id: string; cores: number; gpus: number; memory_gb: number; bandwidth_mbps: number; total: Demand }

/** How many queued jobs a replay looks at; the rest get no estimate (and count as late). */
export const REPLAY_HORIZON = 5_000;

/**
 * When each queued task is likely to start, by replaying the queue against the fleet: running
 * tasks end at their start plus their expected duration (now, if overdue), actors never; at each end the
 * queue, in order, starts whatever fits on the first node with room — as the leader does,
 * smaller jobs behind a blocked one included. `demand` sizes a task as the leader would.
 * `arrives` gives the time a job not yet submitted (a forecast one) arrives: it starts no earlier.
 */
export function estimateStarts(
  order: readonly QueueEntry[], nodes: readonly NodeCapacity[], running: readonly EncodingTask[], demand: (t: EncodingTask) => Demand, now: number, horizon = REPLAY_HORIZON,
  arrives?: (t: EncodingTask) => number | undefined,
): Map<string, StartEstimate> {
  return replayQueue(order, nodes, running, demand, now, horizon, arrives).out;
}

/**
 * Whether the replay would start some job after `due(job)`, or never (beyond the horizon
 * included): the same replay as estimateStarts, stopped as soon as the answer is known — at the
 * first job left waiting past its due time — which is what the burst engine asks many times per
 * decision.
 */
export function anyLate(
  order: readonly QueueEntry[], nodes: readonly NodeCapacity[], running: readonly EncodingTask[], demand: (t: EncodingTask) => Demand, now: number,
  due: (t: EncodingTask) => number, arrives?: (t: EncodingTask) => number | undefined,
): boolean {
  return replayQueue(order, nodes, running, demand, now, REPLAY_HORIZON, arrives, due).late;
}

function replayQueue(
  order: readonly QueueEntry[], nodes: readonly NodeCapacity[], running: readonly EncodingTask[], demand: (t: EncodingTask) => Demand, now: number, horizon: number,
  arrives?: (t: EncodingTask) => number | undefined, due?: (t: EncodingTask) => number,
): { out: Map<string, StartEstimate>; late: boolean } {
  const out = new Map<string, StartEstimate>();
  const sim: SimNode[] = nodes.map((n) => {
    // A GPU with no encoder (an H100: 0 sessions) starts no GPU job.
    const total = { cores: n.core_ids.length, gpus: n.gpus.filter((g) => sessionsOf(g) > 0).length, memory_gb: n.memory_gb, bandwidth_mbps: n.bandwidth_mbps };
    return { id: n.node_id, ...total, total };
  });
  const byId = new Map(sim.map((n) => [n.id, n]));
  // Ends of running work: [time, node, demand].
  const ends: Array<{ at: number; node: SimNode; d: Demand }> = [];
  const hold = (n: SimNode, d: Demand, sign: 1 | -1) => {
    n.cores -= sign * d.cores; n.gpus -= sign * d.gpus; n.memory_gb -= sign * d.memory_gb; n.bandwidth_mbps -= sign * d.bandwidth_mbps;
  };
  for (const t of running) {
    const a = t.allocation, n = a && byId.get(a.node_id);
    if (!a || !n) continue;
    const d = { cores: a.core_ids.length, gpus: a.gpu_ids.length, memory_gb: a.memory_gb, bandwidth_mbps: a.bandwidth_mbps };
    hold(n, d, 1);
    if (isActor(t.schema)) continue; // a live channel holds its reservation until stopped
    const expected = 1000 * (t.predicted?.expected.duration_s ?? 0);
    ends.push({ at: Math.max(now, (t.started_at ?? t.updated_at) + expected), node: n, d });
  }
  const fits = (n: { cores: number; gpus: number; memory_gb: number; bandwidth_mbps: number }, d: Demand) =>
    n.cores >= d.cores && n.gpus >= d.gpus && n.memory_gb + 1e-9 >= d.memory_gb && n.bandwidth_mbps + 1e-9 >= d.bandwidth_mbps;
  const release = (t: EncodingTask) => Math.max(now, arrives?.(t) ?? now);
  let pending = order.slice(0, horizon).map((e) => ({ t: e.task, d: demand(e.task), r: release(e.task) }));
  for (const e of order.slice(horizon)) out.set(e.task.id, { why: `beyond the first ${horizon} queued jobs` });
  // Never on any node, even idle: no estimate, and it does not block the replay.
  pending = pending.filter(({ t, d }) => {
    if (sim.some((n) => fits(n.total, d))) return true;
    out.set(t.id, { why: sim.length ? 'fits no node even when idle' : 'no nodes have registered' });
    return false;
  });
  if (due && out.size) return { out, late: true };
  // With `due`: the waiting jobs by due time; `placed` marks the ones started (skipped lazily).
  const byDue = due ? pending.map((p) => ({ p, due: due(p.t) })).sort((a, b) => a.due - b.due) : [];
  const placed = new Set<object>();
  let firstDue = 0;
  // Arrivals still to come, in time order (forecast jobs; a real queue has none).
  const arrivals = [...new Set(pending.map((p) => p.r).filter((r) => r > now))].sort((a, b) => a - b);
  let nextArrival = 0;
  // The most any one node has free of each resource: a job asking more fits nowhere, which spares
  // the scan of every node for each waiting job at each step of a long replay.
  const most = { cores: 0, gpus: 0, memory_gb: 0, bandwidth_mbps: 0 };
  const measure = () => {
    most.cores = 0; most.gpus = 0; most.memory_gb = 0; most.bandwidth_mbps = 0;
    for (const n of sim) {
      most.cores = Math.max(most.cores, n.cores); most.gpus = Math.max(most.gpus, n.gpus);
      most.memory_gb = Math.max(most.memory_gb, n.memory_gb); most.bandwidth_mbps = Math.max(most.bandwidth_mbps, n.bandwidth_mbps);
    }
  };
  measure();
  // The least any waiting job asks of each resource: once no node has that much free, the rest of
  // the queue is not looked at until something ends (a saturated fleet: most steps).
  const least = pending.reduce((m, { d }) => ({
    cores: Math.min(m.cores, d.cores), gpus: Math.min(m.gpus, d.gpus), memory_gb: Math.min(m.memory_gb, d.memory_gb), bandwidth_mbps: Math.min(m.bandwidth_mbps, d.bandwidth_mbps),
  }), { cores: Infinity, gpus: Infinity, memory_gb: Infinity, bandwidth_mbps: Infinity });
  let clock = now;
  while (pending.length) {
    // In queue order, start whatever has arrived and fits (kept in place: no new array per step).
    let kept = 0, k = 0;
    for (; k < pending.length && fits(most, least); k++) {
      const p = pending[k];
      const n = p.r <= clock && fits(most, p.d) ? sim.find((x) => fits(x, p.d)) : undefined;
      if (!n) { pending[kept++] = p; continue; }
      hold(n, p.d, 1);
      measure();
      placed.add(p);
      if (!isActor(p.t.schema)) ends.push({ at: clock + 1000 * (p.t.predicted?.expected.duration_s ?? 0), node: n, d: p.d });
      out.set(p.t.id, { at: clock, why: clock === now ? 'fits now' : clock === p.r ? 'fits when it arrives' : `after earlier work on ${n.id} ends` });
    }
    if (kept < k) pending.copyWithin(kept, k);
    pending.length -= k - kept;
    // Advance to the next end or arrival, and free what ended by then.
    while (nextArrival < arrivals.length && arrivals[nextArrival] <= clock) nextArrival++;
    if (!pending.length || (!ends.length && nextArrival === arrivals.length)) break;
    ends.sort((a, b) => a.at - b.at);
    clock = Math.min(ends[0]?.at ?? Infinity, arrivals[nextArrival] ?? Infinity);
    if (due) {
      // A job still waiting when the clock passes its due time is late: the answer is known.
      while (firstDue < byDue.length && placed.has(byDue[firstDue].p)) firstDue++;
      if (firstDue < byDue.length && clock > byDue[firstDue].due) return { out, late: true };
    }
    while (ends.length && ends[0].at <= clock) {
      const e = ends.shift()!;
      hold(e.node, e.d, -1);
    }
    measure();
  }
  for (const { t } of pending) out.set(t.id, { why: 'not reached by the replay' });
  return { out, late: pending.length > 0 };
}
