/**
 * Federated learning on model weights: an agent fine-tunes a local copy of the global model on
 * its own runs and sends only the difference of the weights (a `WeightDelta`); the leader checks
 * each delta against the version it was made from, merges the good ones by sample-weighted
 * averaging, recalibrates the bounds on a held-out window and promotes the merge only if it is
 * no worse. No raw telemetry leaves a node.
 *
 *   node:    global model ─ fineTune(own recent rows) ─► tuned ─ weightDelta(global, tuned) ─► WeightDelta
 *   leader:  validateDelta (form, finite, shape, base version, norm) ─► screenRound (outlier norms)
 *            ─► screenByHeldOut (the merge with and without each delta, on the held-out window) ─► mergeDeltas (base + Σ nᵢΔᵢ / Σ nᵢ,
 *            bounds recomputed on the calibration rows) ─► judgeMerge (no worse than base) ─► promote
 *
 * Everything here is pure (no NATS, no files): coordinator/federation and node-agent/learn
 * carry deltas and versions over JetStream (models/federated/channel.ts).
 */
import brain from 'brain.js';
import { createHash } from 'node:crypto';
import { CATEGORIES, encodeFeatures, encodeSparse, newNotes, outputFrames, type Category } from '../features.js';
import { SparseVector, permutation, seededRandom, type NetworkJson } from '../network.js';
import { CompiledLinear } from '../linear.js';
import { Model, membersOf, modelChecksum, toUnit, transformTarget, type FederatedProvenance, type ModelFile, type NetworkModel } from '../model.js';
import { TARGETS, type LabelledRow, type Target } from '../record.js';
import { compareReports, evaluable, evaluatePredictor, type Comparison, type EvaluationReport } from '../evaluation/metrics.js';
import { CompiledLookup, lookupValues } from '../lookup.js';
import { residualGrid } from '../conformal.js';
import { keyBucket } from '../training/split.js';

export const DELTA_FORMAT = 'prescient-delta';

/** One layer's change: weights node-major and flat (node j's weight k at j · inputs + k), and biases. */
export interface LayerDelta { weights: number[]; biases: number[] }

/**
 * What an agent sends: per network of the base model, per layer after the inputs, the tuned
 * weights minus the base weights; with what it was made from and how much it learned.
 */
export interface WeightDelta {
  format: typeof DELTA_FORMAT;
  /** Unique per delta (node, base version, time). */
  id: string;
  node: string;
  base_version: string;
  /** The base model file's checksum: the same version name with other weights is refused. */
  base_checksum: string;
  created_at: string;
  /** Runs the node fine-tuned on: the delta's weight in the merge. */
  samples: number;
  /** Mean error on the learning scale (scale MAE over targets) on the node's own held-back runs, before and after. */
  validation: { rows: number; base: number; tuned: number };
  /** The base networks' sizes, e.g. "49-20-10-4" (several networks joined by "|"). */
  shape: string;
  networks: Array<{ layers: LayerDelta[] }>;
}

/** Why a delta was refused. */
export type RejectionCode =
  /** Not a delta at all, or fields missing. */
  | 'malformed'
  /** Published on another node's subject than the node it names (NATS lets a node publish on its own only). */
  | 'forged-node'
  /** Made from a version that exists but is not the current global one. */
  | 'stale-base'
  /** Made from a version nobody knows (or the same name with other weights). */
  | 'unknown-base'
  /** Its networks do not have the base networks' shape. */
  | 'shape'
  /** NaN or infinite numbers. */
  | 'non-finite'
  /** Its L2 norm is above the configured multiple of the base weights' norm. */
  | 'oversized'
  /** Its L2 norm is far above the median of the deltas in the same round. */
  | 'outlier'
  /** The round's merge is worse on the held-out window with it than without it. */
  | 'worsens-held-out';

export type DeltaVerdict = { ok: true; norm: number } | { ok: false; code: RejectionCode; reason: string };

