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

/**
 * Several sparse vectors back to back (compressed rows): row `b`'s non-zero entries are
 * `idx`/`val` at `start[b] .. start[b + 1]`, in column order. What the batch path encodes a
 * block of records into, and what `NetworkBank.runBlock` reads; its arrays are reused.
 */
export class SparseBlock {
  readonly idx: Int32Array;
  readonly val: Float64Array;
  readonly start: Int32Array;
  rows = 0;

  constructor(readonly capacity: number, readonly size: number) {
    this.idx = new Int32Array(capacity * size);
    this.val = new Float64Array(capacity * size);
    this.start = new Int32Array(capacity + 1);
  }

  /** Empties the block. */
  clear(): this {
    this.rows = 0;
    this.start[0] = 0;
    return this;
  }

  /** Appends a dense vector's non-zero entries as the next row (tests and benchmarks). */
  push(x: ArrayLike<number>): this {
    if (this.rows >= this.capacity) throw new RangeError(`the block holds ${this.capacity} rows`);
    let n = this.start[this.rows];
    for (let k = 0; k < x.length; k++) {
      const v = x[k];
      if (v !== 0) { this.idx[n] = k; this.val[n++] = v; }
    }
    this.start[++this.rows] = n;
    return this;
  }
}
