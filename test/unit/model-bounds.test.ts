/** Split-conformal upper bounds and the residual grids model files keep (models/conformal.ts). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { checkGrid, conformalQuantile, residualGrid, seededRandom } from '../../models/index.js';

/** Samplers of exchangeable (i.i.d.) residuals, from tame to heavy-tailed and tied. */
const DISTRIBUTIONS: Record<string, (r: () => number) => number> = {
  uniform: (r) => r(),
  normal: (r) => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()),
  exponential: (r) => -Math.log(1 - r()),
  cauchy: (r) => Math.tan(Math.PI * (r() - 0.5)),
  /** Log-normal errors of a skewed model, shifted so most are negative. */
  skewed: (r) => Math.exp(0.8 * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r())) - 1.5,
  /** Few distinct values: ties at the quantile. */
  rounded: (r) => Math.round(4 * r()),
};

test('an exact bound from a calibration half covers at least the nominal share of a fresh half, on average', () => {
  const DRAWS = 150;
  fc.assert(fc.property(
    fc.integer({ min: 10, max: 900 }),
    fc.constantFrom(0.5, 0.8, 0.9, 0.95, 0.99),
    fc.constantFrom(...Object.keys(DISTRIBUTIONS)),
    fc.integer(),
    (n, coverage, dist, seed) => {
      // The guarantee holds where a conformal bound exists, (n+1)·c ≤ n; below that the bound is a
      // documented widening of the largest residual, marked inexact (tested further down).
      fc.pre((n + 1) * coverage <= n);
      const r = seededRandom(seed), draw = DISTRIBUTIONS[dist];
      let covered = 0;
      for (let d = 0; d < DRAWS; d++) {
        const calibration = Array.from({ length: n }, () => draw(r));
        const { q } = conformalQuantile(residualGrid(calibration), coverage);
        for (let i = 0; i < n; i++) if (draw(r) <= q) covered++;
      }
      const mean = covered / (DRAWS * n);
      // Each draw's coverage varies by about √(c(1−c)/n) from the calibration half and as much from
      // the fresh half; five standard errors of the mean over the draws, plus one grid step (grids
      // of more than 401 points interpolate between kept order statistics).
      const se = Math.sqrt((2 * coverage * (1 - coverage)) / n / DRAWS);
      const slack = 5 * se + (n > 401 ? 1 / 400 : 0);
      return mean >= coverage - slack || assert.unreachable(`${dist}, n=${n}, coverage ${coverage}: mean covered ${mean.toFixed(4)} < ${(coverage - slack).toFixed(4)}`);
    },
  ), { numRuns: 40 });
});

test('the conformal quantile lies within the grid, is a kept residual when nothing was downsampled, and grows with coverage', () => {
  const residual = fc.double({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true });
  fc.assert(fc.property(
    fc.array(residual, { minLength: 1, maxLength: 1200 }),
    fc.double({ min: 0.5, max: 0.999, noNaN: true }),
    fc.double({ min: 0.5, max: 0.999, noNaN: true }),
    (residuals, a, b) => {
      const g = residualGrid(residuals);
      const [lo, hi] = a <= b ? [a, b] : [b, a];
      const ql = conformalQuantile(g, lo), qh = conformalQuantile(g, hi);
      assert.ok(ql.q <= qh.q, `coverage ${lo} gives ${ql.q}, ${hi} gives ${qh.q}`);
      for (const { q, exact } of [ql, qh]) {
        if (!exact) {
          assert.ok(q >= g.q[g.q.length - 1], 'an inexact bound is at or above the largest residual');
          continue;
        }
        const tol = 1e-12 * Math.max(1, Math.abs(q));
        assert.ok(q >= g.q[0] - tol && q <= g.q[g.q.length - 1] + tol, `${q} outside [${g.q[0]}, ${g.q[g.q.length - 1]}]`);
        if (g.n <= 401) assert.ok(g.q.includes(q), `${q} is not one of the residuals`);
      }
      return true;
    },
  ), { numRuns: 300 });
});

test('the quantile at coverage c is the ⌈(n+1)·c⌉-th smallest residual', () => {
  const residuals = [0.3, -0.2, 0.9, 0.1, 0.5, -0.4, 0.7, 0.0, 0.2, 0.6, 0.8, -0.1, 0.4, 1.2, 0.05, 0.15, 0.25, 0.35, 0.45];
  const sorted = [...residuals].sort((x, y) => x - y);
  const g = residualGrid(residuals);
  assert.equal(g, { n: 19, q: sorted });
  assert.equal(conformalQuantile(g, 0.9), { q: sorted[17], exact: true }); // ⌈20 · 0.9⌉ = 18
  assert.equal(conformalQuantile(g, 0.95), { q: sorted[18], exact: true }); // ⌈20 · 0.95⌉ = 19
  assert.equal(conformalQuantile(g, 0.5), { q: sorted[9], exact: true }); // ⌈20 · 0.5⌉ = 10
});