export interface ValidateOptions {
  /** Versions that exist (registered or shipped): a base outside it is `unknown-base`, inside it but not current `stale-base`. */
  known?: (version: string) => boolean;
  /** Largest delta norm as a multiple of the base weights' norm (default 0.5). */
  maxNormRatio?: number;
}

export const DEFAULT_MAX_NORM_RATIO = 0.5;
/** A delta more than this many times the round's median norm is an outlier (with three or more deltas). */
export const DEFAULT_OUTLIER_FACTOR = 5;

/** "49-20-10-4|49-12-6-1": the sizes of every network of a model file. */
export function shapeOf(file: ModelFile): string {
  return file.networks.map((n) => n.json.sizes.join('-')).join('|');
}

/** L2 norm of all weights and biases of a model's networks. */
export function weightsNorm(file: ModelFile): number {
  let s = 0;
  for (const n of file.networks) for (const l of n.json.layers.slice(1)) {
    for (const row of l.weights) for (const w of row) s += w * w;
    for (const b of l.biases) s += b * b;
  }
  return Math.sqrt(s);
}

/** L2 norm of a delta (NaN when any number is not finite). */
export function deltaNorm(d: WeightDelta): number {
  let s = 0;
  for (const n of d.networks) for (const l of n.layers) {
    for (const w of l.weights) s += w * w;
    for (const b of l.biases) s += b * b;
  }
  return Math.sqrt(s);
}

// ── node side ──────────────────────────────────────────────────────────────────────────

export interface FineTuneOptions {
  /** Passes over the local rows (default 30); the epoch with the lowest local validation error is kept. */
  epochs?: number;
  /** Small: the global model is a starting point, not something to overwrite (default 0.03). */
  learningRate?: number;
  momentum?: number;
  seed?: number;
  /** Share of the local rows held back to measure the local validation error (default 0.2). */
  validationShare?: number;
  /** Version name of the tuned local model (default `<base>.local`). */
  version?: string;
}

export interface FineTuneResult {
  /** The tuned local model (the base model's bounds: it is only a step towards a delta). */
  model: Model;
  /** Rows fine-tuned on (the rest were held back). */
  samples: number;
  validation: WeightDelta['validation'];
  epochs: number;
}

/** Fewer local rows than this and there is nothing worth sending. */
export const MIN_FINE_TUNE_ROWS = 8;
/** As in training: a share of rows have their probed numbers hidden, so the schema-only case keeps working. */
const PROBE_DROPOUT = 0.3;
const CATEGORY_DROPOUT = 0.04;
const CATEGORY_NAMES = Object.keys(CATEGORIES) as Category[];

