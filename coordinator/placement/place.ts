/**
 * Placing one request: the limit iterator over a ledger snapshot, then a diagnosis when
 * nothing fits.
 *
 * Bounded work per decision (Nomad's limit iterator): the scan starts at a slot hashed from
 * the task id, runs the feasibility filters slot by slot on the snapshot's columns (skipping a
 * block of 64 slots whole when none of them has enough free), scores feasible nodes, and stops
 * after `limit` of them (default max(2, ceil(log2 N)): 14 at 10,000 nodes). With most nodes
 * feasible a decision touches a few dozen nodes whatever the fleet's size; the choice is the
 * best of a sample, not of the fleet, which is what keeps it cheap. Hashing the start spreads
 * concurrent requests over the fleet and makes every decision replay exactly from its snapshot.
 *
 * Only when the scan finds nothing feasible does a full second pass run, to tell `queued`
 * (some node could fit it when idle) from `infeasible`, counting each filter's failures.
 */
import type { LedgerSnapshot, NodeSnapshot } from '../ledger/index.js';
import { CHECKS, blockMayFit, columnOffsets, misfitIn, needsOf } from './filters.js';
import { POLICIES, scorerPolicy } from './policies/index.js';
import type { PlaceOptions, PlacementPolicy, PlacementRequest, PlacementResult, Resource, Scorer, Tally } from './types.js';

/** Fleets up to this size list every node's reason in an infeasible result. */
const LIST_ALL = 10;
/** Example nodes kept per filter in a larger fleet. */
const EXAMPLES = 3;

/** Feasible nodes a decision scores: grows with the log of the fleet, so a sample stays small but not tiny. */
export function defaultLimit(nodes: number): number {
  return Math.max(2, Math.ceil(Math.log2(Math.max(1, nodes))));
}

/** FNV-1a of the seed: where a scan starts, so a decision replays from its task id. */
export function startSlot(seed: string, slots: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 0x01000193);
  return (h >>> 0) % Math.max(1, slots);
}

/** Higher score wins; equal scores go to the lower node id, so results do not depend on slot order. */
export function beats(s: number, n: NodeSnapshot, bestScore: number, best: NodeSnapshot | undefined): boolean {
  return best === undefined || s > bestScore || (s === bestScore && n.node_id < best.node_id);
}

/** `beats` for slots: a node object is opened only to break a tie. */
function slotBeats(snap: LedgerSnapshot, s: number, i: number, bestScore: number, best: number): boolean {
  return best < 0 || s > bestScore || (s === bestScore && snap.at(i)!.node_id < snap.at(best)!.node_id);
}

/** A policy as given, or one around a bare scorer. */
export function asPolicy(how: Scorer | PlacementPolicy): PlacementPolicy {
  return typeof how === 'function' ? scorerPolicy(how) : how;
}

/**
 * Places one request on the snapshot with a policy (best fit unless told otherwise; a bare
 * scorer function is accepted too). Pure: reads the snapshot, returns a result that says why.
 */
export function place(req: PlacementRequest, snap: LedgerSnapshot, how: Scorer | PlacementPolicy = POLICIES['best-fit'], opts: PlaceOptions = {}): PlacementResult {
  const policy = asPolicy(how);
  if (snap.count === 0) return { kind: 'queued', reason: 'no nodes have registered yet', short: 'nodes', policy: policy.name, tally: [] };
  const limit = opts.limit === 'all' ? Infinity : Math.max(1, opts.limit ?? defaultLimit(snap.count));
  const exclude = opts.exclude;
  const slots = snap.slots;
  const start = startSlot(opts.seed ?? req.task_id, slots);
  // Slots, not nodes: a node object is opened only for an exclusion, a tie or the result.
  let best = -1, bestScore = -Infinity;
  // Feasible slots the policy avoids: the first `limit` of them, scored only if nothing else fits.
  const avoided: number[] = [];
  const needs = needsOf(req);
  const score = (i: number) => (policy.scoreSlot ? policy.scoreSlot(req, snap, i) : policy.score(req, snap.at(i)!));
  const avoids = (i: number) => (policy.avoidsSlot ? policy.avoidsSlot(req, snap, i) : policy.avoids ? policy.avoids(req, snap.at(i)!) : false);
  const size = snap.blockSize, offsets = columnOffsets(size, false);
  // The block being read: its free columns and its slots [base, end).
  let cols: readonly number[] = [], base = 0, end = -1;
  let scanned = 0, feasible = 0, preferred = 0;
  for (let k = 0; k < slots; k++) {
    const i = start + k < slots ? start + k : start + k - slots;
    if (i >= end || i < base) {
      // Entering a block (or starting inside one, or wrapping round): skip it whole if none of its slots has room.
      const b = Math.floor(i / size);
      base = b * size;
      end = Math.min(slots, base + size);
      if (!blockMayFit(snap, b, needs)) {
        k += end - i - 1;
        end = -1; // whatever comes next is entered afresh, even this block again after a wrap
        continue;
      }
      cols = snap.blockFree(b);
    }
    scanned++;
    // Empty slots read negative amounts and fail here too.
    if (misfitIn(cols, offsets, i - base, needs) >= 0) continue;
    if (exclude !== undefined && exclude.has(snap.at(i)!.node_id)) continue;
    feasible++;
    if (avoids(i)) {
      // A fallback; the scan goes on looking for nodes the policy prefers.
      if (avoided.length < limit) avoided.push(i);
      continue;
    }
    const s = score(i);
    if (slotBeats(snap, s, i, bestScore, best)) { best = i; bestScore = s; }
    if (++preferred >= limit) break;
  }
  let scored = preferred;
  const fallback = best < 0;
  if (fallback) {
    for (const i of avoided) {
      const s = score(i);
      scored++;
      if (slotBeats(snap, s, i, bestScore, best)) { best = i; bestScore = s; }
    }
  }
  if (best < 0) return diagnose(req, snap, policy, opts);
  const chosen = snap.at(best)!;
  return {
    kind: 'placed', score: bestScore, policy: policy.name, scanned, feasible,
    reason: `placed on ${chosen.node_id} by ${policy.name}: score ${bestScore.toFixed(3)}, the best of ${scored} scored (${feasible} feasible, ${scanned} of ${snap.slots} slots checked)`
      + (fallback ? '; the policy avoids this node for this request, but no node it prefers had room' : ''),
    plan: {
      task_id: req.task_id, node_id: chosen.node_id,
      core_ids: chosen.free_core_ids.slice(0, req.cores), gpu_ids: policy.gpusFor(req, chosen),
      memory_gb: req.memory_gb, bandwidth_mbps: req.bandwidth_mbps,
      node_version: chosen.version, term: snap.term,
    },
  };
}

