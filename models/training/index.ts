/**
 * Training: labelled rows → a checked Model whose bounds hold on sources it has never seen.
 *
 *   rows ─► split: a test share held out (`hash`, `time`), or none (`none`: every row trains)
 *        ─► fit rows ─► folds by source (LabelledRow.group): each fold's rows are predicted by a
 *           model trained without them, and a few extrapolation folds (the largest and smallest
 *           pictures, each hardware class) by one that never saw anything like them
 *        ─► per fold and for the final model, on its own rows: features fitted (ranges,
 *             vocabularies); per target a ridge regression (linear.ts) and a lookup of what it
 *             misses by group (lookup.ts); brain.js networks on what both miss (in worker
 *             threads, every fold's at once)
 *        ─► from the held-out predictions: how much of the networks' residual to add (alpha),
 *           the spread of the errors by lookup, and the conformal scores of each class of
 *           record (known, novel, unprobed, unknown)
 *        ─► figures: on the test rows, or cross-validated ─► model file (checksummed)
 *
 * Every row trains the final model; no share is set aside to calibrate the bounds (their
 * scores come from the folds). A target no row measures is carried over from the parent model
 * when there is one (with that model's own feature state), so a log that only records time and
 * memory does not erase what the fleet learned about CPU and bandwidth.
 */
import os from 'node:os';
import { Piscina } from 'piscina';
import { CATEGORIES, encodeFeatures, encodeSparse, fitFeatures, isProbed, newNotes, outputFrames, type Category, type FeatureState } from '../features.js';
import { CompiledNetwork, DEFAULT_NETWORK_OPTIONS, SparseVector, seededRandom, permutation, type NetworkTrainOptions, type TrainedNetwork } from '../network.js';
import { conformalQuantile, residualGrid, type ResidualGrid } from '../conformal.js';
import { CompiledLookup, LOOKUP_KEYS, fitLookup, fitLookupPaths, lookupPaths, lookupSums, lookupValues, type Lookup } from '../lookup.js';
import { CompiledLinear, fitLinears, type Linear } from '../linear.js';
import {
  DEFAULT_COVERAGE, MODEL_FORMAT, MODEL_FORMAT_VERSION, Model, TARGET_SCALES, fromUnit, modelChecksum, toUnit, transformTarget,
  type ModelFile, type NetworkModel, type TargetModel,
} from '../model.js';
import { TARGETS, type EncodeRecord, type LabelledRow, type Target, type TargetValues } from '../record.js';
import { evaluable, evaluatePredictor, type EvaluationReport } from '../evaluation/metrics.js';
import { keyBucket, splitRows, type Split, type SplitMode } from './split.js';
import type { NetworkJob } from './worker.js';
import type { Log } from '../../shared/log.js';

export { splitRows, keyBucket, TEST_SHARE, type Split, type SplitMode } from './split.js';

/**
 * Networks per target group, trained from different seeds and averaged (an ensemble), where a
 * group has fewer than ENSEMBLE_ROWS rows: on a few hundred encodes one network's residual
 * depends on its initial weights nearly as much as on the data (one seed against another moved
 * the bench's held-out duration MAPE by 6 points), and a mean of several does not. With more
 * rows one network is steady enough, and the training time is better spent on it.
 */
const ENSEMBLE = 3;
const ENSEMBLE_ROWS = 20_000;
function ensembleSize(n: number, plan: Plan): number {
  if (plan.ensemble !== undefined) return Math.max(1, Math.round(plan.ensemble));
  return n < ENSEMBLE_ROWS ? ENSEMBLE : 1;
}

/**
 * Targets held to the least measured on the record's hardware class (TargetModel.floor_by_hw):
 * memory, whose floor is the process's own resident set on that machine.
 */
const FLOORED: readonly Target[] = ['memory_gb'];

/** The least of target `t` measured on each hardware class of the rows (learning scale); rows without a class count towards none. */
function floorsByHardware(t: Target, rows: readonly LabelledRow[], perFrame: boolean): Record<string, number> {
  const out = new Map<string, number>();
  for (const r of targetRows(t, rows, perFrame)) {
    const hw = r.record.node.hw_class, y = yOf(t, r, perFrame);
    if (hw !== undefined && Number.isFinite(y) && !(y >= (out.get(hw) ?? Infinity))) out.set(hw, y);
  }
  return Object.fromEntries(out);
}

/** Fewer fit rows than this for a target and it is not learned. */
export const MIN_TARGET_ROWS = 12;
/** Chance that training encodes a row's category as `other`, so that column learns the average. */
const CATEGORY_DROPOUT = 0.04;
/** Chance that training hides a row's PROBED numbers, so the networks learn the schema-only case. */
const PROBE_DROPOUT = 0.3;
/** Duration is learned per output frame when at least this share of its rows know their frames. */
const PER_FRAME_SHARE = 0.9;
/**
 * How each target's base is made is chosen on the source folds (chooseBases) among these: the
 * ridge penalty per training row (the features are standardised), the lookup's key order (as
 * indexes into LOOKUP_KEYS: encoder, hardware, preset, resolution, cores, rate control), and how
 * many rows a lookup group's own mean weighs as much as its parent's figure (LOOKUP_OFF and more:
 * the lookup is all but off). Where there are no source folds: the second penalty, the first
 * order, BASE_SHRINK.
 */
const RIDGES = [0.001, 0.01, 0.1];
/**
 * Columns the ridge does not shrink: the pilot encode measures what it predicts (its CPU per
 * frame, bits and memory), so its weight belongs near 1 on the log scale, not near 0. Shrunk
 * with the rest, it gave duration 41.6 % MAPE on held-out sources against 39.0 % unshrunk, and
 * memory 7.2 % against 6.4 % (`npm run bench -- accuracy`, 2026-12-07).
 */
