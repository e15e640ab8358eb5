/**
 * brain.js networks: trained here with brain.js's own per-pattern back-propagation, and run
 * through `CompiledNetwork` / `NetworkBank`, a forward pass over the same Float32 weights that
 * skips the zero inputs of the one-hot columns. Same weights, same summation order, Float32
 * activations as brain.js stores them; only the sigmoid is read from a table (`sigmoid`, within
 * 1e-9 of the exact one), so an output differs from brain.js's `run` by a Float32 rounding step
 * at most, at a fraction of its cost.
 */
import brain from 'brain.js';
import { SparseBlock, SparseVector } from './sparse.js';

export { SparseBlock, SparseVector };

/** Records a batch runs through the networks at once (`NetworkBank.runBlock`). */
export const BLOCK_ROWS = 128;

/** A brain.js NeuralNetwork as `toJSON()` writes it (the parts this module reads). */
export interface NetworkJson {
  type: 'NeuralNetwork';
  sizes: number[];
  layers: Array<{ weights: number[][]; biases: number[] }>;
  [k: string]: unknown;
}

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32): seeded training replays exactly. */
export function seededRandom(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates shuffle of 0..n-1. */
export function permutation(n: number, rand: () => number, out: Uint32Array = new Uint32Array(n)): Uint32Array {
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = out[i]; out[i] = out[j]; out[j] = t;
  }
  return out;
}

export interface NetworkTrainOptions {
  hidden: number[];
  seed: number;
  /** Most passes over the data; early stopping usually ends sooner. */
  maxEpochs: number;
  learningRate: number;
  momentum: number;
  /** Learning rate multiplier per epoch. */
  decay: number;
  /** Epochs without a better validation error before stopping. */
  patience: number;
  /** Share of rows held back for early stopping (none below 20 rows). */
  validationShare: number;
  /** Wall-clock budget; training stops after the epoch that passes it. */
  budgetMs?: number;
}

export const DEFAULT_NETWORK_OPTIONS: NetworkTrainOptions = {
  hidden: [20, 10], seed: 1, maxEpochs: 400, learningRate: 0.15, momentum: 0.8, decay: 0.98, patience: 12, validationShare: 0.1,
};

export interface TrainedNetwork {
  json: NetworkJson;
  epochs: number;
  /** Mean squared error on the unit scale: on the validation rows, and on the rows trained on. */
  validation_mse: number;
  train_mse: number;
  ms: number;
}

/**
 * Trains one sigmoid network on `n` rows of `d` features (row-major `x`) against `k` outputs per
 * row (row-major `y`, each in (0, 1)). Keeps the weights of the epoch with the lowest
 * validation error.
 */
export function trainNetwork(x: Float64Array, y: Float64Array, d: number, o: NetworkTrainOptions, k = 1): TrainedNetwork {
  const started = Date.now();
  const n = y.length / k;
  const rand = seededRandom(o.seed);
  const net = new brain.NeuralNetwork<number[], number[]>({ inputSize: d, hiddenLayers: o.hidden, outputSize: k, activation: 'sigmoid' });
  net.initialize();
  // brain.js draws its initial weights from Math.random; redraw them (same ±0.2 range) from the seed.
  for (let l = 1; l < net.sizes.length; l++) {
    net.biases[l] = net.biases[l].map(() => rand() * 0.4 - 0.2);
    net.weights[l] = net.weights[l].map((w) => w.map(() => rand() * 0.4 - 0.2));
  }
  const order = permutation(n, rand);
  const nVal = n >= 20 ? Math.max(1, Math.round(n * o.validationShare)) : 0;
  const val = order.slice(0, nVal), fit = order.slice(nVal);
  const patterns = Array.from({ length: n }, (_, i) => ({
    input: x.subarray(i * d, (i + 1) * d) as unknown as Float32Array,
    output: Float32Array.from(y.subarray(i * k, (i + 1) * k)),
  }));
  const mse = (idx: Uint32Array) => {
    let s = 0;
    for (const i of idx) {
      const out = net.runInput(patterns[i].input);
      for (let j = 0; j < k; j++) { const e = out[j] - y[i * k + j]; s += e * e; }
    }
    return idx.length ? s / (idx.length * k) : 0;
  };
  let best = { score: Infinity, json: net.toJSON() as unknown as NetworkJson, epoch: 0 };
  let lr = o.learningRate, epoch = 0;
  for (; epoch < o.maxEpochs; epoch++) {
    net.updateTrainingOptions({ learningRate: lr, momentum: o.momentum });
    permutation(fit.length, rand, order.subarray(0, fit.length));
    for (let j = 0; j < fit.length; j++) net.trainPattern(patterns[fit[order[j]]]);
    lr *= o.decay;
    // Without validation rows, the training error decides (small data: stop on the epoch budget).
    const score = nVal ? mse(val) : mse(fit);
    if (score < best.score - 1e-9) best = { score, json: net.toJSON() as unknown as NetworkJson, epoch };
    else if (nVal && epoch - best.epoch >= o.patience) break;
    if (o.budgetMs !== undefined && Date.now() - started > o.budgetMs) break;
  }
  net.fromJSON(best.json as never);
  return { json: best.json, epochs: Math.min(epoch + 1, o.maxEpochs), validation_mse: nVal ? best.score : NaN, train_mse: mse(fit), ms: Date.now() - started };
}

