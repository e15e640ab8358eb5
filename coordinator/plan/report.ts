/**
 * What a simulated run comes to, per policy: waits per SLA class, missed deadlines, throughput
 * and makespan, reserved against used, memory-limit kills and re-queues, node-hours and cost;
 * and across policies a recommendation in one sentence.
 */
import { SLA_CLASSES } from '../../shared/index.js';
import type { FleetSpec } from './inputs.js';
import type { PlanPolicy, SimResult } from './simulate.js';

export interface ClassFigures { jobs: number; wait_p50_s: number; wait_p95_s: number; wait_p99_s: number; missed_deadlines: number; never_started: number }

export interface PolicyReport {
  policy: PlanPolicy;
  jobs: number;
  succeeded: number;
  failed: number;
  rejected: number;
  /** Jobs still waiting when the simulation ended (nothing could ever run them). */
  never_started: number;
  makespan_s: number;
  throughput_per_hour: number;
  /**
   * Seconds from the first arrival until 95 % of the jobs had ended, and the throughput over
   * that span: figures a few very long encodes at the end do not swing.
   */
  t95_s: number;
  throughput95_per_hour: number;
  /**
   * Jobs per hour ended over the second half of the span in which jobs were still arriving or
   * waiting (from the first arrival to the last job's first placement): the steady rate. A policy
   * that keeps up ends jobs as fast as they arrive; one that cannot, at its capacity. Neither the
   * start (nothing ended yet) nor the long encodes still running at the end swing it.
   */
  sustained_per_hour: number;
  mean_completion_s: number;
  classes: Partial<Record<string, ClassFigures>>;
  reserved_vs_used: { core_hours_reserved: number; core_hours_used: number; cores_used_share: number; gb_hours_reserved: number; gb_hours_used: number; memory_used_share: number };
  /** Share of the fleet's cores reserved over the makespan. */
  core_utilisation: number;
  memory_kills: number;
  jobs_over_memory: number;
  jobs_over_memory_share: number;
  requeues: number;
  time_limit_stops: number;
  node_hours: number;
  cost: number;
  /** Templates whose jobs the core refused, failed or never started, with its first reason. */
  refused: { template: string; jobs: number; state: string; reason: string }[];
}

const quantile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] : NaN);
const r3 = (x: number) => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : x);

export function summarize(sim: SimResult, fleet: FleetSpec): PolicyReport {
  const hours = sim.makespan_ms / 3_600_000;
  const nodes = fleet.nodes.reduce((s, n) => s + n.count, 0);
  const cores = fleet.nodes.reduce((s, n) => s + n.count * n.cores, 0);
  const price = fleet.nodes.reduce((s, n) => s + n.count * (n.price_per_hour ?? 0), 0);
  const classes: PolicyReport['classes'] = {};
  for (const c of SLA_CLASSES) {
    const js = sim.jobs.filter((j) => j.priority === c);
    if (!js.length) continue;
    const waits = js.filter((j) => j.placed_ms !== undefined).map((j) => (j.placed_ms! - j.arrival_ms) / 1000).sort((a, b) => a - b);
    classes[c] = {
      jobs: js.length, wait_p50_s: r3(quantile(waits, 0.5)), wait_p95_s: r3(quantile(waits, 0.95)), wait_p99_s: r3(quantile(waits, 0.99)),
      missed_deadlines: js.filter((j) => j.deadline_ms !== undefined && (j.ended_ms === undefined || j.ended_ms > j.deadline_ms || j.state !== 'succeeded')).length,
      never_started: js.filter((j) => j.placed_ms === undefined && j.ended_ms === undefined).length,
    };
  }
  const done = sim.jobs.filter((j) => j.state === 'succeeded');
  const t = sim.totals;
  const ends = sim.jobs.filter((j) => j.ended_ms !== undefined).map((j) => j.ended_ms!).sort((a, b) => a - b);
  const first = sim.jobs[0]?.arrival_ms ?? 0;
  const t95 = ends.length >= 0.95 * sim.jobs.length && ends.length ? (quantile(ends, 0.95) - first) / 1000 : NaN;
  let busy = 0;
  for (const j of sim.jobs) if (j.placed_ms !== undefined && j.placed_ms > busy) busy = j.placed_ms;
  busy -= first;
  const endedLate = ends.filter((e) => e - first >= busy / 2 && e - first <= busy).length;
  return {
    policy: sim.policy,
    jobs: sim.jobs.length,
    succeeded: done.length,
    failed: sim.jobs.filter((j) => j.state === 'failed').length,
    rejected: sim.jobs.filter((j) => j.state === 'rejected').length,
    never_started: sim.jobs.filter((j) => j.ended_ms === undefined).length,
    makespan_s: r3(sim.makespan_ms / 1000),
    throughput_per_hour: r3(hours > 0 ? done.length / hours : NaN),
    t95_s: r3(t95),
    throughput95_per_hour: r3(t95 > 0 ? (0.95 * sim.jobs.length * 3600) / t95 : NaN),
    sustained_per_hour: r3(busy > 0 ? (endedLate * 3_600_000) / (busy / 2) : NaN),
    mean_completion_s: r3(done.reduce((s, j) => s + (j.ended_ms! - j.arrival_ms), 0) / Math.max(1, done.length) / 1000),
    classes,
    reserved_vs_used: {
      core_hours_reserved: r3(t.core_ms_reserved / 3_600_000), core_hours_used: r3(t.core_ms_used / 3_600_000),
      cores_used_share: r3(t.core_ms_reserved > 0 ? t.core_ms_used / t.core_ms_reserved : NaN),
      gb_hours_reserved: r3(t.gb_ms_reserved / 3_600_000), gb_hours_used: r3(t.gb_ms_used / 3_600_000),
      memory_used_share: r3(t.gb_ms_reserved > 0 ? t.gb_ms_used / t.gb_ms_reserved : NaN),
    },
    core_utilisation: r3(cores > 0 && sim.makespan_ms > 0 ? t.core_ms_reserved / (cores * sim.makespan_ms) : NaN),
    memory_kills: t.memory_kills,
    jobs_over_memory: t.jobs_over_memory,
    jobs_over_memory_share: r3(sim.jobs.length ? t.jobs_over_memory / sim.jobs.length : 0),
    requeues: t.requeues,
    time_limit_stops: t.time_limit_stops,
    node_hours: r3(nodes * hours),
    cost: r3(price * hours),
    refused: refusals(sim),
  };
}

