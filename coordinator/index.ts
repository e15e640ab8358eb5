/** Public API of `coordinator/`. */
export { startCoordinator, type CoordinatorHandle, type CoordinatorOptions } from './coordinator.js';
export { Ledger, type LedgerSnapshot, type Plan } from './ledger/index.js';
export { place, FILTERS, bestFitScore, type PlacementRequest, type PlacementResult } from './placement/index.js';
export { ConsulLeaderElection, ConsulLeaderLookup, type LeaderElection, type LeaderInfo } from './election/index.js';
export { connectBus, ensureStreams, publishSubmission, followJob, JetStreamTaskStore, type TaskStore } from './bus/index.js';