const UNPENALISED: ReadonlySet<string> = new Set(['log_pilot_cpu', 'log_pilot_mbps', 'log_pilot_memory']);
const LOOKUP_ORDERS = [[0, 1, 2, 3, 4, 5], [0, 2, 3, 4, 1, 5], [0, 3, 2, 4, 5, 1]];
const BASE_SHRINK = 3;
const LOOKUP_OFF = 1e9;
const LOOKUP_SHRINKS = [1, 3, 10, 30, LOOKUP_OFF];
/** Rows of each fold, at most, the base is chosen on, and held-out rows, at most, its predictions are kept of. */
const CHOICE_ROWS = 4000;
const HELD_ROWS = 4000;
/**
 * The spread is a coarser, more shrunk lookup than the estimate's (errors are noisier than
 * means): its depth is chosen among these on the held-out rows (calibrate); the first is one
 * spread for every encode.
 */
const SPREAD_SHRINK = 20;
const SPREAD_CHOICES = [{ levels: 1, shrink: 1e9 }, { levels: 1, shrink: SPREAD_SHRINK }, { levels: 2, shrink: SPREAD_SHRINK }, { levels: 3, shrink: SPREAD_SHRINK }, { levels: 4, shrink: SPREAD_SHRINK }];
/** Folds by source, at most. */
export const DEFAULT_FOLDS = 5;
/** A fold's networks train on at most this many rows, for at most this many pattern passes. */
const FOLD_ROWS = 8_000;
const FOLD_PASSES = 4e5;
/** Shares of the residual tried for alpha. */
const ALPHAS = Array.from({ length: 21 }, (_, i) => i / 20);

export interface TrainOptions {
  version: string;
  /** Where the rows came from, in words (kept in the model file). */
  source: string;
  coverage?: number;
  /** `none` (every row trains; the figures are cross-validated), or a test share held out by key hash or by time. Default `hash`. */
  split?: SplitMode;
  seed?: number;
  network?: Partial<NetworkTrainOptions>;
  /** Networks per target group, averaged (default: ENSEMBLE under ENSEMBLE_ROWS rows, else 1). */
  ensemble?: number;
  /** Folds by source (default 5; fewer sources, fewer folds). */
  folds?: number;
  /** The extrapolation folds (largest and smallest pictures, each hardware class; default true). */
  extrapolation?: boolean;
  /** Worker threads (default: available cores). */
  threads?: number;
  /** Targets missing from the rows are inherited from this model. */
  parent?: Model;
  log?: Log;
}

/** One fold of the cross-validation: what it held out, and why. */
export interface FoldSummary { name: string; kind: 'source' | 'extrapolation'; held_rows: number; held_groups: number }

