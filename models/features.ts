/**
 * Feature spec `features-v2`: how an EncodeRecord (record.ts) becomes the numeric vector the
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
 *    orders of magnitude), then standardised with the training mean and spread and clipped to
 *    ±CLIP. A column missing from every training row is left out; one missing from some rows
 *    gets a companion `<name>_known` column (1 when present) and reads 0 (the mean) when absent.
 * 3. Extra numeric columns a mapping file passed (`extra.<name>`), treated like NUMERICS.
 *
 * Some numbers only a probe of the media or a log can give (PROBED: content complexity, frame
 * types, file size, a log's extra columns); a submitted schema does not carry them. Those
 * columns always get a `_known` companion, and training hides them on a share of rows, so a
 * model fitted on logs that always have them still knows what to predict without them.
 */
import { PRESETS } from '../shared/index.js';
import type { EncodeRecord } from './record.js';
import { SparseVector } from './sparse.js';

export const FEATURE_SPEC_VERSION = 'features-v2';

/** Training rows a category value needs to get a column of its own. */
const MIN_CATEGORY_ROWS = 3;
/** Standardised values are clipped here: far outside the training range the networks extrapolate badly. */
const CLIP = 5;

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
const bitsPerPixel = (kbps: number | undefined, px: number | undefined, fps: number | undefined) =>
  kbps && px && fps ? log10((kbps * 1000) / (px * fps)) : undefined;

/** Numeric columns a schema does not give (measured by a probe, or read from a log). */
const PROBED = new Set(['i_share', 'p_share', 'b_share', 'log_in_size', 'si', 'ti']);
export const isProbed = (name: string) => PROBED.has(name) || name.startsWith('extra.');

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
  /** Content complexity: P.910 spatial / temporal information, synthetic noise 0–100. */
  si: (r) => r.content.si_mean,
  ti: (r) => r.content.ti_mean,
  noise: (r) => r.content.noise,
  /** log2 of the CPU cores granted, and GPUs granted. */
  log_cores: (r) => log2(r.node.cores),
  gpus: (r) => r.node.gpus,
};

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
  /** PROBED numbers the model reads that this record lacks (its bound is the unprobed one). */
  unprobed: number;
}

export interface EncodeOptions {
  /** Categories to encode as `other` whatever their value (training dropout, novelty calibration). */
  asOther?: ReadonlySet<Category>;
  /** Encode PROBED columns as unknown whatever the record says (training dropout, calibration). */
  unprobed?: boolean;
  /** Filled with notes about the record, when given. */
  notes?: EncodeNotes;
}

/** A fitted state laid out for encoding: offsets, value → column maps and getters resolved once. */
interface Compiled {
  categories: Array<{ name: Category; get: (r: EncodeRecord) => string | undefined; columns: Map<string, number>; other: number }>;
  numeric: Array<NumericState & { get: (r: EncodeRecord) => number | undefined; at: number; lo: number; hi: number; probed: boolean }>;
  /** Where encodeFeatures writes before spreading into a dense vector. */
  scratch: SparseVector;
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
  const numeric = s.numeric.map((n) => {
    const extra = n.name.startsWith('extra.') ? n.name.slice(6) : undefined;
    const raw = extra !== undefined ? (r: EncodeRecord) => r.extra[extra] : NUMERICS[n.name];
    const slack = (n.max - n.min) / 10;
    const c = { ...n, get: (r: EncodeRecord) => { const v = raw(r); return v !== undefined && Number.isFinite(v) ? v : undefined; }, at, lo: n.min - slack, hi: n.max + slack, probed: isProbed(n.name) };
    at += n.flag ? 2 : 1;
    return c;
  });
  return { categories, numeric, scratch: new SparseVector(s.names.length) };
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
  const c = compiledState(s);
  const { idx, val } = v;
  let n = 0;
  for (const cat of c.categories) {
    const forced = o.asOther?.has(cat.name);
    const j = forced ? undefined : cat.columns.get(cat.get(r) ?? '');
    if (j === undefined && !forced) o.notes?.unseen.push(cat.name);
    idx[n] = j ?? cat.other;
    val[n++] = 1;
  }
  for (const m of c.numeric) {
    const x = o.unprobed && m.probed ? undefined : m.get(r);
    if (x === undefined) {
      if (!m.flag) o.notes?.missing.push(m.name);
      else if (m.probed && o.notes) o.notes.unprobed++;
      continue;
    }
    const z = Math.max(-CLIP, Math.min(CLIP, (x - m.mean) / m.std));
    if (z !== 0) { idx[n] = m.at; val[n++] = z; }
    if (m.flag) { idx[n] = m.at + 1; val[n++] = 1; }
    if (o.notes && (x < m.lo || x > m.hi)) o.notes.outside.push(m.name);
  }
  v.n = n;
  return v;
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
