/**
 * Simple baselines, fitted and calibrated on the same split as the model so their figures sit
 * beside it fairly: the mean per output codec, and a least-squares linear regression on the
 * model's own feature vector. Both learn on the model's target scales (log10, and duration per
 * frame), and get split-conformal bounds from the same calibration rows.
 */
import { encodeFeatures, fitFeatures, outputFrames } from '../features.js';
import { conformalQuantile, residualGrid } from '../conformal.js';
import { solveSpd } from '../linear.js';
import { TARGET_SCALES, transformTarget } from '../model.js';
import { TARGETS, type LabelledRow, type Target, type TargetValues, type EncodeRecord } from '../record.js';
import { evaluable, type RecordPredictor } from './metrics.js';
import type { Split } from '../training/split.js';

export const BASELINES = ['mean_per_codec', 'linear_regression'] as const;
export type Baseline = (typeof BASELINES)[number];

/** A fitted baseline for one target: its prediction on the learning scale. */
type ScaleFn = (rec: EncodeRecord) => number;

const perFrame = (t: Target) => t === 'duration_s';
const toScale = (t: Target, r: LabelledRow) => transformTarget(t, r.targets[t]!, perFrame(t) ? outputFrames(r.record) : undefined);
const usable = (t: Target, r: LabelledRow) => evaluable(t, r) && (!perFrame(t) || outputFrames(r.record) !== undefined);

function meanPerCodec(t: Target, fit: LabelledRow[]): ScaleFn {
  const sums = new Map<string, [number, number]>();
  let all = 0;
  for (const r of fit) {
    const y = toScale(t, r), k = r.record.output.codec ?? '';
    const s = sums.get(k) ?? [0, 0];
    sums.set(k, [s[0] + y, s[1] + 1]);
    all += y;
  }
  const overall = all / fit.length;
  const means = new Map([...sums].map(([k, [s, n]]) => [k, s / n]));
  return (rec) => means.get(rec.output.codec ?? '') ?? overall;
}

/** Ridge-stabilised least squares (normal equations, Cholesky) on the features plus an intercept. */
function linearRegression(t: Target, fit: LabelledRow[]): ScaleFn {
  const state = fitFeatures(fit.map((r) => r.record));
  const d = state.names.length + 1;
  const xtx = new Float64Array(d * d), xty = new Float64Array(d), x = new Float64Array(d);
  for (const r of fit) {
    encodeFeatures(state, r.record, x.subarray(0, d - 1));
    x[d - 1] = 1;
    const y = toScale(t, r);
    for (let i = 0; i < d; i++) {
      if (x[i] === 0) continue;
      xty[i] += x[i] * y;
      for (let j = 0; j < d; j++) xtx[i * d + j] += x[i] * x[j];
    }
  }
  for (let i = 0; i < d; i++) xtx[i * d + i] += 1e-3 * fit.length;
  const w = solveSpd(xtx, xty, d);
  const buf = new Float64Array(d - 1);
  return (rec) => {
    encodeFeatures(state, rec, buf);
    let s = w[d - 1];
    for (let i = 0; i < d - 1; i++) s += w[i] * buf[i];
    return s;
  };
}

/** Fits a baseline on `split.fit`, calibrates its bound on `split.calibration`; GPU share is skipped. */
export function fitBaseline(kind: Baseline, split: Split, coverage: number): RecordPredictor {
  const fns: Partial<Record<Target, { f: ScaleFn; q: number }>> = {};
  for (const t of TARGETS) {
    if (t === 'gpu_percent') continue;
    const fit = split.fit.filter((r) => usable(t, r));
    if (fit.length < 2) continue;
    const f = kind === 'mean_per_codec' ? meanPerCodec(t, fit) : linearRegression(t, fit);
    const cal = split.calibration.filter((r) => usable(t, r));
    const grid = residualGrid(cal.map((r) => toScale(t, r) - f(r.record)));
    fns[t] = { f, q: grid.n ? Math.max(0, conformalQuantile(grid, coverage).q) : 0 };
  }
  return (rec) => {
    const expected: Partial<TargetValues> = {}, upper: Partial<TargetValues> = {};
    const frames = outputFrames(rec) ?? 1;
    for (const [t, { f, q }] of Object.entries(fns) as [Target, { f: ScaleFn; q: number }][]) {
      const s = f(rec), k = perFrame(t) ? frames : 1;
      const [lo, hi] = TARGET_SCALES[t].range;
      expected[t] = Math.min(hi, Math.max(lo, 10 ** s * k));
      upper[t] = Math.min(hi, Math.max(lo, 10 ** (s + q) * k));
    }
    return { expected, upper };
  };
}
