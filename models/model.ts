/**
 * A trained model. Per target: a lookup table with back-off (lookup.ts) that gives the first
 * estimate, brain.js networks over fitted feature states that learned what the lookup misses
 * (their residual, weighted by how much it helped on sources held out in training), a lookup of
 * how far off such an estimate typically is, and the conformal scores its upper bound is drawn
 * from. `Model.fromFile` checks a model file
 * through and through (format, feature spec, shapes, finite weights, checksum) and refuses it
 * with the reason; nothing half-loaded ever predicts.
 *
 * Every prediction is finite and inside TARGET_SCALES' physical range: anything else is
 * clamped and named in `flags`, so NaN or absurd figures never reach the ledger.
 */
import { createHash } from 'node:crypto';
import { GPU_ENCODERS, type EncodingSchema, type Prediction, type ResourceUsage } from '../shared/index.js';
import {
  CATEGORIES, MISSING, OUTSIDE, checkFeatureState, encodeSparse, encodeSparseRow, newNotes, outputFrames, type Category, type FeatureState, type EncodeMarks, type EncodeNotes,
} from './features.js';
import { BLOCK_ROWS, CompiledNetwork, NetworkBank, SparseBlock, SparseVector, type NetworkJson } from './network.js';
import { checkGrid, conformalQuantile, type ResidualGrid } from './conformal.js';
import { CompiledLookup, checkLookup, lookupValues, type Lookup } from './lookup.js';
import { CompiledLinear, checkLinear, type Linear } from './linear.js';
import { TARGETS, describeSchema, type EncodeRecord, type Target, type TargetValues } from './record.js';

export const MODEL_FORMAT = 'prescient-model';
export const MODEL_FORMAT_VERSION = 4;
/** Older formats this build still reads: 3 is 4 without `ensemble` (one network per target). */
const READS_FORMATS: readonly number[] = [3, MODEL_FORMAT_VERSION];
export const DEFAULT_COVERAGE = 0.95;

/**
 * How each target is learned and the physical range every prediction is clamped to. Targets
 * spanning orders of magnitude are learned as log10; GPU share is linear.
 */
export const TARGET_SCALES: Record<Target, { transform: 'log10' | 'linear'; range: [number, number] }> = {
  cpu_cores: { transform: 'log10', range: [0.01, 1024] },
  gpu_percent: { transform: 'linear', range: [0, 100] },
  memory_gb: { transform: 'log10', range: [0.001, 4096] },
  bandwidth_mbps: { transform: 'log10', range: [1e-4, 1e6] },
  duration_s: { transform: 'log10', range: [0.01, 3e6] },
};

/**
 * What a model without any training data for a target predicts (expected, upper): whole
 * granted cores, a whole GPU, and generous fixed figures otherwise. Always flagged.
 */
const FALLBACK: Record<Exclude<Target, 'cpu_cores'>, [number, number]> = {
  gpu_percent: [50, 100], memory_gb: [2, 8], bandwidth_mbps: [50, 200], duration_s: [600, 3600],
};

/** Network outputs live in (0.1, 0.9) of the sigmoid: room to extrapolate a little each way. */
export const toUnit = (t: number, lo: number, hi: number) => 0.1 + (0.8 * (t - lo)) / (hi - lo || 1);
export const fromUnit = (u: number, lo: number, hi: number) => lo + ((u - 0.1) * (hi - lo || 1)) / 0.8;

/** Target value → the scale its network learns (per frame for duration when the model says so). */
export function transformTarget(t: Target, v: number, perFrameOf?: number): number {
  const s = TARGET_SCALES[t];
  if (s.transform === 'linear') return v;
  return Math.log10(Math.max(v, s.range[0]) / (perFrameOf ?? 1));
}

/**
 * One brain.js network and the targets its outputs predict. Targets measured on the same rows
 * (CPU, memory, bandwidth and time of every recorded run) share one network with an output
 * each: one pass predicts them all, and training is a quarter of the work. A target measured on
 * other rows (GPU share, on GPU encodes only) has a network of its own.
 */
export interface NetworkModel {
  /** Index into ModelFile.features: the vector it reads. */
  features: number;
  /** The target of each output, in order. */
  outputs: Target[];
  rows: number;
  epochs: number;
  json: NetworkJson;
}

/**
 * One target. On its learning scale (log10, per output frame for duration; GPU share linear):
 *
 *   base     = linear(features) + lookup(record's groups)
 *   estimate = base + alpha · network residual(features)   (the mean of an ensemble's networks)
 *   bound    = estimate + q · max(spread(record), spread_floor)
 *
 * `q` is the conformal quantile of the scores (error ÷ spread) of predictions made, in
 * training, for sources the predicting model had not seen (cross-validation by source), for the
 * class the record falls in: known, novel (a category never seen or a number beyond the training
 * range), unprobed (no content complexity) or unknown (no size, rate or length).
 */
