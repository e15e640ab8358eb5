/**
 * Ridge regression over a model's feature vector: the first, smooth part of every estimate. It
 * carries the main effects that hold across sources (more pixels, a slower preset, fewer cores
 * cost more, in proportion on the log scale) where a lookup's groups are too small to show them,
 * and since the features are held to the training range (features.ts) it never extrapolates
 * beyond what the data reaches. The lookup (lookup.ts) and the networks then learn what it misses.
 */
import type { SparseVector } from './sparse.js';

/** Weights per column of the feature vector, and the intercept. */
export interface Linear { intercept: number; weights: number[] }

/**
 * Least squares with an L2 penalty of `lambda` on every weight but the intercept, by the normal
 * equations and a Cholesky factorisation: `x` is row-major n × d, `y` has n values.
 */
export function fitLinear(x: Float64Array, y: ArrayLike<number>, d: number, lambda: number): Linear {
  return fitLinears(x, y, d, [lambda])[0];
}

/**
 * fitLinear at each of several penalties, the normal equations summed once. Columns where `free`
 * is true are not penalised (only a vanishing ridge keeps the system solvable).
 */
export function fitLinears(x: Float64Array, y: ArrayLike<number>, d: number, lambdas: readonly number[], free?: ArrayLike<boolean>): Linear[] {
  const n = y.length, m = d + 1;
  const xtx = new Float64Array(m * m), xty = new Float64Array(m);
  const row = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    row.set(x.subarray(i * d, (i + 1) * d));
    row[d] = 1;
    const yi = y[i];
    for (let a = 0; a < m; a++) {
      const va = row[a];
      if (va === 0) continue;
      xty[a] += va * yi;
      for (let b = 0; b <= a; b++) xtx[a * m + b] += va * row[b];
    }
  }
  for (let a = 0; a < m; a++) for (let b = 0; b < a; b++) xtx[b * m + a] = xtx[a * m + b];
  return lambdas.map((lambda) => {
    const a = xtx.slice();
    for (let k = 0; k < d; k++) a[k * m + k] += free?.[k] ? 1e-9 * n : lambda;
    a[d * m + d] += 1e-9 * n;
    const w = solveSpd(a, xty, m);
    return { intercept: w[d], weights: Array.from(w.subarray(0, d)) };
  });
}

/** Solves A·w = b for a symmetric positive-definite A (n × n, row-major) by Cholesky. */
export function solveSpd(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = i === j ? Math.sqrt(Math.max(s, 1e-12)) : s / l[j * n + j];
    }
  }
  const z = new Float64Array(n), w = new Float64Array(n);
  for (let i = 0; i < n; i++) { let s = b[i]; for (let k = 0; k < i; k++) s -= l[i * n + k] * z[k]; z[i] = s / l[i * n + i]; }
  for (let i = n - 1; i >= 0; i--) { let s = z[i]; for (let k = i + 1; k < n; k++) s -= l[k * n + i] * w[k]; w[i] = s / l[i * n + i]; }
  return w;
}

/** A linear model ready to read sparse vectors. */
export class CompiledLinear {
  readonly w: Float64Array;
  readonly b: number;
  constructor(l: Linear) {
    this.w = Float64Array.from(l.weights);
    this.b = l.intercept;
  }

  /** Its value for the entries `idx`/`val` from `from` to `to` (a vector's, or a block row's), in column order. */
  at(idx: Int32Array, val: Float64Array, from: number, to: number): number {
    let s = this.b;
    const w = this.w;
    for (let k = from; k < to; k++) s += w[idx[k]] * val[k];
    return s;
  }

  value(v: SparseVector): number {
    return this.at(v.idx, v.val, 0, v.n);
  }
}

/** What is wrong with a stored linear model of `d` columns, or undefined. */
export function checkLinear(l: Linear | undefined, d: number, where: string): string | undefined {
  if (!l || !Array.isArray(l.weights) || !Number.isFinite(l.intercept)) return `${where} is not a linear model`;
  if (l.weights.length !== d) return `${where} has ${l.weights.length} weights for ${d} features`;
  if (!l.weights.every(Number.isFinite)) return `${where} has a non-finite weight`;
  return undefined;
}
