/**
 * A trained model: per target, a brain.js network over a fitted feature state, and the
 * conformal residuals its upper bound is drawn from. `Model.fromFile` checks a model file
 * through and through (format, feature spec, shapes, finite weights, checksum) and refuses it
 * with the reason; nothing half-loaded ever predicts.
 *
 * Every prediction is finite and inside TARGET_SCALES' physical range: anything else is
 * clamped and named in `flags`, so NaN or absurd figures never reach the ledger.
 */
import { createHash } from 'node:crypto';
import { GPU_ENCODERS, type EncodingSchema, type Prediction, type ResourceUsage } from '../shared/index.js';
import { checkFeatureState, encodeFeatures, newNotes, outputFrames, type Category, type FeatureState, type EncodeNotes } from './features.js';
import { CompiledNetwork, SparseVector, type NetworkJson } from './network.js';
import { checkGrid, conformalQuantile, type ResidualGrid } from './conformal.js';
import { TARGETS, describeSchema, type EncodeRecord, type Target, type TargetValues } from './record.js';

export const MODEL_FORMAT = 'prescient-model';
export const MODEL_FORMAT_VERSION = 2;
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

/** One target's network, its training range and its conformal residuals. */
export interface TargetModel {
  /** Index into ModelFile.features. */
  features: number;
  transform: 'log10' | 'linear';
  /** Duration learned per output frame (× frames at prediction). */
  per_frame: boolean;
  /** Trained only on GPU encodes (gpu_percent): CPU encodes predict 0. */
  gpu_only: boolean;
  /** Transformed range of the training targets: the unit scale's ends. */
  lo: number;
  hi: number;
  rows: number;
  epochs: number;
  network: NetworkJson;
  /** Residuals on calibration rows, and the same rows with each category (or `all`) forced to `other`. */
  residuals: { known: ResidualGrid; novel: Partial<Record<Category | 'all', ResidualGrid>> };
  /** Set when the target had no data in this model's training and was carried over from its parent. */
  inherited_from?: string;
}

export interface ModelFile {
  format: typeof MODEL_FORMAT;
  format_version: typeof MODEL_FORMAT_VERSION;
  version: string;
  created_at: string;
  /** Coverage the bounds are drawn at unless the loader asks for another. */
  coverage: number;
  features: FeatureState[];
  targets: Partial<Record<Target, TargetModel>>;
  /** Used where a prediction's context does not say: the most common training values. */
  defaults: { cores?: number; hw_class?: string; frames?: number };
  trained_on: {
    source: string;
    rows: number;
    fit_rows: number;
    calibration_rows: number;
    test_rows: number;
    split: 'hash' | 'time';
    /** First and last run time of the training rows, where known. */
    from?: string;
    to?: string;
  };
  /** Held-out figures at training time (models/evaluation.ts). */
  metrics?: unknown;
  /** The model this one was trained after (inherited targets come from it). */
  parent?: string;
  /** sha256 of the file's JSON without this field. */
  checksum: string;
}

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
}

export interface RecordPrediction {
  expected: TargetValues;
  upper: TargetValues;
  /** Whatever was clamped, unseen, missing or estimated by rule, in words. */
  flags: string[];
}

export function modelChecksum(file: Omit<ModelFile, 'checksum'> & { checksum?: string }): string {
  const { checksum: _, ...rest } = file;
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex');
}

interface RuntimeTarget {
  spec: TargetModel;
  net: CompiledNetwork;
  known: number;
  novel: Partial<Record<Category | 'all', number>>;
}

export class Model implements ResourcePredictor {
  private readonly runtime: Partial<Record<Target, RuntimeTarget>> = {};
  /** Per feature state: the vector and the notes of the record being predicted (reused: predictions are synchronous). */
  private readonly buffers: Float64Array[];
  private readonly notes: EncodeNotes[];
  private readonly sparse: SparseVector[];
  readonly coverage: number;
  /** What is approximate about this model's bounds (too few calibration rows for the coverage). */
  warnings: string[] = [];

