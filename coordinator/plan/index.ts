/**
 * Capacity planning (issue 19): `prescient plan` simulates a workload on a fleet under several
 * reservation policies, with the leader's real core deciding (simulate.ts), and reports per
 * policy what each SLA class waits, what is reserved against used, kills and cost (report.ts).
 */
import type { ResourcePredictor } from '../../models/index.js';
import type { FleetSpec, WorkloadSpec } from './inputs.js';
import { recommend, summarize, type PolicyReport } from './report.js';
import { simulate, type PlanPolicy, type SimResult } from './simulate.js';

export { parseFleet, parseWorkload, readFleet, readWorkload, spanMs, traceWorkload, type RecordedRun, type TraceEntry, type FleetSpec, type NodeTypeSpec, type TemplateSpec, type WorkloadSpec } from './inputs.js';
export { recommend, summarize, type ClassFigures, type PolicyReport } from './report.js';
export { chartSpecs, writeCharts } from './charts.js';
export { jobOfRecord, mappedWorkload, type MappedReplay, type MappedReplayOptions } from './mapped.js';
export { DEFAULT_TARGETS, findFleet, missedTargets, parseTargets, type FindOptions, type FindResult, type Target } from './find.js';
export { SIM_EPOCH, arrivals, normalQuantile, simulate, type PlanPolicy, type SimJob, type SimOptions, type SimResult } from './simulate.js';

export const DEFAULT_PLAN_POLICIES: readonly PlanPolicy[] = ['predictive', 'fixed-slots:2', 'one-core', 'oracle'];

/** A policy's name as `--policies` takes it; anything else is refused by the caller. */
export function isPlanPolicy(x: string): x is PlanPolicy {
  return x === 'predictive' || x === 'one-core' || x === 'oracle' || /^fixed-slots:([1-9]\d{0,2})$/.test(x);
}

export interface PlanOptions {
  workload: WorkloadSpec;
  fleet: FleetSpec;
  model: ResourcePredictor;
  policies?: readonly PlanPolicy[];
  seed?: number;
  errorScale?: number;
  sampleMs?: number;
}

export interface PlanReport {
  seed: number;
  error_scale: number;
  model_version: string;
  policies: PolicyReport[];
  recommendation: { policy: PlanPolicy; sentence: string };
}

/** Every policy on the same arrivals and the same per-job actual use (one seed); the runs, and the report. */
export function plan(o: PlanOptions): { report: PlanReport; runs: SimResult[] } {
  const seed = o.seed ?? 1;
  const runs = (o.policies ?? DEFAULT_PLAN_POLICIES).map((policy) => simulate(o.workload, o.fleet, o.model, { policy, seed, errorScale: o.errorScale, sampleMs: o.sampleMs }));
  const policies = runs.map((r) => summarize(r, o.fleet));
  return { report: { seed, error_scale: o.errorScale ?? 1, model_version: o.model.version, policies, recommendation: recommend(policies) }, runs };
}
