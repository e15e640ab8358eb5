/**
 * The global resource ledger: per node, its capacity and what is still free (cores, GPU
 * encoder sessions, memory, bandwidth), and every reservation by task. The leader is its only
 * writer. Placement reads a snapshot and proposes a plan; `commit` applies the plan only if it
 * was made under the ledger's term, against the node's current version, and everything it
 * names is still free. Every change is a single synchronous step, so it is atomic.
 */
import type { NodeCapacity, ResourceAllocation } from '../../shared/index.js';
import { invariantViolations } from './invariants.js';
import { idleNode, misfit, normaliseCapacity, returned, seenAt, taken } from './node.js';
import { compareReports } from './reconcile.js';
import { NodeTable } from './snapshot.js';
import type {
  AgentReport, CommitAllResult, CommitRefusal, CommitResult, Dropped, LedgerChanges, LedgerSnapshot, LedgerState,
  NodeRecord, NodeSnapshot, Plan, ReconcileResult,
} from './types.js';

type Refusal = { ok: false; reason: string; code: CommitRefusal };

/** How often a heartbeat's time is saved with the ledger. */
const SEEN_SAVE_MS = 5_000;

export class Ledger {
  private readonly table = new NodeTable();
  private readonly reservations = new Map<string, ResourceAllocation>();
  /** Task ids per node, so a node's reservations are found without scanning them all. */
  private readonly held = new Map<string, Set<string>>();
  private version = 0;
  /** Nodes changed or removed since the last `takeChanges()`. */
  private readonly dirty = new Set<string>();
  /** When each node's last_seen was last marked for saving. */
  private readonly savedSeen = new Map<string, number>();
  private readonly removed = new Set<string>();
  private skipped: Dropped[] = [];
  private members = 0;

  constructor(readonly term: number, private readonly leaseMs: number) {}

  /** Moves whenever a node joins, leaves or registers again: what is cached per node (its hardware class) holds until it moves. */
  get membership(): number { return this.members; }

  /** A frozen view for placement: O(1), and the same object until something changes. */
  snapshot(): LedgerSnapshot { return this.table.freeze(this.version, this.term); }

  hasNode(id: string): boolean { return this.table.slotOf(id) !== undefined; }
  nodeIds(): string[] { return [...this.held.keys()]; }
  reservation(taskId: string): ResourceAllocation | undefined { return this.reservations.get(taskId); }
  allReservations(): ResourceAllocation[] { return [...this.reservations.values()]; }
  reservedTaskIds(nodeId: string): string[] { return [...(this.held.get(nodeId) ?? [])]; }
  /** Reservations `fromState` found in the saved state but could not restore, and why. */
  get restoreSkipped(): readonly Dropped[] { return this.skipped; }

  /**
   * Adds a node, or refreshes its capacity keeping its reservations. Reservations that no
   * longer fit the new capacity (kept in the order they were made) are dropped and returned.
   */
  upsertNode(capacity: NodeCapacity, now: number): Dropped[] {
    const cap = normaliseCapacity(capacity);
    const id = cap.node_id;
    this.members++;
    const tasks = this.held.get(id) ?? new Set<string>();
    let n = idleNode(cap, ++this.version, now);
    const evicted: Dropped[] = [];
    for (const t of tasks) {
      const a = this.reservations.get(t)!;
      const m = misfit(n, a);
      if (m) evicted.push({ task_id: t, allocation: a, reason: `no longer fits ${id} after it re-registered: ${m.reason}` });
      else n = taken(n, a, n.version);
    }
    for (const e of evicted) {
      tasks.delete(e.task_id);
      this.reservations.delete(e.task_id);
    }
    this.held.set(id, tasks);
    this.table.set(n);
    this.changed(id);
    return evicted;
  }