export interface TargetModel {
  /** Index into ModelFile.networks, and the output of that network. */
  network: number;
  output: number;
  /**
   * More networks (format 4) trained on the same residual from other seeds, reading the same
   * feature state: the residual is the mean of all their outputs and `network`'s. One network's
   * residual depends on its initial weights as much as on the data where rows are few; the mean
   * of several does not.
   */
  ensemble?: Array<{ network: number; output: number }>;
  transform: 'log10' | 'linear';
  /** Duration learned per output frame (× frames at prediction). */
  per_frame: boolean;
  /** Trained only on GPU encodes (gpu_percent): CPU encodes predict 0. */
  gpu_only: boolean;
  /** Range of the residuals the network learned (base to actual, learning scale): its unit scale's ends. */
  lo: number;
  hi: number;
  /** Range of the training targets on the learning scale (the largest stands in for a figure that is not finite). */
  y_lo: number;
  y_hi: number;
  /**
   * The least the target measured in training on each hardware class (learning scale; format 4,
   * memory only): an estimate is never below its class's, or, on a class not listed, below the
   * least of any. A process's peak memory has a floor on a machine, the runtime's own resident set
   * (and, in the shipped model's data, the recorder's at the fork), that no smaller picture
   * goes under; the log-linear base cannot draw such a floor and undershoots it.
   */
  floor_by_hw?: Record<string, number>;
  rows: number;
  /** Ridge regression over the network's feature vector: the smooth main effects (linear.ts). */
  linear: Linear;
  /**
   * The same fitted with the probed numbers hidden (the pilot, SI/TI, …): what a record that lacks
   * SI/TI or the pilot is estimated with (EncodeNotes.unprobed). Absent (older files): `linear`,
   * the missing columns at their mean.
   */
  linear_unprobed?: Linear;
  /** The lookup of what the linear part misses, by group (lookup.ts). */
  base: Lookup;
  /** How much of the network's residual is added: chosen on sources held out in training (0: the lookup alone). */
  alpha: number;
  /** Typical absolute error of the estimate on held-out sources, by lookup; never below `spread_floor`. */
  spread: Lookup;
  spread_floor: number;
  /** Scores (error ÷ spread) of held-out predictions: `known`, and per novelty class. */
  residuals: { known: ResidualGrid; novel: Partial<Record<Novelty, ResidualGrid>> };
  /** Set when the target had no data in this model's training and was carried over from its parent. */
  inherited_from?: string;
}

export interface ModelFile {
  format: typeof MODEL_FORMAT;
  /** MODEL_FORMAT_VERSION when written; 3 (no ensembles) is still read. */
  format_version: number;
  version: string;
  created_at: string;
  /** Coverage the bounds are drawn at unless the loader asks for another. */
  coverage: number;
  features: FeatureState[];
  networks: NetworkModel[];
  targets: Partial<Record<Target, TargetModel>>;
  /** Used where a prediction's context does not say: the most common training values. */
  defaults: { cores?: number; hw_class?: string; frames?: number };
  trained_on: {
    source: string;
    rows: number;
    fit_rows: number;
    test_rows: number;
    split: 'hash' | 'time' | 'none';
    /** The cross-validation the bounds were drawn from: what each fold held out. */
    folds?: Array<{ name: string; kind: 'source' | 'extrapolation'; held_rows: number; held_groups: number }>;
    /** First and last run time of the training rows, where known. */
    from?: string;
    to?: string;
  };
  /** Held-out figures at training time (models/evaluation.ts). */
  metrics?: unknown;
  /** The model this one was trained after (inherited targets come from it). */
  parent?: string;
  /** For a version merged from agents' weight deltas (models/federated): which deltas went into it. */
  federated?: FederatedProvenance;
  /** sha256 of the file's JSON without this field. */
  checksum: string;
}

/** The deltas a federated version was merged from, and how its bounds were recalibrated. */
export interface FederatedProvenance {
  base: string;
  deltas: Array<{ id: string; node: string; samples: number; validation_base: number; validation_tuned: number }>;
  samples: number;
  /** Rows the conformal bounds were recomputed on (0: the base model's bounds were kept). */
  calibration_rows: number;
}

/**
 * What sets a record apart from the sources a model was measured on:
 * - `novel`    a category value never seen in training, or a number beyond the training range;
 * - `unprobed` the content complexity (and other probed numbers) the model reads is missing;
 * - `unknown`  its size, frame rate or length is not known (an input no one could probe).
 */
export type Novelty = 'novel' | 'unprobed' | 'unknown';
export const NOVELTIES: readonly Novelty[] = ['novel', 'unprobed', 'unknown'];

/** A model file that cannot be used; the previous model stays in service. */
export class ModelFileError extends Error {
  constructor(readonly source: string, readonly reason: string) {
    super(`cannot load model ${source}: ${reason}`);
    this.name = 'ModelFileError';
  }
}

/** Where the prediction is for: the node's granted cores and hardware class, when known. */
export interface PredictContext { cores?: number; hw_class?: string }

/** What a placement engine needs from a model. */
export interface ResourcePredictor {
  readonly version: string;
  predict(schema: EncodingSchema, ctx?: PredictContext): Prediction;
  /**
   * `predict(schema, ctx)` for each context, in one batch where the predictor can (the model's
   * predictBatch): the leader predicts a job for every hardware class of a mixed fleet at once.
   */
  predictEach?(schema: EncodingSchema, ctxs: readonly PredictContext[]): Prediction[];
}

export interface RecordPrediction {
  expected: TargetValues;
  upper: TargetValues;
  /** Whatever was clamped, unseen, missing or estimated by rule, in words. */
  flags: string[];
}

/**
 * Predictions for many records at once (`Model.predictBatch`, `Model.predictRecords`), as flat
 * arrays rather than an object per record. Passing a batch back in reuses its arrays.
 */
export class PredictionBatch {
  /** Records predicted (the arrays can be longer, from an earlier, larger batch). */
  n = 0;
  model_version = '';
  coverage = NaN;
  /** Record i's figure for TARGETS[k] is at i · TARGETS.length + k. */
  expected = new Float64Array(0);
  upper = new Float64Array(0);
  /** Record i's flags are flags[flagStart[i] .. flagStart[i + 1]], in the order `predictRecord` gives them. */
  flags: string[] = [];
  flagStart = new Uint32Array(1);

