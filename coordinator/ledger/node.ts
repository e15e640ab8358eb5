/**
 * Pure functions on one node's immutable snapshot: build it from a capacity, take an
 * allocation out of it, give one back, and say why a plan does not fit it. The ledger never
 * edits a NodeSnapshot; it replaces it with the one these functions return.
 *
 * Memory and bandwidth are counted in integer millionths (of a GB, of a Mbit/s), so that
 * taking and returning the same amounts a million times leaves exactly what was there:
 * floating-point sums would drift, and "free + reserved = capacity" could not be checked exactly.
 */
import type { GpuCapacity, NodeCapacity, ResourceAllocation } from '../../shared/index.js';
import { DEFAULT_GPU_SESSIONS, type GpuSlots, type NodeSnapshot } from './types.js';

const UNIT = 1e6;
/** An amount in integer millionths; exact below 2^53 / 1e6 (9 PB), far beyond any node. */
export const units = (x: number): number => Math.round(x * UNIT);
const fromUnits = (u: number): number => u / UNIT;

/**
 * Sessions a GPU runs at once. An agent that discovered its GPUs says so with a `profile`, and
 * its figure is taken as it is: 0 there means the GPU has no NVENC (an H100, an A100), so no GPU
 * task is placed on it. From an older agent (no profile) 0 is protobuf's "not said", and the
 * GPU gets the default.
 */
export function sessionsOf(g: GpuCapacity): number {
  const reported = Number.isFinite(g.sessions) ? Math.max(0, Math.floor(g.sessions!)) : 0;
  if (g.profile) return reported;
  return reported > 0 ? reported : DEFAULT_GPU_SESSIONS;
}

/** A private copy of a capacity with core ids and GPUs sorted and de-duplicated. */
export function normaliseCapacity(c: NodeCapacity): NodeCapacity {
  const gpus = [...new Map(c.gpus.map((g) => [g.id, { ...g }])).values()].sort((a, b) => a.id - b.id);
  return { ...c, core_ids: [...new Set(c.core_ids)].sort((a, b) => a - b), gpus };
}

/** Builds a node snapshot; every snapshot has this one shape, so reading them stays monomorphic. */
function make(
  capacity: NodeCapacity, version: number, free_core_ids: readonly number[], gpus: readonly GpuSlots[],
  free_memory_gb: number, free_bandwidth_mbps: number, last_seen: number,
): NodeSnapshot {
  const free_gpu_ids: number[] = [];
  let free_gpu_sessions = 0, gpu_sessions = 0;
  for (const g of gpus) {
    if (g.free_sessions > 0) free_gpu_ids.push(g.id);
    free_gpu_sessions += g.free_sessions;
    gpu_sessions += g.sessions;
  }
  return {
    node_id: capacity.node_id, version, capacity, free_core_ids, free_gpu_ids, gpus, free_gpu_sessions, gpu_sessions,
    free_memory_gb, free_bandwidth_mbps, last_seen,
  };
}

/** The node with nothing reserved. `capacity` must be normalised. */
export function idleNode(capacity: NodeCapacity, version: number, lastSeen: number): NodeSnapshot {
  const gpus = capacity.gpus.map((g) => ({ id: g.id, sessions: sessionsOf(g), free_sessions: sessionsOf(g) }));
  return make(capacity, version, capacity.core_ids, gpus, fromUnits(units(capacity.memory_gb)), fromUnits(units(capacity.bandwidth_mbps)), lastSeen);
}

/** The same node seen at another time (a heartbeat): resources and version unchanged. */
export function seenAt(n: NodeSnapshot, lastSeen: number): NodeSnapshot {
  return make(n.capacity, n.version, n.free_core_ids, n.gpus, n.free_memory_gb, n.free_bandwidth_mbps, lastSeen);
}

type Amounts = Pick<ResourceAllocation, 'core_ids' | 'gpu_ids' | 'memory_gb' | 'bandwidth_mbps'>;

/** The node after `a` is reserved on it. Call only when `misfit(n, a)` found nothing. */
export function taken(n: NodeSnapshot, a: Amounts, version: number): NodeSnapshot {
  const cores = n.free_core_ids.filter((c) => !a.core_ids.includes(c));
  const gpus = a.gpu_ids.length ? n.gpus.map((g) => (a.gpu_ids.includes(g.id) ? { id: g.id, sessions: g.sessions, free_sessions: g.free_sessions - 1 } : g)) : n.gpus;
  return make(n.capacity, version, cores, gpus,
    fromUnits(units(n.free_memory_gb) - units(a.memory_gb)), fromUnits(units(n.free_bandwidth_mbps) - units(a.bandwidth_mbps)), n.last_seen);
}

