/** A feature vector by its non-zero entries: what the encoder writes and the networks read. */
/** The non-zero entries of a feature vector, in column order (so sums add in brain.js's order). */
export class SparseVector {
  readonly idx: Int32Array;
  readonly val: Float64Array;
  n = 0;

  constructor(size: number) {
    this.idx = new Int32Array(size);
    this.val = new Float64Array(size);
  }

  static of(x: ArrayLike<number>): SparseVector {
    return new SparseVector(x.length).set(x);
  }

  set(x: ArrayLike<number>): this {
    let n = 0;
    for (let k = 0; k < x.length; k++) {
      const v = x[k];
      if (v !== 0) { this.idx[n] = k; this.val[n++] = v; }
    }
    this.n = n;
    return this;
  }
}