  /** Makes room for `n` records and empties the batch. */
  reset(n: number, model_version: string, coverage: number): this {
    const size = n * TARGETS.length;
    if (this.expected.length < size) { this.expected = new Float64Array(size); this.upper = new Float64Array(size); }
    if (this.flagStart.length < n + 1) this.flagStart = new Uint32Array(n + 1);
    this.n = n;
    this.model_version = model_version;
    this.coverage = coverage;
    // `flags` keeps its length (and its storage) until the batch is filled: a long array
    // emptied and refilled on every call would be grown from nothing each time.
    this.flagStart[0] = 0;
    return this;
  }

  /** Drops flags left over from an earlier, larger batch (after the batch is filled). */
  trim(): this {
    const end = this.flagStart[this.n];
    if (this.flags.length > end) this.flags.length = end;
    return this;
  }

  /** Record i's flags (a new array). */
  flagsOf(i: number): string[] {
    this.check(i);
    return this.flags.slice(this.flagStart[i], this.flagStart[i + 1]);
  }

  /** Record i as `Model.predictRecord` gives it. */
  recordPrediction(i: number): RecordPrediction {
    this.check(i);
    return { expected: values(this.expected, i * TARGETS.length), upper: values(this.upper, i * TARGETS.length), flags: this.flagsOf(i) };
  }

  /** Record i as `Model.predict` gives it. */
  prediction(i: number): Prediction {
    this.check(i);
    const out: Prediction = { model_version: this.model_version, coverage: this.coverage, expected: values(this.expected, i * TARGETS.length), upper: values(this.upper, i * TARGETS.length) };
    if (this.flagStart[i + 1] > this.flagStart[i]) out.flags = this.flagsOf(i);
    return out;
  }

  private check(i: number): void {
    if (!(Number.isInteger(i) && i >= 0 && i < this.n)) throw new RangeError(`record ${i} is not in this batch of ${this.n}`);
  }
}

export function modelChecksum(file: Omit<ModelFile, 'checksum'> & { checksum?: string }): string {
  const { checksum: _, ...rest } = file;
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex');
}

/** A target's floors by hardware class as the runtime reads them (none: -Infinity). */
function floorsOf(spec: TargetModel): { floors?: Map<string, number>; floorOther: number } {
  const table = spec.floor_by_hw;
  if (!table) return { floorOther: -Infinity };
  const floors = new Map(Object.entries(table));
  return { floors, floorOther: floors.size ? Math.min(...floors.values()) : -Infinity };
}

/** A target's networks: `network` and its ensemble. */
export const membersOf = (spec: TargetModel): Array<{ network: number; output: number }> => [{ network: spec.network, output: spec.output }, ...(spec.ensemble ?? [])];

/** The mean of a target's members' outputs in one record's outputs (from `at`), summed in member order. */
function meanOutput(out: ArrayLike<number>, at: number, rt: RuntimeTarget): number {
  const slots = rt.slots;
  if (slots.length === 1) return out[at + rt.slot];
  let s = 0;
  for (let j = 0; j < slots.length; j++) s += out[at + slots[j]];
  return s / slots.length;
}

interface RuntimeTarget {
  spec: TargetModel;
  /** Its feature state, and where its output is in that state's bank's results (each ensemble member's; `slot` the first's). */
  state: number;
  slot: number;
  slots: Int32Array;
  /** From spec, kept here for the hot path. */
  lo: number;
  hi: number;
  alpha: number;
  log: boolean;
  perFrame: boolean;
  linear: CompiledLinear;
  /** For a record without the probed numbers (TargetModel linear_unprobed; `linear` where the file has none). */
  linearUnprobed: CompiledLinear;
  base: CompiledLookup;
  spread: CompiledLookup;
  floor: number;
  /** The least estimate by hardware class (floor_by_hw), and on any other class. */
  floors?: Map<string, number>;
  floorOther: number;
  /** The largest training target (per frame where learned so). */
  largest: number;
  /** The score quantile for each class of record. */
  known: number;
  novel: number;
  unprobed: number;
  unknown: number;
}

export class Model implements ResourcePredictor {
  private readonly runtime: Partial<Record<Target, RuntimeTarget>> = {};
  /** The same in TARGETS order. */
  private readonly ordered: Array<RuntimeTarget | undefined>;
  /** Per feature state: the vector and the notes of the record being predicted (reused: predictions are synchronous). */
  private readonly notes: EncodeNotes[];
  private readonly sparse: SparseVector[];
  /** Per feature state, the networks reading it, run together, and their latest outputs. */
  private readonly banks: Array<NetworkBank | undefined>;
  private readonly outputs: Float64Array[] = [];
  /** Per feature state, how many outputs its bank gives a record (record r's start at r · width in a block's outputs). */
  private readonly widths: number[];
  /** Estimates, bounds and novelty quantiles in TARGETS order while a record is predicted. */
  private readonly est = new Float64Array(TARGETS.length);
  private readonly bound = new Float64Array(TARGETS.length);
  private readonly q = new Float64Array(TARGETS.length);
  /** The linear part of each target's estimate while a record is predicted. */
  private readonly lin = new Float64Array(TARGETS.length);
  /** Scratch for the batch path, made on its first use. */
  private block?: BlockScratch;
  readonly coverage: number;
  /** What is approximate about this model's bounds (too few calibration rows for the coverage). */
  warnings: string[] = [];

