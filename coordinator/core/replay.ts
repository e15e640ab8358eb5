/**
 * Re-running a leader's logged events through a fresh core (`prescient replay FILE`). The
 * runtime appends, per batch it fed the core, the events and the decisions they led to (the
 * states it recorded and the assignments it made, in order); replay applies the same batches
 * to a new core built from each term's `Started` event and compares. The model is the
 * registry's version the log names (ModelChanged), with the feedback loop's corrections and
 * memory margins as the log's ModelChanged events carry them whenever they changed.
 */
import type { ResourcePredictor } from '../../models/index.js';
import { placementPolicy } from '../placement/index.js';
import { CorrectedPredictor, tableSource } from '../feedback/index.js';
import { LeaderCore } from './core.js';
import type { Effect, LeaderEvent } from './events.js';

/** What a batch decided: states recorded and assignments made, in the order the core asked for them. */
export interface BatchDecisions {
  records: [task_id: string, state: string][];
  assigns: [task_id: string, node_id: string, cores: number][];
}

export function decisionsOf(effects: readonly Effect[]): BatchDecisions {
  const records: BatchDecisions['records'] = [], assigns: BatchDecisions['assigns'] = [];
  for (const e of effects) {
    if (e.kind === 'Publish') records.push([e.event.job_id, e.event.state]);
    else if (e.kind === 'Assign') assigns.push([e.assignment.task_id, e.node_id, e.assignment.allocation.core_ids.length]);
  }
  return { records, assigns };
}

/** One line of the log. */
export interface LoggedBatch {
  events: LeaderEvent[];
  decisions: BatchDecisions;
}

export interface ReplayResult {
  batches: number;
  terms: number[];
  /** Decisions logged (records and assignments), all batches together. */
  decisions: number;
  /** Batches whose replayed decisions differ from the logged ones (the first few, with both). */
  differences: { batch: number; term: number; logged: BatchDecisions; replayed: BatchDecisions }[];
  differing: number;
  /** Assignments replayed identically: task → node and cores. */
  placements: number;
}

const KEEP_DIFFERENCES = 5;

/**
 * Replays logged batches. `predictorFor(version)` gives the model a ModelChanged event names.
 * Throws on a line that is not a batch, or a batch before any Started event.
 */
export function replay(lines: Iterable<string>, predictorFor: (version: string, coverage?: number) => ResourcePredictor): ReplayResult {
  const out: ReplayResult = { batches: 0, terms: [], decisions: 0, differences: [], differing: 0, placements: 0 };
  let core: LeaderCore | undefined;
  let predictor: ResourcePredictor | undefined;
  let coverage: number | undefined;
  let n = 0;
  for (const line of lines) {
    n++;
    if (!line.trim()) continue;
    const batch = parseBatch(line, n);
    const started = batch.events.find((e) => e.kind === 'Started');
    if (started) coverage = started.config?.coverage;
    for (const e of batch.events) {
      if (e.kind !== 'ModelChanged') continue;
      const model = predictorFor(e.version, coverage);
      // The corrections the live leader predicted with, from the table the log carries.
      const table = e.corrections;
      predictor = table && (table.groups.length || table.margins.length) ? new CorrectedPredictor(model, () => tableSource(table)) : model;
    }
    if (started) {
      const c = started.config;
      if (!c) throw new Error(`line ${n}: the Started event has no configuration to rebuild the core from`);
      if (!predictor) throw new Error(`line ${n}: no ModelChanged event before the term's start names the model`);
      core = new LeaderCore({
        predictor, validation: { allowedInputRoots: c.allowed_input_roots, allowedOutputRoots: c.allowed_output_roots }, leaseMs: c.lease_ms, maxAttempts: c.max_attempts,
        queuePolicy: c.queue_policy, reservation: c.reservation, policy: placementPolicy(c.placement), timeLimit: c.time_limit,
      });
      out.terms.push(started.term);
    }
    if (!core) throw new Error(`line ${n}: a batch before any Started event (the log must begin at a term's start)`);
    if (predictor) core.predictor = predictor;
    const replayed = decisionsOf(core.apply(batch.events).effects);
    out.batches++;
    out.decisions += batch.decisions.records.length + batch.decisions.assigns.length;
    if (JSON.stringify(replayed) === JSON.stringify(batch.decisions)) out.placements += replayed.assigns.length;
    else {
      out.differing++;
      if (out.differences.length < KEEP_DIFFERENCES) out.differences.push({ batch: n, term: core.term, logged: batch.decisions, replayed });
    }
  }
  return out;
}

function parseBatch(line: string, n: number): LoggedBatch {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new Error(`line ${n} is not JSON: ${(e as Error).message}`);
  }
  const b = v as Partial<LoggedBatch>;
  if (!Array.isArray(b?.events) || !b.events.every((e) => typeof e?.kind === 'string' && typeof e.at === 'number')
    || !Array.isArray(b.decisions?.records) || !Array.isArray(b.decisions?.assigns)) {
    throw new Error(`line ${n} is not a logged batch ({events: [{kind, at, …}], decisions: {records, assigns}})`);
  }
  return b as LoggedBatch;
}
