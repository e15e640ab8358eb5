/**
 * Feasibility filters, one per resource. Each is data (how much the request needs, how much
 * the node has now or when idle, how to say it), so the hot path compares two numbers and
 * only a diagnosis builds sentences.
 */
import { FREE, TOTAL, type Column, type FreeColumn, type LedgerSnapshot, type NodeSnapshot } from '../ledger/index.js';
import type { Filter, FilterName, PlacementRequest, Verdict } from './types.js';

/**
 * Memory and bandwidth are fractional; the ledger counts them in millionths. Comparisons are
 * written `!(have + SLACK >= need)` so that a missing amount (NaN) fails rather than fits.
 */
const SLACK = 1e-9;

export interface Check {
  readonly resource: FilterName;
  /** The snapshot columns holding what `have(n, false)` and `have(n, true)` read. */
  readonly column: { readonly now: FreeColumn; readonly idle: Column };
  need(req: PlacementRequest): number;
  have(n: NodeSnapshot, whenIdle: boolean): number;
  /** Why `n` fails this check for `req`, in words. */
  explain(req: PlacementRequest, n: NodeSnapshot, whenIdle: boolean): string;
}

const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(2));
const state = (idle: boolean) => (idle ? 'in total' : 'free');
/** GPUs of a node that can encode at all (an H100 reports 0 sessions: it has no NVENC). */
const encoding = (n: NodeSnapshot) => n.gpus.filter((g) => g.sessions > 0).length;

/** The filters, in the order they run: the cheapest and most often decisive first. */
export const CHECKS: readonly Check[] = [
  {
    resource: 'cores',
    column: { now: FREE.cores, idle: TOTAL.cores },
    need: (r) => r.cores,
    have: (n, idle) => (idle ? n.capacity.core_ids.length : n.free_core_ids.length),
    explain: (r, n, idle) => `${n.node_id}: needs ${r.cores} cores, ${idle ? n.capacity.core_ids.length : n.free_core_ids.length} ${state(idle)}`,
  },
  {
    resource: 'gpus',
    column: { now: FREE.gpus, idle: TOTAL.gpus },
    need: (r) => r.gpus,
    // Every GPU runs at least one session, so an idle node offers one per GPU.
    // A GPU with no encoder (0 sessions: an H100) never counts: a job waiting for it would wait forever.
    have: (n, idle) => (idle ? encoding(n) : n.free_gpu_ids.length),
    explain: (r, n, idle) => (idle || encoding(n) < r.gpus
      ? `${n.node_id}: needs ${r.gpus} GPU${r.gpus === 1 ? '' : 's'} with an encoder, ${n.gpus.length ? `${encoding(n)} of its ${n.gpus.length} have one` : 'has none'}`
      : `${n.node_id}: needs a free encoder session on ${r.gpus} GPU${r.gpus === 1 ? '' : 's'}, ${n.free_gpu_ids.length} of ${n.gpus.length} GPUs have one`),
  },
  {
    resource: 'memory',
    column: { now: FREE.memory, idle: TOTAL.memory },
    need: (r) => r.memory_gb,
    have: (n, idle) => (idle ? n.capacity.memory_gb : n.free_memory_gb),
    explain: (r, n, idle) => `${n.node_id}: needs ${fmt(r.memory_gb)} GB memory, ${fmt(idle ? n.capacity.memory_gb : n.free_memory_gb)} GB ${state(idle)}`,
  },
  {
    resource: 'bandwidth',
    column: { now: FREE.bandwidth, idle: TOTAL.bandwidth },
    need: (r) => r.bandwidth_mbps,
    have: (n, idle) => (idle ? n.capacity.bandwidth_mbps : n.free_bandwidth_mbps),
    explain: (r, n, idle) => `${n.node_id}: needs ${fmt(r.bandwidth_mbps)} Mbps, ${fmt(idle ? n.capacity.bandwidth_mbps : n.free_bandwidth_mbps)} Mbps ${state(idle)}`,
  },
];

/** The first filter `n` fails for `req` (now, or even when idle), or undefined if it passes all. */
export function firstMisfit(req: PlacementRequest, n: NodeSnapshot, whenIdle: boolean): Check | undefined {
  for (let i = 0; i < CHECKS.length; i++) {
    const c = CHECKS[i];
    if (!(c.have(n, whenIdle) + SLACK >= c.need(req))) return c;
  }
  return undefined;
}

/** What `req` needs of each check, in CHECKS order: worked out once per decision. */
export function needsOf(req: PlacementRequest): number[] {
  return CHECKS.map((c) => c.need(req));
}

/**
 * Whether the node in slot `i` passes every filter now: the same test as `firstMisfit(req, n,
 * false)`, but read from the snapshot's columns, so a node that fails costs no pointer chase.
 */
export function fitsSlot(snap: LedgerSnapshot, i: number, needs: readonly number[]): boolean {
  for (let c = 0; c < CHECKS.length; c++) if (!(snap.amount(i, CHECKS[c].column.now) + SLACK >= needs[c])) return false;
  return true;
}

/**
 * Where each check's column starts in a block's arrays (`blockFree` now, `blockTotals` when
 * idle), so a scan reads a slot's amounts straight from the block: ~3x faster than `amount()`.
 */
export function columnOffsets(blockSize: number, whenIdle: boolean): number[] {
  return CHECKS.map((c) => (whenIdle ? c.column.idle - TOTAL.cores : c.column.now) * blockSize);
}

/** The index in CHECKS of the first check slot `j` of a block fails, or -1 if it passes all. */
export function misfitIn(cols: readonly number[], offsets: readonly number[], j: number, needs: readonly number[]): number {
  for (let c = 0; c < offsets.length; c++) if (!(cols[offsets[c] + j] + SLACK >= needs[c])) return c;
  return -1;
}

/** Whether any slot of block `b` might pass every filter now (false: none can). */
export function blockMayFit(snap: LedgerSnapshot, b: number, needs: readonly number[]): boolean {
  for (let c = 0; c < CHECKS.length; c++) if (!(snap.blockMax(b, CHECKS[c].column.now) + SLACK >= needs[c])) return false;
  return true;
}

/** `firstMisfit` for the node in slot `i`, read from the snapshot's columns. */
export function firstMisfitSlot(snap: LedgerSnapshot, i: number, needs: readonly number[], whenIdle: boolean): Check | undefined {
  for (let c = 0; c < CHECKS.length; c++) {
    const col = whenIdle ? CHECKS[c].column.idle : CHECKS[c].column.now;
    if (!(snap.amount(i, col) + SLACK >= needs[c])) return CHECKS[c];
  }
  return undefined;
}

const OK: Verdict = Object.freeze({ ok: true });
const asFilter = (c: Check): Filter => (r, n, idle) => (c.have(n, idle) + SLACK >= c.need(r) ? OK : { ok: false, short: c.resource, reason: c.explain(r, n, idle) });

/** One check per resource, as functions returning a verdict with its reason. */
export const FILTERS: Readonly<Record<FilterName, Filter>> = Object.freeze(
  Object.fromEntries(CHECKS.map((c) => [c.resource, asFilter(c)])) as Record<FilterName, Filter>,
);