export interface TrainResult {
  model: Model;
  split: Split;
  /** The model's figures on the test rows, or, with nothing held out, the cross-validated ones (also stored in the model file). */
  metrics: EvaluationReport;
  /** Cross-validated figures: each fit row predicted by a model that never saw its source. */
  cv: EvaluationReport;
  folds: FoldSummary[];
  /** Per target: how it was trained, or why it was not. */
  targets: Partial<Record<Target, { rows: number; epochs?: number; ms?: number; networks?: number; alpha?: number; ridge?: number; lookup?: string; inherited_from?: string; skipped?: string }>>;
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
 * rows are few (a few hundred calibration encodes), `passes` pattern passes at most (1.5 million
 * for the final model: 100,000 rows train in a couple of minutes).
 */
function sizedFor(n: number, outputs: number, passes = 1.5e6): Partial<NetworkTrainOptions> {
  return {
    // A shared network gets room for what its outputs have in common and what sets them apart.
    hidden: outputs > 1 ? (n < 600 ? [20, 10] : [24, 12]) : n < 600 ? [12, 6] : [20, 10],
    patience: Math.round(Math.max(12, Math.min(40, 20_000 / n))),
    maxEpochs: Math.max(12, Math.min(500, Math.round(passes / n))),
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

// ── folds ──────────────────────────────────────────────────────────────────────────────

export interface Fold extends FoldSummary { held: LabelledRow[]; train: LabelledRow[] }

const groupOf = (r: LabelledRow) => r.group ?? r.key;
const pixelsOf = (r: EncodeRecord) => {
  const w = r.output.width ?? r.input.width, h = r.output.height ?? r.input.height;
  return w && h ? w * h : undefined;
};

/**
 * Folds by source: each source (group) goes whole to one fold, the largest first to the fold
 * with the fewest rows, so the folds are about the same size. With fewer than three sources, rows are folded
 * one by one instead. Then the extrapolation folds: the rows with the largest pictures (about
 * the top 12 %), the smallest, and each hardware class, where enough rows are left to learn from.
 */
export function planFolds(rows: readonly LabelledRow[], k = DEFAULT_FOLDS, extrapolation = true): Fold[] {
  let key = groupOf;
  let groups = [...new Set(rows.map(key))];
  if (groups.length < 3) { key = (r) => r.key; groups = [...new Set(rows.map(key))]; }
  const n = Math.min(k, groups.length);
  const folds: Fold[] = [];
  if (n >= 2) {
    // Largest sources first, each to the fold with the fewest rows so far (ties: the hash's order).
    const size = new Map<string, number>();
    for (const r of rows) size.set(key(r), (size.get(key(r)) ?? 0) + 1);
    const load = new Array<number>(n).fill(0), index = new Map<string, number>();
    for (const g of groups.sort((a, b) => size.get(b)! - size.get(a)! || keyBucket(a) - keyBucket(b) || (a < b ? -1 : 1))) {
      const f = load.indexOf(Math.min(...load));
      index.set(g, f);
      load[f] += size.get(g)!;
    }
    for (let f = 0; f < n; f++) {
      const held = rows.filter((r) => index.get(key(r)) === f);
      folds.push({ name: `source ${f + 1}/${n}`, kind: 'source', held, train: rows.filter((r) => index.get(key(r)) !== f), held_rows: held.length, held_groups: new Set(held.map(key)).size });
    }
  }
  if (!extrapolation) return folds;
  const enough = (held: LabelledRow[]) => held.length >= 8 && rows.length - held.length >= Math.max(MIN_TARGET_ROWS * 2, 0.5 * rows.length);
  const extreme = (name: string, held: LabelledRow[]) => {
    if (!enough(held)) return;
    const set = new Set(held);
    folds.push({ name, kind: 'extrapolation', held, train: rows.filter((r) => !set.has(r)), held_rows: held.length, held_groups: new Set(held.map(groupOf)).size });
  };
  // Pictures beyond every training row's: the cut leaves no held-out row with a size the rest has.
  const px = [...new Set(rows.map((r) => pixelsOf(r.record)).filter((p): p is number => p !== undefined))].sort((a, b) => a - b);
  const share = (cut: (p: number) => boolean) => rows.filter((r) => { const p = pixelsOf(r.record); return p !== undefined && cut(p); });
  const top = px.findIndex((p) => share((q) => q >= p).length <= 0.15 * rows.length);
  if (top > 0) extreme('largest pictures', share((q) => q >= px[top]));
  let bottom = -1;
  while (bottom + 1 < px.length && share((q) => q <= px[bottom + 1]).length <= 0.15 * rows.length) bottom++;
  if (bottom >= 0 && bottom < px.length - 1) extreme('smallest pictures', share((q) => q <= px[bottom]));
  const classes = [...new Set(rows.map((r) => r.record.node.hw_class ?? ''))];
  if (classes.length > 1) for (const c of classes.slice(0, 4)) extreme(`hardware ${c || '(none)'} unseen`, rows.filter((r) => (r.record.node.hw_class ?? '') === c));
  return folds;
}

// ── one model's parts: features, lookups, networks ─────────────────────────────────────

interface CoreTarget {
  linear: Linear; compiled: CompiledLinear; base: Lookup; lookup: CompiledLookup;
  /** The linear part for a record without the probed numbers (unprobedLinear). */
  unprobed: Linear; compiledUnprobed: CompiledLinear;
  lo: number; hi: number; y_lo: number; y_hi: number; group: number; output: number; rows: number;
}

/** A model's parts before and after its networks are trained: the final model's, or one fold's. */
interface Core {
  name: string;
  state: FeatureState;
  frames?: number;
  targets: Partial<Record<Target, CoreTarget>>;
  /** Per target group (groupTargets' order): its networks' jobs (an ensemble's members, by seed), the targets they learn and the rows they fitted. */
  jobs: Array<{ targets: Target[]; rows: number; jobs: NetworkJob[] } | undefined>;
  nets: Array<CompiledNetwork[] | undefined>;
  trained: Array<TrainedNetwork[] | undefined>;
}

interface Plan { groups: Target[][]; perFrame: (t: Target) => boolean; network?: Partial<NetworkTrainOptions>; ensemble?: number }

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : undefined;
};

/** A model's parts before its lookups and networks: its feature state, encodings and ridge regressions. */
interface Draft {
  name: string;
  fold: boolean;
  seed: number;
  rows: readonly LabelledRow[];
  state: FeatureState;
  /** Per target group: the targets ready to learn, the rows their network learns from, and those rows encoded with the training dropouts. */
  groups: Array<{ ready: Target[]; fit: LabelledRow[]; x: Float64Array } | undefined>;
  /** Per target, its ridge at each penalty of RIDGES. */
  linear: Partial<Record<Target, { fits: Array<{ linear: Linear; compiled: CompiledLinear }>; group: number; output: number }>>;
  /** A row's clean encoding (no dropout: what prediction reads) and its lookup groups, cached. */
  encoded(r: LabelledRow): { idx: Int32Array; val: Float64Array };
  pathOf(r: LabelledRow): string[];
  /** A row's paths through a lookup of the given order (index into LOOKUP_ORDERS), cached. */
  groupsOf(r: LabelledRow, order: number): string[];
}

/**
 * The first half of one model's parts from its rows: the feature state; per target group, the
 * rows its network learns from (a fold learns from a sample of at most FOLD_ROWS), encoded with
 * the training dropouts; per target, the ridge regression on those encodings.
 */
function draftCore(name: string, rows: readonly LabelledRow[], plan: Plan, seed: number, fold: boolean): Draft {
  const rand = seededRandom(seed);
  const state = fitFeatures(rows.map((r) => r.record));
  const d = state.names.length;
  const v = new SparseVector(d);
  let sample: readonly LabelledRow[] = rows;
  if (fold && rows.length > FOLD_ROWS) {
    const order = permutation(rows.length, rand);
    sample = Array.from(order.subarray(0, FOLD_ROWS), (i) => rows[i]);
  }
  const paths = new Map<LabelledRow, string[]>(), clean = new Map<LabelledRow, { idx: Int32Array; val: Float64Array }>();
  const joined = new Map<LabelledRow, string[][]>();
  const linear: Draft['linear'] = {};
  const groups = plan.groups.map((g, gi) => {
    const ready = g.filter((t) => targetRows(t, rows, plan.perFrame(t)).length >= MIN_TARGET_ROWS);
    const fit = sample.filter((r) => ready.every((t) => usableRow(t, r, plan.perFrame(t))));
    if (!ready.length || fit.length < MIN_TARGET_ROWS) return undefined;
    const x = new Float64Array(new SharedArrayBuffer(fit.length * d * 8));
    fit.forEach((r, i) => {
      const asOther = new Set(CATEGORY_NAMES.filter(() => rand() < CATEGORY_DROPOUT));
      encodeFeatures(state, r.record, x.subarray(i * d, (i + 1) * d), { asOther, unprobed: rand() < PROBE_DROPOUT });
    });
    // The ridge learns from the rows as prediction reads them (no dropout): a record without a
    // probed number then reads that column's mean, which is all a linear model can do with it.
    const clean = new Float64Array(fit.length * d);
    fit.forEach((r, i) => encodeFeatures(state, r.record, clean.subarray(i * d, (i + 1) * d)));
    ready.forEach((t, j) => {
      const fits = fitLinears(clean, fit.map((r) => yOf(t, r, plan.perFrame(t))), d, RIDGES.map((k) => k * fit.length), state.names.map((n) => UNPENALISED.has(n)));
      linear[t] = { fits: fits.map((l) => ({ linear: l, compiled: new CompiledLinear(l) })), group: gi, output: j };
    });
    return { ready, fit, x };
  });
  return {
    name, fold, seed, rows, state, groups, linear,
    encoded(r) {
      let e = clean.get(r);
      if (!e) {
        encodeSparse(state, r.record, v);
        clean.set(r, (e = { idx: v.idx.slice(0, v.n), val: v.val.slice(0, v.n) }));
      }
      return e;
    },
    pathOf(r) {
      let p = paths.get(r);
      if (!p) paths.set(r, (p = lookupValues(r.record)));
      return p;
    },
    groupsOf(r, order) {
      let byOrder = joined.get(r);
      if (!byOrder) joined.set(r, (byOrder = []));
      return (byOrder[order] ??= lookupPaths(this.pathOf(r), LOOKUP_ORDERS[order]));
    },
  };
}

/** The draft's ridge estimate of target `t` for a row (learning scale), at penalty RIDGES[ridge]. */
const linearOf = (draft: Draft, t: Target, r: LabelledRow, ridge: number) => {
  const e = draft.encoded(r);
  return draft.linear[t]!.fits[ridge].compiled.at(e.idx, e.val, 0, e.idx.length);
};

/** How a target's base is made: its ridge's penalty (index into RIDGES), its lookup's key order (into LOOKUP_ORDERS) and shrinkage. */
interface BaseChoice { ridge: number; order: number; shrink: number }
const DEFAULT_BASE: BaseChoice = { ridge: 1, order: 0, shrink: BASE_SHRINK };

/** The lookup of what the draft's ridge misses for target `t`, over `rows` (every usable one by default). */
function lookupOf(draft: Draft, t: Target, plan: Plan, c: BaseChoice, rows = targetRows(t, draft.rows, plan.perFrame(t))): Lookup {
  return fitLookupPaths(rows.map((r) => draft.groupsOf(r, c.order)), rows.map((r) => yOf(t, r, plan.perFrame(t)) - linearOf(draft, t, r, c.ridge)), c.shrink, LOOKUP_KEYS.length, LOOKUP_ORDERS[c.order]);
}

/**
 * Each target's base, chosen on the source folds: the ridge penalty, the order of the lookup's
 * keys (which comes first matters: a late key's groups are small, and shrunk towards parents
 * that ignore it) and how far its groups lean on their parents, as the combination with the least
 * absolute error of ridge plus lookup on the held-out sources. At most CHOICE_ROWS rows of each
 * fold are used to choose.
 */
function chooseBases(drafts: Draft[], folds: Fold[], plan: Plan, targets: Target[], seed: number): Partial<Record<Target, BaseChoice>> {
  const out: Partial<Record<Target, BaseChoice>> = {};
  const rand = seededRandom(seed);
  const sample = (rows: LabelledRow[]) => (rows.length <= CHOICE_ROWS ? rows : Array.from(permutation(rows.length, rand).subarray(0, CHOICE_ROWS), (i) => rows[i]));
  const candidates: BaseChoice[] = [];
  RIDGES.forEach((_, ridge) => LOOKUP_ORDERS.forEach((_, order) => LOOKUP_SHRINKS.forEach((shrink) => {
    // With the lookup off, its order does not matter.
    if (shrink < LOOKUP_OFF || order === 0) candidates.push({ ridge, order, shrink });
  })));
  for (const t of targets) {
    const err = candidates.map(() => 0);
    let used = false;
    folds.forEach((f, i) => {
      const draft = drafts[i];
      if (f.kind !== 'source' || !draft.linear[t]) return;
      const pf = plan.perFrame(t);
      const train = sample(targetRows(t, draft.rows, pf)), held = sample(targetRows(t, f.held, pf));
      if (!held.length) return;
      used = true;
      // What each penalty's ridge misses, once per row; the groups' sums once per penalty and
      // order; each shrinkage is then a pass over the groups.
      const missed = (rows: LabelledRow[]) => RIDGES.map((_, ridge) => Float64Array.from(rows, (r) => yOf(t, r, pf) - linearOf(draft, t, r, ridge)));
      const trainMissed = missed(train), heldMissed = missed(held);
      const sums = new Map<string, ReturnType<typeof lookupSums>>();
      candidates.forEach((c, ci) => {
        const key = `${c.ridge} ${c.order}`;
        let s = sums.get(key);
        if (!s) sums.set(key, (s = lookupSums(train.map((r) => draft.groupsOf(r, c.order)), trainMissed[c.ridge], LOOKUP_KEYS.length, LOOKUP_ORDERS[c.order])));
        const lookup = s.reader(c.shrink), m = heldMissed[c.ridge];
        for (let k = 0; k < held.length; k++) err[ci] += Math.abs(m[k] - lookup(draft.groupsOf(held[k], c.order)));
      });
    });
    out[t] = used ? candidates[err.indexOf(Math.min(...err))] : DEFAULT_BASE;
  }
  return out;
}

/**
 * The second half: per target its lookup (at the chosen shrinkage), then the network's targets:
 * what ridge and lookup both miss, on the unit scale of its range.
 */
function finishCore(draft: Draft, plan: Plan, choices: Partial<Record<Target, BaseChoice>>): Core {
  const targets: Core['targets'] = {};
  const jobs = draft.groups.map((g, gi) => {
    if (!g) return undefined;
    const { ready, fit, x } = g, k = ready.length, d = draft.state.names.length;
    const resid = ready.map((t, j) => {
      const pf = plan.perFrame(t), c = choices[t] ?? DEFAULT_BASE, lin = draft.linear[t]!.fits[c.ridge];
      const base = lookupOf(draft, t, plan, c), lookup = new CompiledLookup(base);
      const res = fit.map((r) => yOf(t, r, pf) - linearOf(draft, t, r, c.ridge) - lookup.value(draft.pathOf(r)));
      let lo = Infinity, hi = -Infinity;
      for (const e of res) { if (e < lo) lo = e; if (e > hi) hi = e; }
      // Room beyond the training residuals: a node's own runs may be off by more (federated
      // fine-tuning learns that), and a target at the sigmoid's end is learned slowly.
      const pad = Math.max(0.5 * (hi - lo), TARGET_SCALES[t].transform === 'log10' ? 0.3 : 20);
      const ys = targetRows(t, draft.rows, pf).map((r) => yOf(t, r, pf));
      const unprobed = unprobedLinear(draft, fit, (r) => yOf(t, r, pf) - lookup.value(draft.pathOf(r)), RIDGES[c.ridge]);
      targets[t] = {
        linear: lin.linear, compiled: lin.compiled, base, lookup, unprobed, compiledUnprobed: new CompiledLinear(unprobed), lo: lo - pad, hi: hi + pad,
        y_lo: Math.min(...ys), y_hi: Math.max(...ys), group: gi, output: j, rows: ys.length,
      };
      return res;
    });
    const y = new Float64Array(new SharedArrayBuffer(fit.length * k * 8));
    fit.forEach((_, i) => ready.forEach((t, j) => { y[i * k + j] = toUnit(resid[j][i], targets[t]!.lo, targets[t]!.hi); }));
    const options = { ...DEFAULT_NETWORK_OPTIONS, ...sizedFor(fit.length, k, draft.fold ? FOLD_PASSES : undefined), ...plan.network };
    // The first member's seed is the one a lone network had; the others' are apart from every group's.
    const members = ensembleSize(fit.length, plan);
    const jobs = Array.from({ length: members }, (_, m): NetworkJob => ({ x, y, d, k, options: { ...options, seed: draft.seed * 31 + gi + m * 7919 } }));
    return { targets: ready, rows: fit.length, jobs };
  });
  const frames = median(draft.rows.map((r) => outputFrames(r.record)).filter((f): f is number => f !== undefined));
  return { name: draft.name, state: draft.state, frames, targets, jobs, nets: [], trained: [] };
}

/**
 * The linear part a record without the probed numbers is estimated with (TargetModel
 * linear_unprobed): the ridge fitted on the rows encoded as such a record is (its probed columns
 * at their mean, their `_known` flags 0), to what the lookup leaves. The linear part fitted with
 * them leans on the pilot for most of what it says (its weight is not shrunk), so a record with
 * the pilot at its mean got far less from it than a fit without the pilot gives (model-training
 * test: memory's held-out error 0.51 against 0.05, log10).
 */
function unprobedLinear(draft: Draft, fit: readonly LabelledRow[], y: (r: LabelledRow) => number, penalty: number): Linear {
  const d = draft.state.names.length, x = new Float64Array(fit.length * d);
  fit.forEach((r, i) => encodeFeatures(draft.state, r.record, x.subarray(i * d, (i + 1) * d), { unprobed: true }));
  return fitLinears(x, fit.map(y), d, [penalty * fit.length])[0];
}

/** What a core estimates for each target of a record, on the learning scale: its lookup's figure and its networks' residual. */
function coreEstimates(core: Core, rec: EncodeRecord, v: SparseVector, unprobed: boolean): { base: Partial<TargetValues>; resid: Partial<TargetValues>; novel: boolean; paths: string[] } {
  const notes = newNotes();
  encodeSparse(core.state, rec, v, { unprobed, notes });
  const outs = core.nets.map((members) => {
    if (!members) return undefined;
    if (members.length === 1) return members[0].runSparse(v);
    const mean = new Float64Array(members[0].outputs);
    for (const n of members) { const o = n.runSparse(v); for (let j = 0; j < mean.length; j++) mean[j] += o[j] / members.length; }
    return mean;
  });
  const paths = lookupValues(rec);
  const base: Partial<TargetValues> = {}, resid: Partial<TargetValues> = {};
  for (const [t, ct] of Object.entries(core.targets) as [Target, CoreTarget][]) {
    base[t] = (notes.unprobed > 0 ? ct.compiledUnprobed : ct.compiled).value(v) + ct.lookup.value(paths);
    const out = outs[ct.group];
    resid[t] = out ? fromUnit(out[ct.output], ct.lo, ct.hi) : 0;
  }
  return { base, resid, novel: notes.unseen.length > 0 || notes.outside.length > 0, paths };
}

/** The record as a job nobody could probe would describe it: no size, rate or length. */
function withoutGeometry(r: EncodeRecord): EncodeRecord {
  const { width: _w, height: _h, fps: _f, ...output } = r.output;
  const { width: _iw, height: _ih, fps: _if, duration_s: _d, frames: _fr, ...input } = r.input;
  return { ...r, output, input };
}

// ── the held-out predictions ───────────────────────────────────────────────────────────

/** One target's held-out predictions, row by row (learning scale; `y` against the frames the estimate assumed). */
interface Held {
  row: LabelledRow[];
  fold: number[];
  source: boolean[];
  novel: boolean[];
  y: number[];
  base: number[];
  resid: number[];
  baseUnprobed: number[];
  residUnprobed: number[];
  paths: string[][];
  /** The same with the record's geometry hidden. */
  yUnknown: number[];
  baseUnknown: number[];
  residUnknown: number[];
  pathsUnknown: string[][];
}

const emptyHeld = (): Held => ({ row: [], fold: [], source: [], novel: [], y: [], base: [], resid: [], baseUnprobed: [], residUnprobed: [], paths: [], yUnknown: [], baseUnknown: [], residUnknown: [], pathsUnknown: [] });

function collectHeld(folds: Fold[], cores: Core[], plan: Plan, targets: Target[]): Partial<Record<Target, Held>> {
  const out: Partial<Record<Target, Held>> = {};
  folds.forEach((fold, f) => {
    const core = cores[f], v = new SparseVector(core.state.names.length);
    // A few thousand held-out rows per fold give the bounds all they need (and keep 100,000-row training to minutes).
    const held = fold.held.length <= HELD_ROWS ? fold.held : [...fold.held].sort((a, b) => keyBucket(`held:${a.key}`) - keyBucket(`held:${b.key}`)).slice(0, HELD_ROWS);
    for (const r of held) {
      const wanted = targets.filter((t) => core.targets[t] && usableRow(t, r, plan.perFrame(t)));
      if (!wanted.length) continue;
      const asIs = coreEstimates(core, r.record, v, false);
      const bare = coreEstimates(core, r.record, v, true);
      const unknown = coreEstimates(core, withoutGeometry(r.record), v, false);
      for (const t of wanted) {
        const h = (out[t] ??= emptyHeld());
        const perFrame = plan.perFrame(t), y = yOf(t, r, perFrame);
        // Without a frame count the estimate is per frame of the fold's median clip.
        const shift = perFrame ? Math.log10(outputFrames(r.record)! / (core.frames ?? 1)) : 0;
        h.row.push(r); h.fold.push(f); h.source.push(fold.kind === 'source'); h.novel.push(asIs.novel || fold.kind === 'extrapolation');
        h.y.push(y); h.base.push(asIs.base[t]!); h.resid.push(asIs.resid[t]!); h.baseUnprobed.push(bare.base[t]!); h.residUnprobed.push(bare.resid[t]!); h.paths.push(asIs.paths);
        h.yUnknown.push(y + shift); h.baseUnknown.push(unknown.base[t]!); h.residUnknown.push(unknown.resid[t]!); h.pathsUnknown.push(unknown.paths);
      }
    }
  });
  return out;
}

/** The residual share with the least absolute error on the source folds' held-out rows. */
function chooseAlpha(h: Held): number {
  let best = 0, bestErr = Infinity;
  for (const a of ALPHAS) {
    let e = 0;
    for (let i = 0; i < h.y.length; i++) if (h.source[i]) e += Math.abs(h.y[i] - h.base[i] - a * h.resid[i]);
    if (e < bestErr - 1e-12) { best = a; bestErr = e; }
  }
  return best;
}

interface Calibrated {
  alpha: number;
  spread: Lookup;
  floor: number;
  residuals: TargetModel['residuals'];
  /** Per held-out row of a source fold: the spread its own fold's scores were divided by. */
  sigma: number[];
  /** Each held-out row's score and class (for the cross-validated figures). */
  score: number[];
}

/**
 * Alpha, the spread lookup and the score grids of one target. A row's score divides its error by
 * a spread fitted without its fold (leave-fold-out), so the scores are those of sources the
 * spread never saw either.
 */
function calibrate(h: Held, readsProbed: boolean, coverage: number): Calibrated {
  const alpha = chooseAlpha(h);
  const n = h.y.length, err = h.y.map((y, i) => y - h.base[i] - alpha * h.resid[i]);
  const src = [...Array(n).keys()].filter((i) => h.source[i]);
  const abs = src.map((i) => Math.abs(err[i]));
  const meanAbs = abs.reduce((a, b) => a + b, 0) / Math.max(1, abs.length);
  const floor = Math.max(1e-3, 0.2 * meanAbs);
  /** A spread by lookup at a depth, with its leave-fold-out versions for the held-out rows' own scores. */
  const spreadAt = ({ levels, shrink }: { levels: number; shrink: number }) => {
    const spread = fitLookup(src.map((i) => h.paths[i]), abs, shrink, levels);
    const whole = new CompiledLookup(spread), byFold = new Map<number, CompiledLookup>();
    const of = (i: number) => {
      if (!h.source[i]) return whole;
      let l = byFold.get(h.fold[i]);
      if (!l) {
        const others = src.filter((x) => h.fold[x] !== h.fold[i]);
        l = others.length ? new CompiledLookup(fitLookup(others.map((x) => h.paths[x]), others.map((x) => Math.abs(err[x])), shrink, levels)) : whole;
        byFold.set(h.fold[i], l);
      }
      return l;
    };
    return { spread, of };
  };
  // The depth whose bounds at the model's coverage have the least quantile (pinball) loss on the
  // held-out rows: deep enough that easy encodes get narrow bounds, no deeper than the data
  // shows a difference (a hardware class seen on a few sources must not look easier than it is).
  let chosen = spreadAt(SPREAD_CHOICES[0]), bestLoss = Infinity;
  for (const c of SPREAD_CHOICES) {
    const cand = spreadAt(c);
    const sig = src.map((i) => Math.max(floor, cand.of(i).value(h.paths[i])));
    const q = Math.max(0, conformalQuantile(residualGrid(src.map((i, k) => err[i] / sig[k])), coverage).q);
    let loss = 0;
    src.forEach((i, k) => { const over = err[i] - q * sig[k]; loss += over > 0 ? coverage * over : (coverage - 1) * over; });
    if (loss < bestLoss - 1e-12) { chosen = cand; bestLoss = loss; }
  }
  const sigma = new Array<number>(n), score = new Array<number>(n);
  const known = new Scores(), novel = new Scores(), unprobed = new Scores(), unknown = new Scores();
  for (let i = 0; i < n; i++) {
    const spreadOf = chosen.of(i), source = groupOf(h.row[i]);
    sigma[i] = Math.max(floor, spreadOf.value(h.paths[i]));
    score[i] = err[i] / sigma[i];
    (h.novel[i] ? novel : known).add(score[i], source);
    if (!h.source[i]) continue;
    if (readsProbed) unprobed.add((h.y[i] - h.baseUnprobed[i] - alpha * h.residUnprobed[i]) / sigma[i], source);
    unknown.add((h.yUnknown[i] - h.baseUnknown[i] - alpha * h.residUnknown[i]) / Math.max(floor, spreadOf.value(h.pathsUnknown[i])), source);
  }
  const grids: TargetModel['residuals']['novel'] = {};
  if (novel.size) grids.novel = novel.grid();
  if (unprobed.size) grids.unprobed = unprobed.grid();
  if (unknown.size) grids.unknown = unknown.grid();
  return { alpha, spread: chosen.spread, floor, residuals: { known: (known.size ? known : novel).grid(), novel: grids }, sigma, score };
}

/**
 * Held-out scores with the source each came from. Their grid is, at every level, the larger of
 * two quantiles: the rows' own, and the one that weighs every source alike, so that a source
 * the bound does badly on counts as much as any other however few rows it has, and one with many
 * rows does not hide the rest.
 */
class Scores {
  private readonly bySource = new Map<string, number[]>();
  private readonly all: number[] = [];
  get size(): number { return this.all.length; }

  add(score: number, source: string): void {
    if (!Number.isFinite(score)) return;
    this.all.push(score);
    const list = this.bySource.get(source);
    if (list) list.push(score); else this.bySource.set(source, [score]);
  }

  grid(): ResidualGrid {
    const n = this.all.length;
    if (this.bySource.size < 2) return residualGrid(this.all);
    // Each source's quantile function sampled at the same m levels: every source weighs m.
    const m = Math.max(1, Math.round(n / this.bySource.size));
    const balanced: number[] = [];
    for (const list of this.bySource.values()) {
      list.sort((a, b) => a - b);
      for (let j = 0; j < m; j++) balanced.push(quantileOf(list, (j + 0.5) / m));
    }
    const rows = [...this.all].sort((a, b) => a - b), even = balanced.sort((a, b) => a - b);
    return { ...residualGrid(Array.from({ length: n }, (_, j) => Math.max(quantileOf(rows, (j + 0.5) / n), quantileOf(even, (j + 0.5) / n)))), n };
  }
}

/** The p-quantile (0–1) of sorted values, by linear interpolation between order statistics. */
function quantileOf(sorted: readonly number[], p: number): number {
  const pos = Math.min(sorted.length - 1, Math.max(0, p * sorted.length - 0.5));
  const lo = Math.floor(pos), hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

// ── training ───────────────────────────────────────────────────────────────────────────

export async function trainModel(rows: readonly LabelledRow[], o: TrainOptions): Promise<TrainResult> {
  const started = Date.now();
  const log = o.log ?? (() => undefined);
  const seed = o.seed ?? 1;
  const coverage = o.coverage ?? DEFAULT_COVERAGE;
  const split = splitRows(rows, o.split ?? 'hash');
  if (split.fit.length < MIN_TARGET_ROWS) throw new TrainingError(`only ${split.fit.length} of ${rows.length} rows are left to fit on; at least ${MIN_TARGET_ROWS} are needed`);

  const report: TrainResult['targets'] = {};
  const durationPerFrame = perFrameWorks(split.fit);
  const perFrame = (t: Target) => t === 'duration_s' && durationPerFrame;
  const groups = groupTargets(split.fit, perFrame);
  const plan: Plan = { groups, perFrame, network: o.network, ensemble: o.ensemble };
  for (const t of TARGETS) {
    const n = targetRows(t, split.fit, perFrame(t)).length;
    if (!groups.some((g) => g.includes(t))) report[t] = { rows: n, skipped: `${n} rows measure it (at least ${MIN_TARGET_ROWS} needed)` };
  }
  if (!groups.length && !o.parent) throw new TrainingError(`no target has ${MIN_TARGET_ROWS} rows to learn from`);

  const folds = groups.length ? planFolds(split.fit, o.folds ?? DEFAULT_FOLDS, o.extrapolation !== false) : [];
  const drafts = [...folds.map((f, i) => draftCore(f.name, f.train, plan, seed * 101 + i + 1, true)), draftCore('final', split.fit, plan, seed, false)];
  const choices = chooseBases(drafts, folds, plan, TARGETS.filter((t) => drafts[drafts.length - 1].linear[t]), seed);
  const cores = drafts.map((d) => finishCore(d, plan, choices));
  const final = cores[cores.length - 1];
  log(`training ${o.version} on ${split.fit.length} rows (${split.test.length} held out), ${final.state.names.length} features; ${folds.length} folds: ${folds.map((f) => `${f.name} (${f.held_rows} rows)`).join(', ')}`);

  const jobs = cores.flatMap((c, ci) => c.jobs.flatMap((j, gi) => (j ? j.jobs.map((job, m) => ({ ci, gi, m, job })) : [])));
  const pool = new Piscina<NetworkJob, TrainedNetwork>({
    filename: new URL('./worker.js', import.meta.url).href,
    maxThreads: Math.max(1, Math.min(jobs.length, o.threads ?? os.availableParallelism())),
    minThreads: 0,
    idleTimeout: 100,
  });
  try {
    // The final model's networks are the longest: they start first.
    const order = [...jobs].sort((a, b) => (b.ci === cores.length - 1 ? 1 : 0) - (a.ci === cores.length - 1 ? 1 : 0));
    await Promise.all(order.map(async ({ ci, gi, m, job }) => {
      const net = await pool.run(job);
      (cores[ci].trained[gi] ??= [])[m] = net;
      (cores[ci].nets[gi] ??= [])[m] = new CompiledNetwork(net.json, job.d, job.k);
    }));
  } finally {
    await pool.destroy();
  }

  const learned = TARGETS.filter((t) => final.targets[t]);
  const held = collectHeld(folds, cores, plan, learned);
  const readsProbed = final.state.numeric.some((n) => isProbed(n.name));
  const states: FeatureState[] = [final.state];
  const networks: NetworkModel[] = [];
  const targets: ModelFile['targets'] = {};
  const cals: Partial<Record<Target, Calibrated>> = {};
  final.jobs.forEach((j, gi) => {
    if (!j) return;
    const members = final.trained[gi]!;
    const at = members.map((net) => networks.push({ features: 0, outputs: j.targets, rows: j.rows, epochs: net.epochs, json: net.json }) - 1);
    const network = at[0];
    const net = { epochs: Math.max(...members.map((n) => n.epochs)), ms: members.reduce((a, n) => a + n.ms, 0) };
    log(`  ${j.targets.join(', ')}: ${j.rows} rows, ${members.length} network(s), ${members.map((n) => n.epochs).join('/')} epochs, ${(net.ms / 1000).toFixed(1)} s, validation mse ${members.map((n) => n.validation_mse.toExponential(2)).join('/')}`, 'debug');
    for (const t of j.targets) {
      const ct = final.targets[t]!, h = held[t];
      const cal = h && h.y.length ? calibrate(h, readsProbed, coverage) : undefined;
      if (cal) cals[t] = cal;
      targets[t] = {
        network, output: ct.output, ...(at.length > 1 ? { ensemble: at.slice(1).map((n) => ({ network: n, output: ct.output })) } : {}), transform: TARGET_SCALES[t].transform, per_frame: perFrame(t), gpu_only: t === 'gpu_percent',
        lo: ct.lo, hi: ct.hi, y_lo: ct.y_lo, y_hi: ct.y_hi, ...(FLOORED.includes(t) ? { floor_by_hw: floorsByHardware(t, split.fit, perFrame(t)) } : {}),
        rows: ct.rows, linear: ct.linear, linear_unprobed: ct.unprobed, base: ct.base,
        // Without held-out rows there is nothing to judge the networks by: the lookup alone.
        alpha: cal?.alpha ?? 0, spread: cal?.spread ?? fitLookup([], [], SPREAD_SHRINK, 1), spread_floor: cal?.floor ?? 1,
        residuals: cal?.residuals ?? { known: residualGrid([]), novel: {} },
      };
      const c = choices[t] ?? DEFAULT_BASE;
      report[t] = { rows: ct.rows, epochs: net.epochs, ms: net.ms, networks: members.length, alpha: targets[t]!.alpha, ridge: RIDGES[c.ridge], lookup: c.shrink >= LOOKUP_OFF ? 'off' : `${LOOKUP_ORDERS[c.order].map((k) => LOOKUP_KEYS[k]).join('>')}, shrinkage ${c.shrink}` };
      if (cal) log(`    ${t}: ridge ${RIDGES[c.ridge]}, lookup ${report[t]!.lookup}, alpha ${cal.alpha.toFixed(2)}, spread depth ${cal.spread.k > SPREAD_SHRINK ? 0 : cal.spread.levels}, spread floor ${cal.floor.toFixed(3)}, ${cal.residuals.known.n} known / ${cal.residuals.novel.novel?.n ?? 0} novel held-out scores`, 'debug');
    }
  });
  for (const t of TARGETS) {
    const inherited = !targets[t] && o.parent?.file.targets[t];
    if (!inherited) continue;
    // The parent's target keeps its network and the feature state that network reads.
    const pf = o.parent!.file, pn = pf.networks[inherited.network];
    let state = states.indexOf(pf.features[pn.features]);
    if (state < 0) state = states.push(pf.features[pn.features]) - 1;
    const carried = (i: number) => {
      const json = pf.networks[i].json;
      const at = networks.findIndex((n) => n.json === json);
      return at >= 0 ? at : networks.push({ ...pf.networks[i], features: state }) - 1;
    };
    const network = carried(inherited.network);
    const ensemble = inherited.ensemble?.map((m) => ({ network: carried(m.network), output: m.output }));
    targets[t] = { ...inherited, network, ...(ensemble ? { ensemble } : {}), inherited_from: inherited.inherited_from ?? o.parent!.version };
    report[t] = { ...report[t], rows: 0, inherited_from: targets[t]!.inherited_from };
  }

  const times = rows.map((r) => r.ts).filter((x): x is number => x !== undefined);
  const file: Omit<ModelFile, 'checksum'> = {
    format: MODEL_FORMAT, format_version: MODEL_FORMAT_VERSION, version: o.version, created_at: new Date().toISOString(),
    coverage, features: states, networks, targets,
    defaults: defaultsOf(split.fit),
    trained_on: {
      source: o.source, rows: rows.length, fit_rows: split.fit.length, test_rows: split.test.length, split: o.split ?? 'hash',
      folds: folds.map(({ name, kind, held_rows, held_groups }) => ({ name, kind, held_rows, held_groups })),
      ...(times.length ? { from: new Date(times.reduce((a, b) => Math.min(a, b))).toISOString(), to: new Date(times.reduce((a, b) => Math.max(a, b))).toISOString() } : {}),
    },
    ...(o.parent ? { parent: o.parent.version } : {}),
  };
  const draft = Model.fromFile({ ...file, checksum: modelChecksum(file) }, { source: o.version });
  const cv = crossValidated(held, cals, targets, perFrame, coverage);
  const metrics = split.test.length ? evaluatePredictor((r) => draft.predictRecord(r), split.test) : cv;
  const final_ = { ...file, metrics };
  const model = Model.fromFile({ ...final_, checksum: modelChecksum(final_) }, { source: o.version });
  return {
    model, split, metrics, cv, targets: report, ms: Date.now() - started,
    folds: folds.map(({ name, kind, held_rows, held_groups }) => ({ name, kind, held_rows, held_groups })),
  };
}

/**
 * The figures of the source folds' held-out predictions: each row's estimate from the fold that
 * held it out, its bound from that estimate, the fold's spread and the final score quantile of
 * its class (known or novel).
 */
function crossValidated(held: Partial<Record<Target, Held>>, cals: Partial<Record<Target, Calibrated>>, targets: ModelFile['targets'], perFrame: (t: Target) => boolean, coverage: number): EvaluationReport {
  const predictions = new Map<EncodeRecord, { expected: Partial<TargetValues>; upper: Partial<TargetValues> }>();
  const rows = new Set<LabelledRow>();
  for (const t of TARGETS) {
    const h = held[t], spec = targets[t], cal = cals[t];
    if (!h || !spec || !cal || spec.inherited_from) continue;
    const q = (g: typeof spec.residuals.known | undefined) => (g?.n ? Math.max(0, conformalQuantile(g, coverage).q) : 0);
    const qKnown = q(spec.residuals.known), qNovel = Math.max(qKnown, q(spec.residuals.novel.novel));
    for (let i = 0; i < h.y.length; i++) {
      if (!h.source[i]) continue;
      const r = h.row[i];
      rows.add(r);
      const p = predictions.get(r.record) ?? { expected: {}, upper: {} };
      predictions.set(r.record, p);
      const est = h.base[i] + spec.alpha * h.resid[i], up = est + (h.novel[i] ? qNovel : qKnown) * cal.sigma[i];
      const frames = perFrame(t) ? outputFrames(r.record)! : 1;
      const natural = (v: number) => (spec.transform === 'log10' ? 10 ** v * frames : v);
      p.expected[t] = natural(est);
      p.upper[t] = Math.max(p.expected[t]!, natural(up));
    }
  }
  return evaluatePredictor((rec) => predictions.get(rec) ?? { expected: {}, upper: {} }, [...rows]);
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
