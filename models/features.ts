/**
 * Feature spec `features-v4`: how an EncodeRecord (record.ts) becomes the numeric vector the
 * networks read. The spec fixes which columns exist and how each is computed; a model fits the
 * data-dependent parts (category vocabularies, numeric means and spreads) on its training rows
 * and stores them, so the same record always encodes to the same vector under that model.
 *
 * Layout, in order:
 * 1. One-hot categories. Each of CATEGORIES gets one column per value seen at least
 *    `MIN_CATEGORY_ROWS` times in training (most frequent first, at most `max` of them; a
 *    missing value is the value "" and is a category like any other), then `<name>=other`.
 *    A value the model never saw lands in `other`, and the prediction says so; training
 *    routes a share of rows through `other` on purpose so that column learns the average case.
 * 2. Numbers. Each of NUMERICS is computed from the record (log scales where the range spans
 *    orders of magnitude), held to the training range (a network asked about a number beyond
 *    what it saw answers wildly; the record is then flagged `outside`, and its bound is the one
 *    measured for extrapolation), then standardised with the training mean and spread. A column
 *    missing from every training row is left out; one missing from some rows gets a companion
 *    `<name>_known` column (1 when present) and reads 0 (the mean) when absent.
 * 3. Extra numeric columns a mapping file passed (`extra.<name>`), treated like NUMERICS.
 *
 * Some numbers only a probe of the media or a log can give (PROBED: content complexity, frame
 * types, file size, a log's extra columns); a submitted schema does not carry them. Those
 * columns always get a `_known` companion, and training hides them on a share of rows, so a
 * model fitted on logs that always have them still knows what to predict without them.
 */
import { PRESETS } from '../shared/index.js';
import type { EncodeRecord } from './record.js';
import { SparseBlock, SparseVector } from './sparse.js';

export const FEATURE_SPEC_VERSION = 'features-v4';

/** Training rows a category value needs to get a column of its own. */
const MIN_CATEGORY_ROWS = 3;

interface CategorySpec { get: (r: EncodeRecord) => string | undefined; max: number }

/** Categorical inputs and the most columns each may take. */
export const CATEGORIES = {
  codec: { get: (r) => r.output.codec, max: 12 },
  encoder: { get: (r) => r.output.encoder, max: 16 },
  preset: { get: (r) => r.output.preset, max: 24 },
  rc_mode: { get: (r) => r.output.rc_mode, max: 4 },
  input_codec: { get: (r) => r.input.codec, max: 12 },
  hw_class: { get: (r) => r.node.hw_class, max: 12 },
} satisfies Record<string, CategorySpec>;
export type Category = keyof typeof CATEGORIES;
const CATEGORY_NAMES = Object.keys(CATEGORIES) as Category[];

const log2 = (x: number | undefined) => (x !== undefined && x > 0 ? Math.log2(x) : undefined);
const log10 = (x: number | undefined) => (x !== undefined && x > 0 ? Math.log10(x) : undefined);
const pixels = (w?: number, h?: number) => (w && h ? w * h : undefined);
/**
 * log10(1 + x): SI and TI act in proportion (a still picture, TI 0, encodes many times faster
 * than TI 5, which is not much slower than TI 10), and are 0 for flat or still content.
 */
const megapixels = (px: number | undefined) => (px !== undefined ? px / 1e6 : undefined);
const log1p10 = (x: number | undefined) => (x !== undefined && x >= 0 ? Math.log10(1 + x) : undefined);
const share = (part: number | undefined, r: EncodeRecord) => {
  const { i_frames: i, p_frames: p, b_frames: b } = r.input;
  const all = (i ?? 0) + (p ?? 0) + (b ?? 0);
  return part !== undefined && all > 0 ? part / all : undefined;
};