/**
 * The logistic function from a table of cubic pieces over [-20, 20] (32 per unit, Hermite
 * interpolation with the exact slope at both ends: error below 1e-9), exact outside it. On the
 * machines here Math.exp is a third of a prediction's cost and a network runs dozens of them.
 */
export function sigmoid(x: number): number {
  const t = (x - SIGMOID_FROM) * SIGMOID_STEPS;
  if (!(t >= 0 && t < SIGMOID_PIECES)) return 1 / (1 + Math.exp(-x));
  const i = t | 0, u = t - i, k = 4 * i, c = SIGMOID_TABLE;
  return c[k] + u * (c[k + 1] + u * (c[k + 2] + u * c[k + 3]));
}
const SIGMOID_FROM = -20, SIGMOID_STEPS = 32, SIGMOID_PIECES = 40 * SIGMOID_STEPS;
const SIGMOID_TABLE = (() => {
  const exact = (x: number) => 1 / (1 + Math.exp(-x)), h = 1 / SIGMOID_STEPS, c = new Float64Array(4 * SIGMOID_PIECES);
  for (let i = 0; i < SIGMOID_PIECES; i++) {
    const y0 = exact(SIGMOID_FROM + i * h), y1 = exact(SIGMOID_FROM + (i + 1) * h);
    const d0 = y0 * (1 - y0) * h, d1 = y1 * (1 - y1) * h;
    c.set([y0, d0, 3 * (y1 - y0) - 2 * d0 - d1, 2 * (y0 - y1) + d0 + d1], 4 * i);
  }
  return c;
})();

/** A network checked and laid out for fast inference. */
export class CompiledNetwork {
  private readonly w: Float32Array[][];
  private readonly b: Float32Array[];
  private readonly act: Float32Array[];
  /** Layer l's weights as one node-major matrix (node j's weight k at j · inputs + k), for blocks. */
  private readonly flat: Float32Array[];
  /** Per layer, activations for a block of records, node-major (node j of record r at j · BLOCK_ROWS + r); made on first use. */
  private blockAct?: Float32Array[];

  /** Throws with the reason when `json` is not a finite sigmoid network of `inputs` → … → `outputs`. */
  constructor(json: NetworkJson, readonly inputs: number, readonly outputs = 1) {
    const sizes = json?.sizes;
    if (json?.type !== 'NeuralNetwork' || !Array.isArray(sizes) || sizes.length < 2 || !sizes.every((s) => Number.isInteger(s) && s > 0)) {
      throw new Error('is not a brain.js NeuralNetwork');
    }
    if (sizes[0] !== inputs) throw new Error(`takes ${sizes[0]} inputs, the feature spec gives ${inputs}`);
    if (sizes[sizes.length - 1] !== outputs) throw new Error(`has ${sizes[sizes.length - 1]} outputs, expected ${outputs}`);
    // brain.js runs trainOpts.activation; options.activation is only what the network was built with.
    for (const where of ['trainOpts', 'options'] as const) {
      const activation = (json[where] as { activation?: string } | undefined)?.activation;
      if (activation !== undefined && activation !== 'sigmoid') throw new Error(`uses activation ${activation}, expected sigmoid (${where}.activation)`);
    }
    if (!Array.isArray(json.layers) || json.layers.length !== sizes.length) throw new Error('has a layer count that does not match its sizes');
    this.w = [[]];
    this.b = [new Float32Array(0)];
    for (let l = 1; l < sizes.length; l++) {
      const { weights, biases } = json.layers[l] ?? {};
      if (!Array.isArray(weights) || weights.length !== sizes[l] || !Array.isArray(biases) || biases.length !== sizes[l]) {
        throw new Error(`layer ${l} does not have ${sizes[l]} nodes`);
      }
      this.w.push(weights.map((row, i) => {
        if (!Array.isArray(row) || row.length !== sizes[l - 1]) throw new Error(`layer ${l} node ${i} does not have ${sizes[l - 1]} weights`);
        if (!row.every(Number.isFinite)) throw new Error(`layer ${l} node ${i} has a non-finite weight`);
        return Float32Array.from(row);
      }));
      if (!biases.every(Number.isFinite)) throw new Error(`layer ${l} has a non-finite bias`);
      this.b.push(Float32Array.from(biases));
    }
    this.act = sizes.map((s) => new Float32Array(s));
    this.flat = this.w.map((rows) => {
      const m = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
      let at = 0;
      for (const r of rows) { m.set(r, at); at += r.length; }
      return m;
    });
  }

