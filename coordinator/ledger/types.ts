/**
 * Types of the ledger: the read-only views placement reads, the plans it proposes, what a
 * commit answers, and the plain records the ledger is persisted as.
 */
import type { NodeCapacity, ResourceAllocation } from '../../shared/index.js';

/**
 * Concurrent NVENC sessions one GPU gets when its agent reports no figure (or 0, protobuf's
 * default). Conservative: NVIDIA's consumer drivers long capped NVENC at 3 sessions per card;
 * data-centre cards have no such cap, so their agents should report a real number.
 */
export const DEFAULT_GPU_SESSIONS = 3;

/** Encoder session slots of one GPU. A GPU task takes one session on one GPU. */
export interface GpuSlots {
  readonly id: number;
  /** Sessions the GPU runs at once. */
  readonly sessions: number;
  readonly free_sessions: number;
}

/**
 * One node as placement sees it. Immutable: the ledger replaces the object whenever the node
 * changes, so a snapshot taken earlier keeps the old one.
 */
export interface NodeSnapshot {
  readonly node_id: string;
  /**
   * Changes whenever this node's capacity or free resources change (never on a heartbeat).
   * Taken from the ledger-wide counter, so a node removed and added again never repeats one.
   */
  readonly version: number;
  readonly capacity: Readonly<NodeCapacity>;
  /** Ascending. */
  readonly free_core_ids: readonly number[];
  /** GPUs with at least one free encoder session, ascending. */
  readonly free_gpu_ids: readonly number[];
  /** Every GPU of the node in id order, with its session slots. */
  readonly gpus: readonly GpuSlots[];
  readonly free_gpu_sessions: number;
  /** Sessions of all its GPUs together. */
  readonly gpu_sessions: number;
  readonly free_memory_gb: number;
  readonly free_bandwidth_mbps: number;
  readonly last_seen: number;
}

/**
 * Columns of a snapshot's amounts per slot (`LedgerSnapshot.amount`): what is free now
 * (`FREE`: cores, GPUs with a free encoder session, memory in GB, bandwidth in Mbit/s, encoder
 * sessions) and the same for the idle node (`TOTAL`). An empty slot reads a negative amount in
 * every column, which no request fits.
 */
export type Column = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9;
/** The columns of what is free now (`FREE`). */
export type FreeColumn = 0 | 1 | 2 | 3 | 4;
export const FREE = Object.freeze({ cores: 0, gpus: 1, memory: 2, bandwidth: 3, sessions: 4 } as const);
export const TOTAL = Object.freeze({ cores: 5, gpus: 6, memory: 7, bandwidth: 8, sessions: 9 } as const);

/**
 * A frozen view of the whole ledger. Taking one costs O(1) (see snapshot.ts); walking it with
 * `slots`/`at` costs nothing extra, while `nodes` builds an array of every node on first read.
 */
export interface LedgerSnapshot {
  /** The ledger's version when the snapshot was taken. */
  readonly version: number;
  readonly term: number;
  /** Every node, in slot order; built on first read (O(nodes)), then kept. */
  readonly nodes: readonly NodeSnapshot[];
  /** Number of nodes. */
  readonly count: number;
  /** Slots to walk with `at`; some may be empty (a removed node's slot waits for the next one). */
  readonly slots: number;
  /** The node in slot `i`, or undefined for an empty slot. */
  at(i: number): NodeSnapshot | undefined;
  /**
   * Slot `i`'s amount in one column (see `FREE` and `TOTAL`), read from a flat array without
   * touching the node object: the cheap way to scan thousands of nodes (see snapshot.ts).
   */
  amount(i: number, column: Column): number;
  /** Slots come in blocks of this many: slot i is in block floor(i / blockSize). */
  readonly blockSize: number;
  /**
   * The free columns of block `b` as one array: column c (a `FreeColumn`) of the block's slot
   * j, that is of slot b * blockSize + j, at c * blockSize + j. For scans that read many slots.
   */
  blockFree(b: number): readonly number[];
  /** The total columns of block `b`, laid out alike: `TOTAL` column c at (c - TOTAL.cores) * blockSize + j. */
  blockTotals(b: number): readonly number[];
  /** No slot of block `b` has more free in `column` than this (an empty block reads negative). */
  blockMax(b: number, column: FreeColumn): number;
  node(nodeId: string): NodeSnapshot | undefined;
  /** Cores of the largest node (0 without nodes). */
  readonly max_cores: number;
}