/** Output geometry, falling back to the input's where the output keeps it. */
const outPixels = (r: EncodeRecord) => pixels(r.output.width, r.output.height) ?? pixels(r.input.width, r.input.height);
const outFps = (r: EncodeRecord) => r.output.fps ?? r.input.fps;
/** Frames the encode produces: input duration × output rate, else the input's frame count rescaled. */
export function outputFrames(r: EncodeRecord): number | undefined {
  const fps = outFps(r), dur = r.input.duration_s ?? (r.input.frames && r.input.fps ? r.input.frames / r.input.fps : undefined);
  if (fps && dur) return Math.max(1, Math.round(fps * dur));
  return r.input.frames;
}
/** CRF scale per encoder name, worked out once per name (encoding runs per prediction). */
const crfScales = new Map<string, number>();
/** CRF as a share of its encoder's scale (0–51 for x264/x265/NVENC, 0–255 for AV1 NVENC, else 0–63). */
function crfShare(r: EncodeRecord): number | undefined {
  const { crf, encoder = '' } = r.output;
  if (crf === undefined) return undefined;
  let scale = crfScales.get(encoder);
  if (scale === undefined) crfScales.set(encoder, (scale = encoder === 'av1_nvenc' ? 255 : /x26[45]|nvenc|264|265/.test(encoder) ? 51 : 63));
  return crf / scale;
}
/** Per encoder, each preset's rank 0 (fastest) .. 1 (slowest) in its list (slowest last in PRESETS). */
const PRESET_RANKS = new Map(Object.entries(PRESETS as Record<string, readonly string[]>).map(([encoder, list]) =>
  [encoder, new Map(list.map((p, i) => [p, list.length === 1 ? 0.5 : i / (list.length - 1)]))]));
/** Preset rank within the encoder's own list; unknown pairs are missing. */
export function presetSlowness(encoder: string | undefined, preset: string | undefined): number | undefined {
  return encoder === undefined || preset === undefined ? undefined : PRESET_RANKS.get(encoder)?.get(preset);
}
const pilotMbps = (bitsPerFrame: number | undefined, fps: number | undefined) => (bitsPerFrame !== undefined && fps ? log10((bitsPerFrame * fps) / 1e6) : undefined);
const bitsPerPixel = (kbps: number | undefined, px: number | undefined, fps: number | undefined) =>
  kbps && px && fps ? log10((kbps * 1000) / (px * fps)) : undefined;

/** Numeric columns a schema does not give (measured by a probe, or read from a log). */
const PROBED = new Set(['i_share', 'p_share', 'b_share', 'log_in_size', 'si', 'ti', 'log_pilot_cpu', 'log_pilot_mbps', 'log_pilot_memory']);
export const isProbed = (name: string) => PROBED.has(name) || name.startsWith('extra.');
/**
 * The PROBED columns whose absence makes a record unprobed (EncodeNotes.unprobed: its own linear
 * part and bound): what a probe of any input gives, SI/TI and the pilot. Frame types, file size
 * and a log's extra columns exist for some inputs only (a lavfi source has no file size), so
 * lacking them says nothing of whether the job was probed.
 */
const PROBE_SIGNS: ReadonlySet<string> = new Set(['si', 'ti', 'log_pilot_cpu', 'log_pilot_mbps', 'log_pilot_memory']);

/** Numeric inputs: name → how it is computed (undefined = not known for this record). */
export const NUMERICS: Record<string, (r: EncodeRecord) => number | undefined> = {
  /** log2 of output pixels per frame. */
  log_out_pixels: (r) => log2(outPixels(r)),
  /** log2 of input pixels per frame (scaling changes the decode and filter cost). */
  log_in_pixels: (r) => log2(pixels(r.input.width, r.input.height) ?? outPixels(r)),
  out_fps: outFps,
  in_fps: (r) => r.input.fps,
  /** log10 of output frames. */
  log_frames: (r) => log10(outputFrames(r)),
  /** log10 of the input's duration in seconds. */
  log_duration: (r) => log10(r.input.duration_s),
  crf: crfShare,
  /** log10 of the target bitrate (kbit/s), and the bits it gives each output pixel. */
  log_bitrate: (r) => log10(r.output.bitrate_kbps),
  log_bits_per_pixel: (r) => bitsPerPixel(r.output.bitrate_kbps, outPixels(r), outFps(r)),
  log_in_bitrate: (r) => log10(r.input.bitrate_kbps),
  log_in_bits_per_pixel: (r) => bitsPerPixel(r.input.bitrate_kbps, pixels(r.input.width, r.input.height) ?? outPixels(r), r.input.fps),
  passes: (r) => r.output.passes,
  log_gop: (r) => log2(r.output.gop),
  preset_slowness: (r) => presetSlowness(r.output.encoder, r.output.preset),
  /** Input frame-type shares (I, P, B) where a log has them. */
  i_share: (r) => share(r.input.i_frames, r),
  p_share: (r) => share(r.input.p_frames, r),
  b_share: (r) => share(r.input.b_frames, r),
  log_in_size: (r) => log10(r.input.size_bytes),
  /** Content complexity: P.910 spatial / temporal information (log10(1 + x)), synthetic noise 0–100. */
  si: (r) => log1p10(r.content.si_mean),
  ti: (r) => log1p10(r.content.ti_mean),
  noise: (r) => r.content.noise,
  /** log2 of the CPU cores granted, and GPUs granted. */
  log_cores: (r) => log2(r.node.cores),
  gpus: (r) => r.node.gpus,
  /** log2 of the machine's memory in GB, where a log gives it (an instance type's, say). */
  log_node_memory: (r) => log2(r.node.memory_gb),
  /**
   * Output and input megapixels, as they are: a process's memory is a fixed part plus buffers in
   * proportion to the picture, which the log of the pixels alone cannot draw.
   */
  out_megapixels: (r) => megapixels(outPixels(r)),
  in_megapixels: (r) => megapixels(pixels(r.input.width, r.input.height) ?? outPixels(r)),
  /**
   * A pilot encode (the job's first frames, its own settings, one thread): log10 of its CPU
   * seconds per frame, of the Mbit/s its bits per frame make at the output rate, and of its
   * peak memory. On the shipped calibration runs the first alone follows the whole encode's CPU
   * per frame with a correlation of 0.96 in log (models/README.md).
   */
  log_pilot_cpu: (r) => log10(r.content.pilot_cpu_per_frame),
  log_pilot_mbps: (r) => pilotMbps(r.content.pilot_bits_per_frame, outFps(r)),
  /** log10 of the pilot's peak memory in MB. */
  log_pilot_memory: (r) => log10(r.content.pilot_memory_mb),
};