  /** Records a heartbeat and extends the leases of the node's reservations. */
  touch(nodeId: string, now: number): boolean {
    const n = this.table.get(nodeId);
    if (!n) return false;
    // Saved every SEEN_SAVE_MS, not on every heartbeat: enough for `prescient nodes` to tell a
    // silent node, without a store write per node per heartbeat.
    const saved = this.savedSeen.get(nodeId) ?? 0;
    if (now - saved >= SEEN_SAVE_MS) { this.savedSeen.set(nodeId, now); this.changed(nodeId); }
    this.table.set(seenAt(n, now));
    for (const t of this.held.get(nodeId)!) this.reservations.get(t)!.lease_expires_at = now + this.leaseMs;
    return true;
  }

  /** Drops a node; returns the reservations it held (their tasks must be re-queued). */
  removeNode(nodeId: string): Array<{ task_id: string; allocation: ResourceAllocation }> {
    const tasks = this.held.get(nodeId);
    this.version++;
    this.members++;
    if (!tasks) return [];
    const lost = [...tasks].map((task_id) => ({ task_id, allocation: this.reservations.get(task_id)! }));
    for (const { task_id } of lost) this.reservations.delete(task_id);
    this.held.delete(nodeId);
    this.table.delete(nodeId);
    this.dirty.delete(nodeId);
    this.removed.add(nodeId);
    return lost;
  }

  /** Applies a plan atomically, or refuses it saying why. */
  commit(plan: Plan, now: number): CommitResult {
    const n = this.table.get(plan.node_id);
    const refused = this.refusal(plan, n, n);
    return refused ?? { ok: true, allocation: this.apply(plan, n!, now) };
  }

  /**
   * Applies several plans as one step (the renditions of one group): all of them, or none.
   * Plans for the same node are checked one after the other, against the node's version when
   * the plans were made.
   */
  commitAll(plans: readonly Plan[], now: number): CommitAllResult {
    const after = new Map<string, NodeSnapshot>();
    const tasks = new Set<string>();
    for (const p of plans) {
      if (tasks.has(p.task_id)) return { ok: false, code: 'invalid', reason: `task ${p.task_id} appears twice among the plans`, task_id: p.task_id };
      tasks.add(p.task_id);
      const base = this.table.get(p.node_id);
      const refused = this.refusal(p, after.get(p.node_id) ?? base, base);
      if (refused) return { ...refused, task_id: p.task_id };
      after.set(p.node_id, taken(after.get(p.node_id) ?? base!, p, base!.version));
    }
    return { ok: true, allocations: plans.map((p) => this.apply(p, this.table.get(p.node_id)!, now)) };
  }

  /**
   * Re-enters a reservation an agent reports it is still running under (after a failover).
   * Refused if it conflicts with what is already reserved.
   */
  adopt(taskId: string, allocation: ResourceAllocation, now: number): CommitResult {
    const existing = this.reservations.get(taskId);
    if (existing) return { ok: true, allocation: existing };
    // Only the resources: the reported term and lease belong to whoever made the reservation.
    const { node_id, core_ids, gpu_ids, memory_gb, bandwidth_mbps } = allocation;
    return this.commit({ task_id: taskId, node_id, core_ids, gpu_ids, memory_gb, bandwidth_mbps }, now);
  }

  /** Frees a task's reservation; false if it held none (so nothing is released twice). */
  release(taskId: string): boolean {
    const a = this.reservations.get(taskId);
    if (!a) return false;
    this.reservations.delete(taskId);
    this.held.get(a.node_id)?.delete(taskId);
    const n = this.table.get(a.node_id);
    this.version++;
    if (n) {
      this.table.set(returned(n, a, this.version));
      this.changed(a.node_id);
    }
    return true;
  }

  /** Drops every reservation whose lease ran out before `now`; returns them. */
  expire(now: number): Dropped[] {
    const out: Dropped[] = [];
    for (const [task_id, allocation] of this.reservations) {
      if (allocation.lease_expires_at < now) out.push({ task_id, allocation, reason: `its lease on ${allocation.node_id} ran out ${now - allocation.lease_expires_at} ms ago` });
    }
    for (const d of out) this.release(d.task_id);
    return out;
  }

