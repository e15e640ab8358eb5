/** Best fit: pack work onto the nodes it fills most, so large holes stay open for large jobs. */
import { FREE, type NodeSnapshot } from '../../ledger/index.js';
import type { PlacementPolicy, PlacementRequest } from '../types.js';
import { chooseGpus } from './gpus.js';

/** The mean share of the free cores, memory, bandwidth (and GPU sessions) the request takes. */
function fill(req: PlacementRequest, cores: number, memory: number, bandwidth: number, sessions: number): number {
  let sum = req.cores / Math.max(1, cores) + req.memory_gb / Math.max(1e-9, memory) + req.bandwidth_mbps / Math.max(1e-9, bandwidth);
  let parts = 3;
  if (req.gpus > 0) {
    sum += req.gpus / Math.max(1, sessions);
    parts++;
  }
  return sum / parts;
}

/** Best fit's score of a node: the mean share of what it has free that the request takes. */
export function bestFitScore(req: PlacementRequest, n: NodeSnapshot): number {
  return fill(req, n.free_core_ids.length, n.free_memory_gb, n.free_bandwidth_mbps, n.free_gpu_sessions);
}

export const bestFit: PlacementPolicy = {
  name: 'best-fit',
  summary: 'packs: the node the request fills most; on it, the busiest GPU with a free session',
  score: bestFitScore,
  scoreSlot: (req, snap, i) => fill(req, snap.amount(i, FREE.cores), snap.amount(i, FREE.memory), snap.amount(i, FREE.bandwidth), snap.amount(i, FREE.sessions)),
  gpusFor: (req, n) => chooseGpus(req, n, true),
};
