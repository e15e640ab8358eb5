/**
 * The global resource ledger: per node, its capacity and what is still free, and every
 * reservation by task. The leader is its only writer. Placement policies read a frozen
 * snapshot and propose a plan; `commit` applies a plan only if the resources it names are
 * still free and the plan was made under the ledger's current term.
 */
import type { NodeCapacity, ResourceAllocation } from '../../shared/index.js';

export interface NodeSnapshot {
  readonly capacity: Readonly<NodeCapacity>;
  readonly free_core_ids: readonly number[];
  readonly free_gpu_ids: readonly number[];
  readonly free_memory_gb: number;
  readonly free_bandwidth_mbps: number;
  readonly last_seen: number;
}
export interface LedgerSnapshot {
  readonly version: number;
  readonly term: number;
  readonly nodes: readonly NodeSnapshot[];
}

/** A proposed reservation, as returned by a placement policy. */
export interface Plan {
  task_id: string;
  node_id: string;
  core_ids: number[];
  gpu_ids: number[];
  memory_gb: number;
  bandwidth_mbps: number;
}

export type CommitResult = { ok: true; allocation: ResourceAllocation } | { ok: false; reason: string };

interface NodeState {
  capacity: NodeCapacity;
  freeCores: Set<number>;
  freeGpus: Set<number>;
  freeMemory: number;
  freeBandwidth: number;
  lastSeen: number;
}

// Floating-point sums of memory and bandwidth drift; compare with a small tolerance.
const EPS = 1e-9;

export class Ledger {
  private readonly nodes = new Map<string, NodeState>();
  private readonly reservations = new Map<string, ResourceAllocation>();
  private version = 0;

  constructor(readonly term: number, private readonly leaseMs: number) {}

  snapshot(): LedgerSnapshot {
    return {
      version: this.version,
      term: this.term,
      nodes: [...this.nodes.values()].map((n) => ({
        capacity: n.capacity,
        free_core_ids: [...n.freeCores].sort((a, b) => a - b),
        free_gpu_ids: [...n.freeGpus].sort((a, b) => a - b),
        free_memory_gb: n.freeMemory,
        free_bandwidth_mbps: n.freeBandwidth,
        last_seen: n.lastSeen,
      })),
    };
  }

  hasNode(id: string): boolean { return this.nodes.has(id); }
  nodeIds(): string[] { return [...this.nodes.keys()]; }
  reservation(taskId: string): ResourceAllocation | undefined { return this.reservations.get(taskId); }
  allReservations(): ResourceAllocation[] { return [...this.reservations.values()]; }
  reservedTaskIds(nodeId: string): string[] {
    return [...this.reservations.entries()].filter(([, a]) => a.node_id === nodeId).map(([id]) => id);
  }

  /** Adds a node, or refreshes its capacity keeping its reservations. */
  upsertNode(capacity: NodeCapacity, now: number): void {
    const held = [...this.reservations.values()].filter((a) => a.node_id === capacity.node_id);
    const state: NodeState = {
      capacity,
      freeCores: new Set(capacity.core_ids),
      freeGpus: new Set(capacity.gpus.map((g) => g.id)),
      freeMemory: capacity.memory_gb,
      freeBandwidth: capacity.bandwidth_mbps,
      lastSeen: now,
    };
    for (const a of held) take(state, a);
    this.nodes.set(capacity.node_id, state);
    this.version++;
  }

  /** Records a heartbeat and extends the leases of the node's reservations. */
  touch(nodeId: string, now: number): boolean {
    const n = this.nodes.get(nodeId);
    if (!n) return false;
    n.lastSeen = now;
    for (const a of this.reservations.values()) if (a.node_id === nodeId) a.lease_expires_at = now + this.leaseMs;
    return true;
  }

  /** Drops a node; returns the reservations it held (their tasks must be re-queued). */
  removeNode(nodeId: string): Array<{ task_id: string; allocation: ResourceAllocation }> {
    const lost = [...this.reservations.entries()].filter(([, a]) => a.node_id === nodeId);
    for (const [id] of lost) this.reservations.delete(id);
    this.nodes.delete(nodeId);
    this.version++;
    return lost.map(([task_id, allocation]) => ({ task_id, allocation }));
  }

  /** Applies a plan atomically, or refuses it saying which resource is no longer free. */
  commit(plan: Plan, now: number): CommitResult {
    const n = this.nodes.get(plan.node_id);
    if (!n) return { ok: false, reason: `node ${plan.node_id} is not in the ledger` };
    if (this.reservations.has(plan.task_id)) return { ok: false, reason: `task ${plan.task_id} already holds a reservation` };
    const busyCore = plan.core_ids.find((c) => !n.freeCores.has(c));
    if (busyCore !== undefined) return { ok: false, reason: `core ${busyCore} on ${plan.node_id} is not free` };
    const busyGpu = plan.gpu_ids.find((g) => !n.freeGpus.has(g));
    if (busyGpu !== undefined) return { ok: false, reason: `gpu ${busyGpu} on ${plan.node_id} is not free` };
    if (plan.memory_gb > n.freeMemory + EPS) return { ok: false, reason: `memory on ${plan.node_id}: ${plan.memory_gb.toFixed(2)} GB wanted, ${n.freeMemory.toFixed(2)} GB free` };
    if (plan.bandwidth_mbps > n.freeBandwidth + EPS) return { ok: false, reason: `bandwidth on ${plan.node_id}: ${plan.bandwidth_mbps.toFixed(1)} Mbps wanted, ${n.freeBandwidth.toFixed(1)} free` };
    const allocation: ResourceAllocation = {
      node_id: plan.node_id, core_ids: [...plan.core_ids], gpu_ids: [...plan.gpu_ids],
      memory_gb: plan.memory_gb, bandwidth_mbps: plan.bandwidth_mbps,
      lease_expires_at: now + this.leaseMs, term: this.term,
    };
    take(n, allocation);
    this.reservations.set(plan.task_id, allocation);
    this.version++;
    return { ok: true, allocation };
  }

  /**
   * Re-enters a reservation an agent reports it is still running under (after a failover).
   * Refused if it conflicts with what is already reserved.
   */
  adopt(taskId: string, allocation: ResourceAllocation, now: number): CommitResult {
    const existing = this.reservations.get(taskId);
    if (existing) return { ok: true, allocation: existing };
    return this.commit({ task_id: taskId, ...allocation }, now);
  }

  /** Frees a task's reservation; false if it held none (so nothing is released twice). */
  release(taskId: string): boolean {
    const a = this.reservations.get(taskId);
    if (!a) return false;
    this.reservations.delete(taskId);
    const n = this.nodes.get(a.node_id);
    if (n) {
      for (const c of a.core_ids) n.freeCores.add(c);
      for (const g of a.gpu_ids) n.freeGpus.add(g);
      n.freeMemory = Math.min(n.capacity.memory_gb, n.freeMemory + a.memory_gb);
      n.freeBandwidth = Math.min(n.capacity.bandwidth_mbps, n.freeBandwidth + a.bandwidth_mbps);
    }
    this.version++;
    return true;
  }
}

function take(n: NodeState, a: ResourceAllocation): void {
  for (const c of a.core_ids) n.freeCores.delete(c);
  for (const g of a.gpu_ids) n.freeGpus.delete(g);
  n.freeMemory -= a.memory_gb;
  n.freeBandwidth -= a.bandwidth_mbps;
}