/**
 * Every NUMERICS column of one record at once, into `out` in NUMERIC_NAMES order: NaN where the
 * column's function gives undefined or a non-finite number, else exactly what it gives. The
 * same helpers on the same fields, each shared part (output pixels, rates, frames) worked out
 * once, with no call per column: what encoding a record for prediction reads
 * (`encodeSparse`). A test holds it to NUMERICS on varied and malformed records.
 */
export function numericsInto(r: EncodeRecord, out: Float64Array): Float64Array {
  const o = r.output, i = r.input, c = r.content, node = r.node;
  const inPx = pixels(i.width, i.height), outPx = pixels(o.width, o.height) ?? inPx, fps = o.fps ?? i.fps;
  const inPxOrOut = inPx ?? outPx;
  out[0] = finite(log2(outPx));
  out[1] = finite(log2(inPxOrOut));
  out[2] = finite(fps);
  out[3] = finite(i.fps);
  out[4] = finite(log10(outputFrames(r)));
  out[5] = finite(log10(i.duration_s));
  out[6] = finite(crfShare(r));
  out[7] = finite(log10(o.bitrate_kbps));
  out[8] = finite(bitsPerPixel(o.bitrate_kbps, outPx, fps));
  out[9] = finite(log10(i.bitrate_kbps));
  out[10] = finite(bitsPerPixel(i.bitrate_kbps, inPxOrOut, i.fps));
  out[11] = finite(o.passes);
  out[12] = finite(log2(o.gop));
  out[13] = finite(presetSlowness(o.encoder, o.preset));
  out[14] = finite(share(i.i_frames, r));
  out[15] = finite(share(i.p_frames, r));
  out[16] = finite(share(i.b_frames, r));
  out[17] = finite(log10(i.size_bytes));
  out[18] = finite(log1p10(c.si_mean));
  out[19] = finite(log1p10(c.ti_mean));
  out[20] = finite(c.noise);
  out[21] = finite(log2(node.cores));
  out[22] = finite(node.gpus);
  out[23] = finite(log2(node.memory_gb));
  out[24] = finite(megapixels(outPx));
  out[25] = finite(megapixels(inPxOrOut));
  out[26] = finite(log10(c.pilot_cpu_per_frame));
  out[27] = finite(pilotMbps(c.pilot_bits_per_frame, fps));
  out[28] = finite(log10(c.pilot_memory_mb));
  return out;
}
/** The columns numericsInto writes, in order (NUMERICS' own order, checked when this module loads). */
export const NUMERIC_NAMES = ['log_out_pixels', 'log_in_pixels', 'out_fps', 'in_fps', 'log_frames', 'log_duration', 'crf', 'log_bitrate',
  'log_bits_per_pixel', 'log_in_bitrate', 'log_in_bits_per_pixel', 'passes', 'log_gop', 'preset_slowness', 'i_share', 'p_share', 'b_share',
  'log_in_size', 'si', 'ti', 'noise', 'log_cores', 'gpus', 'log_node_memory', 'out_megapixels', 'in_megapixels', 'log_pilot_cpu', 'log_pilot_mbps', 'log_pilot_memory'] as const;