  private constructor(readonly file: ModelFile, coverage: number) {
    this.coverage = coverage;
    this.notes = file.features.map(() => newNotes());
    this.sparse = file.features.map((f) => new SparseVector(f.names.length));
    for (const t of TARGETS) {
      const spec = file.targets[t];
      if (!spec) continue;
      const q = (g: ResidualGrid | undefined, c = coverage) => {
        if (!g?.n) return undefined;
        const r = conformalQuantile(g, c);
        if (!r.exact && c === coverage) this.warnings.push(`${t}: ${g.n} calibration rows are too few for an exact ${(100 * c).toFixed(2)}% bound; the largest residual was widened`);
        return Math.max(0, r.q);
      };
      const known = q(spec.residuals.known) ?? 0;
      // A novel record can be further off than the held-out sources showed (one hardware class
      // seen, a new one slower): its bound is never narrower than the known rows' at a quarter of the miss rate.
      const floor = q(spec.residuals.known, 1 - (1 - coverage) / 4) ?? known;
      const novel = spec.residuals.novel;
      this.runtime[t] = {
        spec, state: file.networks[spec.network].features, slot: 0, slots: new Int32Array(1 + (spec.ensemble?.length ?? 0)), lo: spec.lo, hi: spec.hi, alpha: spec.alpha, log: spec.transform === 'log10',
        perFrame: spec.per_frame, linear: new CompiledLinear(spec.linear), linearUnprobed: new CompiledLinear(spec.linear_unprobed ?? spec.linear), base: new CompiledLookup(spec.base), spread: new CompiledLookup(spec.spread), floor: spec.spread_floor,
        largest: spec.transform === 'log10' ? 10 ** spec.y_hi : spec.y_hi,
        ...floorsOf(spec),
        known,
        // Lacking the probed numbers is an ordinary case (most jobs), not a novelty: no floor.
        unprobed: Math.max(known, q(novel.unprobed) ?? known),
        novel: Math.max(floor, q(novel.novel) ?? floor),
        // Not knowing the size, rate or length is at least as uncertain as a novel record.
        unknown: Math.max(floor, q(novel.novel) ?? floor, q(novel.unknown) ?? floor),
      };
    }
    const nets = file.networks.map((n, i) => {
      try {
        return new CompiledNetwork(n.json, file.features[n.features].names.length, n.outputs.length);
      } catch (e) {
        throw new Error(`networks[${i}] (${n.outputs.join(', ')}) ${(e as Error).message}`);
      }
    });
    this.banks = file.features.map((_, state) => {
      const mine = file.networks.map((n, i) => ({ n, i })).filter(({ n }) => n.features === state);
      if (!mine.length) return undefined;
      const bank = new NetworkBank(mine.map(({ i }) => nets[i]));
      for (const rt of Object.values(this.runtime)) {
        membersOf(rt!.spec).forEach((m, j) => {
          const at = mine.findIndex(({ i }) => i === m.network);
          if (at >= 0) rt!.slots[j] = bank.offsets[at] + m.output;
        });
        rt!.slot = rt!.slots[0];
      }
      return bank;
    });
    this.ordered = TARGETS.map((t) => this.runtime[t]);
    this.widths = this.banks.map((b) => b?.outputWidth ?? 0);
    this.warnings = [...new Set(this.warnings)];
  }

  get version(): string { return this.file.version; }

  /**
   * Checks and loads a parsed model file. `coverage` overrides the file's own (0.5–0.999).
   * Throws ModelFileError naming what is wrong.
   */
  static fromFile(raw: unknown, o: { source?: string; coverage?: number } = {}): Model {
    const source = o.source ?? 'model';
    const fail = (reason: string): never => { throw new ModelFileError(source, reason); };
    const f = raw as ModelFile;
    if (!f || typeof f !== 'object' || f.format !== MODEL_FORMAT) fail('not a Prescient model file');
    if (!READS_FORMATS.includes(f.format_version)) fail(`model format ${f.format_version} is not one this build reads (${READS_FORMATS.join(' or ')}; retrain it)`);
    if (typeof f.version !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(f.version)) fail(`version ${JSON.stringify(f.version)} is not a model version name`);
    if (typeof f.checksum !== 'string' || modelChecksum(f) !== f.checksum) fail('checksum does not match its contents (the file is corrupt or was edited)');
    const coverage = o.coverage ?? f.coverage;
    if (!(coverage >= 0.5 && coverage <= 0.999)) fail(`coverage ${coverage} is outside 0.5–0.999`);
    if (!Array.isArray(f.features) || f.features.length === 0) fail('has no feature state');
    f.features.forEach((s, i) => { const bad = checkFeatureState(s); if (bad) fail(`features[${i}] ${bad}`); });
    if (!f.targets || typeof f.targets !== 'object') fail('has no targets');
    if (!Array.isArray(f.networks)) fail('has no networks');
    f.networks.forEach((n, i) => {
      if (!n || !f.features[n.features]) fail(`networks[${i}] refers to a missing feature state`);
      if (!Array.isArray(n.outputs) || !n.outputs.length || n.outputs.some((t) => !(TARGETS as readonly string[]).includes(t))) fail(`networks[${i}] has no list of output targets`);
    });
    for (const [t, spec] of Object.entries(f.targets)) {
      if (!(TARGETS as readonly string[]).includes(t)) fail(`names an unknown target ${JSON.stringify(t)}`);
      const net = spec && f.networks[spec.network];
      if (!net || net.outputs[spec.output] !== t) fail(`targets.${t} does not name a network output predicting it`);
      if (spec.floor_by_hw !== undefined) {
        if (f.format_version < 4) fail(`targets.${t}.floor_by_hw is not part of model format ${f.format_version}`);
        if (!spec.floor_by_hw || typeof spec.floor_by_hw !== 'object' || !Object.values(spec.floor_by_hw).every(Number.isFinite)) fail(`targets.${t}.floor_by_hw is not a table of finite numbers`);
      }
      if (spec.ensemble !== undefined) {
        if (f.format_version < 4) fail(`targets.${t}.ensemble is not part of model format ${f.format_version}`);
        if (!Array.isArray(spec.ensemble)) fail(`targets.${t}.ensemble is not a list`);
        const seen = new Set([spec.network]);
        spec.ensemble.forEach((m, j) => {
          const other = m && Number.isInteger(m.network) ? f.networks[m.network] : undefined;
          if (!other || other.outputs[m.output] !== t) fail(`targets.${t}.ensemble[${j}] does not name a network output predicting it`);
          if (other!.features !== net.features) fail(`targets.${t}.ensemble[${j}] reads another feature state than targets.${t}.network`);
          if (seen.has(m.network)) fail(`targets.${t}.ensemble[${j}] names network ${m.network} twice`);
          seen.add(m.network);
        });
      }
      if (spec.transform !== TARGET_SCALES[t as Target].transform) fail(`targets.${t} uses transform ${spec.transform}, this build expects ${TARGET_SCALES[t as Target].transform}`);
      if (![spec.lo, spec.hi, spec.y_lo, spec.y_hi].every(Number.isFinite) || spec.hi < spec.lo || spec.y_hi < spec.y_lo) fail(`targets.${t} has an invalid range`);
      if (!(spec.alpha >= 0 && spec.alpha <= 1)) fail(`targets.${t}.alpha ${spec.alpha} is outside 0–1`);
      if (!(spec.spread_floor > 0 && Number.isFinite(spec.spread_floor))) fail(`targets.${t}.spread_floor ${spec.spread_floor} is not a positive number`);
      const bad = checkLinear(spec.linear, f.features[net.features].names.length, `targets.${t}.linear`)
        ?? (spec.linear_unprobed === undefined ? undefined : checkLinear(spec.linear_unprobed, f.features[net.features].names.length, `targets.${t}.linear_unprobed`)) ?? checkLookup(spec.base, `targets.${t}.base`) ?? checkLookup(spec.spread, `targets.${t}.spread`)
        ?? checkGrid(spec.residuals?.known, `targets.${t}.residuals.known`)
        ?? Object.entries(spec.residuals?.novel ?? {}).map(([c, g]) => ((NOVELTIES as readonly string[]).includes(c) ? checkGrid(g, `targets.${t}.residuals.novel.${c}`) : `targets.${t}.residuals.novel names an unknown class ${JSON.stringify(c)}`)).find(Boolean);
      if (bad) fail(bad);
    }
    try {
      return new Model(f, coverage);
    } catch (e) {
      return fail((e as Error).message);
    }
  }

