/** Types of placement: what a task asks for, what a policy is, and results that say why. */
import type { LedgerSnapshot, NodeSnapshot, Plan } from '../ledger/index.js';

/** What one task asks for. */
export interface PlacementRequest {
  task_id: string;
  cores: number;
  /** GPUs, each giving the task one encoder session (normally 0 or 1). */
  gpus: number;
  memory_gb: number;
  bandwidth_mbps: number;
}

/**
 * Resources a request can be short of. `nodes` means there is no node to try at all (none
 * registered, or every one excluded, e.g. already holding another member of a spread group).
 */
export type Resource = 'cores' | 'gpus' | 'memory' | 'bandwidth' | 'nodes';
/** The resources a feasibility filter checks, in the order the filters run. */
export type FilterName = Exclude<Resource, 'nodes'>;

export interface Verdict { ok: boolean; short?: Resource; reason?: string }
/** One feasibility check; `whenIdle` asks whether the node could ever fit the request. */
export type Filter = (req: PlacementRequest, n: NodeSnapshot, whenIdle: boolean) => Verdict;
/** Ranks a feasible node for a request; higher is better. */
export type Scorer = (req: PlacementRequest, n: NodeSnapshot) => number;

/**
 * The built-in policies:
 * - `best-fit`: packs; the node the request fills most, so large holes stay open for large jobs;
 * - `spread`: the least loaded node, so load and failures spread out;
 * - `gpu-aware`: a GPU job goes to the GPU with the most free encoder sessions; a CPU job
 *   avoids nodes with GPUs while a CPU-only node has room, so GPUs stay free for GPU jobs.
 */
export type PolicyName = 'best-fit' | 'spread' | 'gpu-aware';

/** The built-in policies' names. Kept here, apart from the policies, so the CLI's help lists them without loading placement. */
export const POLICY_NAMES: PolicyName[] = ['best-fit', 'spread', 'gpu-aware'];

/** A policy: a scorer, a choice of GPUs on the chosen node, and nodes it would rather not use. */
export interface PlacementPolicy {
  readonly name: PolicyName | 'custom';
  /** One line on what it prefers, for logs and the CLI. */
  readonly summary: string;
  score: Scorer;
  /**
   * The same score for the node in slot `i`, read from the snapshot's columns where it can
   * be, so that scoring does not open node objects. Optional; must equal `score`.
   */
  scoreSlot?(req: PlacementRequest, snap: LedgerSnapshot, i: number): number;
  /** Which GPUs (one session each) the request takes on `n`, which is known to have room. */
  gpusFor(req: PlacementRequest, n: NodeSnapshot): number[];
  /** Nodes used only when no other feasible node exists. */
  avoids?(req: PlacementRequest, n: NodeSnapshot): boolean;
  /**
   * The same as `avoids`, decided from the snapshot's columns for slot `i`, so that a scan
   * passing many avoided nodes does not open each one. Optional; must agree with `avoids`.
   */
  avoidsSlot?(req: PlacementRequest, snap: LedgerSnapshot, i: number): boolean;
}

/** How many nodes failed one filter, with a few of them and their reasons. */
export interface Tally {
  filter: Resource;
  nodes: number;
  examples: Array<{ node_id: string; reason: string }>;
}

/**
 * - `placed`: a plan the leader can commit (it names the node version it was made against);
 *   `scanned` counts the slots checked one by one (blocks skipped whole are not counted),
 *   `feasible` those that passed every filter.
 * - `queued`: it would fit an idle node of the fleet, but none has room now; `short` is the
 *   resource most nodes lacked.
 * - `infeasible`: no node could run it even when idle. `reasons` lists every node's reason in
 *   a small fleet, and a few examples per filter in a large one; `tally` counts them all.
 */
export type PlacementResult =
  | { kind: 'placed'; plan: Plan; score: number; policy: PlacementPolicy['name']; reason: string; scanned: number; feasible: number }
  | { kind: 'queued'; reason: string; short: Resource; policy: PlacementPolicy['name']; tally: Tally[] }
  | { kind: 'infeasible'; reason: string; reasons: Array<{ node_id: string; reason: string }>; policy: PlacementPolicy['name']; tally: Tally[] };

export interface PlaceOptions {
  /**
   * Feasible nodes to score before choosing (Nomad's limit iterator). Default
   * max(2, ceil(log2 nodes)); `'all'` scores every feasible node.
   */
  limit?: number | 'all';
  /** Nodes not to use. */
  exclude?: ReadonlySet<string>;
  /** Why excluded nodes were left out, for the result's reason. */
  excludeReason?: string;
  /** Where the scan starts is hashed from this (default: the task id), so decisions replay. */
  seed?: string;
}