  /** Every broken invariant, in words; empty when the ledger is sound. O(reservations + nodes). */
  checkInvariants(isLive?: (taskId: string) => boolean): string[] {
    const out = invariantViolations({ term: this.term, nodes: this.table.all(), reservations: this.reservations, held: this.held }, isLive);
    const snap = this.snapshot();
    if (snap.count !== this.held.size) out.push(`the snapshot has ${snap.count} nodes, the ledger ${this.held.size}`);
    for (const id of this.held.keys()) if (snap.node(id) !== this.table.get(id)) out.push(`the snapshot's ${id} is not the ledger's`);
    return out;
  }

  // ── persistence ──────────────────────────────────────────────────────────────────────

  /** The whole ledger as plain data (deep copies). */
  toState(): LedgerState {
    return { format: 1, term: this.term, version: this.version, nodes: [...this.table.all()].map((n) => this.record(n)) };
  }

  /** Whether anything changed since the last `takeChanges()`. */
  hasChanges(): boolean { return this.dirty.size > 0 || this.removed.size > 0; }

  /** Nodes changed and removed since the previous call: what a store must write. */
  takeChanges(): LedgerChanges {
    const nodes = [...this.dirty].map((id) => this.record(this.table.get(id)!));
    const removed = [...this.removed];
    this.dirty.clear();
    this.removed.clear();
    return { term: this.term, version: this.version, nodes, removed };
  }

  /**
   * Puts back changes a store failed to write, so that the next `takeChanges()` lists them
   * again (with the nodes as they are by then).
   */
  returnChanges(changes: LedgerChanges): void {
    for (const n of changes.nodes) if (this.held.has(n.capacity.node_id)) this.dirty.add(n.capacity.node_id);
    for (const id of changes.removed) if (!this.held.has(id)) this.removed.add(id);
  }

  /**
   * Rebuilds a ledger from a saved state for the leader of `newTerm`. Restored reservations
   * keep the term that made them. With `now`, every node counts as seen and every lease starts
   * again at `now`: a new leader gives agents one lease to report before judging them. Every
   * node counts as changed, so the new leader's first save rewrites (claims) all of them.
   * Reservations that clash in the saved state are skipped and listed in `restoreSkipped`.
   */
  static fromState(state: LedgerState, newTerm: number, leaseMs: number, now?: number): Ledger {
    if (state.format !== 1) throw new Error(`unknown ledger state format ${String(state.format)}`);
    const l = new Ledger(newTerm, leaseMs);
    l.version = state.version;
    for (const r of state.nodes) {
      const cap = normaliseCapacity(r.capacity);
      const id = cap.node_id;
      if (l.held.has(id)) {
        for (const x of r.reservations) l.skipped.push({ ...x, reason: `node ${id} appears twice in the saved state` });
        continue;
      }
      let n = idleNode(cap, r.version, now ?? r.last_seen);
      l.version = Math.max(l.version, r.version);
      const tasks = new Set<string>();
      for (const { task_id, allocation } of r.reservations) {
        const other = l.reservations.get(task_id)?.node_id;
        const m = other !== undefined ? { reason: `task ${task_id} is also reserved on ${other}` }
          : allocation.node_id !== id ? { reason: `saved under ${id} but names node ${allocation.node_id}` }
            : misfit(n, allocation);
        if (m) {
          l.skipped.push({ task_id, allocation, reason: m.reason });
          continue;
        }
        n = taken(n, allocation, n.version);
        l.reservations.set(task_id, { ...allocation, core_ids: [...allocation.core_ids], gpu_ids: [...allocation.gpu_ids], lease_expires_at: now !== undefined ? now + leaseMs : allocation.lease_expires_at });
        tasks.add(task_id);
      }
      l.held.set(id, tasks);
      l.table.set(n);
      l.dirty.add(id);
    }
    return l;
  }

