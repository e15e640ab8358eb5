/**
 * Placing a group: the renditions of one ABR ladder, all of them or none.
 * - `together`: every member on one node (they share the decoded source and its I/O);
 * - `spread`: every member on a different node (a node failure costs one rendition).
 * The plans come back together; the leader commits them with `Ledger.commitAll`, which applies
 * all of them or none.
 */
import { idleView, withReserved, type LedgerSnapshot, type NodeSnapshot, type Plan } from '../ledger/index.js';
import { firstMisfit, fitsSlot, needsOf } from './filters.js';
import { asPolicy, beats, defaultLimit, place, startSlot, Tallies } from './place.js';
import { POLICIES } from './policies/index.js';
import type { PlacementPolicy, PlacementRequest, Resource, Scorer, Tally } from './types.js';

/** `together`: all members on one node; `spread`: each member on a node of its own. */
export type GroupMode = 'together' | 'spread';

export interface GroupOptions {
  mode: GroupMode;
  /** As for `place`: feasible nodes scored per decision (default max(2, ceil(log2 N))). */
  limit?: number | 'all';
  /** As for `place`: nodes not to use, and why. */
  exclude?: ReadonlySet<string>;
  excludeReason?: string;
}

/** Every member placed (one plan each, in the order given), or none, with the reason. */
export type GroupResult =
  | { kind: 'placed'; mode: GroupMode; policy: PlacementPolicy['name']; plans: Plan[]; reason: string }
  | { kind: 'queued'; mode: GroupMode; policy: PlacementPolicy['name']; short: Resource; reason: string; member?: string; tally: Tally[] }
  | { kind: 'infeasible'; mode: GroupMode; policy: PlacementPolicy['name']; reason: string; member?: string; tally: Tally[] };

export function placeGroup(requests: readonly PlacementRequest[], snap: LedgerSnapshot, opts: GroupOptions, how: Scorer | PlacementPolicy = POLICIES['best-fit']): GroupResult {
  const policy = asPolicy(how);
  const base = { mode: opts.mode, policy: policy.name };
  const ids = new Set(requests.map((r) => r.task_id));
  if (ids.size !== requests.length) return { ...base, kind: 'infeasible', tally: [], reason: 'a task id appears twice in the group' };
  if (requests.length === 0) return { ...base, kind: 'placed', plans: [], reason: 'the group is empty' };
  if (snap.count === 0) return { ...base, kind: 'queued', short: 'nodes', tally: [], reason: 'no nodes have registered yet' };
  return opts.mode === 'together' ? together(requests, snap, opts, policy) : spreadOut(requests, snap, opts, policy);
}

/** The whole group as one request, for scoring a node and for describing what it lacks. */
function combined(requests: readonly PlacementRequest[]): PlacementRequest {
  const sum = (f: (r: PlacementRequest) => number) => requests.reduce((s, r) => s + f(r), 0);
  return { task_id: requests[0].task_id, cores: sum((r) => r.cores), gpus: sum((r) => r.gpus), memory_gb: sum((r) => r.memory_gb), bandwidth_mbps: sum((r) => r.bandwidth_mbps) };
}

/**
 * Places the members one after another on `n`, as the ledger would commit them; the plans, or
 * the first member that does not fit.
 */
function packOnto(requests: readonly PlacementRequest[], n: NodeSnapshot, policy: PlacementPolicy, term: number): Plan[] | PlacementRequest {
  const plans: Plan[] = [];
  let cur = n;
  for (const r of requests) {
    if (firstMisfit(r, cur, false)) return r;
    const plan: Plan = {
      task_id: r.task_id, node_id: n.node_id, core_ids: cur.free_core_ids.slice(0, r.cores), gpu_ids: policy.gpusFor(r, cur),
      memory_gb: r.memory_gb, bandwidth_mbps: r.bandwidth_mbps, node_version: n.version, term,
    };
    plans.push(plan);
    cur = withReserved(cur, plan);
  }
  return plans;
}