if (NUMERIC_NAMES.join() !== Object.keys(NUMERICS).join()) throw new Error('features.ts: numericsInto does not write the NUMERICS columns in order');
const finite = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? v : NaN);

/** How one numeric column is standardised; `flag` adds its `_known` column. */
export interface NumericState { name: string; mean: number; std: number; min: number; max: number; flag: boolean }

/** The fitted, data-dependent part of the spec: stored in every model file. */
export interface FeatureState {
  spec: typeof FEATURE_SPEC_VERSION;
  /** Per category, the values that have a column of their own, in column order. */
  vocab: Record<Category, string[]>;
  numeric: NumericState[];
  /** Names of extra columns, each also in `numeric` as `extra.<name>`. */
  extras: string[];
  /** Every column name, in vector order (checked against the above when a model loads). */
  names: string[];
}

const numericValue = (name: string, r: EncodeRecord): number | undefined => {
  const v = name.startsWith('extra.') ? r.extra[name.slice(6)] : NUMERICS[name](r);
  return v !== undefined && Number.isFinite(v) ? v : undefined;
};

/** Column names a fitted state implies. */
export function featureNames(s: Pick<FeatureState, 'vocab' | 'numeric'>): string[] {
  const names: string[] = [];
  for (const c of CATEGORY_NAMES) names.push(...s.vocab[c].map((v) => `${c}=${v}`), `${c}=other`);
  for (const n of s.numeric) names.push(n.name, ...(n.flag ? [`${n.name}_known`] : []));
  return names;
}

/** Fits vocabularies and standardisation on training records. */
export function fitFeatures(records: readonly EncodeRecord[]): FeatureState {
  const vocab = {} as Record<Category, string[]>;
  for (const c of CATEGORY_NAMES) {
    const counts = new Map<string, number>();
    for (const r of records) {
      const v = CATEGORIES[c].get(r) ?? '';
      counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    vocab[c] = [...counts].filter(([, n]) => n >= MIN_CATEGORY_ROWS)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, CATEGORIES[c].max).map(([v]) => v);
  }
  const extras = [...new Set(records.flatMap((r) => Object.keys(r.extra)))].sort();
  const numeric: NumericState[] = [];
  for (const name of [...Object.keys(NUMERICS), ...extras.map((e) => `extra.${e}`)]) {
    const values: number[] = [];
    for (const r of records) {
      const v = numericValue(name, r);
      if (v !== undefined) values.push(v);
    }
    if (values.length === 0) continue;
    const n = values.length;
    let mean = 0, min = Infinity, max = -Infinity;
    for (const v of values) { mean += v / n; if (v < min) min = v; if (v > max) max = v; }
    let variance = 0;
    for (const v of values) variance += (v - mean) ** 2 / n;
    // A constant column (spread lost in rounding) gets a unit spread: it reads 0 for the training value.
    const std = max - min <= 1e-9 * Math.max(1, Math.abs(mean)) ? 1 : Math.sqrt(variance);
    numeric.push({ name, mean, std, min, max, flag: n < records.length || isProbed(name) });
  }
  const state = { spec: FEATURE_SPEC_VERSION, vocab, numeric, extras } as const;
  return { ...state, names: featureNames(state) };
}

/** How one record encoded: which categories fell into `other`, which numbers were missing or out of range. */
export interface EncodeNotes {
  /** Categories whose value has no column (never seen, or too rare, in training). */
  unseen: Category[];
  /** Numbers the model always had in training but this record lacks (the training mean was used). */
  missing: string[];
  /** Numbers beyond the training range by more than a tenth of it (the networks extrapolate). */
  outside: string[];
  /** PROBE_SIGNS the model reads that this record lacks (its linear part and bound are the unprobed ones). */
  unprobed: number;
}

export interface EncodeOptions {
  /** Categories to encode as `other` whatever their value (training dropout, novelty calibration). */
  asOther?: ReadonlySet<Category>;
  /** Encode PROBED columns as unknown whatever the record says (training dropout, calibration). */
  unprobed?: boolean;
  /** Filled with notes about the record, when given. */
  notes?: EncodeNotes;
  /** Filled with the same notes as codes, when given (batch prediction: no array grows per record). */
  marks?: EncodeMarks;
}

/**
 * EncodeNotes as codes: what batch prediction keeps for each record of a block until it writes
 * that record's flags. Each encode overwrites `unseen`, the counts, and the codes from `at`.
 */
