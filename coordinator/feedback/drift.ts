/**
 * The Page-Hinkley test for a shift in the mean of a stream, both ways. Pure.
 *
 * Fed the model's log residuals ln(actual / model prediction) of one (version, target, codec,
 * node). With x̄ the running mean, it accumulates m↑ = Σ (x − x̄ − δ) and fires "up" when m↑ has
 * risen more than λ above its lowest point (the actuals moved above the model), and likewise
 * m↓ = Σ (x − x̄ + δ) "down" when it has fallen more than λ below its highest. δ is the drift
 * tolerated (noise below it never accumulates), λ how much evidence a shift needs, both in log
 * units: λ = 1.5 is, for instance, three runs at twice the usual ratio (ln 2 ≈ 0.69, less δ).
 * After firing it starts again from nothing, so it judges the new level afresh.
 */

export interface PageHinkleyOptions {
  /** Shift in the mean tolerated without accumulating, in the residuals' units. */
  delta: number;
  /** Accumulated evidence that fires the test. */
  lambda: number;
  /** Residuals seen since the last reset before it may fire. */
  minRuns: number;
}

export const DEFAULT_PAGE_HINKLEY: PageHinkleyOptions = { delta: 0.1, lambda: 1.5, minRuns: 4 };

export interface PageHinkleyState {
  n: number;
  mean: number;
  up: number;
  upMin: number;
  down: number;
  downMax: number;
}

export const freshPageHinkley = (): PageHinkleyState => ({ n: 0, mean: 0, up: 0, upMin: 0, down: 0, downMax: 0 });

export interface PageHinkleyStep {
  state: PageHinkleyState;
  /** Set when this residual fired the test: which way, and the statistic that passed λ. */
  fired?: { direction: 'up' | 'down'; statistic: number };
}

export function pageHinkley(s: PageHinkleyState, x: number, o: PageHinkleyOptions = DEFAULT_PAGE_HINKLEY): PageHinkleyStep {
  if (!Number.isFinite(x)) return { state: s };
  const n = s.n + 1;
  const mean = s.mean + (x - s.mean) / n;
  const up = s.up + x - mean - o.delta;
  const down = s.down + x - mean + o.delta;
  const next: PageHinkleyState = { n, mean, up, upMin: Math.min(s.upMin, up), down, downMax: Math.max(s.downMax, down) };
  if (n < o.minRuns) return { state: next };
  const rise = next.up - next.upMin, fall = next.downMax - next.down;
  if (rise > o.lambda && rise >= fall) return { state: freshPageHinkley(), fired: { direction: 'up', statistic: rise } };
  if (fall > o.lambda) return { state: freshPageHinkley(), fired: { direction: 'down', statistic: fall } };
  return { state: next };
}