  /** The network's first output (0..1) for one feature vector. */
  run(x: ArrayLike<number>): number {
    return this.runSparse(SparseVector.of(x))[0];
  }

  /** The outputs for a vector given by its non-zero entries (the array is reused by the next call). */
  runSparse(x: SparseVector): Float64Array {
    this.solo ??= new NetworkBank([this]);
    return this.solo.run(x);
  }

  private solo?: NetworkBank;

  /** Weights and biases of layer `l` (1 = the first after the inputs), for NetworkBank. */
  layer(l: number): { w: Float32Array[]; b: Float32Array } {
    return { w: this.w[l], b: this.b[l] };
  }

  /** The outputs from the first layer's activations (read at `h1[at ..]`), written at `out[to ..]`. */
  runFrom(h1: Float32Array, at: number, out: Float64Array, to: number): void {
    const { w, b, act } = this;
    let prev = h1, from = at;
    if (w.length > 2) {
      for (let l = 2; l < w.length; l++) {
        const layer = w[l], cur = act[l];
        for (let j = 0; j < layer.length; j++) {
          const row = layer[j];
          let s = b[l][j];
          for (let k = 0; k < row.length; k++) s += row[k] * prev[from + k];
          cur[j] = sigmoid(s);
        }
        prev = cur;
        from = 0;
      }
    }
    for (let j = 0; j < this.outputs; j++) out[to + j] = prev[from + j];
  }

  /**
   * `runFrom` for `rows` records at once: the first layer's activations are node-major in `h1`
   * (node `at + k` of record r at (at + k) · BLOCK_ROWS + r), and record r's outputs go to
   * `out[r · stride + to ..]`. Each weight is read once per four records, whose sums are kept
   * in registers side by side. Every record's sum still starts at the bias and adds its inputs
   * in ascending order, so each figure is exactly what `runFrom` gives it.
   */
  runBlockFrom(h1: Float32Array, at: number, rows: number, out: Float64Array, stride: number, to: number): void {
    const { flat, b, w } = this;
    const act = (this.blockAct ??= w.map((layer) => new Float32Array(layer.length * BLOCK_ROWS)));
    let prev = h1, from = at * BLOCK_ROWS;
    for (let l = 2; l < w.length; l++) {
      const m = flat[l], bias = b[l], cur = act[l], nodes = w[l].length, inputs = w[l - 1].length;
      for (let j = 0; j < nodes; j++) {
        const row = j * inputs, bj = bias[j], q = j * BLOCK_ROWS;
        let r = 0;
        for (; r + 3 < rows; r += 4) {
          let s0 = bj, s1 = bj, s2 = bj, s3 = bj;
          for (let k = 0; k < inputs; k++) {
            const wk = m[row + k], p = from + k * BLOCK_ROWS + r;
            s0 += wk * prev[p]; s1 += wk * prev[p + 1]; s2 += wk * prev[p + 2]; s3 += wk * prev[p + 3];
          }
          cur[q + r] = sigmoid(s0); cur[q + r + 1] = sigmoid(s1); cur[q + r + 2] = sigmoid(s2); cur[q + r + 3] = sigmoid(s3);
        }
        for (; r < rows; r++) {
          let s = bj;
          for (let k = 0; k < inputs; k++) s += m[row + k] * prev[from + k * BLOCK_ROWS + r];
          cur[q + r] = sigmoid(s);
        }
      }
      prev = cur;
      from = 0;
    }
    for (let j = 0; j < this.outputs; j++) {
      const p = from + j * BLOCK_ROWS;
      for (let r = 0; r < rows; r++) out[r * stride + to + j] = prev[p + r];
    }
  }
}