export interface EncodeMarks {
  /** Bit c is set when category c (CATEGORIES' order) had no column: `unseen`. */
  unseen: number;
  /** Per numeric column of the state, in its order, from `at`: MISSING, OUTSIDE, or 0. */
  codes: Uint8Array;
  at: number;
  /** How many columns are MISSING, how many OUTSIDE, and `unprobed` as in EncodeNotes. */
  missing: number;
  outside: number;
  unprobed: number;
}
export const MISSING = 1, OUTSIDE = 2;

/**
 * A fitted state laid out for encoding: offsets and value → column maps resolved once, and the
 * numeric columns as parallel arrays (read per record per column, they cost half as much as
 * objects do).
 */
interface Compiled {
  categories: Array<{ name: Category; get: (r: EncodeRecord) => string | undefined; columns: Map<string, number>; other: number }>;
  numeric: {
    name: string[];
    /** Index into numericsInto's figures; -1 for an extra column (read by `extra` name). */
    fused: Int32Array;
    extra: Array<string | undefined>;
    /** Where the column is in the vector (its `_known` column follows when `flag`). */
    at: Int32Array;
    mean: Float64Array;
    std: Float64Array;
    /** The training range: a number is held to it before it is standardised. */
    min: Float64Array;
    max: Float64Array;
    /** The training range widened by a tenth each way: beyond it, the record's notes say so. */
    lo: Float64Array;
    hi: Float64Array;
    flag: Uint8Array;
    /** 2: a PROBE_SIGNS column, 1: another PROBED one, 0: neither. */
    probed: Uint8Array;
  };
  /** Where encodeFeatures writes before spreading into a dense vector. */
  scratch: SparseVector;
  /** numericsInto's figures for the record being encoded. */
  raw: Float64Array;
}
const compiled = new WeakMap<FeatureState, Compiled>();

function compile(s: FeatureState): Compiled {
  let at = 0;
  const categories = CATEGORY_NAMES.map((name) => {
    const vocab = s.vocab[name];
    const c = { name, get: CATEGORIES[name].get, columns: new Map(vocab.map((v, j) => [v, at + j])), other: at + vocab.length };
    at += vocab.length + 1;
    return c;
  });
  const ns = s.numeric, k = ns.length;
  const numeric: Compiled['numeric'] = {
    name: ns.map((n) => n.name), fused: new Int32Array(k), extra: ns.map((n) => (n.name.startsWith('extra.') ? n.name.slice(6) : undefined)),
    at: new Int32Array(k), mean: new Float64Array(k), std: new Float64Array(k), min: new Float64Array(k), max: new Float64Array(k), lo: new Float64Array(k), hi: new Float64Array(k),
    flag: new Uint8Array(k), probed: new Uint8Array(k),
  };
  ns.forEach((n, i) => {
    const slack = (n.max - n.min) / 10;
    numeric.fused[i] = numeric.extra[i] !== undefined ? -1 : (NUMERIC_NAMES as readonly string[]).indexOf(n.name);
    numeric.at[i] = at;
    numeric.mean[i] = n.mean;
    numeric.std[i] = n.std;
    numeric.min[i] = n.min;
    numeric.max[i] = n.max;
    numeric.lo[i] = n.min - slack;
    numeric.hi[i] = n.max + slack;
    numeric.flag[i] = n.flag ? 1 : 0;
    numeric.probed[i] = PROBE_SIGNS.has(n.name) ? 2 : isProbed(n.name) ? 1 : 0;
    at += n.flag ? 2 : 1;
  });
  return { categories, numeric, scratch: new SparseVector(s.names.length), raw: new Float64Array(NUMERIC_NAMES.length) };
}

/** Encodes one record into `out` (length = state.names.length). */
export function encodeFeatures(s: FeatureState, r: EncodeRecord, out: Float64Array = new Float64Array(s.names.length), o: EncodeOptions = {}): Float64Array {
  const v = encodeSparse(s, r, compiledState(s).scratch, o);
  out.fill(0);
  for (let k = 0; k < v.n; k++) out[v.idx[k]] = v.val[k];
  return out;
}

/**
 * Encodes one record as its non-zero entries, in column order (what the networks read: the
 * prediction path never builds the dense vector).
 */
export function encodeSparse(s: FeatureState, r: EncodeRecord, v: SparseVector, o: EncodeOptions = {}): SparseVector {
  v.n = encodeSparseAt(s, r, v.idx, v.val, 0, o);
  return v;
}

