/**
 * Public API of placement: pure functions from a request (or a group of them) and a ledger
 * snapshot to a result that says why. Feasibility filters, then a policy's scorer, over a
 * bounded sample of nodes (see README.md for the pipeline and a glossary).
 */
export type {
  Filter, FilterName, PlaceOptions, PlacementPolicy, PlacementRequest, PlacementResult, PolicyName, Resource, Scorer, Tally, Verdict,
} from './types.js';
export type { Plan } from '../ledger/index.js';
export { FILTERS, CHECKS, blockMayFit, columnOffsets, firstMisfit, firstMisfitSlot, fitsSlot, misfitIn, needsOf, type Check } from './filters.js';
export { POLICIES, POLICY_NAMES, UnknownPolicyError, bestFitScore, placementPolicy, scorerPolicy, spreadScore } from './policies/index.js';
export { place, defaultLimit, startSlot } from './place.js';
export { placeGroup, type GroupMode, type GroupOptions, type GroupResult } from './group.js';
