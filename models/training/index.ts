/**
 * Training: labelled rows → a checked Model with calibrated bounds and held-out figures.
 *
 *   rows ─► split (fit / calibration / test, by key hash or by time)
 *        ─► fit the feature state on `fit`
 *        ─► in worker threads, brain.js networks: one shared by the targets every row measures
 *            (CPU, memory, bandwidth, time), one each for the others (GPU share)
 *        ─► conformal residuals on `calibration` (as is, and with each category forced to `other`)
 *        ─► figures on `test` ─► model file (checksummed) ─► Model.fromFile
 *
 * A target no row measures is carried over from the parent model when there is one (with that
 * model's own feature state), so a log that only records time and memory does not erase what
 * the fleet learned about CPU and bandwidth.
 */
import os from 'node:os';
import { Piscina } from 'piscina';
import { CATEGORIES, encodeFeatures, encodeSparse, fitFeatures, isProbed, outputFrames, type Category, type FeatureState } from '../features.js';
import { CompiledNetwork, DEFAULT_NETWORK_OPTIONS, SparseVector, seededRandom, type NetworkTrainOptions, type TrainedNetwork } from '../network.js';
import { residualGrid } from '../conformal.js';
import {
  DEFAULT_COVERAGE, MODEL_FORMAT, MODEL_FORMAT_VERSION, Model, TARGET_SCALES, fromUnit, modelChecksum, toUnit, transformTarget,
  type ModelFile, type NetworkModel, type TargetModel,
} from '../model.js';
import { TARGETS, type LabelledRow, type Target } from '../record.js';
import { evaluable, evaluatePredictor, type EvaluationReport } from '../evaluation/metrics.js';
import { splitRows, type Split, type SplitMode } from './split.js';
import type { NetworkJob } from './worker.js';

export { splitRows, keyBucket, TEST_SHARE, CALIBRATION_SHARE, type Split, type SplitMode } from './split.js';

/** Fewer fit rows than this for a target and it is not learned. */
export const MIN_TARGET_ROWS = 12;
/** Chance that training encodes a row's category as `other`, so that column learns the average. */
const CATEGORY_DROPOUT = 0.04;
/** Chance that training hides a row's PROBED numbers, so the networks learn the schema-only case. */
const PROBE_DROPOUT = 0.3;
/** Duration is learned per output frame when at least this share of its rows know their frames. */
const PER_FRAME_SHARE = 0.9;

export interface TrainOptions {
  version: string;
  /** Where the rows came from, in words (kept in the model file). */
  source: string;
  coverage?: number;
  split?: SplitMode;
  seed?: number;
  network?: Partial<NetworkTrainOptions>;
  /** Worker threads (default: available cores, at most one per target). */
  threads?: number;
  /** Targets missing from the rows are inherited from this model. */
  parent?: Model;
  log?: (m: string) => void;
}

export interface TrainResult {
  model: Model;
  split: Split;
  /** The model's figures on the test rows (also stored in the model file). */
  metrics: EvaluationReport;
  /** Per target: how it was trained, or why it was not. */
  targets: Partial<Record<Target, { rows: number; epochs?: number; ms?: number; inherited_from?: string; skipped?: string }>>;
  ms: number;
}

export class TrainingError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'TrainingError';
  }
}

const CATEGORY_NAMES = Object.keys(CATEGORIES) as Category[];

/**
 * Network size and training length for `n` rows: a smaller network and more patience where
 * rows are few (a few hundred calibration encodes), about 1.5 million pattern passes at most,
 * so 100,000 rows train in a couple of minutes.
 */
function sizedFor(n: number, outputs: number): Partial<NetworkTrainOptions> {
  return {
    // A shared network gets room for what its outputs have in common and what sets them apart.
    hidden: outputs > 1 ? (n < 600 ? [20, 10] : [24, 12]) : n < 600 ? [12, 6] : [20, 10],
    patience: Math.round(Math.max(12, Math.min(40, 20_000 / n))),
    maxEpochs: Math.max(12, Math.min(500, Math.round(1.5e6 / n))),
  };
}

/**
 * Which targets share a network. The targets measured on nearly the same rows (every recorded
 * run measures CPU, memory, bandwidth and time) form one group, learned on the rows that
 * measure them all; any other target with enough rows (GPU share, only on GPU encodes; a
 * target a log has for some lines only) gets a network of its own.
 */
function groupTargets(fit: readonly LabelledRow[], perFrame: (t: Target) => boolean): Target[][] {
  const counts = Object.fromEntries(TARGETS.map((t) => [t, targetRows(t, fit, perFrame(t)).length])) as Record<Target, number>;
  const enough: Target[] = TARGETS.filter((t) => counts[t] >= MIN_TARGET_ROWS);
  const shared: Target[] = enough.filter((t) => t !== 'gpu_percent');
  const all = fit.filter((r) => shared.every((t) => usableRow(t, r, perFrame(t)))).length;
  const group: Target[] = shared.length > 1 && all >= MIN_TARGET_ROWS && shared.every((t) => all >= 0.9 * counts[t]) ? shared : [];
  return [...(group.length ? [group] : []), ...enough.filter((t) => !group.includes(t)).map((t) => [t])];
}

