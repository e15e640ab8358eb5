/**
 * Retraining: train a candidate on fresh rows, compare it with the model in service on the
 * same held-out rows, register it, and put it in service only if it is no worse
 * (evaluation/metrics.ts `compareReports`). Used by `prescient model train --promote` and by
 * the leader's schedule; the decision and its figures are returned and kept in the registry.
 */
import type { LabelledRow } from '../record.js';
import type { Model } from '../model.js';
import type { ModelRegistry } from '../registry.js';
import { compareReports, evaluatePredictor, type Comparison, type EvaluationReport } from '../evaluation/metrics.js';
import { trainModel, type TrainOptions, type TrainResult } from './index.js';

export interface RetrainOptions extends Omit<TrainOptions, 'version' | 'parent'> {
  registry: ModelRegistry;
  rows: readonly LabelledRow[];
  version?: string;
  /** `if-better`: promote when no worse than the current model; `always`; `never` (register only). */
  promote: 'if-better' | 'always' | 'never';
}

export interface RetrainResult {
  version: string;
  /** The version in service before, and whether the candidate replaced it. */
  previous: string;
  promoted: boolean;
  /** Why it was or was not promoted. */
  reason: string;
  comparison?: Comparison;
  /** Both models' figures on the candidate's held-out rows. */
  candidate_metrics: EvaluationReport;
  previous_metrics?: EvaluationReport;
  train: TrainResult;
}

export async function retrain(o: RetrainOptions): Promise<RetrainResult> {
  const previous = o.registry.currentVersion();
  let current: Model | undefined;
  try {
    current = o.registry.load(previous);
  } catch (e) {
    o.log?.(`current model ${previous} does not load, the candidate is compared with nothing: ${(e as Error).message}`);
  }
  const version = o.version ?? o.registry.newVersion();
  const train = await trainModel(o.rows, { ...o, version, parent: current });
  const held = train.split.test;
  const candidate_metrics = train.metrics;
  const previous_metrics = current ? evaluatePredictor((r) => current!.predictRecord(r), held) : undefined;
  let comparison: Comparison | undefined;
  let promoted: boolean, reason: string;
  if (o.promote === 'never') {
    [promoted, reason] = [false, 'registered only (promotion not asked for)'];
  } else if (o.promote === 'always') {
    [promoted, reason] = [true, 'promoted on request, without comparison'];
  } else if (!current || !previous_metrics) {
    [promoted, reason] = [true, `the current model ${previous} does not load`];
  } else if (held.length === 0) {
    [promoted, reason] = [false, 'no held-out rows to compare on'];
  } else {
    comparison = compareReports(candidate_metrics, previous_metrics, train.model.coverage);
    [promoted, reason] = [comparison.accept, comparison.reason];
  }
  o.registry.register(train.model, `trained on ${o.source}; ${held.length} held-out rows; ${promoted ? 'promoted' : 'not promoted'}: ${reason}`);
  if (promoted) o.registry.promote(version, reason);
  o.log?.(`${version} ${promoted ? 'promoted' : 'kept out of service'} (previous ${previous}): ${reason}`);
  return { version, previous, promoted, reason, comparison, candidate_metrics, previous_metrics, train };
}