/**
 * Networks that read the same feature vector, run together. Their first layers form one
 * input-major matrix, so each non-zero input (one-hot columns are mostly zero) adds its column
 * to every first-layer node of every network in one contiguous pass. Each node still sums its
 * bias and then its inputs in ascending order, as brain.js does, and activations are stored as
 * Float32 as brain.js stores them: outputs match its `run` to a Float32 rounding step.
 */
export class NetworkBank {
  private readonly cols: Float64Array;
  private readonly bias: Float64Array;
  private readonly sums: Float64Array;
  private readonly h1: Float32Array;
  private readonly at: number[] = [];
  private readonly out: Float64Array;
  private readonly width: number;
  /** Where each network's outputs start in the result. */
  readonly offsets: number[] = [];

  constructor(readonly nets: CompiledNetwork[]) {
    const inputs = nets[0]?.inputs ?? 0;
    if (nets.some((n) => n.inputs !== inputs)) throw new Error('networks in a bank must read the same inputs');
    this.width = nets.reduce((h, n) => h + n.layer(1).w.length, 0);
    this.cols = new Float64Array(inputs * this.width);
    this.bias = new Float64Array(this.width);
    let at = 0;
    for (const n of nets) {
      const { w, b } = n.layer(1);
      this.at.push(at);
      w.forEach((row, j) => {
        this.bias[at + j] = b[j];
        for (let k = 0; k < inputs; k++) this.cols[k * this.width + at + j] = row[k];
      });
      at += w.length;
    }
    this.sums = new Float64Array(this.width);
    this.h1 = new Float32Array(this.width);
    let to = 0;
    for (const n of nets) { this.offsets.push(to); to += n.outputs; }
    this.out = new Float64Array(to);
  }

  /** Every network's outputs for one sparse vector, one after another (the array is reused by the next call). */
  run(x: SparseVector): Float64Array {
    const { cols, sums, h1, width } = this;
    const { idx, val, n } = x;
    sums.set(this.bias);
    for (let k = 0; k < n; k++) {
      const base = idx[k] * width, v = val[k];
      for (let j = 0; j < width; j++) sums[j] += cols[base + j] * v;
    }
    for (let j = 0; j < width; j++) h1[j] = sigmoid(sums[j]);
    for (let i = 0; i < this.nets.length; i++) this.nets[i].runFrom(h1, this.at[i], this.out, this.offsets[i]);
    return this.out;
  }

  /** Outputs per record: every network's, one after another (`offsets`), as `run` gives them. */
  get outputWidth(): number { return this.out.length; }

  /**
   * `run` for each row of a block (at most BLOCK_ROWS): row r's outputs go to
   * `out[r · outputWidth ..]`, each exactly what `run` gives for that row alone. The first
   * layer takes four nodes at a time, their sums in registers, over the row's non-zero inputs
   * in column order.
   */
  runBlock(x: SparseBlock, out: Float64Array): Float64Array {
    const { cols, bias, width } = this;
    const rows = x.rows, { idx, val, start } = x;
    if (rows > BLOCK_ROWS) throw new RangeError(`a block is at most ${BLOCK_ROWS} rows`);
    const h1 = (this.blockH1 ??= new Float32Array(width * BLOCK_ROWS));
    for (let r = 0; r < rows; r++) {
      const from = start[r], to = start[r + 1];
      let j = 0;
      for (; j + 3 < width; j += 4) {
        let s0 = bias[j], s1 = bias[j + 1], s2 = bias[j + 2], s3 = bias[j + 3];
        for (let k = from; k < to; k++) {
          const base = idx[k] * width + j, v = val[k];
          s0 += cols[base] * v; s1 += cols[base + 1] * v; s2 += cols[base + 2] * v; s3 += cols[base + 3] * v;
        }
        const q = j * BLOCK_ROWS + r;
        h1[q] = sigmoid(s0); h1[q + BLOCK_ROWS] = sigmoid(s1); h1[q + 2 * BLOCK_ROWS] = sigmoid(s2); h1[q + 3 * BLOCK_ROWS] = sigmoid(s3);
      }
      for (; j < width; j++) {
        let s = bias[j];
        for (let k = from; k < to; k++) s += cols[idx[k] * width + j] * val[k];
        h1[j * BLOCK_ROWS + r] = sigmoid(s);
      }
    }
    const stride = this.out.length;
    for (let i = 0; i < this.nets.length; i++) this.nets[i].runBlockFrom(h1, this.at[i], rows, out, stride, this.offsets[i]);
    return out;
  }

  private blockH1?: Float32Array;
}