/** Mean of the scale errors of a report's targets (the one number deltas are judged by). */
export function meanScaleError(r: EvaluationReport): number {
  const xs = TARGETS.map((t) => r[t]?.scale_mae).filter((x): x is number => x !== undefined && Number.isFinite(x));
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

/**
 * Continues brain.js training from the model's own weights on local rows: same feature state,
 * same target scales, a few epochs at a small learning rate, seeded; keeps the epoch with the
 * lowest error on the held-back rows (the base weights if none is better).
 */
export function fineTune(base: Model, rows: readonly LabelledRow[], o: FineTuneOptions = {}): FineTuneResult {
  const f = base.file;
  const rand = seededRandom(o.seed ?? 1);
  const order = permutation(rows.length, rand);
  const nVal = rows.length >= 5 ? Math.max(1, Math.round(rows.length * (o.validationShare ?? 0.2))) : 0;
  const held = Array.from(order.subarray(0, nVal), (i) => rows[i]);
  const fit = Array.from(order.subarray(nVal), (i) => rows[i]);
  if (fit.length < MIN_FINE_TUNE_ROWS) throw new Error(`only ${fit.length} local rows to fine-tune on, at least ${MIN_FINE_TUNE_ROWS} are needed`);
  let epochsRun = 0;
  const networks: NetworkModel[] = f.networks.map((n, ni) => {
    // Targets inherited from an older model keep their network untouched.
    const outputs = n.outputs.map((t) => f.targets[t]);
    // An ensemble's members (TargetModel.ensemble) are each tuned from their own weights.
    if (outputs.some((spec, j) => !spec || !membersOf(spec).some((m) => m.network === ni && m.output === j) || spec.inherited_from)) return n;
    const state = f.features[n.features], d = state.names.length, k = n.outputs.length;
    const usable = (r: LabelledRow) => n.outputs.every((t, j) => evaluable(t, r) && (!outputs[j]!.per_frame || outputFrames(r.record) !== undefined));
    // The networks learn what the lookup misses: the residual on the learning scale, in the global model's unit range.
    // A row without the probed numbers is estimated with the linear part fitted without them (as prediction does).
    const bases = outputs.map((spec) => ({ linear: new CompiledLinear(spec!.linear), unprobed: new CompiledLinear(spec!.linear_unprobed ?? spec!.linear), lookup: new CompiledLookup(spec!.base) }));
    const v = new SparseVector(d);
    const y = (r: LabelledRow) => {
      const notes = newNotes();
      encodeSparse(state, r.record, v, { notes });
      const paths = lookupValues(r.record);
      return Float32Array.from(n.outputs, (t, j) => {
        const spec = outputs[j]!;
        const resid = transformTarget(t, r.targets[t]!, spec.per_frame ? outputFrames(r.record) : undefined) - (notes.unprobed > 0 ? bases[j].unprobed : bases[j].linear).value(v) - bases[j].lookup.value(paths);
        return toUnit(resid, spec.lo, spec.hi);
      });
    };
    const pattern = (r: LabelledRow, drop: boolean) => {
      const asOther = drop ? new Set(CATEGORY_NAMES.filter(() => rand() < CATEGORY_DROPOUT)) : undefined;
      return { input: Float32Array.from(encodeFeatures(state, r.record, new Float64Array(d), { asOther, unprobed: drop && rand() < PROBE_DROPOUT })), output: y(r) };
    };
    const train = fit.filter(usable).map((r) => pattern(r, true));
    const val = held.filter(usable).map((r) => pattern(r, false));
    if (train.length < MIN_FINE_TUNE_ROWS) return n;
    const net = new brain.NeuralNetwork<number[], number[]>().fromJSON(n.json as never);
    net.updateTrainingOptions({ learningRate: o.learningRate ?? 0.03, momentum: o.momentum ?? 0.3 });
    const mse = (ps: typeof train) => {
      let s = 0;
      for (const p of ps) { const out = net.runInput(p.input); for (let j = 0; j < k; j++) s += (out[j] - p.output[j]) ** 2; }
      return ps.length ? s / (ps.length * k) : 0;
    };
    const judge = val.length ? val : train;
    let best = { score: mse(judge), json: n.json };
    const idx = new Uint32Array(train.length);
    const epochs = o.epochs ?? 30;
    for (let e = 0; e < epochs; e++) {
      permutation(train.length, rand, idx);
      for (const i of idx) net.trainPattern(train[i] as never);
      const score = mse(judge);
      if (score < best.score - 1e-12) best = { score, json: net.toJSON() as unknown as NetworkJson };
    }
    epochsRun = Math.max(epochsRun, epochs);
    // Keep the base's own layout of the JSON (options, lookups) and change only weights and biases.
    return { ...n, json: { ...n.json, layers: (best.json as NetworkJson).layers.map((l) => ({ weights: l.weights.map((w) => Array.from(w)), biases: Array.from(l.biases) })) } };
  });
  // The local model adds its tuned residual in full: what the node learned is what the
  // validation error judges. The merge re-weighs it on the leader's held-out window (mergeDeltas).
  const targets = structuredClone(f.targets);
  networks.forEach((n, ni) => { if (n !== f.networks[ni]) for (const t of n.outputs) targets[t]!.alpha = 1; });
  const file: Omit<ModelFile, 'checksum'> = { ...withoutChecksum(f), version: o.version ?? `${f.version}.local`, networks, targets, parent: f.version };
  const model = Model.fromFile({ ...file, checksum: modelChecksum(file) }, { source: file.version });
  const err = (m: Model) => meanScaleError(evaluatePredictor((r) => m.predictRecord(r), held));
  return { model, samples: fit.length, validation: { rows: held.length, base: held.length ? err(base) : NaN, tuned: held.length ? err(model) : NaN }, epochs: epochsRun };
}

/** The difference tuned − base, with what the leader needs to judge it. */
export function weightDelta(base: Model, tuned: FineTuneResult, o: { node: string; id?: string; now?: Date }): WeightDelta {
  const b = base.file, t = tuned.model.file;
  if (shapeOf(b) !== shapeOf(t)) throw new Error(`the tuned model's shape ${shapeOf(t)} is not the base's ${shapeOf(b)}`);
  const networks = b.networks.map((n, ni) => ({
    layers: n.json.layers.slice(1).map((l, li) => {
      const tl = t.networks[ni].json.layers[li + 1];
      return { weights: l.weights.flatMap((row, j) => row.map((w, k) => tl.weights[j][k] - w)), biases: l.biases.map((x, j) => tl.biases[j] - x) };
    }),
  }));
  const created_at = (o.now ?? new Date()).toISOString();
  return {
    format: DELTA_FORMAT, id: o.id ?? `${o.node}-${b.version}-${createHash('sha256').update(`${o.node} ${created_at} ${Math.random()}`).digest('hex').slice(0, 10)}`,
    node: o.node, base_version: b.version, base_checksum: b.checksum, created_at,
    samples: tuned.samples, validation: tuned.validation, shape: shapeOf(b), networks,
  };
}

// ── leader side ────────────────────────────────────────────────────────────────────────

/**
 * Checks one delta against the current global model: its form, its base version (the current
 * one: an older known version is stale, any other unknown), the exact shape of every network,
 * finite numbers, and a norm bound against poisoning.
 */
export function validateDelta(raw: unknown, base: Model, o: ValidateOptions = {}): DeltaVerdict {
  const refuse = (code: RejectionCode, reason: string): DeltaVerdict => ({ ok: false, code, reason });
  const d = raw as WeightDelta;
  if (!d || typeof d !== 'object' || d.format !== DELTA_FORMAT) return refuse('malformed', 'not a Prescient weight delta');
  if (typeof d.id !== 'string' || typeof d.node !== 'string' || typeof d.base_version !== 'string') return refuse('malformed', 'id, node or base_version is missing');
  if (!Number.isInteger(d.samples) || d.samples <= 0) return refuse('malformed', `sample count ${JSON.stringify(d.samples)} is not a positive integer`);
  if (!Array.isArray(d.networks)) return refuse('malformed', 'has no networks');
  const f = base.file;
  if (d.base_version !== f.version) {
    return o.known?.(d.base_version)
      ? refuse('stale-base', `made from ${d.base_version}, the global model is now ${f.version}`)
      : refuse('unknown-base', `made from ${d.base_version}, which is no known model version (the global model is ${f.version})`);
  }
  if (d.base_checksum !== f.checksum) return refuse('unknown-base', `made from a ${d.base_version} whose checksum ${String(d.base_checksum).slice(0, 12)} is not the global model's ${f.checksum.slice(0, 12)}`);
  if (d.networks.length !== f.networks.length) return refuse('shape', `has ${d.networks.length} networks, the base has ${f.networks.length}`);
  for (let ni = 0; ni < f.networks.length; ni++) {
    const sizes = f.networks[ni].json.sizes, layers = d.networks[ni]?.layers;
    if (!Array.isArray(layers) || layers.length !== sizes.length - 1) return refuse('shape', `network ${ni} has ${Array.isArray(layers) ? layers.length : 'no'} layers, the base has ${sizes.length - 1} (${sizes.join('-')})`);
    for (let l = 1; l < sizes.length; l++) {
      const { weights, biases } = layers[l - 1] ?? ({} as LayerDelta);
      if (!Array.isArray(weights) || weights.length !== sizes[l] * sizes[l - 1]) return refuse('shape', `network ${ni} layer ${l} has ${Array.isArray(weights) ? weights.length : 'no'} weights, the base has ${sizes[l] * sizes[l - 1]} (${sizes[l - 1]}×${sizes[l]})`);
      if (!Array.isArray(biases) || biases.length !== sizes[l]) return refuse('shape', `network ${ni} layer ${l} has ${Array.isArray(biases) ? biases.length : 'no'} biases, the base has ${sizes[l]}`);
      // JSON carries NaN and ±Infinity as null: either way it is not a finite number.
      const bad = weights.findIndex((w) => typeof w !== 'number' || !Number.isFinite(w));
      if (bad >= 0) return refuse('non-finite', `network ${ni} layer ${l} weight ${bad} is not a finite number (${String(weights[bad])})`);
      const badB = biases.findIndex((w) => typeof w !== 'number' || !Number.isFinite(w));
      if (badB >= 0) return refuse('non-finite', `network ${ni} layer ${l} bias ${badB} is not a finite number (${String(biases[badB])})`);
    }
  }
  if (d.shape !== shapeOf(f)) return refuse('shape', `says its shape is ${d.shape}, the base's is ${shapeOf(f)}`);
  const norm = deltaNorm(d), limit = (o.maxNormRatio ?? DEFAULT_MAX_NORM_RATIO) * weightsNorm(f);
  if (!(norm <= limit)) return refuse('oversized', `its norm ${norm.toPrecision(3)} is above ${(o.maxNormRatio ?? DEFAULT_MAX_NORM_RATIO)} × the base weights' norm (${limit.toPrecision(3)})`);
  return { ok: true, norm };
}

/**
 * The round's outliers: with three or more deltas, one whose norm is more than `factor` times
 * the median is refused (a node sending a poisoned, huge step among honest small ones).
 */
export function screenRound(deltas: ReadonlyArray<{ delta: WeightDelta; norm: number }>, factor = DEFAULT_OUTLIER_FACTOR): Map<string, string> {
  const out = new Map<string, string>();
  if (deltas.length < 3) return out;
  const norms = deltas.map((d) => d.norm).sort((a, b) => a - b);
  const median = norms.length % 2 ? norms[(norms.length - 1) / 2] : (norms[norms.length / 2 - 1] + norms[norms.length / 2]) / 2;
  for (const d of deltas) {
    if (d.norm > factor * median) out.set(d.delta.id, `its norm ${d.norm.toPrecision(3)} is more than ${factor} × the round's median ${median.toPrecision(3)}`);
  }
  return out;
}

/** base + Σ wᵢΔᵢ (weights wᵢ summing to 1), as network JSON; `version` names the result. */
function combine(base: ModelFile, deltas: readonly WeightDelta[], weights: readonly number[]): NetworkModel[] {
  return base.networks.map((n, ni) => ({
    ...n,
    json: {
      ...n.json,
      layers: n.json.layers.map((l, li) => li === 0 ? l : {
        weights: l.weights.map((row, j) => row.map((w, k) => deltas.reduce((s, d, i) => s + weights[i] * d.networks[ni].layers[li - 1].weights[j * row.length + k], w))),
        biases: l.biases.map((b, j) => deltas.reduce((s, d, i) => s + weights[i] * d.networks[ni].layers[li - 1].biases[j], b)),
      }),
    },
  }));
}

export interface MergeOptions {
  version: string;
  /** Rows the known and unprobed scores are recomputed on (split-conformal): never rows any delta trained on. */
  calibration?: readonly LabelledRow[];
  /** Fewer calibration rows than this for a target and it keeps the base's residuals (default 20). */
  minCalibrationRows?: number;
  /**
   * Add the merged networks' residual in full (alpha 1), as each node's own model did, rather
   * than the share chosen on the calibration rows: how screenByHeldOut judges what the deltas
   * themselves do.
   */
  fullResidual?: boolean;
  now?: Date;
}

/**
 * base + Σ nᵢΔᵢ / Σ nᵢ: the deltas averaged by their sample counts. Bounds are recomputed on
 * the calibration rows where there are enough, so the merged version's bounds are its own; the
 * deltas that went into it are listed in the file (`federated`), and its checksum is fresh.
 */
export function mergeDeltas(base: Model, deltas: readonly WeightDelta[], o: MergeOptions): Model {
  if (!deltas.length) throw new Error('no deltas to merge');
  const f = base.file;
  const total = deltas.reduce((s, d) => s + d.samples, 0);
  const networks = combine(f, deltas, deltas.map((d) => d.samples / total));
  const targets: ModelFile['targets'] = structuredClone(f.targets);
  const minRows = o.minCalibrationRows ?? 20;
  // The merged weights with the base's bounds, to score the calibration rows with.
  if (o.fullResidual) for (const spec of Object.values(targets)) if (!spec!.inherited_from) spec!.alpha = 1;
  const draft = Model.fromFile(sealed({ ...withoutChecksum(f), version: o.version, networks, targets }), { source: o.version });
  let calibrated = 0;
  for (const t of Object.keys(targets) as Target[]) {
    const spec = targets[t]!;
    if (spec.inherited_from) continue;
    const rows = (o.calibration ?? []).filter((r) => evaluable(t, r) && (!spec.per_frame || outputFrames(r.record) !== undefined));
    if (rows.length < minRows || o.fullResidual) continue;
    // The rows are recent runs no delta trained on: on them the merged networks' share of the
    // estimate is chosen again (as training chose it on held-out sources), and their scores stand
    // in for the known and unprobed cases; the novel and unknown cases keep the base's, measured
    // by source in training.
    const parts = rows.map((r) => draft.parts(t, r.record, r.targets[t]!)!);
    spec.alpha = bestAlpha(parts);
    const score = (p: NonNullable<ReturnType<Model['parts']>>) => (p.y - p.base - spec.alpha * p.resid) / p.spread;
    const known = residualGrid(parts.map(score));
    const unprobed = spec.residuals.novel.unprobed ? { unprobed: residualGrid(rows.map((r) => score(draft.parts(t, r.record, r.targets[t]!, { unprobed: true })!))) } : {};
    spec.residuals = { known, novel: { ...spec.residuals.novel, ...unprobed } };
    calibrated = Math.max(calibrated, rows.length);
  }
  const federated: FederatedProvenance = {
    base: f.version, samples: total, calibration_rows: calibrated,
    deltas: deltas.map((d) => ({ id: d.id, node: d.node, samples: d.samples, validation_base: d.validation.base, validation_tuned: d.validation.tuned })),
  };
  const file: Omit<ModelFile, 'checksum'> = {
    ...withoutChecksum(f), version: o.version, created_at: (o.now ?? new Date()).toISOString(), networks, targets, parent: f.version, federated,
    trained_on: { ...f.trained_on, source: `federated: ${deltas.length} deltas (${total} runs on ${[...new Set(deltas.map((d) => d.node))].join(', ')}) merged onto ${f.version}` },
  };
  delete (file as Partial<ModelFile>).metrics;
  return Model.fromFile(sealed(file), { source: o.version });
}

/** The residual share (0, 0.05, … 1) with the least absolute error on the rows. */
function bestAlpha(parts: ReadonlyArray<{ y: number; base: number; resid: number }>): number {
  let best = 0, bestErr = Infinity;
  for (let k = 0; k <= 20; k++) {
    const a = k / 20;
    let e = 0;
    for (const p of parts) e += Math.abs(p.y - p.base - a * p.resid);
    if (e < bestErr - 1e-12) { best = a; bestErr = e; }
  }
  return best;
}

/** Held-out figures of a candidate beside the current model's, and whether it may replace it. */
export interface Judgement { accept: boolean; reason: string; candidate: EvaluationReport; current: EvaluationReport; comparison: Comparison }

/** A merged model is promoted only if it is no worse than the current one on the held-out rows (compareReports). */
export function judgeMerge(candidate: Model, current: Model, heldOut: readonly LabelledRow[]): Judgement {
  const c = evaluatePredictor((r) => candidate.predictRecord(r), heldOut);
  const k = evaluatePredictor((r) => current.predictRecord(r), heldOut);
  const comparison = compareReports(c, k);
  return { accept: comparison.accept, reason: comparison.reason, candidate: c, current: k, comparison };
}

/**
 * The deltas of a round that make the held-out window worse: the merge of all of them is
 * compared with the merge leaving each one out, and a delta whose removal lowers the mean scale
 * error by more than `tolerance` (relative) is refused; repeated, worst first, until none is
 * left to refuse. A delta that only helps its own node's runs a little and costs the others
 * nothing stays; one that helps nobody, or costs the others more than it gives, goes. With one
 * delta this is base + Δ against the base.
 */
export function screenByHeldOut(base: Model, deltas: readonly WeightDelta[], heldOut: readonly LabelledRow[], tolerance = 0.02): {
  kept: WeightDelta[]; refused: Array<{ delta: WeightDelta; reason: string }>;
} {
  // The merged networks count in full, as in each node's own model: a delta is judged by what it
  // does, not by how little of it the round's calibration would keep.
  const err = (ds: readonly WeightDelta[]) => {
    const m = ds.length ? mergeDeltas(base, ds, { version: `${base.version}.probe`, fullResidual: true }) : base;
    return meanScaleError(evaluatePredictor((r) => m.predictRecord(r), heldOut));
  };
  let kept = [...deltas];
  const refused: Array<{ delta: WeightDelta; reason: string }> = [];
  if (!heldOut.length) return { kept, refused };
  while (kept.length) {
    const withAll = err(kept);
    const without = kept.map((d) => ({ d, e: err(kept.filter((x) => x !== d)) })).sort((x, y) => x.e - y.e)[0];
    if (!(withAll > without.e * (1 + tolerance))) break;
    refused.push({
      delta: without.d,
      reason: `the held-out window is worse with it: mean scale error ${withAll.toPrecision(3)} with it vs ${without.e.toPrecision(3)} without (${kept.length - 1 ? `the merge of the other ${kept.length - 1}` : 'the base alone'}) on ${heldOut.length} runs`,
    });
    kept = kept.filter((x) => x !== without.d);
  }
  return { kept, refused };
}

/**
 * Which side of the held-out window a run falls on, by a hash of its key: runs for which this
 * is true are never fine-tuned on by any node, so the leader can judge and calibrate on them.
 * 0.2 of runs judge (`evaluation`), the next 0.15 recalibrate the bounds (`calibration`).
 */
export function heldOutPart(key: string): 'evaluation' | 'calibration' | undefined {
  const b = keyBucket(`federated:${key}`);
  return b < 0.2 ? 'evaluation' : b < 0.35 ? 'calibration' : undefined;
}

const withoutChecksum = (f: ModelFile): Omit<ModelFile, 'checksum'> => {
  const { checksum: _, ...rest } = f;
  return rest;
};
const sealed = (f: Omit<ModelFile, 'checksum'>): ModelFile => ({ ...f, checksum: modelChecksum(f) });