test('too few rows for the coverage give an inexact bound above the largest residual', () => {
  const g = residualGrid([0.1, 0.4, -0.3, 0.2, 0.25]);
  const { q, exact } = conformalQuantile(g, 0.95); // ⌈6 · 0.95⌉ = 6 > 5
  assert.is(exact, false);
  assert.ok(q > 0.4, `bound ${q} is not above the largest residual 0.4`);
  assert.ok(Number.isFinite(q));
  // The same five rows are enough for 0.8: ⌈6 · 0.8⌉ = 5.
  assert.equal(conformalQuantile(g, 0.8), { q: 0.4, exact: true });
  // All negative residuals (a model that always over-predicts) still give a bound above them.
  const neg = conformalQuantile(residualGrid([-5, -4, -3, -2, -1]), 0.95);
  assert.is(neg.exact, false);
  assert.ok(neg.q > -1, `bound ${neg.q}`);
  // No rows, no bound.
  const none = conformalQuantile(residualGrid([]), 0.95);
  assert.is(none.exact, false);
  assert.ok(Number.isNaN(none.q));
});

test('non-finite residuals are left out of the grid and its count', () => {
  assert.equal(residualGrid([0.5, NaN, -0.5, Infinity, 0.25, -Infinity]), { n: 3, q: [-0.5, 0.25, 0.5] });
});

test('a grid of more than 401 residuals is downsampled to 401 sorted points that keep the smallest and largest', () => {
  const r = seededRandom(3);
  const residuals = Array.from({ length: 5000 }, () => r() * 10 - 3);
  residuals[1234] = -50;
  residuals[4321] = 77;
  const g = residualGrid(residuals);
  assert.is(g.n, 5000);
  assert.is(g.q.length, 401);
  assert.is(g.q[0], -50);
  assert.is(g.q[400], 77);
  for (let i = 1; i < g.q.length; i++) assert.ok(g.q[i] >= g.q[i - 1], `not sorted at ${i}`);
  assert.is(checkGrid(g, 'grid'), undefined);
  // 401 residuals exactly are kept as they are.
  const exact = residualGrid(residuals.slice(0, 401));
  assert.is(exact.q.length, 401);
  assert.equal(exact.q, residuals.slice(0, 401).sort((a, b) => a - b));
  // The downsampled quantile stays close to the exact order statistic.
  const sorted = [...residuals].sort((a, b) => a - b);
  const { q, exact: isExact } = conformalQuantile(g, 0.9);
  assert.ok(isExact);
  const k = Math.ceil(5001 * 0.9);
  assert.ok(q >= sorted[k - 1 - 15] && q <= sorted[k - 1 + 15], `${q} is far from the ${k}-th residual ${sorted[k - 1]}`);
});

test('checkGrid refuses unsorted, non-finite or malformed grids, naming where', () => {
  assert.is(checkGrid({ n: 3, q: [-1, 0, 2] }, 'targets.cpu_cores.residuals.known'), undefined);
  assert.is(checkGrid({ n: 0, q: [] }, 'g'), undefined);
  assert.is(checkGrid({ n: 5, q: [1, 2, 1] }, 'targets.x.residuals.known'), 'targets.x.residuals.known is not sorted');
  assert.is(checkGrid({ n: 3, q: [0, NaN, 1] }, 'g'), 'g is not a residual grid');
  assert.is(checkGrid({ n: 3, q: [0, 1, Infinity] }, 'g'), 'g is not a residual grid');
  assert.is(checkGrid(JSON.parse('{"n":3,"q":[0,null,1]}'), 'g'), 'g is not a residual grid');
  assert.is(checkGrid({ n: 2, q: [0, 1, 2] }, 'g'), 'g is not a residual grid', 'more points than residuals');
  assert.is(checkGrid({ n: 2.5, q: [0, 1] }, 'g'), 'g is not a residual grid');
  assert.is(checkGrid(undefined, 'g'), 'g is not a residual grid');
  assert.is(checkGrid({ n: 3 } as never, 'g'), 'g is not a residual grid');
});

test.run();