  private constructor(readonly file: ModelFile, coverage: number) {
    this.coverage = coverage;
    this.buffers = file.features.map((f) => new Float64Array(f.names.length));
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
      // An unseen category can matter more than training could show (one hardware class seen,
      // a new one slower): its bound is never narrower than the known rows' at a quarter of the miss rate.
      const floor = q(spec.residuals.known, 1 - (1 - coverage) / 4) ?? known;
      const novel: RuntimeTarget['novel'] = {};
      for (const [c, g] of Object.entries(spec.residuals.novel)) novel[c as Category] = Math.max(floor, q(g) ?? floor);
      let net: CompiledNetwork;
      try {
        net = new CompiledNetwork(spec.network, file.features[spec.features].names.length);
      } catch (e) {
        throw new Error(`targets.${t}.network ${(e as Error).message}`);
      }
      this.runtime[t] = { spec, net, known, novel };
    }
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
    if (f.format_version !== MODEL_FORMAT_VERSION) fail(`model format ${f.format_version} is not the ${MODEL_FORMAT_VERSION} this build reads (retrain it)`);
    if (typeof f.version !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(f.version)) fail(`version ${JSON.stringify(f.version)} is not a model version name`);
    if (typeof f.checksum !== 'string' || modelChecksum(f) !== f.checksum) fail('checksum does not match its contents (the file is corrupt or was edited)');
    const coverage = o.coverage ?? f.coverage;
    if (!(coverage >= 0.5 && coverage <= 0.999)) fail(`coverage ${coverage} is outside 0.5–0.999`);
    if (!Array.isArray(f.features) || f.features.length === 0) fail('has no feature state');
    f.features.forEach((s, i) => { const bad = checkFeatureState(s); if (bad) fail(`features[${i}] ${bad}`); });
    if (!f.targets || typeof f.targets !== 'object') fail('has no targets');
    for (const [t, spec] of Object.entries(f.targets)) {
      if (!(TARGETS as readonly string[]).includes(t)) fail(`names an unknown target ${JSON.stringify(t)}`);
      if (!spec || !f.features[spec.features]) fail(`targets.${t} refers to a missing feature state`);
      if (spec.transform !== TARGET_SCALES[t as Target].transform) fail(`targets.${t} uses transform ${spec.transform}, this build expects ${TARGET_SCALES[t as Target].transform}`);
      if (!Number.isFinite(spec.lo) || !Number.isFinite(spec.hi) || spec.hi < spec.lo) fail(`targets.${t} has an invalid range`);
      const bad = checkGrid(spec.residuals?.known, `targets.${t}.residuals.known`)
        ?? Object.entries(spec.residuals?.novel ?? {}).map(([c, g]) => checkGrid(g, `targets.${t}.residuals.novel.${c}`)).find(Boolean);
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
    const notes = this.notes;
    this.file.features.forEach((s, i) => {
      const n = notes[i];
      n.unseen.length = n.missing.length = n.outside.length = 0;
      this.sparse[i].set(encodeFeatures(s, rec, this.buffers[i], { notes: n }));
    });
    const noted = new Set<number>();
    const expected = {} as TargetValues, upper = {} as TargetValues;
    const gpuEncode = rec.node.gpus !== undefined ? rec.node.gpus > 0 : GPU_ENCODERS.has(rec.output.encoder ?? '');
    for (const t of TARGETS) {
      const rt = this.runtime[t];
      let e: number, u: number, largest: number | undefined;
      if (t === 'gpu_percent' && !gpuEncode) {
        e = u = 0;
      } else if (!rt) {
        [e, u] = t === 'cpu_cores' ? [rec.node.cores ?? 1, rec.node.cores ?? 1] : FALLBACK[t];
        flags.push(`${t}: no training data, estimated by rule (${e}, bound ${u})`);
      } else {
        const idx = rt.spec.features;
        if (!noted.has(idx)) { noted.add(idx); describeNotes(notes[idx], flags); }
        const mid = fromUnit(rt.net.runSparse(this.sparse[idx]), rt.spec.lo, rt.spec.hi);
        const q = noveltyQuantile(rt, notes[idx]);
        let scale = 1;
        if (rt.spec.per_frame) {
          const frames = outputFrames(rec);
          if (frames === undefined) flags.push(`duration_s: frame count unknown, assumed ${this.file.defaults.frames ?? 1}`);
          scale = frames ?? this.file.defaults.frames ?? 1;
        }
        const log = rt.spec.transform === 'log10';
        [e, u] = log ? [10 ** mid * scale, 10 ** (mid + q) * scale] : [mid, mid + q];
        largest = log ? 10 ** rt.spec.hi * scale : rt.spec.hi;
      }
      [expected[t], upper[t]] = clampTarget(t, e, u, flags, largest);
    }
    if (rec.node.cores !== undefined && o.capCores !== false) {
      expected.cpu_cores = Math.min(expected.cpu_cores, rec.node.cores);
      upper.cpu_cores = Math.min(upper.cpu_cores, rec.node.cores);
    }
    return { expected, upper, flags };
  }

  predict(schema: EncodingSchema, ctx: PredictContext = {}): Prediction {
    const d = this.file.defaults;
    const rec = describeSchema(schema, { cores: ctx.cores ?? d.cores, hw_class: ctx.hw_class ?? d.hw_class });
    const p = this.predictRecord(rec, { capCores: ctx.cores !== undefined });
    return { model_version: this.version, coverage: this.coverage, expected: usage(p.expected), upper: usage(p.upper), ...(p.flags.length ? { flags: p.flags } : {}) };
  }
}

const usage = (v: TargetValues): ResourceUsage => ({
  cpu_cores: v.cpu_cores, gpu_percent: v.gpu_percent, memory_gb: v.memory_gb, bandwidth_mbps: v.bandwidth_mbps, duration_s: v.duration_s,
});

/** The widest bound among the categories this record has no column for. */
function noveltyQuantile(rt: RuntimeTarget, n: EncodeNotes): number {
  if (!n.unseen.length) return rt.known;
  let q = rt.known;
  for (const c of n.unseen) q = Math.max(q, rt.novel[c] ?? rt.novel.all ?? rt.known);
  if (n.unseen.length > 1) q = Math.max(q, rt.novel.all ?? q);
  return q;
}

function describeNotes(n: EncodeNotes, flags: string[]): void {
  for (const c of n.unseen) flags.push(`${c}: value not seen in training, predicted as "other" with a wider bound`);
  for (const c of n.missing) flags.push(`${c}: not known, the training mean was used`);
  for (const c of n.outside) flags.push(`${c}: beyond the training range, extrapolated`);
}

/**
 * Keeps expected and upper finite, inside the target's range, and upper ≥ expected. A non-finite
 * figure becomes the largest value seen in training (or the range's top), so it over-reserves.
 */
export function clampTarget(t: Target, e: number, u: number, flags: string[], largestSeen?: number): [number, number] {
  const [lo, hi] = TARGET_SCALES[t].range;
  const fix = (v: number, what: string) => {
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
  };
  const ee = fix(e, 'estimate'), uu = fix(u, 'bound');
  return [ee, Math.max(ee, uu)];
}
