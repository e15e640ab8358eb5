/**
 * Public API of the ledger: the `Ledger` (the only mutable record of capacity and
 * reservations), the read-only snapshots placement works on, persistence and reconciliation.
 * See README.md for the flow and a glossary.
 */
export { Ledger } from './ledger.js';
export {
  DEFAULT_GPU_SESSIONS, FREE, TOTAL, type Column, type FreeColumn,
  type AgentReport, type CommitAllResult, type CommitRefusal, type CommitResult, type Dropped, type GpuSlots,
  type LedgerChanges, type LedgerSnapshot, type LedgerState, type NodeRecord, type NodeSnapshot, type Plan,
  type ReconcileEntry, type ReconcileResult,
} from './types.js';
export { compareReports, type ReconcileDiff } from './reconcile.js';
export { idleView, sessionsOf, withReserved } from './node.js';
export { JetStreamLedgerStore, StaleLedgerWriteError, type LedgerStore } from './store.js';
