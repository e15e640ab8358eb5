/**
 * Held-out figures for any predictor: per target MAE, MAPE, median APE, R², the coverage its
 * upper bound reached, and slack (what a reservation at the bound leaves unused, as a share of it).
 */
import { GPU_ENCODERS } from '../../shared/index.js';
import { TARGETS, type EncodeRecord, type LabelledRow, type Target, type TargetValues } from '../record.js';
import { TARGET_SCALES } from '../model.js';

/** Anything that predicts expected values and upper bounds for a record. */
export type RecordPredictor = (rec: EncodeRecord) => { expected: Partial<TargetValues>; upper: Partial<TargetValues> };

export interface TargetMetrics {
  /** Rows with this target measured. */
  n: number;
  mae: number;
  /** Mean absolute percentage error over rows whose actual is above zero, in percent. */
  mape: number;
  /** Median absolute percentage error over the same rows, in percent: a few outliers do not move it. */
  median_ape: number;
  r2: number;
  /** Share of rows whose actual stayed at or under the upper bound. */
  coverage: number;
  /** Mean of (bound − actual) ÷ bound: the reserved share left unused (negative on overruns). */
  slack: number;
  /**
   * Mean absolute error on the target's learning scale (log10 for all but GPU share): the figure
   * models are compared by, since it weighs a 10 s and a 10 h encode alike.
   */
  scale_mae: number;
}

export type EvaluationReport = Partial<Record<Target, TargetMetrics>>;

/** Whether a row's target takes part in evaluation: GPU share only for GPU encodes. */
export function evaluable(t: Target, r: LabelledRow): boolean {
  const v = r.targets[t];
  if (v === undefined || !Number.isFinite(v) || v < 0) return false;
  if (t !== 'gpu_percent') return true;
  const rec = r.record;
  return rec.node.gpus !== undefined ? rec.node.gpus > 0 : GPU_ENCODERS.has(rec.output.encoder ?? '');
}

const onScale = (t: Target, v: number) => (TARGET_SCALES[t].transform === 'linear' ? v : Math.log10(Math.max(v, TARGET_SCALES[t].range[0])));

export function evaluatePredictor(predict: RecordPredictor, rows: readonly LabelledRow[], targets: readonly Target[] = TARGETS): EvaluationReport {
  const acc = new Map<Target, { a: number[]; p: number[]; u: number[] }>();
  for (const r of rows) {
    const wanted = targets.filter((t) => evaluable(t, r));
    if (!wanted.length) continue;
    const p = predict(r.record);
    for (const t of wanted) {
      const e = p.expected[t], u = p.upper[t];
      if (e === undefined || u === undefined) continue;
      let m = acc.get(t);
      if (!m) acc.set(t, (m = { a: [], p: [], u: [] }));
      m.a.push(r.targets[t]!); m.p.push(e); m.u.push(u);
    }
  }
  const report: EvaluationReport = {};
  for (const [t, { a, p, u }] of acc) report[t] = metrics(t, a, p, u);
  return report;
}

function metrics(t: Target, a: number[], p: number[], u: number[]): TargetMetrics {
  const n = a.length;
  let abs = 0, pct = 0, npct = 0, ssRes = 0, covered = 0, slack = 0, nslack = 0, scale = 0, mean = 0;
  for (let i = 0; i < n; i++) mean += a[i] / n;
  let ssTot = 0;
  const apes: number[] = [];
  for (let i = 0; i < n; i++) {
    const err = p[i] - a[i];
    abs += Math.abs(err);
    ssRes += err * err;
    ssTot += (a[i] - mean) ** 2;
    if (a[i] > 0) { pct += Math.abs(err) / a[i]; npct++; apes.push(Math.abs(err) / a[i]); }
    if (a[i] <= u[i] * (1 + 1e-9)) covered++;
    // A reservation the encode outgrew left nothing unused: 0, not a negative share that would
    // make a bound missed by far look tight (one job at 100× its bound took 15 points off the mean).
    if (u[i] > 0) { slack += a[i] < u[i] ? (u[i] - a[i]) / u[i] : 0; nslack++; }
    scale += Math.abs(onScale(t, p[i]) - onScale(t, a[i]));
  }
  return {
    n, mae: abs / n, mape: npct ? (100 * pct) / npct : NaN, median_ape: 100 * median(apes), r2: ssTot > 0 ? 1 - ssRes / ssTot : NaN,
    coverage: covered / n, slack: nslack ? slack / nslack : NaN, scale_mae: scale / n,
  };
}