/** The node after the reservation `a` is released. */
export function returned(n: NodeSnapshot, a: Amounts, version: number): NodeSnapshot {
  const cores = a.core_ids.length ? [...n.free_core_ids, ...a.core_ids].sort((x, y) => x - y) : n.free_core_ids;
  const gpus = a.gpu_ids.length ? n.gpus.map((g) => (a.gpu_ids.includes(g.id) ? { id: g.id, sessions: g.sessions, free_sessions: g.free_sessions + 1 } : g)) : n.gpus;
  return make(n.capacity, version, cores, gpus,
    fromUnits(units(n.free_memory_gb) + units(a.memory_gb)), fromUnits(units(n.free_bandwidth_mbps) + units(a.bandwidth_mbps)), n.last_seen);
}

/** Whether an id occurs twice; lists are a few ids long, so no Set is allocated. */
function repeats(ids: readonly number[]): boolean {
  for (let i = 1; i < ids.length; i++) for (let j = 0; j < i; j++) if (ids[i] === ids[j]) return true;
  return false;
}

const fmt = (x: number, digits: number) => (Number.isInteger(x) ? String(x) : x.toFixed(digits));

/** Why `a` cannot be reserved on `n` now, or undefined when it can. */
export function misfit(n: NodeSnapshot, a: Amounts): { code: 'conflict' | 'invalid'; reason: string } | undefined {
  const id = n.node_id;
  for (const [what, x] of [['memory', a.memory_gb], ['bandwidth', a.bandwidth_mbps]] as const) {
    if (!Number.isFinite(x) || x < 0) return { code: 'invalid', reason: `${what} ${x} is not a non-negative number` };
  }
  if (repeats(a.core_ids)) return { code: 'invalid', reason: `a core is named twice in [${a.core_ids.join(',')}]` };
  if (repeats(a.gpu_ids)) return { code: 'invalid', reason: `a GPU is named twice in [${a.gpu_ids.join(',')}]; a task takes one session per GPU` };
  for (const c of a.core_ids) {
    if (!n.free_core_ids.includes(c)) {
      return { code: 'conflict', reason: n.capacity.core_ids.includes(c) ? `core ${c} on ${id} is not free` : `core ${c} is not on ${id}` };
    }
  }
  for (const gid of a.gpu_ids) {
    const g = n.gpus.find((x) => x.id === gid);
    if (!g) return { code: 'conflict', reason: `gpu ${gid} is not on ${id}` };
    if (g.sessions === 0) return { code: 'conflict', reason: `gpu ${gid} on ${id} has no encoder (NVENC): its agent reports 0 sessions` };
    if (g.free_sessions < 1) return { code: 'conflict', reason: `gpu ${gid} on ${id} has no free encoder session (${g.sessions} of ${g.sessions} in use)` };
  }
  if (units(a.memory_gb) > units(n.free_memory_gb)) return { code: 'conflict', reason: `memory on ${id}: ${fmt(a.memory_gb, 2)} GB wanted, ${fmt(n.free_memory_gb, 2)} GB free` };
  if (units(a.bandwidth_mbps) > units(n.free_bandwidth_mbps)) return { code: 'conflict', reason: `bandwidth on ${id}: ${fmt(a.bandwidth_mbps, 1)} Mbps wanted, ${fmt(n.free_bandwidth_mbps, 1)} free` };
  return undefined;
}

/** Whether two allocations hold the same resources on the same node (leases and terms aside). */
export function sameResources(a: ResourceAllocation, b: ResourceAllocation): boolean {
  const sorted = (x: number[]) => [...x].sort((p, q) => p - q).join(',');
  return a.node_id === b.node_id && sorted(a.core_ids) === sorted(b.core_ids) && sorted(a.gpu_ids) === sorted(b.gpu_ids)
    && units(a.memory_gb) === units(b.memory_gb) && units(a.bandwidth_mbps) === units(b.bandwidth_mbps);
}

/** `n` with `a` taken out, as a what-if (same version): for placing several requests on one node. */
export function withReserved(n: NodeSnapshot, a: Amounts): NodeSnapshot {
  return taken(n, a, n.version);
}

/** `n` as it would be with nothing reserved: for asking whether a request could ever fit it. */
export function idleView(n: NodeSnapshot): NodeSnapshot {
  return idleNode(n.capacity, n.version, n.last_seen);
}