/** A proposed reservation, as returned by a placement policy. */
export interface Plan {
  task_id: string;
  node_id: string;
  core_ids: number[];
  /** Each GPU named takes one encoder session on it. */
  gpu_ids: number[];
  memory_gb: number;
  bandwidth_mbps: number;
  /** The node's version the plan was made against; a commit refuses it if the node changed since. */
  node_version?: number;
  /** The ledger term the plan was made under; a commit refuses it under any other term. */
  term?: number;
}

/**
 * Why a commit was refused:
 * - `stale`: the node changed since the plan's snapshot (its version moved on);
 * - `term`: the plan was made under another leader term;
 * - `unknown-node`: the node is not in the ledger;
 * - `duplicate`: the task already holds a reservation;
 * - `conflict`: a resource the plan names is not free (or not on the node at all);
 * - `invalid`: the plan itself is malformed (negative or non-finite amounts, an id twice).
 */
export type CommitRefusal = 'stale' | 'term' | 'unknown-node' | 'duplicate' | 'conflict' | 'invalid';

export type CommitResult =
  | { ok: true; allocation: ResourceAllocation }
  | { ok: false; reason: string; code: CommitRefusal };

/** The outcome of committing several plans at once: all applied, or none. */
export type CommitAllResult =
  | { ok: true; allocations: ResourceAllocation[] }
  | { ok: false; reason: string; code: CommitRefusal; task_id: string };

/** A reservation the ledger dropped, and why. */
export interface Dropped {
  task_id: string;
  allocation: ResourceAllocation;
  reason: string;
}

// ── persistence ────────────────────────────────────────────────────────────────────────

/** One node and the reservations on it: the unit the ledger is saved in (one KV entry each). */
export interface NodeRecord {
  capacity: NodeCapacity;
  last_seen: number;
  version: number;
  reservations: Array<{ task_id: string; allocation: ResourceAllocation }>;
}

/** The whole ledger as plain JSON-able data. */
export interface LedgerState {
  format: 1;
  /** Term of the leader whose ledger this is. */
  term: number;
  version: number;
  nodes: NodeRecord[];
}

/** What changed since the last `takeChanges()`: the nodes to rewrite and those to delete. */
export interface LedgerChanges {
  term: number;
  version: number;
  nodes: NodeRecord[];
  removed: string[];
}

// ── reconciliation ─────────────────────────────────────────────────────────────────────

/** What one agent says it is running. */
export interface AgentReport {
  node_id: string;
  running: Array<{ task_id: string; allocation: ResourceAllocation }>;
}

/** One task's fate in a reconciliation. */
export interface ReconcileEntry {
  task_id: string;
  node_id: string;
  reason: string;
}

/**
 * What `reconcile` did, by bucket:
 * - `confirmed`: reported exactly as reserved; lease renewed;
 * - `adopted`: reported by its agent, live, and not reserved: now reserved as reported;
 * - `replaced`: reported with other resources or on another node than reserved: the report wins;
 * - `dropped`: reserved for a task that is no longer live: released;
 * - `ignored`: reported for a task that is not live: not reserved (its agent should stop it);
 * - `refused`: should have been adopted or replaced, but clashes with the ledger;
 * - `unreported`: reserved for a live task its node did not report: kept, its lease running.
 */
export interface ReconcileResult {
  confirmed: ReconcileEntry[];
  adopted: ReconcileEntry[];
  replaced: ReconcileEntry[];
  dropped: ReconcileEntry[];
  ignored: ReconcileEntry[];
  refused: ReconcileEntry[];
  unreported: ReconcileEntry[];
}
