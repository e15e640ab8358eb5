/** Public API of `coordinator/`. */
export { startCoordinator, type CoordinatorHandle, type CoordinatorOptions } from './coordinator.js';
export { Ledger, JetStreamLedgerStore, StaleLedgerWriteError, type LedgerSnapshot, type LedgerState, type LedgerStore, type Plan } from './ledger/index.js';
export {
  place, placeGroup, placementPolicy, FILTERS, POLICIES, POLICY_NAMES, bestFitScore, spreadScore,
  type PlacementPolicy, type PlacementRequest, type PlacementResult, type GroupResult,
} from './placement/index.js';
export { orderQueue, estimateStarts, DEFAULT_QUEUE_POLICY, type QueuePolicy, type QueueEntry } from './queue/index.js';
export { sizeRequest, parseReservationPolicy, type ReservationPolicy } from './sizing/index.js';
export { ConsulLeaderElection, ConsulLeaderLookup, type LeaderElection, type LeaderInfo } from './election/index.js';
export { connectBus, ensureStreams, publishSubmission, followJob, listDeadLetters, JetStreamTaskStore, type DeadLetter, type TaskStore } from './bus/index.js';
export {
  decide, BurstController, BurstStore, loadBurstConfig, validateBurstConfig, verifyProvider, createProvider, renderUserData,
  type BurstConfig, type BurstDecision, type BurstOptions, type BurstPolicy, type BurstInstance, type CloudProvider,
} from './burst/index.js';
