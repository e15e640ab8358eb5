/** The built-in placement policies, one file each, and the lookup by name. */
import { POLICY_NAMES, type PlacementPolicy, type PolicyName, type Scorer } from '../types.js';
import { bestFit } from './best-fit.js';
import { chooseGpus } from './gpus.js';
import { gpuAware } from './gpu-aware.js';
import { spread } from './spread.js';

export { bestFitScore } from './best-fit.js';
export { spreadScore, spreadScoreAt } from './spread.js';

export const POLICIES: Readonly<Record<PolicyName, PlacementPolicy>> = Object.freeze({ 'best-fit': bestFit, spread, 'gpu-aware': gpuAware });
export { POLICY_NAMES };

/** A placement policy name that is not one of POLICY_NAMES. */
export class UnknownPolicyError extends Error {
  constructor(readonly given: string, readonly valid: readonly PolicyName[] = POLICY_NAMES) {
    super(`unknown placement policy "${given}"; valid policies: ${valid.join(', ')}`);
    this.name = 'UnknownPolicyError';
  }
}

/** The policy called `name`; throws UnknownPolicyError naming the valid ones. */
export function placementPolicy(name: string): PlacementPolicy {
  if (!Object.prototype.hasOwnProperty.call(POLICIES, name)) throw new UnknownPolicyError(name);
  return POLICIES[name as PolicyName];
}

/** A policy around a bare scorer (the older `place(req, snap, score)` form): GPUs packed like best fit. */
export function scorerPolicy(score: Scorer): PlacementPolicy {
  return { name: 'custom', summary: 'a caller-supplied scorer', score, gpusFor: (req, n) => chooseGpus(req, n, true) };
}