  /**
   * Predicts every target for one record. `cpu_cores` is capped at the record's cores, since an
   * encode cannot use more than it was granted, unless `capCores` is false (the cores are only
   * the model's default guess, as when a job is admitted before it is placed).
   */
  predictRecord(rec: EncodeRecord, o: { capCores?: boolean } = {}): RecordPrediction {
    const flags: string[] = [];
    const { notes, banks, est, bound, q, lin } = this;
    const unknown = geometryUnknown(rec);
    const outputs = this.outputs;
    for (let i = 0; i < banks.length; i++) {
      const n = notes[i];
      clearNotes(n);
      encodeSparse(this.file.features[i], rec, this.sparse[i], { notes: n });
      outputs[i] = banks[i]?.run(this.sparse[i]) ?? EMPTY;
      this.quantiles(i, n, q, 0, unknown);
      this.linears(i, this.sparse[i].idx, this.sparse[i].val, 0, this.sparse[i].n, lin, 0, n.unprobed > 0);
      if (n.unseen.length || n.missing.length || n.outside.length) describeNotes(n, flags);
    }
    this.figures(rec, outputs, 0, q, lin, 0, est, bound, 0, flags, o.capCores !== false);
    return { expected: values(est, 0), upper: values(bound, 0), flags };
  }

  /**
   * `predictRecord` for each record, into a batch (`out`'s arrays are reused): record i's
   * figures and flags are exactly what `predictRecord(records[i], o)` gives. Records run
   * through the networks a block at a time (`NetworkBank.runBlock`).
   */
  predictRecords(records: readonly EncodeRecord[], o: { capCores?: boolean } = {}, out: PredictionBatch = new PredictionBatch()): PredictionBatch {
    out.reset(records.length, this.version, this.coverage);
    const b = (this.block ??= this.newBlock());
    const cap = o.capCores !== false ? 1 : 0;
    for (let from = 0; from < records.length; from += BLOCK_ROWS) {
      const rows = Math.min(BLOCK_ROWS, records.length - from);
      for (let r = 0; r < rows; r++) { b.recs[r] = records[from + r]; b.cap[r] = cap; }
      this.runBlock(b, rows, from, out);
    }
    return out.trim();
  }

  /**
   * `predict` for each schema, into a batch (`out`'s arrays are reused): `batch.prediction(i)`
   * is exactly what `predict(schemas[i], ctx)` gives. `ctx` is one context for every schema,
   * or one per schema.
   */
  predictBatch(schemas: readonly EncodingSchema[], ctx: PredictContext | readonly (PredictContext | undefined)[] = {}, out: PredictionBatch = new PredictionBatch()): PredictionBatch {
    out.reset(schemas.length, this.version, this.coverage);
    const b = (this.block ??= this.newBlock());
    const d = this.file.defaults;
    const each = isContextList(ctx) ? ctx : undefined;
    if (each && each.length !== schemas.length) throw new RangeError(`${each.length} contexts for ${schemas.length} schemas`);
    const one: PredictContext = each ? {} : (ctx as PredictContext);
    const shared = { cores: one.cores ?? d.cores, hw_class: one.hw_class ?? d.hw_class };
    for (let from = 0; from < schemas.length; from += BLOCK_ROWS) {
      const rows = Math.min(BLOCK_ROWS, schemas.length - from);
      for (let r = 0; r < rows; r++) {
        const c = each ? each[from + r] ?? {} : one;
        b.recs[r] = describeSchema(schemas[from + r], each ? { cores: c.cores ?? d.cores, hw_class: c.hw_class ?? d.hw_class } : shared);
        b.cap[r] = c.cores !== undefined ? 1 : 0;
      }
      this.runBlock(b, rows, from, out);
    }
    return out.trim();
  }

