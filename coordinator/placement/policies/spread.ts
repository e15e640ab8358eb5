/** Spread: the least loaded node, so load (and what a node failure takes down) spreads out. */
import { FREE, TOTAL, type LedgerSnapshot, type NodeSnapshot } from '../../ledger/index.js';
import type { PlacementPolicy, PlacementRequest } from '../types.js';
import { chooseGpus } from './gpus.js';

/** The mean share of the cores, memory, bandwidth (and GPU sessions) left free after placing. */
function leftOver(
  req: PlacementRequest, cores: number, coresTotal: number, memory: number, memoryTotal: number,
  bandwidth: number, bandwidthTotal: number, sessions: number, sessionsTotal: number,
): number {
  let sum = (cores - req.cores) / Math.max(1, coresTotal)
    + (memory - req.memory_gb) / Math.max(1e-9, memoryTotal)
    + (bandwidth - req.bandwidth_mbps) / Math.max(1e-9, bandwidthTotal);
  let parts = 3;
  if (req.gpus > 0) {
    sum += (sessions - req.gpus) / Math.max(1, sessionsTotal);
    parts++;
  }
  return sum / parts;
}

/** Spread's score of a node: the mean share of it left free after placing the request. */
export function spreadScore(req: PlacementRequest, n: NodeSnapshot): number {
  const c = n.capacity;
  return leftOver(req, n.free_core_ids.length, c.core_ids.length, n.free_memory_gb, c.memory_gb, n.free_bandwidth_mbps, c.bandwidth_mbps, n.free_gpu_sessions, n.gpu_sessions);
}

/** `spreadScore` of the node in slot `i`, read from the snapshot's columns. */
export function spreadScoreAt(req: PlacementRequest, snap: LedgerSnapshot, i: number): number {
  return leftOver(req,
    snap.amount(i, FREE.cores), snap.amount(i, TOTAL.cores), snap.amount(i, FREE.memory), snap.amount(i, TOTAL.memory),
    snap.amount(i, FREE.bandwidth), snap.amount(i, TOTAL.bandwidth), snap.amount(i, FREE.sessions), snap.amount(i, TOTAL.sessions));
}

export const spread: PlacementPolicy = {
  name: 'spread',
  summary: 'spreads: the least loaded node; on it, the GPU with the most free sessions',
  score: spreadScore,
  scoreSlot: spreadScoreAt,
  gpusFor: (req, n) => chooseGpus(req, n, false),
};
