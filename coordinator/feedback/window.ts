/**
 * Rolling error figures over the last N runs of one (model version, target, codec, node). Pure.
 *
 * Each run adds one entry: its absolute percentage error |actual − predicted| / actual (as in
 * models/evaluation: relative to what was measured), its log error ln(actual / predicted) (signed:
 * positive when the model under-predicted), and whether the upper bound held it, where one is known.
 */

export interface WindowEntry {
  /** |actual − predicted| / actual, a fraction. */
  ape: number;
  /** ln(actual / predicted): the signed error on a ratio scale. */
  log: number;
  /** actual ≤ the upper bound (or the reservation), when one is known. */
  covered?: boolean;
}

export interface RollingFigures {
  /** Runs in the window. */
  n: number;
  /** Mean absolute percentage error over the window, in %. */
  mape: number;
  /** Mean signed log error over the window: > 0 under-predicts, < 0 over-predicts (exp(bias) is the typical ratio). */
  bias: number;
  /** Share of the window's runs with a known bound that stayed under it; NaN when none had one. */
  coverage: number;
}

/** The entry for one run, or undefined when the pair says nothing about a ratio (non-finite, or not above zero). */
export function errorEntry(predicted: number, actual: number, bound?: number): WindowEntry | undefined {
  if (!(Number.isFinite(predicted) && Number.isFinite(actual) && predicted > 0 && actual > 0)) return undefined;
  const e: WindowEntry = { ape: Math.abs(actual - predicted) / actual, log: Math.log(actual / predicted) };
  if (bound !== undefined && Number.isFinite(bound) && bound > 0) e.covered = actual <= bound * (1 + 1e-9);
  return e;
}

/** The window with `e` added, keeping the latest `size` entries (a new array). */
export function pushWindow(w: readonly WindowEntry[], e: WindowEntry, size: number): WindowEntry[] {
  const out = [...w, e];
  return out.length > size ? out.slice(out.length - size) : out;
}

export function rollingFigures(w: readonly WindowEntry[]): RollingFigures {
  const n = w.length;
  if (!n) return { n: 0, mape: NaN, bias: NaN, coverage: NaN };
  let ape = 0, log = 0, covered = 0, bounded = 0;
  for (const e of w) {
    ape += e.ape;
    log += e.log;
    if (e.covered !== undefined) { bounded++; if (e.covered) covered++; }
  }
  return { n, mape: (100 * ape) / n, bias: log / n, coverage: bounded ? covered / bounded : NaN };
}