  /**
   * The linear part of each target read from feature state `state`, from the record's entries
   * `idx`/`val` [from, to); `unprobed`: the record lacks probed numbers the state reads.
   */
  private linears(state: number, idx: Int32Array, val: Float64Array, from: number, to: number, lin: Float64Array, at: number, unprobed: boolean): void {
    for (let k = 0; k < TARGETS.length; k++) {
      const rt = this.ordered[k];
      if (rt && rt.state === state) lin[at + k] = (unprobed ? rt.linearUnprobed : rt.linear).at(idx, val, from, to);
    }
  }

  /** The score quantile of each target read from feature state `state`, from that state's notes on the record. */
  private quantiles(state: number, n: EncodeNotes, q: Float64Array, at: number, unknown: boolean): void {
    for (let k = 0; k < TARGETS.length; k++) {
      const rt = this.ordered[k];
      if (rt && rt.state === state) q[at + k] = classQuantile(rt, n.unprobed > 0, n.unseen.length > 0 || n.outside.length > 0, unknown);
    }
  }

  /**
   * One record's estimates and bounds, in TARGETS order at `est[at ..]` and `bound[at ..]`,
   * from its network outputs (feature state i's at `outputs[i][row · width ..]`) and novelty
   * quantiles (at `q[qAt ..]`); whatever is clamped or estimated by rule goes to `flags`. The
   * single and the batch path both finish here.
   */
  private figures(rec: EncodeRecord, outputs: Float64Array[], row: number, q: Float64Array, lin: Float64Array, qAt: number,
    est: Float64Array, bound: Float64Array, at: number, flags: FlagSink, capCores: boolean): void {
    const gpuEncode = rec.node.gpus !== undefined ? rec.node.gpus > 0 : GPU_ENCODERS.has(rec.output.encoder ?? '');
    const paths = lookupValues(rec);
    if (geometryUnknown(rec)) flags.push(UNKNOWN_GEOMETRY);
    for (let k = 0; k < TARGETS.length; k++) {
      const t = TARGETS[k], rt = this.ordered[k], i = at + k;
      let largest: number | undefined;
      if (t === 'gpu_percent' && !gpuEncode) {
        est[i] = bound[i] = 0;
      } else if (!rt) {
        est[i] = t === 'cpu_cores' ? rec.node.cores ?? 1 : FALLBACK[t][0];
        bound[i] = t === 'cpu_cores' ? rec.node.cores ?? 1 : FALLBACK[t][1];
        flags.push(`${t}: no training data, estimated by rule (${est[i]}, bound ${bound[i]})`);
      } else {
        const base = lin[qAt + k] + rt.base.value(paths);
        const raw = rt.alpha === 0 ? base : base + rt.alpha * fromUnit(meanOutput(outputs[rt.state], row * this.widths[rt.state], rt), rt.lo, rt.hi);
        const spread = rt.spread.value(paths);
        const qk = q[qAt + k] * (spread > rt.floor ? spread : rt.floor);
        // Held to its hardware class's floor; the bound stays the calibrated one (never under the estimate).
        const least = rt.floors === undefined ? -Infinity : rt.floors.get(paths[1]) ?? rt.floorOther;
        let mid = raw, top = qk;
        if (raw < least) { mid = least; top = raw + qk > least ? raw + qk - least : 0; }
        let scale = 1;
        if (rt.perFrame) {
          const frames = outputFrames(rec);
          if (frames === undefined) flags.push(`duration_s: frame count unknown, assumed ${this.file.defaults.frames ?? 1}`);
          scale = frames ?? this.file.defaults.frames ?? 1;
        }
        if (rt.log) {
          // exp(x·ln 10) rather than 10 ** x: the same figure to a few ulps, at a fraction of pow's cost.
          est[i] = Math.exp(mid * Math.LN10) * scale;
          bound[i] = Math.exp((mid + top) * Math.LN10) * scale;
          largest = rt.largest * scale;
        } else {
          est[i] = mid;
          bound[i] = mid + top;
          largest = rt.largest;
        }
      }
      clampAt(t, k, i, est, bound, flags, largest);
    }
    if (rec.node.cores !== undefined && capCores) {
      est[at] = Math.min(est[at], rec.node.cores);
      bound[at] = Math.min(bound[at], rec.node.cores);
    }
  }

  private newBlock(): BlockScratch {
    return {
      recs: new Array<EncodeRecord>(BLOCK_ROWS),
      cap: new Uint8Array(BLOCK_ROWS),
      sparse: this.file.features.map((f) => new SparseBlock(BLOCK_ROWS, f.names.length)),
      outputs: this.widths.map((w) => new Float64Array(BLOCK_ROWS * w)),
      q: new Float64Array(BLOCK_ROWS * TARGETS.length),
      lin: new Float64Array(BLOCK_ROWS * TARGETS.length),
      states: this.file.features.map((f) => {
        const names = f.numeric.map((n) => n.name);
        return {
          marks: { unseen: 0, codes: new Uint8Array(BLOCK_ROWS * names.length), at: 0, missing: 0, outside: 0, unprobed: 0 },
          columns: names.length,
          unseen: new Int32Array(BLOCK_ROWS),
          missing: new Int32Array(BLOCK_ROWS),
          outside: new Int32Array(BLOCK_ROWS),
          unseenWords: CATEGORY_NAMES.map((c) => words('unseen', c)),
          missingWords: names.map((n) => words('missing', n)),
          outsideWords: names.map((n) => words('outside', n)),
        };
      }),
      flags: new FlagWriter(),
    };
  }