/** Duration is learned per output frame when nearly every row knows its frame count. */
function perFrameWorks(fit: readonly LabelledRow[]): boolean {
  const timed = targetRows('duration_s', fit, false);
  return timed.filter((r) => outputFrames(r.record) !== undefined).length >= PER_FRAME_SHARE * timed.length;
}

/** Whether a row's target `t` can train: measured, finite, and with frames when learned per frame. */
const usableRow = (t: Target, r: LabelledRow, perFrame: boolean) => evaluable(t, r) && (!perFrame || outputFrames(r.record) !== undefined);

function targetRows(t: Target, rows: readonly LabelledRow[], perFrame: boolean): LabelledRow[] {
  return rows.filter((r) => usableRow(t, r, perFrame));
}

const yOf = (t: Target, r: LabelledRow, perFrame: boolean) => transformTarget(t, r.targets[t]!, perFrame ? outputFrames(r.record) : undefined);

export async function trainModel(rows: readonly LabelledRow[], o: TrainOptions): Promise<TrainResult> {
  const started = Date.now();
  const log = o.log ?? (() => undefined);
  const seed = o.seed ?? 1;
  const split = splitRows(rows, o.split ?? 'hash');
  if (split.fit.length < MIN_TARGET_ROWS) throw new TrainingError(`only ${split.fit.length} of ${rows.length} rows are left to fit on; at least ${MIN_TARGET_ROWS} are needed`);
  const features = fitFeatures(split.fit.map((r) => r.record));
  const d = features.names.length;
  log(`training ${o.version} on ${split.fit.length} rows (${split.calibration.length} calibrate the bounds, ${split.test.length} held out), ${d} features`);

  // Which targets each network learns, on which rows (see groupTargets).
  const report: TrainResult['targets'] = {};
  const durationPerFrame = perFrameWorks(split.fit);
  const perFrame = (t: Target) => t === 'duration_s' && durationPerFrame;
  const usable = (t: Target, rs: readonly LabelledRow[]) => targetRows(t, rs, perFrame(t));
  const groups = groupTargets(split.fit, perFrame);
  for (const t of TARGETS) {
    if (!groups.some((g) => g.includes(t))) report[t] = { rows: usable(t, split.fit).length, skipped: `${usable(t, split.fit).length} rows measure it (at least ${MIN_TARGET_ROWS} needed)` };
  }
  const rand = seededRandom(seed);
  const jobs = groups.map((g, gi) => {
    const fit = split.fit.filter((r) => g.every((t) => usableRow(t, r, perFrame(t))));
    const k = g.length;
    const ranges = g.map((t) => {
      const ys = fit.map((r) => yOf(t, r, perFrame(t)));
      return { lo: ys.reduce((a, b) => Math.min(a, b)), hi: ys.reduce((a, b) => Math.max(a, b)) };
    });
    const x = new Float64Array(new SharedArrayBuffer(fit.length * d * 8));
    const y = new Float64Array(new SharedArrayBuffer(fit.length * k * 8));
    fit.forEach((r, i) => {
      const asOther = new Set(CATEGORY_NAMES.filter(() => rand() < CATEGORY_DROPOUT));
      encodeFeatures(features, r.record, x.subarray(i * d, (i + 1) * d), { asOther, unprobed: rand() < PROBE_DROPOUT });
      g.forEach((t, j) => { y[i * k + j] = toUnit(yOf(t, r, perFrame(t)), ranges[j].lo, ranges[j].hi); });
    });
    const options = { ...DEFAULT_NETWORK_OPTIONS, ...sizedFor(fit.length, k), ...o.network, seed: seed * 31 + gi };
    return { targets: g, fit, ranges, job: { x, y, d, k, options } satisfies NetworkJob };
  });
  if (!jobs.length && !o.parent) throw new TrainingError(`no target has ${MIN_TARGET_ROWS} rows to learn from`);

  const pool = new Piscina<NetworkJob, TrainedNetwork>({
    filename: new URL('./worker.js', import.meta.url).href,
    maxThreads: Math.max(1, Math.min(jobs.length, o.threads ?? os.availableParallelism())),
    minThreads: 0,
    idleTimeout: 100,
  });
  let trained: TrainedNetwork[];
  try {
    trained = await Promise.all(jobs.map((j) => pool.run(j.job)));
  } finally {
    await pool.destroy();
  }

  const states: FeatureState[] = [features];
  const networks: NetworkModel[] = [];
  const targets: ModelFile['targets'] = {};
  jobs.forEach((j, i) => {
    const net = trained[i];
    const network = networks.push({ features: 0, outputs: j.targets, rows: j.fit.length, epochs: net.epochs, json: net.json }) - 1;
    const compiled = new CompiledNetwork(net.json, d, j.targets.length);
    j.targets.forEach((t, output) => {
      const calibration = usable(t, split.calibration);
      const { lo, hi } = j.ranges[output];
      targets[t] = {
        network, output, transform: TARGET_SCALES[t].transform, per_frame: perFrame(t), gpu_only: t === 'gpu_percent', lo, hi, rows: j.fit.length,
        residuals: calibrationResiduals(t, perFrame(t), calibration, features, compiled, output, lo, hi),
      };
      report[t] = { rows: j.fit.length, epochs: net.epochs, ms: net.ms };
    });
    log(`  ${j.targets.join(', ')}: ${j.fit.length} rows, ${net.epochs} epochs, ${(net.ms / 1000).toFixed(1)} s, validation mse ${net.validation_mse.toExponential(2)}`);
  });
  for (const t of TARGETS) {
    const inherited = !targets[t] && o.parent?.file.targets[t];
    if (!inherited) continue;
    // The parent's target keeps its network and the feature state that network reads.
    const pf = o.parent!.file, pn = pf.networks[inherited.network];
    let state = states.indexOf(pf.features[pn.features]);
    if (state < 0) state = states.push(pf.features[pn.features]) - 1;
    let network = networks.findIndex((n) => n.json === pn.json);
    if (network < 0) network = networks.push({ ...pn, features: state }) - 1;
    targets[t] = { ...inherited, network, inherited_from: inherited.inherited_from ?? o.parent!.version };
    report[t] = { ...report[t], rows: 0, inherited_from: targets[t]!.inherited_from };
  }

  const times = rows.map((r) => r.ts).filter((x): x is number => x !== undefined);
  const file: Omit<ModelFile, 'checksum'> = {
    format: MODEL_FORMAT, format_version: MODEL_FORMAT_VERSION, version: o.version, created_at: new Date().toISOString(),
    coverage: o.coverage ?? DEFAULT_COVERAGE, features: states, networks, targets,
    defaults: defaultsOf(split.fit),
    trained_on: {
      source: o.source, rows: rows.length, fit_rows: split.fit.length, calibration_rows: split.calibration.length, test_rows: split.test.length,
      split: o.split ?? 'hash',
      ...(times.length ? { from: new Date(times.reduce((a, b) => Math.min(a, b))).toISOString(), to: new Date(times.reduce((a, b) => Math.max(a, b))).toISOString() } : {}),
    },
    ...(o.parent ? { parent: o.parent.version } : {}),
  };
  const draft = Model.fromFile({ ...file, checksum: modelChecksum(file) }, { source: o.version });
  const metrics = evaluatePredictor((r) => draft.predictRecord(r), split.test);
  const final = { ...file, metrics };
  const model = Model.fromFile({ ...final, checksum: modelChecksum(final) }, { source: o.version });
  return { model, split, metrics, targets: report, ms: Date.now() - started };
}

