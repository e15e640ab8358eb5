/**
 * Ridge regression over a model's feature vector: the first, smooth part of every estimate. It
 * carries the main effects that hold across sources (more pixels, a slower preset, fewer cores
 * cost more, in proportion on the log scale) where a lookup's groups are too small to show them,
 * and since the features are held to the training range (features.ts) it never extrapolates
 * beyond what the data reaches. The lookup (lookup.ts) and the networks then learn what it misses.
 */
import type { SparseVector } from './sparse.js';

/**
 * Weights per column of the feature vector, and the intercept; and, where an effect differs by
 * group (a slower preset costs x264 a few times more and AV1 a hundred), a weight per group
 * column `by` (the one-hot columns of one category) and numeric column `on`: the product of the
 * two is a column of its own.
 */
export interface Linear { intercept: number; weights: number[]; interactions?: Interactions }
export interface Interactions { by: number[]; on: number[]; weights: number[][] }

/**
 * Least squares with an L2 penalty of `lambda` on every weight but the intercept, by the normal
 * equations and a Cholesky factorisation: `x` is row-major n × d, `y` has n values.
 */
export function fitLinear(x: Float64Array, y: ArrayLike<number>, d: number, lambda: number, inter?: Omit<Interactions, 'weights'>): Linear {
  const by = inter?.by ?? [], on = inter?.on ?? [];
  const p = d + by.length * on.length, n = y.length, m = p + 1;
  const xtx = new Float64Array(m * m), xty = new Float64Array(m);
  const row = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    const xi = x.subarray(i * d, (i + 1) * d);
    row.set(xi);
    for (let b = 0; b < by.length; b++) for (let o = 0; o < on.length; o++) row[d + b * on.length + o] = xi[by[b]] * xi[on[o]];
    row[p] = 1;
    const yi = y[i];
    for (let a = 0; a < m; a++) {
      const va = row[a];
      if (va === 0) continue;
      xty[a] += va * yi;
      for (let b = 0; b <= a; b++) xtx[a * m + b] += va * row[b];
    }
  }
  for (let a = 0; a < m; a++) for (let b = 0; b < a; b++) xtx[b * m + a] = xtx[a * m + b];
  for (let a = 0; a < p; a++) xtx[a * m + a] += lambda;
  xtx[p * m + p] += 1e-9 * n;
  const w = solveSpd(xtx, xty, m);
  const out: Linear = { intercept: w[p], weights: Array.from(w.subarray(0, d)) };
  if (by.length && on.length) out.interactions = { by: [...by], on: [...on], weights: by.map((_, b) => Array.from(w.subarray(d + b * on.length, d + (b + 1) * on.length))) };
  return out;
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
  /** Per column: its group's index in `by` (-1: none), and its place in `on` (-1: none). */
  private readonly group?: Int32Array;
  private readonly onAt?: Int32Array;
  private readonly iw?: Float64Array[];
  /** The `on` columns' values of the record being read (zero again after each read). */
  private readonly onVal?: Float64Array;
  constructor(l: Linear) {
    this.w = Float64Array.from(l.weights);
    this.b = l.intercept;
    const it = l.interactions;
    if (it) {
      this.group = new Int32Array(l.weights.length).fill(-1);
      this.onAt = new Int32Array(l.weights.length).fill(-1);
      it.by.forEach((c, i) => { this.group![c] = i; });
      it.on.forEach((c, i) => { this.onAt![c] = i; });
      this.iw = it.weights.map((row) => Float64Array.from(row));
      this.onVal = new Float64Array(it.on.length);
    }
  }

  /** Its value for the entries `idx`/`val` from `from` to `to` (a vector's, or a block row's), in column order. */
  at(idx: Int32Array, val: Float64Array, from: number, to: number): number {
    let s = this.b;
    const w = this.w, group = this.group;
    if (group === undefined) {
      for (let k = from; k < to; k++) s += w[idx[k]] * val[k];
      return s;
    }
    const onAt = this.onAt!, onVal = this.onVal!;
    let g = -1;
    for (let k = from; k < to; k++) {
      const c = idx[k];
      s += w[c] * val[k];
      if (group[c] >= 0) g = group[c];
      else if (onAt[c] >= 0) onVal[onAt[c]] = val[k];
    }
    if (g >= 0) {
      const row = this.iw![g];
      for (let j = 0; j < row.length; j++) s += row[j] * onVal[j];
    }
    onVal.fill(0);
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
  const it = l.interactions;
  if (it !== undefined) {
    const col = (c: unknown) => Number.isInteger(c) && (c as number) >= 0 && (c as number) < d;
    if (!Array.isArray(it.by) || !Array.isArray(it.on) || !it.by.every(col) || !it.on.every(col)) return `${where}.interactions name columns it does not have`;
    if (!Array.isArray(it.weights) || it.weights.length !== it.by.length || !it.weights.every((r) => Array.isArray(r) && r.length === it.on.length && r.every(Number.isFinite))) return `${where}.interactions do not have a finite weight per pair`;
  }
  return undefined;
}