  /** Predicts the first `rows` records of the block into `out`, as its records `base ..`. */
  private runBlock(b: BlockScratch, rows: number, base: number, out: PredictionBatch): void {
    const { banks, ordered } = this, T = TARGETS.length, features = this.file.features;
    for (let i = 0; i < banks.length; i++) {
      const state = features[i], block = b.sparse[i].clear(), st = b.states[i], marks = st.marks, options = { marks };
      for (let r = 0; r < rows; r++) {
        marks.at = r * st.columns;
        encodeSparseRow(state, b.recs[r], block, options);
        this.linears(i, block.idx, block.val, block.start[r], block.start[r + 1], b.lin, r * T, marks.unprobed > 0);
        st.unseen[r] = marks.unseen;
        st.missing[r] = marks.missing;
        st.outside[r] = marks.outside;
        // As quantiles() from the same notes.
        const unknown = geometryUnknown(b.recs[r]), novel = marks.unseen !== 0 || marks.outside !== 0;
        for (let k = 0; k < T; k++) {
          const rt = ordered[k];
          if (rt !== undefined && rt.state === i) b.q[r * T + k] = classQuantile(rt, marks.unprobed > 0, novel, unknown);
        }
      }
      banks[i]?.runBlock(block, b.outputs[i]);
    }
    // Each record's flags, as predictRecord orders them: per feature state its unseen
    // categories, missing and out-of-range numbers (describeNotes), then the figures'.
    const { expected, upper, flagStart } = out, w = b.flags.into(out.flags, flagStart[base]);
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < banks.length; i++) {
        const st = b.states[i], unseen = st.unseen[r];
        if (unseen !== 0) for (let c = 0; c < CATEGORY_NAMES.length; c++) if (unseen & (1 << c)) w.push(st.unseenWords[c]);
        const codes = st.marks.codes, from = r * st.columns;
        if (st.missing[r] !== 0) for (let k = 0; k < st.columns; k++) if (codes[from + k] === MISSING) w.push(st.missingWords[k]);
        if (st.outside[r] !== 0) for (let k = 0; k < st.columns; k++) if (codes[from + k] === OUTSIDE) w.push(st.outsideWords[k]);
      }
      this.figures(b.recs[r], b.outputs, r, b.q, b.lin, r * T, expected, upper, (base + r) * T, w, b.cap[r] === 1);
      flagStart[base + r + 1] = w.at;
    }
    // Drop the references to the callers' records.
    b.recs.fill(undefined as unknown as EncodeRecord, 0, rows);
  }

  /**
   * The parts of one target's estimate for a record, on the learning scale: the base (linear and
   * lookup), the network's residual before `alpha`, the spread its bound scales, and what a
   * measured value is compared on (`actual` transformed, per frame where learned so). Undefined
   * for a target the model does not predict. `unprobed` hides the probed numbers, as for a bare
   * schema. Recalibration (models/federated) reads these.
   */
  parts(t: Target, rec: EncodeRecord, actual: number, o: { unprobed?: boolean } = {}): { base: number; resid: number; spread: number; y: number; alpha: number } | undefined {
    const rt = this.runtime[t];
    if (!rt) return undefined;
    const i = rt.state;
    const notes = newNotes();
    const v = encodeSparse(this.file.features[i], rec, this.sparse[i], { unprobed: o.unprobed, notes });
    const out = this.banks[i]!.run(v);
    const paths = lookupValues(rec);
    const frames = rt.perFrame ? outputFrames(rec) ?? this.file.defaults.frames ?? 1 : 1;
    return {
      base: (notes.unprobed > 0 ? rt.linearUnprobed : rt.linear).value(v) + rt.base.value(paths), resid: fromUnit(meanOutput(out, 0, rt), rt.lo, rt.hi), spread: Math.max(rt.floor, rt.spread.value(paths)),
      y: transformTarget(t, actual) - (rt.log ? Math.log10(frames) : 0), alpha: rt.alpha,
    };
  }

  /** A measured outcome's score under this model: its error on the learning scale ÷ the record's spread (what the bounds' grids hold). */
  score(t: Target, rec: EncodeRecord, actual: number, o: { unprobed?: boolean } = {}): number | undefined {
    const p = this.parts(t, rec, actual, o);
    return p && (p.y - p.base - p.alpha * p.resid) / p.spread;
  }

  /** `predict(schema, ctx)` for each context, through one predictBatch (same figures, fewer network runs). */
  predictEach(schema: EncodingSchema, ctxs: readonly PredictContext[]): Prediction[] {
    const b = this.predictBatch(ctxs.map(() => schema), ctxs, (this.eachBatch ??= new PredictionBatch()));
    return ctxs.map((_, i) => b.prediction(i));
  }
  private eachBatch?: PredictionBatch;

  predict(schema: EncodingSchema, ctx: PredictContext = {}): Prediction {
    const d = this.file.defaults;
    const rec = describeSchema(schema, { cores: ctx.cores ?? d.cores, hw_class: ctx.hw_class ?? d.hw_class });
    const p = this.predictRecord(rec, { capCores: ctx.cores !== undefined });
    const out: Prediction = { model_version: this.version, coverage: this.coverage, expected: p.expected, upper: p.upper };
    if (p.flags.length) out.flags = p.flags;
    return out;
  }
}

const EMPTY = new Float64Array(0);

const CATEGORY_NAMES = Object.keys(CATEGORIES) as Category[];

/** Where flags go: an array, or a FlagWriter. */
type FlagSink = { push(flag: string): unknown };

/** Writes flags into an array from a position on, overwriting what was there (a batch reuses its array). */
class FlagWriter {
  private arr: string[] = [];
  at = 0;
  into(arr: string[], at: number): this { this.arr = arr; this.at = at; return this; }
  push(flag: string): void { this.arr[this.at++] = flag; }
}