  /**
   * What a new leader does with its agents' reports: adopts reported reservations of live
   * tasks, corrects reservations that differ from what runs, drops reservations of tasks that
   * are not live, and says what it did with each task and why. Nodes that did not report keep
   * their reservations; their leases decide.
   */
  reconcile(reports: readonly AgentReport[], isLive: (taskId: string) => boolean, now: number = Date.now()): ReconcileResult {
    const d = compareReports(this.reservations, reports, isLive);
    const out: ReconcileResult = { confirmed: [], adopted: [], replaced: [], dropped: [], ignored: d.ignore, refused: [], unreported: d.unreported };
    for (const e of d.drop) if (this.release(e.task_id)) out.dropped.push(e);
    for (const e of d.confirm) {
      this.reservations.get(e.task_id)!.lease_expires_at = now + this.leaseMs;
      out.confirmed.push(e);
    }
    // Release every replaced reservation before reserving anything, so replacements and
    // adoptions see all the room the reports free up.
    for (const e of d.replace) this.release(e.task_id);
    for (const [bucket, entries] of [['replaced', d.replace], ['adopted', d.adopt]] as const) {
      for (const e of entries) {
        const c = this.adopt(e.task_id, e.allocation, now);
        if (c.ok) out[bucket].push({ task_id: e.task_id, node_id: e.node_id, reason: e.reason });
        else out.refused.push({ task_id: e.task_id, node_id: e.node_id, reason: `${e.reason}; cannot reserve it: ${c.reason}${bucket === 'replaced' ? ' (its old reservation was released)' : ''}` });
      }
    }
    return out;
  }

  // ── internals ────────────────────────────────────────────────────────────────────────

  /** Why `plan` cannot be applied to `n` (the node as earlier plans of the same step left it), whose ledger version is `base`'s. */
  private refusal(plan: Plan, n: NodeSnapshot | undefined, base: NodeSnapshot | undefined): Refusal | undefined {
    if (plan.term !== undefined && plan.term !== this.term) return { ok: false, code: 'term', reason: `the plan was made under term ${plan.term}; the ledger is at term ${this.term}` };
    if (!n || !base) return { ok: false, code: 'unknown-node', reason: `node ${plan.node_id} is not in the ledger` };
    if (this.reservations.has(plan.task_id)) return { ok: false, code: 'duplicate', reason: `task ${plan.task_id} already holds a reservation` };
    const m = misfit(n, plan);
    if (plan.node_version !== undefined && plan.node_version !== base.version) {
      return { ok: false, code: 'stale', reason: `node ${plan.node_id} changed since the plan was made (version ${plan.node_version}, now ${base.version})${m ? `: ${m.reason}` : ''}` };
    }
    return m && { ok: false, ...m };
  }

  private apply(plan: Plan, n: NodeSnapshot, now: number): ResourceAllocation {
    const allocation: ResourceAllocation = {
      node_id: plan.node_id, core_ids: [...plan.core_ids], gpu_ids: [...plan.gpu_ids],
      memory_gb: plan.memory_gb, bandwidth_mbps: plan.bandwidth_mbps,
      lease_expires_at: now + this.leaseMs, term: this.term,
    };
    this.table.set(taken(n, allocation, ++this.version));
    this.reservations.set(plan.task_id, allocation);
    this.held.get(plan.node_id)!.add(plan.task_id);
    this.changed(plan.node_id);
    return allocation;
  }

  private changed(nodeId: string): void {
    this.dirty.add(nodeId);
    this.removed.delete(nodeId);
  }

  private record(n: NodeSnapshot): NodeRecord {
    const cap = n.capacity;
    return {
      capacity: { ...cap, core_ids: [...cap.core_ids], gpus: cap.gpus.map((g) => ({ ...g })) },
      last_seen: n.last_seen, version: n.version,
      reservations: [...this.held.get(n.node_id)!].map((task_id) => {
        const a = this.reservations.get(task_id)!;
        return { task_id, allocation: { ...a, core_ids: [...a.core_ids], gpu_ids: [...a.gpu_ids] } };
      }),
    };
  }
}