const ORDER: Readonly<Record<Resource, number>> = { cores: 0, gpus: 1, memory: 2, bandwidth: 3, nodes: 4 };

/** Counts failures per filter, keeping a few examples of each. Cheap per node: no closures, no maps. */
export class Tallies {
  private readonly by: Array<Tally | undefined> = [];
  constructor(private readonly examples: number) {}
  /** Counts one node failing `filter`; true when the caller should word it as an example. */
  count(filter: Resource): boolean {
    const k = ORDER[filter];
    const t = this.by[k] ?? (this.by[k] = { filter, nodes: 0, examples: [] });
    t.nodes++;
    return t.examples.length < this.examples;
  }
  example(filter: Resource, node_id: string, reason: string): void {
    this.by[ORDER[filter]]!.examples.push({ node_id, reason });
  }
  add(filter: Resource, node_id: string, reason: () => string): void {
    if (this.count(filter)) this.example(filter, node_id, reason());
  }
  get total(): number { let s = 0; for (const t of this.by) s += t?.nodes ?? 0; return s; }
  /** Most frequent first; ties in filter order. */
  list(): Tally[] { return this.by.filter((t): t is Tally => t !== undefined).sort((a, b) => b.nodes - a.nodes || ORDER[a.filter] - ORDER[b.filter]); }
  /** "memory on 9,812 nodes (e.g. n1: needs 600 GB memory, 512 GB in total); cores on 3 nodes (…)" */
  summary(): string {
    return this.list().map((t) => `${t.filter} on ${t.nodes.toLocaleString('en')} node${t.nodes === 1 ? '' : 's'} (${t.nodes > 1 ? 'e.g. ' : ''}${t.examples[0]?.reason ?? ''})`).join('; ');
  }
}

/** The full pass after a scan found nothing: queued (and short of what) or infeasible (and why, per filter). */
function diagnose(req: PlacementRequest, snap: LedgerSnapshot, policy: PlacementPolicy, opts: PlaceOptions): PlacementResult {
  const small = snap.count <= LIST_ALL;
  const never = new Tallies(small ? Infinity : EXAMPLES);
  const short = new Tallies(small ? Infinity : EXAMPLES);
  const everyReason: Array<{ node_id: string; reason: string }> = [];
  const needs = needsOf(req);
  const size = snap.blockSize, nowAt = columnOffsets(size, false), idleAt = columnOffsets(size, true);
  for (let b = 0; b * size < snap.slots; b++) {
    const free = snap.blockFree(b), totals = snap.blockTotals(b);
    for (let j = 0; j < size && b * size + j < snap.slots; j++) {
      const n = snap.at(b * size + j);
      // `=== undefined`, not `!n`: truthiness of an object reads its map, a cache miss per node.
      if (n === undefined) continue;
      // Read from the columns; the node object is opened only to word an example.
      const idle = misfitIn(totals, idleAt, j, needs);
      if (idle >= 0) {
        // Sentences only for the examples kept: building 10,000 of them would cost milliseconds.
        const check = CHECKS[idle];
        if (never.count(check.resource)) never.example(check.resource, n.node_id, check.explain(req, n, true));
        if (small) everyReason.push({ node_id: n.node_id, reason: check.explain(req, n, true) });
        continue;
      }
      if (opts.exclude?.has(n.node_id)) {
        if (short.count('nodes')) short.example('nodes', n.node_id, `${n.node_id}: ${opts.excludeReason ?? 'excluded'}`);
        continue;
      }
      const now = misfitIn(free, nowAt, j, needs);
      if (now >= 0 && short.count(CHECKS[now].resource)) short.example(CHECKS[now].resource, n.node_id, CHECKS[now].explain(req, n, false));
    }
  }
  if (short.total === 0) {
    const tally = never.list();
    return {
      kind: 'infeasible', policy: policy.name, tally,
      reason: `fits no node even when idle: ${never.summary()}`,
      reasons: small ? everyReason : tally.flatMap((t) => t.examples),
    };
  }
  const tally = short.list();
  const also = never.total ? `; ${never.total.toLocaleString('en')} more can never fit it (${never.summary()})` : '';
  return { kind: 'queued', policy: policy.name, short: tally[0].filter, tally, reason: `no node has room now: ${short.summary()}${also}` };
}