function together(requests: readonly PlacementRequest[], snap: LedgerSnapshot, opts: GroupOptions, policy: PlacementPolicy): GroupResult {
  const base = { mode: 'together' as const, policy: policy.name };
  const all = combined(requests);
  const limit = opts.limit === 'all' ? Infinity : Math.max(1, opts.limit ?? defaultLimit(snap.count));
  const start = startSlot(all.task_id, snap.slots);
  let best: { n: NodeSnapshot; plans: Plan[] } | undefined, bestScore = -Infinity;
  let avoided: { n: NodeSnapshot; plans: Plan[] } | undefined, avoidedScore = -Infinity;
  let preferred = 0, fallbacks = 0;
  // The sum is a cheap necessary condition (apart from GPUs, which members may share).
  const needs = needsOf({ ...all, gpus: 0 });
  for (let k = 0; k < snap.slots; k++) {
    const i = (start + k) % snap.slots;
    if (!fitsSlot(snap, i, needs)) continue;
    const n = snap.at(i)!;
    if (opts.exclude?.has(n.node_id)) continue;
    const avoids = policy.avoids?.(all, n) ?? false;
    if (avoids && fallbacks >= limit) continue;
    const plans = packOnto(requests, n, policy, snap.term);
    if (!Array.isArray(plans)) continue;
    const s = policy.score(all, n);
    if (avoids) {
      fallbacks++;
      if (beats(s, n, avoidedScore, avoided?.n)) { avoided = { n, plans }; avoidedScore = s; }
      continue;
    }
    if (beats(s, n, bestScore, best?.n)) { best = { n, plans }; bestScore = s; }
    if (++preferred >= limit) break;
  }
  const chosen = best ?? avoided;
  if (chosen) {
    return { ...base, kind: 'placed', plans: chosen.plans, reason: `placed all ${requests.length} renditions together on ${chosen.n.node_id} by ${policy.name}: score ${(best ? bestScore : avoidedScore).toFixed(3)}` };
  }
  // Nothing fits now: could any node hold the whole group when idle?
  const small = snap.count <= 10;
  const never = new Tallies(small ? Infinity : 3), short = new Tallies(small ? Infinity : 3);
  for (let i = 0; i < snap.slots; i++) {
    const n = snap.at(i);
    if (n === undefined) continue;
    const whyIdle = explainTogether(requests, all, idleView(n), policy, snap.term, true);
    if (whyIdle) { never.add(whyIdle.resource, n.node_id, () => whyIdle.reason); continue; }
    const whyNow = explainTogether(requests, all, n, policy, snap.term, false);
    if (whyNow) short.add(whyNow.resource, n.node_id, () => whyNow.reason);
  }
  if (short.total === 0) {
    return { ...base, kind: 'infeasible', tally: never.list(), reason: `no node could hold all ${requests.length} renditions together even when idle: ${never.summary()}` };
  }
  const tally = short.list();
  return { ...base, kind: 'queued', short: tally[0].filter, tally, reason: `no node has room now for all ${requests.length} renditions together: ${short.summary()}` };
}

/** Why the group does not fit `n` (idle or as it is), in terms of the whole group's needs. */
function explainTogether(requests: readonly PlacementRequest[], all: PlacementRequest, n: NodeSnapshot, policy: PlacementPolicy, term: number, idle: boolean): { resource: Resource; reason: string } | undefined {
  // GPUs are left to the packing: members may share a GPU, one session each.
  const cpu = { ...all, gpus: 0 };
  const sum = firstMisfit(cpu, n, false);
  if (sum) return { resource: sum.resource, reason: `${sum.explain(cpu, n, idle)} (all ${requests.length} renditions together)` };
  const packed = packOnto(requests, n, policy, term);
  if (Array.isArray(packed)) return undefined;
  const miss = firstMisfit(packed, n, false);
  return { resource: miss?.resource ?? 'gpus', reason: `${n.node_id}: rendition ${packed.task_id} does not fit beside the others (${miss ? miss.explain(packed, n, idle) : 'its GPU sessions are taken by the other renditions'})` };
}

function spreadOut(requests: readonly PlacementRequest[], snap: LedgerSnapshot, opts: GroupOptions, policy: PlacementPolicy): GroupResult {
  const base = { mode: 'spread' as const, policy: policy.name };
  if (requests.length > snap.count) {
    return { ...base, kind: 'infeasible', tally: [{ filter: 'nodes', nodes: snap.count, examples: [] }], reason: `${requests.length} renditions need a node each, but the fleet has ${snap.count}` };
  }
  // The most demanding members choose first: they have the fewest nodes to choose from.
  const order = requests.map((r, i) => ({ r, i })).sort((a, b) => b.r.gpus - a.r.gpus || b.r.cores - a.r.cores || b.r.memory_gb - a.r.memory_gb || a.i - b.i);
  const used = new Set<string>();
  const plans: Plan[] = new Array(requests.length);
  for (const { r, i } of order) {
    const exclude = opts.exclude?.size ? new Set([...used, ...opts.exclude]) : used;
    const excludeReason = opts.exclude?.size ? `already holds another rendition of this group, or ${opts.excludeReason ?? 'excluded'}` : 'already holds another rendition of this group';
    const res = place(r, snap, policy, { limit: opts.limit, exclude, excludeReason, seed: r.task_id });
    if (res.kind === 'placed') {
      plans[i] = res.plan;
      used.add(res.plan.node_id);
      continue;
    }
    const why = `rendition ${r.task_id}: ${res.reason}`;
    return res.kind === 'queued'
      ? { ...base, kind: 'queued', short: res.short, tally: res.tally, member: r.task_id, reason: `no placement gives every rendition a node of its own now; ${why}` }
      : { ...base, kind: 'infeasible', tally: res.tally, member: r.task_id, reason: why };
  }
  return { ...base, kind: 'placed', plans, reason: `placed ${requests.length} renditions on ${requests.length} different nodes (${plans.map((p) => p.node_id).join(', ')}) by ${policy.name}` };
}