/**
 * Residuals (actual − predicted, on the learning scale) of the calibration rows: as they are,
 * and with each category in turn (then all of them) encoded as `other`, which is what the
 * bound of a prediction for an unseen codec, preset or hardware class is drawn from.
 */
export function calibrationResiduals(t: Target, perFrame: boolean, rows: LabelledRow[], s: FeatureState, net: CompiledNetwork, output: number, lo: number, hi: number): TargetModel['residuals'] {
  const v = new SparseVector(s.names.length);
  const residuals = (asOther?: ReadonlySet<Category>, unprobed = false) => residualGrid(rows.map((r) => {
    encodeSparse(s, r.record, v, { asOther, unprobed });
    return yOf(t, r, perFrame) - fromUnit(net.runSparse(v)[output], lo, hi);
  }));
  const novel: TargetModel['residuals']['novel'] = { all: residuals(new Set(CATEGORY_NAMES), s.numeric.some((n) => isProbed(n.name))) };
  for (const c of CATEGORY_NAMES) novel[c] = residuals(new Set([c]));
  if (s.numeric.some((n) => isProbed(n.name))) novel.unprobed = residuals(undefined, true);
  return { known: residuals(), novel };
}

/** The most common cores and hardware class, and the median frame count, of the training rows. */
function defaultsOf(rows: LabelledRow[]): ModelFile['defaults'] {
  const mode = <T>(xs: T[]): T | undefined => {
    const counts = new Map<T, number>();
    for (const v of xs) counts.set(v, (counts.get(v) ?? 0) + 1);
    return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
  };
  const frames = rows.map((r) => outputFrames(r.record)).filter((f): f is number => f !== undefined).sort((a, b) => a - b);
  const out: ModelFile['defaults'] = {};
  const cores = mode(rows.map((r) => r.record.node.cores).filter((c): c is number => c !== undefined));
  const hw = mode(rows.map((r) => r.record.node.hw_class).filter((c): c is string => c !== undefined));
  if (cores !== undefined) out.cores = cores;
  if (hw !== undefined) out.hw_class = hw;
  if (frames.length) out.frames = frames[Math.floor(frames.length / 2)];
  return out;
}
