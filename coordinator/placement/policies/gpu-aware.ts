/**
 * GPU-aware: GPU jobs go to the GPU with the most free encoder sessions; CPU jobs stay off
 * GPU nodes while a CPU-only node has room, so GPU sessions are not stranded behind busy cores.
 */
import { TOTAL, type NodeSnapshot } from '../../ledger/index.js';
import type { PlacementPolicy, PlacementRequest } from '../types.js';
import { bestFit, bestFitScore } from './best-fit.js';
import { chooseGpus, mostFreeSessions } from './gpus.js';
import { spreadScore } from './spread.js';

/**
 * For GPU jobs free sessions decide (whole numbers) and the node's spare room, at most 0.5,
 * only breaks ties.
 */
const gpuJobScore = (req: PlacementRequest, n: NodeSnapshot) => mostFreeSessions(n) + 0.5 * Math.max(0, spreadScore(req, n));

export const gpuAware: PlacementPolicy = {
  name: 'gpu-aware',
  summary: 'GPU jobs: the GPU with the most free sessions; CPU jobs: best fit, on GPU nodes only when no CPU-only node has room',
  score: (req, n) => (req.gpus > 0 ? gpuJobScore(req, n) : bestFitScore(req, n)),
  // Per-GPU sessions are not in the columns: a GPU job opens the node.
  scoreSlot: (req, snap, i) => (req.gpus > 0 ? gpuJobScore(req, snap.at(i)!) : bestFit.scoreSlot!(req, snap, i)),
  gpusFor: (req, n) => chooseGpus(req, n, false),
  // Only GPUs that can encode are kept free for GPU jobs: a node whose GPUs have no NVENC takes CPU work like any other.
  avoids: (req, n) => req.gpus === 0 && n.gpus.some((g) => g.sessions > 0),
  avoidsSlot: (req, snap, i) => req.gpus === 0 && snap.amount(i, TOTAL.gpus) > 0,
};