function refusals(sim: SimResult): PolicyReport['refused'] {
  const by = new Map<string, PolicyReport['refused'][number]>();
  for (const j of sim.jobs) {
    const state = j.state === 'rejected' || j.state === 'failed' ? j.state : j.ended_ms === undefined && j.placed_ms === undefined ? 'never started' : undefined;
    if (!state) continue;
    const key = `${j.template}/${state}`;
    const r = by.get(key) ?? { template: sim.templates[j.template], jobs: 0, state, reason: j.reason ?? '' };
    r.jobs++;
    by.set(key, r);
  }
  return [...by.values()];
}

/** Deadlines missed over every class. */
const missed = (r: PolicyReport) => Object.values(r.classes).reduce((s, f) => s + (f?.missed_deadlines ?? 0), 0);
const premiumWait = (r: PolicyReport) => r.classes.premium?.wait_p95_s ?? 0;

/**
 * The policy to run, and why, in one sentence: the fewest jobs lost (failed or never started),
 * then the fewest missed deadlines, then the most throughput, then the shortest premium p95
 * wait, then the fewest memory-limit kills. The oracle is a yardstick, never recommended.
 */
export function recommend(reports: PolicyReport[]): { policy: PlanPolicy; sentence: string } {
  const real = reports.filter((r) => r.policy !== 'oracle');
  const lost = (r: PolicyReport) => r.failed + r.never_started;
  const ranked = [...(real.length ? real : reports)].sort((a, b) => lost(a) - lost(b) || missed(a) - missed(b)
    || b.throughput_per_hour - a.throughput_per_hour || premiumWait(a) - premiumWait(b) || a.memory_kills - b.memory_kills);
  const best = ranked[0], runnerUp = ranked[1];
  const oracle = reports.find((r) => r.policy === 'oracle');
  const waits = Object.entries(best.classes).filter(([, f]) => Number.isFinite(f!.wait_p95_s))
    .map(([c, f]) => `${c} p95 wait ${f!.wait_p95_s.toFixed(0)} s${f!.missed_deadlines ? ` (${f!.missed_deadlines} missed deadline${f!.missed_deadlines > 1 ? 's' : ''})` : ''}`).join(', ');
  const than = runnerUp ? `; ${runnerUp.policy} next: ${missed(runnerUp)} missed deadlines, ${runnerUp.throughput_per_hour.toFixed(0)} jobs/h` : '';
  const failure = best.refused.find((x) => x.state === 'failed');
  const sentence = [
    `Run ${best.policy}: it finishes ${best.succeeded} of ${best.jobs} jobs in ${(best.makespan_s / 3600).toFixed(2)} h at ${best.throughput_per_hour.toFixed(0)} jobs/h`,
    oracle ? ` (${((best.throughput_per_hour / oracle.throughput_per_hour) * 100).toFixed(0)} % of reserving each job's exact use)` : '',
    `; ${waits || 'no job waited'}; ${best.memory_kills} memory-limit kills; ${best.node_hours.toFixed(1)} node-hours costing ${best.cost.toFixed(2)}${than}.`,
    lost(best) ? ` ${best.failed} failed${failure ? ` (${failure.template}: ${failure.reason.slice(0, 160)})` : ''} and ${best.never_started} never started.` : '',
  ].join('');
  return { policy: best.policy, sentence };
}