/**
 * Appends one record's row to a block (batch prediction): `encodeSparse` into the block's
 * arrays after its last row.
 */
export function encodeSparseRow(s: FeatureState, r: EncodeRecord, block: SparseBlock, o: EncodeOptions = {}): void {
  if (block.rows >= block.capacity) throw new RangeError(`the block holds ${block.capacity} rows`);
  const at = block.start[block.rows];
  block.start[++block.rows] = at + encodeSparseAt(s, r, block.idx, block.val, at, o);
}

/** Writes the record's non-zero entries to `idx`/`val` from `at`; returns how many. */
function encodeSparseAt(s: FeatureState, r: EncodeRecord, idx: Int32Array, val: Float64Array, at: number, o: EncodeOptions): number {
  const c = compiledState(s);
  const notes = o.notes, marks = o.marks, asOther = o.asOther, unprobed = o.unprobed === true;
  const cats = c.categories;
  let n = at, unseen = 0;
  for (let i = 0; i < cats.length; i++) {
    const cat = cats[i];
    const forced = asOther !== undefined && asOther.has(cat.name);
    const j = forced ? undefined : cat.columns.get(cat.get(r) ?? '');
    if (j === undefined && !forced) {
      notes?.unseen.push(cat.name);
      unseen |= 1 << i;
    }
    idx[n] = j ?? cat.other;
    val[n++] = 1;
  }
  const raw = numericsInto(r, c.raw);
  const { fused, at: col, mean, std, min, max, lo, hi, flag, probed } = c.numeric;
  const codes = marks?.codes, codesAt = marks?.at ?? 0;
  let missing = 0, outside = 0, unprobedCount = 0;
  for (let i = 0; i < fused.length; i++) {
    // NaN: not known (numericsInto), or hidden on purpose.
    const f = fused[i];
    const x = unprobed && probed[i] !== 0 ? NaN : f >= 0 ? raw[f] : finite(r.extra[c.numeric.extra[i]!]);
    let code = 0;
    if (x !== x) {
      if (flag[i] === 0) {
        notes?.missing.push(c.numeric.name[i]);
        code = MISSING;
        missing++;
      } else if (probed[i] === 2) {
        unprobedCount++;
      }
    } else {
      const z = ((x < min[i] ? min[i] : x > max[i] ? max[i] : x) - mean[i]) / std[i];
      if (z !== 0) { idx[n] = col[i]; val[n++] = z; }
      if (flag[i] === 1) { idx[n] = col[i] + 1; val[n++] = 1; }
      if (x < lo[i] || x > hi[i]) {
        notes?.outside.push(c.numeric.name[i]);
        code = OUTSIDE;
        outside++;
      }
    }
    if (codes !== undefined) codes[codesAt + i] = code;
  }
  if (notes) notes.unprobed += unprobedCount;
  if (marks) {
    marks.unseen = unseen;
    marks.missing = missing;
    marks.outside = outside;
    marks.unprobed = unprobedCount;
  }
  return n - at;
}

function compiledState(s: FeatureState): Compiled {
  let c = compiled.get(s);
  if (!c) compiled.set(s, (c = compile(s)));
  return c;
}

export const newNotes = (): EncodeNotes => ({ unseen: [], missing: [], outside: [], unprobed: 0 });

/** Checks a stored state for internal consistency; returns what is wrong, or undefined. */
export function checkFeatureState(s: FeatureState): string | undefined {
  if (s?.spec !== FEATURE_SPEC_VERSION) return `was built for feature spec ${JSON.stringify(s?.spec)}, this build reads ${FEATURE_SPEC_VERSION}`;
  for (const c of CATEGORY_NAMES) if (!Array.isArray(s.vocab?.[c])) return `features.vocab.${c} is missing`;
  if (!Array.isArray(s.numeric) || !Array.isArray(s.names)) return 'features.numeric or features.names is missing';
  for (const n of s.numeric) {
    if (!(n.name in NUMERICS) && !n.name.startsWith('extra.')) return `features.numeric names an unknown column ${JSON.stringify(n.name)}`;
    if (![n.mean, n.std, n.min, n.max].every(Number.isFinite) || n.std <= 0) return `features.numeric.${n.name} has a non-finite or zero spread`;
  }
  const names = featureNames(s);
  if (names.length !== s.names.length || names.some((n, i) => n !== s.names[i])) return 'features.names does not match the vocabularies and numeric columns';
  return undefined;
}