/** Sorts `xs` in place. */
function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = xs.sort((x, y) => x - y), mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Outcome of comparing a candidate with the model in service on the same held-out rows. */
export interface Comparison {
  accept: boolean;
  reason: string;
  /** Per target: the candidate's and the current model's error on the learning scale, and coverage. */
  targets: Partial<Record<Target, { candidate: number; current: number; candidate_coverage: number; current_coverage: number }>>;
}

/**
 * "No worse": on every target both were measured on, the candidate's scale error is at most 2 %
 * above the current model's (noise on small windows), and their mean ratio is at most 1. Its
 * bounds are judged on their own (`qualityProblems`): a current model with needlessly wide
 * bounds covers more, which is no merit.
 */
export function compareReports(candidate: EvaluationReport, current: EvaluationReport): Comparison {
  const targets: Comparison['targets'] = {};
  const worse: string[] = [];
  const ratios: number[] = [];
  for (const t of TARGETS) {
    const c = candidate[t], k = current[t];
    if (!c || !k) continue;
    targets[t] = { candidate: c.scale_mae, current: k.scale_mae, candidate_coverage: c.coverage, current_coverage: k.coverage };
    const ratio = c.scale_mae / Math.max(k.scale_mae, 1e-12);
    ratios.push(ratio);
    if (ratio > 1.02) worse.push(`${t} error ${fmt(c.scale_mae)} vs ${fmt(k.scale_mae)}`);
  }
  if (!ratios.length) return { accept: false, reason: 'no target could be compared on the held-out rows', targets };
  const meanRatio = ratios.reduce((x, y) => x + y, 0) / ratios.length;
  if (meanRatio > 1) worse.push(`mean error ratio ${meanRatio.toFixed(3)} > 1`);
  return worse.length
    ? { accept: false, reason: `worse than the current model: ${worse.join('; ')}`, targets }
    : { accept: true, reason: `no worse than the current model (mean error ratio ${meanRatio.toFixed(3)})`, targets };
}

const fmt = (x: number) => x.toPrecision(3);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/**
 * What makes a candidate not worth serving whatever the model in service does: a target it
 * predicts no better than the mean per codec on the same rows, or a bound that covers clearly
 * less than it was built for: more than 2 points and three standard errors below, counting the
 * chance in both the held-out rows and the `calibrationRows` the bound was drawn from.
 * Without this a model trained on garbage could win against a good one judged on garbage rows.
 */
export function qualityProblems(candidate: EvaluationReport, baseline: EvaluationReport, nominalCoverage: number, calibrationRows: Partial<Record<Target, number>> = {}): string[] {
  const problems: string[] = [];
  for (const t of TARGETS) {
    const c = candidate[t], b = baseline[t];
    if (!c) continue;
    if (b && c.scale_mae >= b.scale_mae) problems.push(`${t} error ${fmt(c.scale_mae)} is no better than the mean per codec's ${fmt(b.scale_mae)}`);
    const spread = 1 / c.n + (calibrationRows[t] ? 1 / calibrationRows[t]! : 0);
    const tolerance = Math.max(0.02, 3 * Math.sqrt(nominalCoverage * (1 - nominalCoverage) * spread));
    if (c.coverage < nominalCoverage - tolerance) problems.push(`${t} bound covers ${pct(c.coverage)} of held-out rows, built for ${pct(nominalCoverage)}`);
  }
  return problems;
}
