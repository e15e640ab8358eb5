/**
 * A batch that really ran, replayed by the capacity planner's simulator (coordinator/plan) on
 * the node it ran on, and the two set side by side: the fidelity check of issue 19, used by the
 * plan-fidelity test and the packing bench.
 *
 * Each job arrives when the leader admitted it (its first event: a file input is probed on a node
 * before that, which the simulator does not model) and uses what its encode really used (its
 * first `succeeded` event: the release of its reservation, before any quality pass), on as many
 * cores as it really had; the simulator scales its duration by the model's speed-up only where its
 * own decision grants a different number. A job's completion is submission → that release in
 * both: the simulated one adds the measured submission → admission to its own.
 */
import { loadModelFile } from '../../models/index.js';
import { parseFleet, simulate, type PlanPolicy, type SimResult, type TraceEntry, type WorkloadSpec } from '../../coordinator/plan/index.js';
import type { TaskEvent } from '../../shared/index.js';

export interface RanJob { id: string; schema: Record<string, unknown>; submitted_at: number; events: readonly TaskEvent[] }
export interface RanNode { cores: number; memory_gb: number; cpu_model: string }

const released = (j: RanJob) => j.events.find((e) => e.state === 'succeeded' && e.result);

/** The batch replayed through the simulator under `policy` (the real run's, predictive by default). */
/** When the leader took the job in: its first event (after a node's probe of a file input). */
const admitted = (j: RanJob) => Math.max(j.submitted_at, j.events[0]?.at ?? j.submitted_at);

export function replayBatch(jobs: readonly RanJob[], node: RanNode, policy: PlanPolicy = 'predictive'): SimResult {
  const first = Math.min(...jobs.map((j) => j.submitted_at));
  const trace: TraceEntry[] = jobs.map((j, template) => {
    const done = released(j);
    if (!done) throw new Error(`job ${j.id} has no succeeded event to replay (last: ${j.events.at(-1)?.state ?? 'none'})`);
    const placed = [...j.events].reverse().find((e) => e.allocation);
    return { at_ms: admitted(j) - first, submitted_ms: j.submitted_at - first, template, cores: Math.max(1, placed?.allocation?.core_ids.length ?? 1), cpu_model: node.cpu_model, actual: { ...done.result!.actual } };
  }).sort((a, b) => a.at_ms - b.at_ms); // arrivals in time order (probes end out of order); each job its own template
  const workload: WorkloadSpec = {
    duration_ms: Math.max(...trace.map((e) => e.at_ms)),
    jobs: jobs.map((j, i) => {
      const { input, output, priority } = j.schema as { input: Record<string, unknown>; output: Record<string, unknown>; priority?: 'premium' | 'standard' | 'batch' };
      return { name: `job-${i}`, count: 1, ...(priority && { priority }), job: { input, output } };
    }),
    trace,
  };
  const fleet = parseFleet({ nodes: [{ type: 'node', count: 1, cores: node.cores, memory_gb: node.memory_gb, cpu_model: node.cpu_model }] });
  return simulate(workload, fleet, loadModelFile(), { policy, seed: 1 });
}

export interface Fidelity {
  real_makespan_s: number;
  sim_makespan_s: number;
  /** (simulated − real) ÷ real. */
  makespan_error: number;
  /** Per job, in the batch's order: its completion (submission → release) real and simulated, and the error. */
  jobs: { id: string; real_s: number; sim_s: number; error: number }[];
}

/** The real run against its replay (`replayBatch` of the same jobs). */
export function fidelityOf(jobs: readonly RanJob[], replay: SimResult): Fidelity {
  const first = Math.min(...jobs.map((j) => j.submitted_at));
  const realEnd = jobs.map((j) => released(j)!.at);
  // Each job is its own template (replayBatch), so a simulated job's template is the job's place in the batch.
  const simOf = new Map(replay.jobs.map((j) => [j.template, j]));
  const out = jobs.map((j, i) => {
    const sim = simOf.get(i);
    const real_s = (realEnd[i] - j.submitted_at) / 1000;
    const sim_s = sim?.ended_ms !== undefined ? (admitted(j) - j.submitted_at + sim.ended_ms - sim.arrival_ms) / 1000 : NaN;
    return { id: j.id, real_s, sim_s, error: (sim_s - real_s) / real_s };
  });
  const real_makespan_s = (Math.max(...realEnd) - first) / 1000;
  // The replay's clock, as its arrivals', counts from the first submission.
  const sim_makespan_s = Math.max(...replay.jobs.map((j) => j.ended_ms ?? NaN)) / 1000;
  return { real_makespan_s, sim_makespan_s, makespan_error: (sim_makespan_s - real_makespan_s) / real_makespan_s, jobs: out };
}
