/**
 * Retraining: train a candidate on fresh rows, check it is good on its own (better than the
 * mean per codec, bounds that cover), compare it with the model in service on the same held-out
 * rows, register it, and put it in service only if it is no worse (evaluation/metrics.ts
 * `qualityProblems`, `compareReports`). Used by `prescient model train --promote` and by
 * the leader's schedule; the decision and its figures are returned and kept in the registry.
 */
import type { LabelledRow } from '../record.js';
import type { Model } from '../model.js';
import type { ModelRegistry } from '../registry.js';
import { compareReports, evaluatePredictor, qualityProblems, type Comparison, type EvaluationReport } from '../evaluation/metrics.js';
import { fitBaseline } from '../evaluation/baselines.js';
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
    o.log?.(`current model ${previous} does not load, the candidate is compared with nothing: ${(e as Error).message}`, 'error');
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
  } else if (held.length === 0) {
    [promoted, reason] = [false, o.split === 'none'
      ? 'trained on every row: nothing was held out to compare it with the model in service on (train with --split hash or time, or promote it with --force)'
      : 'no held-out rows to judge it on'];
  } else {
    const baseline = evaluatePredictor(fitBaseline('mean_per_codec', train.split, train.model.coverage), held);
    const calibrated = Object.fromEntries(Object.entries(train.model.file.targets).map(([t, m]) => [t, m!.residuals.known.n]));
    const problems = qualityProblems(candidate_metrics, baseline, train.model.coverage, calibrated);
    if (problems.length) {
      [promoted, reason] = [false, `not good enough on its own: ${problems.join('; ')}`];
    } else if (!current || !previous_metrics) {
      [promoted, reason] = [true, `the current model ${previous} does not load`];
    } else {
      comparison = compareReports(candidate_metrics, previous_metrics);
      [promoted, reason] = [comparison.accept, comparison.reason];
    }
  }
  o.registry.register(train.model, `trained on ${o.source}; ${held.length} held-out rows; ${promoted ? 'promoted' : 'not promoted'}: ${reason}`);
  if (promoted) o.registry.promote(version, reason);
  o.log?.(`${version} ${promoted ? 'promoted' : 'kept out of service'} (previous ${previous}): ${reason}`);
  return { version, previous, promoted, reason, comparison, candidate_metrics, previous_metrics, train };
}
