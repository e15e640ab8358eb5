/**
 * The ledger's invariants, checked from scratch: each violation comes back as a sentence. The
 * check trusts nothing the ledger keeps incrementally (free lists, the per-node index); it
 * recounts every node from the reservations themselves.
 */
import type { ResourceAllocation } from '../../shared/index.js';
import { sessionsOf, units } from './node.js';
import type { NodeSnapshot } from './types.js';

export interface LedgerContents {
  term: number;
  nodes: Iterable<NodeSnapshot>;
  reservations: ReadonlyMap<string, ResourceAllocation>;
  /** The ledger's index of task ids per node. */
  held: ReadonlyMap<string, ReadonlySet<string>>;
}

const gb = (u: number) => +(u / 1e6).toFixed(6);

export function invariantViolations(l: LedgerContents, isLive?: (taskId: string) => boolean): string[] {
  const out: string[] = [];
  const nodes = [...l.nodes];
  const byNode = new Map<string, Array<[string, ResourceAllocation]>>();
  const known = new Set<string>();
  for (const n of nodes) {
    known.add(n.node_id);
    byNode.set(n.node_id, []);
  }
  for (const [task, a] of l.reservations) {
    if (!known.has(a.node_id)) out.push(`task ${task} holds a reservation on ${a.node_id}, which is not in the ledger`);
    else byNode.get(a.node_id)!.push([task, a]);
    if (isLive && !isLive(task)) out.push(`task ${task} holds a reservation on ${a.node_id} but is not live`);
    if (a.term > l.term) out.push(`task ${task}'s reservation was made under term ${a.term}, later than the ledger's term ${l.term}`);
    if (!l.held.get(a.node_id)?.has(task)) out.push(`task ${task}'s reservation on ${a.node_id} is missing from that node's index`);
  }
  for (const [node, tasks] of l.held) {
    if (!known.has(node)) out.push(`the index lists node ${node}, which is not in the ledger`);
    for (const t of tasks) if (l.reservations.get(t)?.node_id !== node) out.push(`the index lists task ${t} under ${node}, but it holds no reservation there`);
  }
  for (const n of nodes) {
    if (!l.held.has(n.node_id)) out.push(`node ${n.node_id} has no entry in the index`);
    checkNode(n, byNode.get(n.node_id)!, out);
  }
  return out;
}

function checkNode(n: NodeSnapshot, mine: Array<[string, ResourceAllocation]>, out: string[]): void {
  const id = n.node_id;
  // Cores: each held by at most one task, never both free and held, free + held = capacity.
  const cap = new Set(n.capacity.core_ids);
  const free = new Set(n.free_core_ids);
  if (free.size !== n.free_core_ids.length) out.push(`${id} lists a free core twice: [${n.free_core_ids.join(',')}]`);
  for (const c of free) if (!cap.has(c)) out.push(`${id} lists core ${c} as free, but has no such core`);
  const owner = new Map<number, string>();
  for (const [task, a] of mine) {
    for (const c of a.core_ids) {
      if (!cap.has(c)) out.push(`task ${task} holds core ${c}, which ${id} does not have`);
      const other = owner.get(c);
      if (other !== undefined) out.push(`core ${c} on ${id} is held by both ${other} and ${task}`);
      if (free.has(c)) out.push(`core ${c} on ${id} is both free and held by ${task}`);
      owner.set(c, task);
    }
  }
  if (free.size + owner.size !== cap.size) out.push(`cores on ${id}: ${free.size} free + ${owner.size} held ≠ ${cap.size} in total`);

  // GPU sessions: never more in use than the GPU runs, free + in use = sessions.
  const capGpus = new Map(n.capacity.gpus.map((g) => [g.id, sessionsOf(g)]));
  const inUse = new Map<number, number>();
  for (const [task, a] of mine) {
    for (const g of a.gpu_ids) {
      if (!capGpus.has(g)) out.push(`task ${task} holds a session on GPU ${g}, which ${id} does not have`);
      inUse.set(g, (inUse.get(g) ?? 0) + 1);
    }
  }
  let freeSessions = 0;
  for (const g of n.gpus) {
    const used = inUse.get(g.id) ?? 0;
    freeSessions += g.free_sessions;
    if (capGpus.get(g.id) !== g.sessions) out.push(`GPU ${g.id} on ${id} counts ${g.sessions} sessions, its capacity says ${capGpus.get(g.id)}`);
    if (used > g.sessions) out.push(`GPU ${g.id} on ${id} is over-committed: ${used} sessions held of ${g.sessions}`);
    if (g.free_sessions < 0) out.push(`GPU ${g.id} on ${id} has ${g.free_sessions} free sessions`);
    if (g.free_sessions + used !== g.sessions) out.push(`GPU ${g.id} on ${id}: ${g.free_sessions} free + ${used} held ≠ ${g.sessions} sessions`);
    if ((g.free_sessions > 0) !== n.free_gpu_ids.includes(g.id)) out.push(`GPU ${g.id} on ${id} is ${g.free_sessions > 0 ? 'missing from' : 'wrongly in'} the free GPU list`);
  }
  if (n.gpus.length !== capGpus.size) out.push(`${id} tracks ${n.gpus.length} GPUs, its capacity has ${capGpus.size}`);
  const sessions = n.gpus.reduce((s, g) => s + g.sessions, 0);
  if (sessions !== n.gpu_sessions) out.push(`${id} counts ${n.gpu_sessions} GPU sessions, its GPUs add up to ${sessions}`);
  if (freeSessions !== n.free_gpu_sessions) out.push(`${id} counts ${n.free_gpu_sessions} free GPU sessions, its GPUs add up to ${freeSessions}`);

  // Memory and bandwidth, in exact units.
  for (const [what, unit, capOf, freeOf, heldOf] of [
    ['memory', 'GB', n.capacity.memory_gb, n.free_memory_gb, (a: ResourceAllocation) => a.memory_gb],
    ['bandwidth', 'Mbps', n.capacity.bandwidth_mbps, n.free_bandwidth_mbps, (a: ResourceAllocation) => a.bandwidth_mbps],
  ] as const) {
    const c = units(capOf), f = units(freeOf);
    const h = mine.reduce((s, [, a]) => s + units(heldOf(a)), 0);
    if (h > c) out.push(`${what} on ${id} is over-committed: ${gb(h)} ${unit} held of ${gb(c)} ${unit}`);
    if (f < 0) out.push(`${what} on ${id} has ${gb(f)} ${unit} free`);
    if (f + h !== c) out.push(`${what} on ${id}: ${gb(f)} free + ${gb(h)} held ≠ ${gb(c)} ${unit} in total`);
  }
}
