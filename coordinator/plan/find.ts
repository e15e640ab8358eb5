/**
 * `prescient plan --find` (issue 19): the cheapest fleet of the given node types that meets the
 * SLA targets for a workload, each candidate judged by a full simulation with the real core.
 *
 * The search: from the counts given (grown by doubling until they meet the targets), a binary
 * search on one factor scaling every count, then nodes taken away one at a time, the type that
 * saves most per hour first, while the targets still hold. So the fleet found meets its targets
 * and one node fewer of any type does not (or that type is at 0).
 */
import { ConfigError, SLA_CLASSES } from '../../shared/index.js';
import type { ResourcePredictor } from '../../models/index.js';
import { spanMs, type FleetSpec, type WorkloadSpec } from './inputs.js';
import { summarize, type PolicyReport } from './report.js';
import { simulate, type PlanPolicy } from './simulate.js';

/** One target: a class's p95 wait at most this, or missed deadlines at most this many. */
export type Target = { kind: 'p95_wait'; class: string; max_s: number } | { kind: 'missed_deadlines'; max: number };

/** The default: premium's p95 wait at most 30 s and no deadline missed. */
export const DEFAULT_TARGETS: readonly Target[] = [{ kind: 'p95_wait', class: 'premium', max_s: 30 }, { kind: 'missed_deadlines', max: 0 }];

/** `premium.p95_wait<=30s,missed_deadlines<=0`: the targets, or a ConfigError naming the one not understood. */
export function parseTargets(text: string): Target[] {
  return text.split(',').map((t) => t.trim()).filter(Boolean).map((t) => {
    const wait = /^(\w+)\.p95_wait\s*<=\s*(\S+)$/.exec(t);
    if (wait && (SLA_CLASSES as readonly string[]).includes(wait[1]) && spanMs(wait[2]) >= 0) return { kind: 'p95_wait' as const, class: wait[1], max_s: spanMs(wait[2]) / 1000 };
    const missed = /^missed_deadlines\s*<=\s*(\d+)$/.exec(t);
    if (missed) return { kind: 'missed_deadlines' as const, max: Number(missed[1]) };
    throw new ConfigError('--target', `${JSON.stringify(t)} is not a target: use CLASS.p95_wait<=SPAN (${SLA_CLASSES.join(', ')}; a span such as 30s) or missed_deadlines<=N`);
  });
}

/** Which targets a report misses, in words (empty: it meets them all). Jobs that never start miss every target. */
export function missedTargets(r: PolicyReport, targets: readonly Target[]): string[] {
  const out: string[] = [];
  if (r.never_started > 0) out.push(`${r.never_started} jobs never started`);
  for (const t of targets) {
    if (t.kind === 'p95_wait') {
      const w = r.classes[t.class]?.wait_p95_s ?? 0;
      if (!(w <= t.max_s)) out.push(`${t.class} p95 wait ${w.toFixed(1)} s > ${t.max_s} s`);
    } else {
      const m = Object.values(r.classes).reduce((s, f) => s + (f?.missed_deadlines ?? 0), 0);
      if (m > t.max) out.push(`${m} missed deadlines > ${t.max}`);
    }
  }
  return out;
}

export interface FindOptions {
  workload: WorkloadSpec;
  /** The node types to choose from; their counts are where the search starts. */
  fleet: FleetSpec;
  model: ResourcePredictor;
  policy?: PlanPolicy;
  seed?: number;
  targets?: readonly Target[];
  /** Simulations at most (each a whole run of the workload). */
  maxRuns?: number;
}

export interface FindResult {
  fleet: FleetSpec;
  report: PolicyReport;
  cost_per_hour: number;
  runs: number;
  /** Every fleet tried, by counts per type, with what it missed. */
  tried: { counts: Record<string, number>; missed: string[] }[];
}

const withCounts = (f: FleetSpec, counts: number[]): FleetSpec => ({ nodes: f.nodes.map((n, i) => ({ ...n, count: counts[i] })) });
const pricePerHour = (f: FleetSpec) => f.nodes.reduce((s, n) => s + n.count * (n.price_per_hour ?? 0), 0);

export function findFleet(o: FindOptions): FindResult {
  const targets = o.targets ?? DEFAULT_TARGETS;
  const maxRuns = o.maxRuns ?? 60;
  const tried: FindResult['tried'] = [];
  const cache = new Map<string, { report: PolicyReport; missed: string[] }>();
  const judge = (counts: number[]) => {
    const key = counts.join(',');
    let j = cache.get(key);
    if (!j) {
      if (tried.length >= maxRuns) throw new ConfigError('--find', `no answer within ${maxRuns} simulations; start from counts closer to the answer`);
      const fleet = withCounts(o.fleet, counts);
      const report = counts.some((c) => c > 0)
        ? summarize(simulate(o.workload, fleet, o.model, { policy: o.policy ?? 'predictive', seed: o.seed ?? 1 }), fleet)
        : undefined;
      j = { report: report!, missed: report ? missedTargets(report, targets) : ['no node'] };
      cache.set(key, j);
      tried.push({ counts: Object.fromEntries(o.fleet.nodes.map((n, i) => [n.type, counts[i]])), missed: j.missed });
    }
    return j;
  };
  let counts = o.fleet.nodes.map((n) => Math.max(n.count, 1));
  // Grow until the targets are met.
  for (let k = 0; judge(counts).missed.length; k++) {
    if (k >= 6) throw new ConfigError('--find', `even ${counts.join(', ')} nodes miss the targets: ${judge(counts).missed.join('; ')}`);
    counts = counts.map((c) => c * 2);
  }
  // The smallest factor on every count that still meets them.
  let lo = 0, hi = 1;
  for (let i = 0; i < 8; i++) {
    const mid = (lo + hi) / 2;
    const c = counts.map((x) => Math.ceil(x * mid));
    if (judge(c).missed.length === 0) hi = mid; else lo = mid;
  }
  counts = counts.map((x) => Math.ceil(x * hi));
  // Then one node at a time, the dearest per hour first, while the targets hold.
  const order = o.fleet.nodes.map((n, i) => i).sort((a, b) => (o.fleet.nodes[b].price_per_hour ?? 0) - (o.fleet.nodes[a].price_per_hour ?? 0));
  for (let progress = true; progress;) {
    progress = false;
    for (const i of order) {
      if (counts[i] === 0) continue;
      const c = counts.slice();
      c[i]--;
      if (judge(c).missed.length === 0) { counts = c; progress = true; break; }
    }
  }
  const fleet = withCounts(o.fleet, counts);
  return { fleet, report: judge(counts).report, cost_per_hour: pricePerHour(fleet), runs: tried.length, tried };
}
