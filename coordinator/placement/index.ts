/**
 * Placement: small pure feasibility filters, then a scorer, over a read-only ledger snapshot
 * (the shape of Nomad's feasibility/rank iterators). The result always says why.
 */
import type { LedgerSnapshot, NodeSnapshot, Plan } from '../ledger/index.js';

/** What one task asks for. */
export interface PlacementRequest {
  task_id: string;
  cores: number;
  gpus: number;
  memory_gb: number;
  bandwidth_mbps: number;
}

/** Resources a request can be short of. */
export type Resource = 'cores' | 'gpus' | 'memory' | 'bandwidth' | 'nodes';

/**
 * - `placed`: a plan the leader can commit.
 * - `queued`: it would fit an empty node of the fleet, but none has room now.
 * - `infeasible`: no live node could run it even when idle; `reasons` has one entry per node.
 */
export type PlacementResult =
  | { kind: 'placed'; plan: Plan; score: number }
  | { kind: 'queued'; reason: string; short: Resource }
  | { kind: 'infeasible'; reason: string; reasons: Array<{ node_id: string; reason: string }> };

interface Verdict { ok: boolean; short?: Resource; reason?: string }
type Filter = (req: PlacementRequest, n: NodeSnapshot, whenIdle: boolean) => Verdict;

const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(2));

/** One check per resource; `whenIdle` asks whether the node could ever fit the request. */
export const FILTERS: Record<Exclude<Resource, 'nodes'>, Filter> = {
  cores: (r, n, idle) => {
    const have = idle ? n.capacity.core_ids.length : n.free_core_ids.length;
    return have >= r.cores ? { ok: true } : { ok: false, short: 'cores', reason: `${n.capacity.node_id}: needs ${r.cores} cores, ${have} ${idle ? 'in total' : 'free'}` };
  },
  gpus: (r, n, idle) => {
    const have = idle ? n.capacity.gpus.length : n.free_gpu_ids.length;
    return have >= r.gpus ? { ok: true } : { ok: false, short: 'gpus', reason: `${n.capacity.node_id}: needs ${r.gpus} GPUs, ${have} ${idle ? 'in total' : 'free'}` };
  },
  memory: (r, n, idle) => {
    const have = idle ? n.capacity.memory_gb : n.free_memory_gb;
    return have + 1e-9 >= r.memory_gb ? { ok: true } : { ok: false, short: 'memory', reason: `${n.capacity.node_id}: needs ${fmt(r.memory_gb)} GB memory, ${fmt(have)} GB ${idle ? 'in total' : 'free'}` };
  },
  bandwidth: (r, n, idle) => {
    const have = idle ? n.capacity.bandwidth_mbps : n.free_bandwidth_mbps;
    return have + 1e-9 >= r.bandwidth_mbps ? { ok: true } : { ok: false, short: 'bandwidth', reason: `${n.capacity.node_id}: needs ${fmt(r.bandwidth_mbps)} Mbps, ${fmt(have)} Mbps ${idle ? 'in total' : 'free'}` };
  },
};

function check(req: PlacementRequest, n: NodeSnapshot, idle: boolean): Verdict {
  for (const f of Object.values(FILTERS)) {
    const v = f(req, n, idle);
    if (!v.ok) return v;
  }
  return { ok: true };
}

/** Best fit: prefer the node the request fills most, so large holes stay open for large jobs. */
export function bestFitScore(req: PlacementRequest, n: NodeSnapshot): number {
  const shares = [
    req.cores / Math.max(1, n.free_core_ids.length),
    req.memory_gb / Math.max(1e-9, n.free_memory_gb),
    req.bandwidth_mbps / Math.max(1e-9, n.free_bandwidth_mbps),
  ];
  return shares.reduce((a, b) => a + b, 0) / shares.length;
}

/** Places one request on the snapshot. Ties go to the lowest node id, so results replay exactly. */
export function place(req: PlacementRequest, snap: LedgerSnapshot, score = bestFitScore): PlacementResult {
  if (snap.nodes.length === 0) return { kind: 'queued', reason: 'no nodes have registered yet', short: 'nodes' };
  let best: { n: NodeSnapshot; score: number } | undefined;
  let firstShort: Verdict | undefined;
  const never: Array<{ node_id: string; reason: string }> = [];
  for (const n of snap.nodes) {
    const idle = check(req, n, true);
    if (!idle.ok) { never.push({ node_id: n.capacity.node_id, reason: idle.reason! }); continue; }
    const now = check(req, n, false);
    if (!now.ok) { firstShort ??= now; continue; }
    const s = score(req, n);
    if (!best || s > best.score || (s === best.score && n.capacity.node_id < best.n.capacity.node_id)) best = { n, score: s };
  }
  if (best) {
    const n = best.n;
    return {
      kind: 'placed', score: best.score,
      plan: {
        task_id: req.task_id, node_id: n.capacity.node_id,
        core_ids: n.free_core_ids.slice(0, req.cores), gpu_ids: n.free_gpu_ids.slice(0, req.gpus),
        memory_gb: req.memory_gb, bandwidth_mbps: req.bandwidth_mbps,
      },
    };
  }
  if (never.length === snap.nodes.length) {
    return { kind: 'infeasible', reason: `fits no node even when idle: ${never.map((r) => r.reason).join('; ')}`, reasons: never };
  }
  return { kind: 'queued', reason: `no node has room now (${firstShort!.reason})`, short: firstShort!.short! };
}
