/** Choosing GPUs on a chosen node: one encoder session on each of `req.gpus` distinct GPUs. */
import type { NodeSnapshot } from '../../ledger/index.js';
import type { PlacementRequest } from '../types.js';

/**
 * The GPUs with a free session, ordered by free sessions (`fullest` first packs sessions onto
 * busy GPUs; otherwise the emptiest first), ties by id, the first `req.gpus` of them.
 */
export function chooseGpus(req: PlacementRequest, n: NodeSnapshot, fullest: boolean): number[] {
  if (req.gpus <= 0) return [];
  const open = n.gpus.filter((g) => g.free_sessions > 0);
  open.sort((a, b) => (fullest ? a.free_sessions - b.free_sessions : b.free_sessions - a.free_sessions) || a.id - b.id);
  return open.slice(0, req.gpus).map((g) => g.id);
}

/** Free sessions of the GPU with the most of them. */
export function mostFreeSessions(n: NodeSnapshot): number {
  let most = 0;
  for (const g of n.gpus) if (g.free_sessions > most) most = g.free_sessions;
  return most;
}
