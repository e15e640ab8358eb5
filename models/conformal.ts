/**
 * Split-conformal upper bounds. A model is calibrated on rows it was not trained on: each
 * row's residual (actual minus predicted, on the target's transformed scale) is kept, sorted.
 * For coverage c, the bound adds the ⌈(n+1)·c⌉-th smallest residual to the prediction, which
 * covers a new row from the same distribution with probability at least c.
 *
 * Residuals are kept as a grid of at most GRID_POINTS order statistics, so a model file stays
 * small and the coverage can still be chosen when the model is loaded.
 */

const GRID_POINTS = 401;

/** Sorted residuals (or evenly spaced order statistics of them) and how many there were. */
export interface ResidualGrid { n: number; q: number[] }

export function residualGrid(residuals: readonly number[]): ResidualGrid {
  const sorted = residuals.filter(Number.isFinite).sort((a, b) => a - b);
  const n = sorted.length;
  if (n <= GRID_POINTS) return { n, q: sorted };
  return { n, q: Array.from({ length: GRID_POINTS }, (_, i) => sorted[Math.round((i * (n - 1)) / (GRID_POINTS - 1))]) };
}

/**
 * The conformal quantile for `coverage`. Where (n+1)·c exceeds n (too few rows for that
 * coverage) there is no finite conformal bound: the largest residual is widened by its
 * distance from the median instead, and `exact` is false.
 */
export function conformalQuantile(g: ResidualGrid, coverage: number): { q: number; exact: boolean } {
  if (g.n === 0) return { q: NaN, exact: false };
  const k = Math.ceil((g.n + 1) * coverage); // 1-based rank
  const at = (rank: number) => {
    const pos = g.n === 1 ? 0 : ((rank - 1) / (g.n - 1)) * (g.q.length - 1);
    const lo = Math.floor(pos), hi = Math.min(g.q.length - 1, lo + 1);
    return g.q[lo] + (g.q[hi] - g.q[lo]) * (pos - lo);
  };
  if (k <= g.n) return { q: at(Math.max(1, k)), exact: true };
  const max = g.q[g.q.length - 1], median = at((g.n + 1) / 2);
  return { q: max + Math.max(0, max - median), exact: false };
}

export function checkGrid(g: ResidualGrid | undefined, where: string): string | undefined {
  if (!g || !Number.isInteger(g.n) || g.n < 0 || !Array.isArray(g.q) || g.q.length > Math.max(g.n, 1) || !g.q.every(Number.isFinite)) return `${where} is not a residual grid`;
  for (let i = 1; i < g.q.length; i++) if (g.q[i] < g.q[i - 1]) return `${where} is not sorted`;
  return undefined;
}