/** Reused arrays of the batch path: one block of records at a time. */
interface BlockScratch {
  recs: EncodeRecord[];
  /** 1 where the record's CPU cores are capped at its granted cores. */
  cap: Uint8Array;
  /** Per feature state, the block's encoded rows and its bank's outputs (record r's at r · width). */
  sparse: SparseBlock[];
  outputs: Float64Array[];
  /** Score quantiles and linear parts, record r's in TARGETS order at r · TARGETS.length. */
  q: Float64Array;
  lin: Float64Array;
  /** Per feature state, the notes of each record of the block, as codes (EncodeMarks), and the words of each flag. */
  states: Array<{
    marks: EncodeMarks;
    /** Numeric columns: record r's codes are at marks.codes[r · columns ..]. */
    columns: number;
    unseen: Int32Array;
    missing: Int32Array;
    outside: Int32Array;
    unseenWords: string[];
    missingWords: string[];
    outsideWords: string[];
  }>;
  flags: FlagWriter;
}

const isContextList = (c: PredictContext | readonly (PredictContext | undefined)[]): c is readonly (PredictContext | undefined)[] => Array.isArray(c);

/** Figures in TARGETS order from `at` as an object (one literal shape: fast, and a ResourceUsage as it is). */
const values = (v: Float64Array, at: number): TargetValues & ResourceUsage => ({
  cpu_cores: v[at], gpu_percent: v[at + 1], memory_gb: v[at + 2], bandwidth_mbps: v[at + 3], duration_s: v[at + 4],
});

/** The widest score quantile among the classes a record falls in. */
function classQuantile(rt: RuntimeTarget, unprobed: boolean, novel: boolean, unknown: boolean): number {
  let q = rt.known;
  if (unprobed && rt.unprobed > q) q = rt.unprobed;
  if (novel && rt.novel > q) q = rt.novel;
  if (unknown && rt.unknown > q) q = rt.unknown;
  return q;
}

/** A record whose output size or frame count is not known: an input nobody could probe, described by its path alone. */
export function geometryUnknown(r: EncodeRecord): boolean {
  const w = r.output.width ?? r.input.width, h = r.output.height ?? r.input.height;
  return !(w && h) || outputFrames(r) === undefined;
}
const UNKNOWN_GEOMETRY = 'input not probed: its size, frame rate or length is unknown, so the training means were used and the bound is the one measured for that case';

/** The words for each kind of note, made once per name: a prediction only looks them up. */
const NOTE_WORDS = {
  unseen: 'value not seen in training, predicted as "other" with a wider bound',
  missing: 'not known, the training mean was used',
  outside: 'beyond the training range, extrapolated',
} as const;
const madeWords = { unseen: new Map<string, string>(), missing: new Map<string, string>(), outside: new Map<string, string>() };
const words = (kind: keyof typeof NOTE_WORDS, name: string) => {
  let w = madeWords[kind].get(name);
  if (w === undefined) madeWords[kind].set(name, (w = `${name}: ${NOTE_WORDS[kind]}`));
  return w;
};

function describeNotes(n: EncodeNotes, flags: string[]): void {
  for (const c of n.unseen) flags.push(words('unseen', c));
  for (const c of n.missing) flags.push(words('missing', c));
  for (const c of n.outside) flags.push(words('outside', c));
}

/**
 * Keeps expected and upper finite, inside the target's range, and upper ≥ expected. A non-finite
 * figure becomes the largest value seen in training (or the range's top), so it over-reserves;
 * each change is named in `flags`.
 */
export function clampTarget(t: Target, e: number, u: number, flags: string[], largestSeen?: number): [number, number] {
  const ee = clampOne(t, e, 'estimate', flags, largestSeen);
  return [ee, Math.max(ee, clampOne(t, u, 'bound', flags, largestSeen))];
}

/** clampTarget on target `k` (TARGETS order), kept at `i` of the prediction arrays, in place (the prediction path allocates nothing here). */
function clampAt(t: Target, k: number, i: number, est: Float64Array, bound: Float64Array, flags: FlagSink, largestSeen?: number): void {
  const lo = RANGE_LO[k], hi = RANGE_HI[k];
  const e = est[i], u = bound[i];
  // The common case, both finite and in range, decides without a call.
  if (e >= lo && e <= hi && u >= lo && u <= hi) {
    if (u < e) bound[i] = e;
    return;
  }
  est[i] = clampOne(t, e, 'estimate', flags, largestSeen);
  bound[i] = Math.max(est[i], clampOne(t, u, 'bound', flags, largestSeen));
}

const RANGE_LO = Float64Array.from(TARGETS, (t) => TARGET_SCALES[t].range[0]);
const RANGE_HI = Float64Array.from(TARGETS, (t) => TARGET_SCALES[t].range[1]);

/** Empties a record's notes (an array's length is only set where it has something: setting it is a call). */
function clearNotes(n: EncodeNotes): void {
  if (n.unseen.length) n.unseen.length = 0;
  if (n.missing.length) n.missing.length = 0;
  if (n.outside.length) n.outside.length = 0;
  n.unprobed = 0;
}

function clampOne(t: Target, v: number, what: string, flags: FlagSink, largestSeen?: number): number {
  const [lo, hi] = TARGET_SCALES[t].range;
  if (!Number.isFinite(v)) {
    const r = Math.min(hi, Math.max(lo, Number.isFinite(largestSeen) ? largestSeen! : hi));
    flags.push(`${t}: ${what} was ${v}, replaced by ${r}`);
    return r;
  }
  if (v < lo || v > hi) {
    const r = Math.min(hi, Math.max(lo, v));
    flags.push(`${t}: ${what} ${v.toPrecision(3)} outside ${lo}–${hi}, clamped to ${r}`);
    return r;
  }
  return v;
}
