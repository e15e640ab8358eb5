/**
 * EncodingSchema: what a submitter asks for. Staged as types, as Temporal's worker options are:
 * `unknown` user document → `validateEncodingSchema` → `EncodingSchema` (every field checked,
 * defaults applied). Nothing downstream ever sees an unchecked string.
 */
import path from 'node:path';
import { FieldIssue, MAX_ISSUES, SchemaValidationError, describeValue, fieldPath } from '../errors.js';

/** Output video codecs Prescient knows how to predict and run. */
export const OUTPUT_CODECS = ['h264', 'hevc', 'vp9', 'av1'] as const;
export type OutputCodec = (typeof OUTPUT_CODECS)[number];

/** Input codecs a described input may declare (used as model features only). */
export const INPUT_CODECS = ['h264', 'hevc', 'vp9', 'av1', 'mpeg2', 'prores', 'rawvideo', 'other'] as const;
export type InputCodec = (typeof INPUT_CODECS)[number];

/**
 * ffmpeg encoder implementing each codec. The first one listed is the default; hardware
 * encoders are only usable on nodes that report a GPU.
 */
export const ENCODERS: Record<OutputCodec, readonly string[]> = {
  h264: ['libx264', 'h264_nvenc'],
  hevc: ['libx265', 'hevc_nvenc'],
  vp9: ['libvpx-vp9'],
  av1: ['libsvtav1', 'libaom-av1', 'av1_nvenc'],
};
export type Encoder = 'libx264' | 'h264_nvenc' | 'libx265' | 'hevc_nvenc' | 'libvpx-vp9' | 'libsvtav1' | 'libaom-av1' | 'av1_nvenc';

/** Encoders that run on a GPU rather than on CPU cores. */
export const GPU_ENCODERS: ReadonlySet<string> = new Set(['h264_nvenc', 'hevc_nvenc', 'av1_nvenc']);

const X26X_PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow'];
const NVENC_PRESETS = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7'];
const range = (lo: number, hi: number) => Array.from({ length: hi - lo + 1 }, (_, i) => String(lo + i));

/** Allowed presets per encoder, slowest last. For libvpx/libaom the preset is `-cpu-used`. */
export const PRESETS: Record<Encoder, readonly string[]> = {
  libx264: X26X_PRESETS,
  libx265: X26X_PRESETS,
  h264_nvenc: NVENC_PRESETS,
  hevc_nvenc: NVENC_PRESETS,
  av1_nvenc: NVENC_PRESETS,
  'libvpx-vp9': range(0, 8).reverse(),
  libsvtav1: range(0, 13).reverse(),
  'libaom-av1': range(0, 8).reverse(),
};
const DEFAULT_PRESET: Record<Encoder, string> = {
  libx264: 'medium', libx265: 'medium', h264_nvenc: 'p4', hevc_nvenc: 'p4', av1_nvenc: 'p4',
  'libvpx-vp9': '4', libsvtav1: '8', 'libaom-av1': '6',
};
/** CRF range each encoder accepts. */
const CRF_RANGE: Record<Encoder, [number, number]> = {
  libx264: [0, 51], libx265: [0, 51], h264_nvenc: [0, 51], hevc_nvenc: [0, 51], av1_nvenc: [0, 255],
  'libvpx-vp9': [0, 63], libsvtav1: [0, 63], 'libaom-av1': [0, 63],
};

/** ffmpeg lavfi test sources usable as synthetic input; they differ in content complexity. */
export const SYNTHETIC_SOURCES = ['testsrc', 'testsrc2', 'smptebars', 'smptehdbars', 'mandelbrot', 'life', 'rgbtestsrc', 'yuvtestsrc'] as const;
export type SyntheticSource = (typeof SYNTHETIC_SOURCES)[number];

/**
 * Extra encoder options a submitter may set. Names outside this list are refused, and each
 * value must match its rule: these become ffmpeg arguments, so nothing free-form gets through.
 */
export const EXTRA_OPTIONS: Record<string, { values?: readonly string[]; pattern?: RegExp; encoders: readonly Encoder[] }> = {
  tune: { values: ['film', 'animation', 'grain', 'stillimage', 'fastdecode', 'zerolatency', 'psnr', 'ssim'], encoders: ['libx264', 'libx265'] },
  profile: { values: ['baseline', 'main', 'high', 'high10', 'main10', 'main444-8'], encoders: ['libx264', 'libx265', 'h264_nvenc', 'hevc_nvenc'] },
  pix_fmt: { values: ['yuv420p', 'yuv420p10le', 'yuv422p', 'yuv444p'], encoders: ['libx264', 'libx265', 'libvpx-vp9', 'libsvtav1', 'libaom-av1', 'h264_nvenc', 'hevc_nvenc', 'av1_nvenc'] },
  level: { pattern: /^[1-6](\.[0-3])?$/, encoders: ['libx264', 'libx265', 'h264_nvenc', 'hevc_nvenc'] },
  bf: { pattern: /^(1[0-6]|[0-9])$/, encoders: ['libx264', 'libx265', 'h264_nvenc', 'hevc_nvenc'] },
  refs: { pattern: /^(1[0-6]|[1-9])$/, encoders: ['libx264', 'libx265', 'h264_nvenc', 'hevc_nvenc'] },
};

/** Service classes, most urgent first. */
export const SLA_CLASSES = ['premium', 'standard', 'batch'] as const;
export type SlaClass = (typeof SLA_CLASSES)[number];

export interface Resolution { width: number; height: number }

/**
 * What a probe of the input found before the job was predicted: `prescient submit` probes a file
 * it can read (and a synthetic source's content complexity), and where the submitter could not,
 * the leader asks a node to (node-agent/ffmpeg/probe.ts). Every figure is optional: a probe
 * reports what ffprobe could tell. The model reads the input's geometry, length and content from
 * here wherever the submitter did not spell them out.
 */
export interface InputProbe {
  /** Who probed: the submitter's machine, or a node of the cluster the leader asked. */
  by: ProbeOrigin;
  /** The first video stream's picture size, frame rate and codec (ffprobe's name: h264, mpeg2video, prores, …). */
  width?: number;
  height?: number;
  fps?: number;
  codec?: string;
  pix_fmt?: string;
  /** Seconds of video, and frames (counted by the container where it says, else fps × duration). */
  duration_s?: number;
  frames?: number;
  /** The video stream's bitrate (the container's overall rate where the stream has none). */
  bitrate_kbps?: number;
  audio_streams?: number;
  /** The file's size and modification time when probed (a probe of another version of the file is stale). */
  size_bytes?: number;
  mtime_ms?: number;
  /** ITU-T P.910 spatial and temporal information (ffmpeg's siti filter) over the first `siti_s` seconds. */
  si_mean?: number;
  si_max?: number;
  ti_mean?: number;
  ti_max?: number;
  siti_s?: number;
}
export const PROBE_ORIGINS = ['submitter', 'node'] as const;
export type ProbeOrigin = (typeof PROBE_ORIGINS)[number];

export interface SyntheticInput {
  kind: 'synthetic';
  /** lavfi source filter name. */
  source: SyntheticSource;
  resolution: Resolution;
  fps: number;
  /** Absent only for an actor's input: a live source runs until the actor is stopped. */
  duration_s?: number;
  /** 0–100: strength of temporal noise added to raise content complexity. */
  noise: number;
  /** A 1 kHz stereo test tone alongside the picture (lavfi `sine`); absent: the source has no audio. */
  audio?: true;
  /** Its content complexity, measured at submission (the rest of a lavfi source is known). */
  probe?: InputProbe;
}
export interface FileInput {
  kind: 'file';
  /** Absolute, normalised path inside one of the allowed input roots. */
  path: string;
  codec?: InputCodec;
  resolution?: Resolution;
  fps?: number;
  bitrate_kbps?: number;
  /** Encode only this many seconds from the start. */
  duration_s?: number;
  probe?: InputProbe;
}
export type InputSpec = SyntheticInput | FileInput;

export type RateControl = { mode: 'crf'; crf: number } | { mode: 'bitrate'; bitrate_kbps: number };

/**
 * What becomes of the input's audio. `auto` (the default, also when `audio` is absent): kept when
 * the input has any, copied where the output's container carries its codec, else encoded (AAC in
 * MP4 and HLS, Opus in WebM). `copy`: copied as it is (an encode whose container cannot carry it
 * fails, saying so). `aac` / `opus`: encoded at `bitrate_kbps`. `none`: dropped (`-an`).
 * A synthetic input has audio only with `input.synthetic.audio: true`.
 */
export const AUDIO_MODES = ['auto', 'copy', 'aac', 'opus', 'none'] as const;
export type AudioMode = (typeof AUDIO_MODES)[number];
export type AudioSpec = { mode: 'auto' | 'copy' | 'none' } | { mode: 'aac' | 'opus'; bitrate_kbps: number };
/** Bitrate of an encoded audio track when the spec gives none. */
export const DEFAULT_AUDIO_KBPS = 128;

/**
 * How the output is written: `file`, one MP4 (h264, hevc, av1) or WebM (vp9) file; `hls`, a VOD
 * HLS rendition (a media playlist `NAME.m3u8` with `NAME-init.mp4` and fMP4 segments
 * `NAME-00000.m4s` beside it, keyframes forced at every segment boundary so the renditions of a
 * ladder switch cleanly). A group whose members are all HLS gets a master playlist.
 */
export const OUTPUT_FORMATS = ['file', 'hls'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];
/** Length of an HLS output's segments, in seconds. */
export const HLS_SEGMENT_S = 4;

/**
 * Placeholders `output.path` may use; each expands to one path segment's worth of
 * `[A-Za-z0-9._-]` (never `.`, `..` or a slash), so a template inside the output roots stays
 * inside them whatever it expands to. Expanded on the node that runs the encode.
 * - `{job_id}`    the job's id
 * - `{group}`     its group's id (only in a job that has a `group`)
 * - `{rendition}` `output.rendition`, else `<height>p` of the output (`source` where unknown)
 * - `{height}`, `{width}`  the output's picture size in pixels (`source` where unknown)
 * - `{codec}`     `output.codec`
 * - `{node}`      the id of the node that encodes it
 */
export const OUTPUT_PLACEHOLDERS = ['job_id', 'group', 'rendition', 'height', 'width', 'codec', 'node'] as const;
export type OutputPlaceholder = (typeof OUTPUT_PLACEHOLDERS)[number];
const MAX_OUTPUT_PATH = 1024;

export interface OutputSpec {
  codec: OutputCodec;
  encoder: Encoder;
  preset: string;
  rate_control: RateControl;
  /** Absent: keep the input's resolution. */
  resolution?: Resolution;
  /** Absent: keep the input's frame rate. */
  fps?: number;
  /** Keyframe interval in frames. */
  gop?: number;
  passes: 1 | 2;
  options: Record<string, string>;
  /**
   * Where the output goes: an absolute path template (OUTPUT_PLACEHOLDERS) inside the allowed
   * output roots, e.g. `/srv/out/{group}/{rendition}.m3u8`, its file name ending in the format's
   * extension (.mp4, .webm, .m3u8). It is a path on the node that encodes: a ladder spread over
   * nodes needs a filesystem they share. Absent: `<agent output dir>/<job id>.<ext>` as before.
   */
  path?: string;
  /** Absent: `file`, or `hls` where `path` ends in .m3u8. */
  format?: OutputFormat;
  /** This rendition's name in a ladder ({rendition}); absent: `<height>p`. */
  rendition?: string;
  /** Absent: `auto`. */
  audio?: AudioSpec;
}

/**
 * Jobs that belong together, such as the renditions of one source in an ABR ladder: placed all
 * at once or not at all, on one node (`together`) or each on a different node (`spread`).
 */
export interface JobGroup {
  id: string;
  /** How many jobs the group has: none is placed until all have arrived. */
  size: number;
  placement: GroupPlacement;
}
export const GROUP_PLACEMENTS = ['together', 'spread'] as const;
export type GroupPlacement = (typeof GROUP_PLACEMENTS)[number];
export const MAX_GROUP_SIZE = 32;

/**
 * Two kinds of work, as in Ray: a batch encode task (the default; `kind` is then absent), which
 * ends when its input is encoded, and an `actor`, a live channel: its input is paced at real time
 * (a file loops), its output is a rolling HLS window, and it holds its reservation until stopped
 * (`prescient stop`). Its prediction is a steady-state rate (models/live.ts).
 */
export const WORK_KINDS = ['task', 'actor'] as const;
export type WorkKind = (typeof WORK_KINDS)[number];

export interface EncodingSchema {
  /** Absent: a batch task. */
  kind?: 'actor';
  input: InputSpec;
  output: OutputSpec;
  priority: SlaClass;
  submitter: string;
  /** Optional completion deadline (ISO 8601). */
  deadline?: string;
  group?: JobGroup;
}

export interface ValidationContext {
  /** Absolute directories an input file must live under. */
  allowedInputRoots: readonly string[];
  /** Absolute directories an `output.path` must lie under; absent or empty: no job may name one. */
  allowedOutputRoots?: readonly string[];
}

const MAX_DIMENSION = 8192;
/** ffmpeg's frame rates are rationals; 1/1001 is the slowest it takes, and 1e-320 would reach it as 0. */
const MIN_FPS = 1 / 1001;
const MAX_FPS = 240;
/** Shorter than a millisecond would reach ffmpeg's `-t` as 0 (args print six decimals). */
const MIN_DURATION_S = 0.001;
const MAX_DURATION_S = 24 * 3600;
/** ffmpeg's `-b:v` is set in whole kbit/s, so 1 is the least an output can ask for. */
const MIN_OUTPUT_BITRATE_KBPS = 1;
/** A described or probed input (a still image, say) may be far below that; one bit/s is not. */
const MIN_INPUT_BITRATE_KBPS = 0.001;
const MAX_BITRATE_KBPS = 1_000_000;
/** Deadlines are plain four-digit-year ISO dates, from the epoch on. */
const MIN_DEADLINE_MS = 0;
const MAX_DEADLINE_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

interface NumberRule {
  required?: boolean;
  integer?: boolean;
  exclusiveLo?: boolean;
  /** How the lower bound reads in a message, where its decimal form would not (1/1001). */
  loText?: string;
}
const FPS_RULE: NumberRule = { loText: '1/1001' };

/**
 * Collects issues for one document so every wrong field is reported at once. The mappings it
 * hands back are prototype-free copies of the document's own, known keys, so a key such as
 * `__proto__`, `constructor` or `toString` is reported as unknown and never read as something
 * of Object.prototype.
 */
class Checker {
  readonly issues: FieldIssue[] = [];
  /** Issues past MAX_ISSUES, counted but not kept (a document with a million unknown keys). */
  omitted = 0;
  fail(field: string, reason: string): undefined {
    if (this.issues.length < MAX_ISSUES) this.issues.push({ field, reason });
    else this.omitted++;
    return undefined;
  }
  error(): SchemaValidationError {
    return new SchemaValidationError(this.issues.length ? this.issues : [{ field: '(document)', reason: 'is incomplete' }], this.omitted);
  }
  /** `v` itself when it is a mapping; read it with `own` or `fields`, never with a plain index. */
  object(v: unknown, field: string, required = true): object | undefined {
    if (v === undefined || v === null) return required ? this.fail(field, 'is required') : undefined;
    if (typeof v !== 'object' || Array.isArray(v)) return this.fail(field, `must be a mapping, got ${describeValue(v)}`);
    return v;
  }
  /**
   * Reports each key of `o` not in `allowed` (under `prefix`) and returns a prototype-free copy
   * of the allowed ones it has. Only known keys are copied: a million unknown ones cost a count.
   */
  fields(o: object, prefix: string, allowed: readonly string[]): Record<string, unknown> {
    const out = Object.create(null) as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (allowed.includes(k)) out[k] = (o as Record<string, unknown>)[k];
      else if (this.issues.length >= MAX_ISSUES) this.omitted++;
      else this.fail(fieldPath(prefix, k), `is not a known field (expected one of: ${allowed.join(', ')})`);
    }
    return out;
  }
  /** `object` then `fields`. */
  mapping(v: unknown, field: string, allowed: readonly string[], required = true, prefix = field): Record<string, unknown> | undefined {
    const o = this.object(v, field, required);
    return o && this.fields(o, prefix, allowed);
  }
  number(v: unknown, field: string, lo: number, hi: number, opts: NumberRule = {}): number | undefined {
    if (v === undefined || v === null) return opts.required ? this.fail(field, 'is required') : undefined;
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isFinite(n)) return this.fail(field, `must be a number, got ${describeValue(v)}`);
    if (opts.integer && !Number.isInteger(n)) return this.fail(field, `must be a whole number, got ${n}`);
    if (n < 0 && lo >= 0) return this.fail(field, `must not be negative, got ${n}`);
    const loText = opts.loText ?? String(lo);
    if (opts.exclusiveLo ? n <= lo : n < lo) return this.fail(field, `must be ${opts.exclusiveLo ? 'greater than' : 'at least'} ${loText}, got ${n}`);
    if (n > hi) return this.fail(field, `must be at most ${hi}, got ${n}`);
    return n;
  }
  oneOf<T extends string>(v: unknown, field: string, allowed: readonly T[], required = true): T | undefined {
    if (v === undefined || v === null) return required ? this.fail(field, 'is required') : undefined;
    if (typeof v !== 'string' && typeof v !== 'number') return this.fail(field, `must be one of: ${allowed.join(', ')}`);
    const s = String(v);
    if (!allowed.includes(s as T)) return this.fail(field, `unknown value ${describeValue(s)} (expected one of: ${allowed.join(', ')})`);
    return s as T;
  }
  resolution(v: unknown, field: string, required: boolean): Resolution | undefined {
    if (v === undefined || v === null) return required ? this.fail(field, 'is required') : undefined;
    let w: unknown, h: unknown;
    if (typeof v === 'string') {
      const m = /^(\d{1,5})x(\d{1,5})$/.exec(v.trim());
      if (!m) return this.fail(field, `must look like 1920x1080, got ${describeValue(v)}`);
      [w, h] = [Number(m[1]), Number(m[2])];
    } else if (typeof v === 'object' && !Array.isArray(v)) {
      [w, h] = [own(v, 'width'), own(v, 'height')];
    } else return this.fail(field, `must be WIDTHxHEIGHT or {width, height}, got ${describeValue(v)}`);
    const width = this.number(w, `${field}.width`, 0, MAX_DIMENSION, { required: true, integer: true, exclusiveLo: true });
    const height = this.number(h, `${field}.height`, 0, MAX_DIMENSION, { required: true, integer: true, exclusiveLo: true });
    if (width === undefined || height === undefined) return undefined;
    if (width % 2 || height % 2) return this.fail(field, `width and height must be even for 4:2:0 video, got ${width}x${height}`);
    return { width, height };
  }
}

/** `o[k]` when `o` has it as its own: never a member of Object.prototype such as `constructor`. */
function own(o: object, k: string): unknown {
  return Object.hasOwn(o, k) ? (o as Record<string, unknown>)[k] : undefined;
}

const SYNTHETIC_INPUT_FIELDS = ['synthetic', 'resolution', 'fps', 'duration_s', 'probe'];
const FILE_INPUT_FIELDS = ['path', 'codec', 'resolution', 'fps', 'bitrate_kbps', 'duration_s', 'probe'];
/**
 * Validated schemas travel between processes and are checked again on arrival, so the
 * validated (`kind`-tagged) input form is accepted too: its `source` and `noise` are the
 * written form's `synthetic` (and a file's are ignored, as they always were).
 */
const VALIDATED_INPUT_FIELDS = ['kind', 'source', 'noise', 'audio'];

function checkInput(c: Checker, raw: unknown, ctx: ValidationContext, actor: boolean): InputSpec | undefined {
  const o = c.object(raw, 'input');
  if (!o) return undefined;
  const kind = own(o, 'kind');
  if (kind !== undefined && kind !== 'synthetic' && kind !== 'file') return c.fail('input.kind', `must be "synthetic" or "file", got ${describeValue(kind)}`);
  const hasPath = own(o, 'path') !== undefined, hasSynth = kind === 'synthetic' || own(o, 'synthetic') !== undefined;
  if (hasPath === hasSynth) return c.fail('input', 'must have exactly one of `path` (a file) or `synthetic` (an ffmpeg test source)');
  const probe = checkProbe(c, own(o, 'probe'), hasSynth);
  const obj = c.fields(o, 'input', [...(hasSynth ? SYNTHETIC_INPUT_FIELDS : FILE_INPUT_FIELDS), ...(kind === undefined ? [] : VALIDATED_INPUT_FIELDS)]);
  if (hasSynth) {
    const s = kind === 'synthetic' ? { source: obj.source, noise: obj.noise, audio: obj.audio } : c.mapping(obj.synthetic, 'input.synthetic', ['source', 'noise', 'audio']);
    if (!s) return undefined;
    const source = c.oneOf(s.source, 'input.synthetic.source', SYNTHETIC_SOURCES);
    const noise = c.number(s.noise, 'input.synthetic.noise', 0, 100) ?? 0;
    const audio = s.audio === undefined || s.audio === false ? undefined
      : s.audio === true ? (true as const) : c.fail(kind === 'synthetic' ? 'input.audio' : 'input.synthetic.audio', `must be true or false, got ${describeValue(s.audio)}`);
    const resolution = c.resolution(obj.resolution, 'input.resolution', true);
    const fps = c.number(obj.fps, 'input.fps', MIN_FPS, MAX_FPS, { ...FPS_RULE, required: true });
    // A live source has no end: a duration would say the channel stops by itself, which it does not.
    const duration_s = actor
      ? (obj.duration_s === undefined ? undefined : c.fail('input.duration_s', 'must not be set for an actor: a live channel runs until it is stopped'))
      : c.number(obj.duration_s, 'input.duration_s', MIN_DURATION_S, MAX_DURATION_S, { required: true });
    if (!source || !resolution || fps === undefined || (!actor && duration_s === undefined)) return undefined;
    return dropUndefined({ kind: 'synthetic' as const, source, resolution, fps, duration_s, noise, audio, probe });
  }
  const p = checkInputPath(c, obj.path, ctx);
  const codec = c.oneOf(obj.codec, 'input.codec', INPUT_CODECS, false);
  const resolution = c.resolution(obj.resolution, 'input.resolution', false);
  const fps = c.number(obj.fps, 'input.fps', MIN_FPS, MAX_FPS, FPS_RULE);
  const bitrate_kbps = c.number(obj.bitrate_kbps, 'input.bitrate_kbps', MIN_INPUT_BITRATE_KBPS, MAX_BITRATE_KBPS);
  const duration_s = c.number(obj.duration_s, 'input.duration_s', MIN_DURATION_S, MAX_DURATION_S);
  if (!p) return undefined;
  return dropUndefined({ kind: 'file' as const, path: p, codec, resolution, fps, bitrate_kbps, duration_s, probe });
}

/** Fields a probe of a lavfi source may carry: its content complexity (the rest is its own settings). */
const SYNTHETIC_PROBE_FIELDS = ['by', 'si_mean', 'si_max', 'ti_mean', 'ti_max', 'siti_s'] as const;
const PROBE_FIELDS = [
  'by', 'width', 'height', 'fps', 'codec', 'pix_fmt', 'duration_s', 'frames', 'bitrate_kbps', 'audio_streams', 'size_bytes', 'mtime_ms',
  'si_mean', 'si_max', 'ti_mean', 'ti_max', 'siti_s',
] as const satisfies readonly (keyof InputProbe)[];
/** A codec or pixel format name as ffprobe prints it. */
const PROBE_NAME = /^[a-z0-9_]{1,32}$/;

/**
 * `input.probe`, whoever attached it: every figure in its physical range. Its width and height
 * need not be even (a probed file is what it is); the output's are checked where they are set.
 */
function checkProbe(c: Checker, raw: unknown, synthetic: boolean): InputProbe | undefined {
  const p = c.mapping(raw, 'input.probe', synthetic ? SYNTHETIC_PROBE_FIELDS : PROBE_FIELDS, false);
  if (!p) return undefined;
  const by = c.oneOf(p.by, 'input.probe.by', PROBE_ORIGINS);
  // `lo` 0 with `positive`: greater than 0; any other `lo`: at least that.
  const num = (k: keyof InputProbe, hi: number, integer = false, positive = true, lo = 0, loText?: string) =>
    c.number(p[k], `input.probe.${k}`, lo, hi, { integer, exclusiveLo: positive && lo === 0, loText });
  const name = (k: 'codec' | 'pix_fmt') => {
    const v = p[k];
    if (v === undefined || v === null) return undefined;
    return typeof v === 'string' && PROBE_NAME.test(v) ? v : c.fail(`input.probe.${k}`, `must be 1–32 lowercase letters, digits or underscores, got ${describeValue(v)}`);
  };
  const out: InputProbe = {
    by: by ?? 'submitter',
    width: num('width', MAX_DIMENSION, true), height: num('height', MAX_DIMENSION, true), fps: num('fps', MAX_FPS, false, true, MIN_FPS, FPS_RULE.loText),
    codec: name('codec'), pix_fmt: name('pix_fmt'),
    duration_s: num('duration_s', MAX_DURATION_S, false, true, MIN_DURATION_S), frames: num('frames', MAX_DURATION_S * MAX_FPS, true),
    bitrate_kbps: num('bitrate_kbps', MAX_BITRATE_KBPS, false, true, MIN_INPUT_BITRATE_KBPS), audio_streams: num('audio_streams', 64, true, false),
    size_bytes: num('size_bytes', 2 ** 53, true, false), mtime_ms: num('mtime_ms', 2 ** 53, false, false),
    // P.910's SI and TI are gradient and difference magnitudes of 8-bit luma: at most 255·√2 and 255.
    si_mean: num('si_mean', 400, false, false), si_max: num('si_max', 400, false, false),
    ti_mean: num('ti_mean', 400, false, false), ti_max: num('ti_max', 400, false, false), siti_s: num('siti_s', 600, false, true, MIN_DURATION_S),
  };
  return dropUndefined(out);
}

/** An input path as a submission's is checked (absolute, no control characters, under an allowed root); throws SchemaValidationError. */
export function validateInputPath(raw: unknown, ctx: ValidationContext): string {
  const c = new Checker();
  const p = checkInputPath(c, raw, ctx);
  if (p === undefined || c.issues.length) throw c.error();
  return p;
}

/** A probe as `input.probe` of a file is checked (every field in its range); throws SchemaValidationError. */
export function validateInputProbe(raw: unknown): InputProbe {
  const c = new Checker();
  const p = checkProbe(c, raw, false);
  if (!p && !c.issues.length) c.fail('input.probe', 'is required');
  if (!p || c.issues.length) throw c.error();
  return p;
}

/** A path is accepted only when, once normalised, it lies under an allowed root. */
function checkInputPath(c: Checker, v: unknown, ctx: ValidationContext): string | undefined {
  if (typeof v !== 'string' || v.length === 0) return c.fail('input.path', `must be a non-empty string, got ${describeValue(v)}`);
  if (v.includes('\0') || /[\r\n]/.test(v)) return c.fail('input.path', 'contains control characters');
  if (!path.isAbsolute(v)) return c.fail('input.path', `must be an absolute path, got ${describeValue(v)}`);
  const normal = path.resolve(v);
  const roots = ctx.allowedInputRoots.map((r) => path.resolve(r));
  if (!roots.some((r) => normal === r || normal.startsWith(r.endsWith(path.sep) ? r : r + path.sep))) {
    return c.fail('input.path', `${describeValue(normal)} is outside the allowed input roots (${roots.join(', ') || 'none configured'})`);
  }
  return normal;
}

function checkOutput(c: Checker, raw: unknown, ctx: ValidationContext, group: boolean, actor: boolean): OutputSpec | undefined {
  const obj = c.mapping(raw, 'output', ['codec', 'encoder', 'preset', 'rate_control', 'resolution', 'fps', 'gop', 'passes', 'options', 'path', 'format', 'rendition', 'audio']);
  if (!obj) return undefined;
  const codec = c.oneOf(obj.codec, 'output.codec', OUTPUT_CODECS);
  let encoder: Encoder | undefined;
  if (codec) encoder = obj.encoder === undefined ? (ENCODERS[codec][0] as Encoder) : (c.oneOf(obj.encoder, 'output.encoder', ENCODERS[codec] as readonly Encoder[]));
  let preset: string | undefined;
  if (encoder) preset = obj.preset === undefined ? DEFAULT_PRESET[encoder] : c.oneOf(obj.preset, 'output.preset', PRESETS[encoder]);
  const rate_control = encoder ? checkRateControl(c, obj.rate_control, encoder) : undefined;
  const resolution = c.resolution(obj.resolution, 'output.resolution', false);
  const fps = c.number(obj.fps, 'output.fps', MIN_FPS, MAX_FPS, FPS_RULE);
  const gop = c.number(obj.gop, 'output.gop', 1, 10_000, { integer: true });
  const passes = (c.number(obj.passes, 'output.passes', 1, 2, { integer: true }) ?? 1) as 1 | 2;
  if (passes === 2 && rate_control?.mode === 'crf') c.fail('output.passes', 'two-pass encoding needs rate_control.mode "bitrate"');
  // ffmpeg 5.1's libsvtav1 wrapper ignores -pass, so a "two-pass" encode would silently be one.
  if (passes === 2 && encoder && (GPU_ENCODERS.has(encoder) || encoder === 'libsvtav1')) c.fail('output.passes', `two-pass is not supported with ${encoder}`);
  const options: Record<string, string> = {};
  const rawOpts = c.object(obj.options, 'output.options', false);
  if (rawOpts && encoder) {
    for (const name of Object.keys(rawOpts)) {
      const value = (rawOpts as Record<string, unknown>)[name];
      const field = fieldPath('output.options', name);
      // Own properties only: `EXTRA_OPTIONS['constructor']` would otherwise be Object itself.
      const rule = Object.hasOwn(EXTRA_OPTIONS, name) ? EXTRA_OPTIONS[name] : undefined;
      if (!rule) { c.fail(field, `option is not in the allow-list (allowed: ${Object.keys(EXTRA_OPTIONS).join(', ')})`); continue; }
      if (!rule.encoders.includes(encoder)) { c.fail(field, `is not supported with encoder ${encoder}`); continue; }
      const s = typeof value === 'number' ? String(value) : value;
      if (typeof s !== 'string') { c.fail(field, `must be a string or number, got ${describeValue(value)}`); continue; }
      if (rule.values ? !rule.values.includes(s) : !rule.pattern!.test(s)) {
        c.fail(field, `value ${describeValue(s)} is not allowed${rule.values ? ` (expected one of: ${rule.values.join(', ')})` : ''}`);
        continue;
      }
      options[name] = s;
    }
  }
  const rendition = obj.rendition === undefined ? undefined
    : typeof obj.rendition === 'string' && /^[A-Za-z0-9_-]{1,32}$/.test(obj.rendition) ? obj.rendition
      : c.fail('output.rendition', `must be 1–32 letters, digits, underscores or hyphens, got ${describeValue(obj.rendition)}`);
  const p = obj.path === undefined ? undefined : checkOutputPath(c, obj.path, ctx, group);
  let format = c.oneOf(obj.format, 'output.format', OUTPUT_FORMATS, false);
  if (p !== undefined) {
    const ext = path.extname(p).slice(1);
    const fmt = format ?? (ext === 'm3u8' ? 'hls' : 'file');
    const want = fmt === 'hls' ? 'm3u8' : codec ? CONTAINER_OF[codec] : undefined;
    if (want && ext !== want) c.fail('output.path', `must end in .${want} for ${fmt === 'hls' ? 'an HLS output' : `a ${codec} file`}, got ${describeValue(path.basename(p))}`);
    if (fmt === 'hls') format = 'hls';
  }
  if (actor && (p !== undefined || format !== undefined)) c.fail(p !== undefined ? 'output.path' : 'output.format', 'an actor (a live channel) writes its rolling HLS window in the node\'s output directory');
  const audio = codec ? checkAudio(c, obj.audio, format === 'hls' ? 'hls' : CONTAINER_OF[codec]) : undefined;
  if (actor && audio && audio.mode !== 'none') c.fail('output.audio', 'an actor (a live channel) is video only: leave it out or set none');
  if (!codec || !encoder || !preset || !rate_control) return undefined;
  return dropUndefined({ codec, encoder, preset, rate_control, resolution, fps, gop, passes, options, path: p, format, rendition, audio });
}

/** The container a `file` output of each codec is written in (node-agent/ffmpeg/args.ts CONTAINERS). */
const CONTAINER_OF: Record<OutputCodec, 'mp4' | 'webm'> = { h264: 'mp4', hevc: 'mp4', av1: 'mp4', vp9: 'webm' };

/** `output.audio`: a mode's name, or `{ mode, bitrate_kbps }`; an encoded mode gets DEFAULT_AUDIO_KBPS. */
function checkAudio(c: Checker, raw: unknown, container: 'mp4' | 'webm' | 'hls'): AudioSpec | undefined {
  if (raw === undefined || raw === null) return undefined;
  let modeRaw: unknown, kbpsRaw: unknown;
  if (typeof raw === 'string') modeRaw = raw;
  else {
    const o = c.mapping(raw, 'output.audio', ['mode', 'bitrate_kbps']);
    if (!o) return undefined;
    [modeRaw, kbpsRaw] = [o.mode, o.bitrate_kbps];
  }
  const mode = c.oneOf(modeRaw, typeof raw === 'string' ? 'output.audio' : 'output.audio.mode', AUDIO_MODES);
  if (!mode) return undefined;
  const field = typeof raw === 'string' ? 'output.audio' : 'output.audio.mode';
  if (mode === 'aac' && container === 'webm') return c.fail(field, 'a WebM file (vp9) carries Opus or Vorbis audio, not AAC: use opus, copy or auto');
  if (mode === 'opus' && container !== 'webm') return c.fail(field, `Opus is written to WebM (vp9) outputs only; ${container === 'hls' ? 'HLS' : 'MP4'} gets aac, copy or auto`);
  if (mode === 'aac' || mode === 'opus') {
    const kbps = c.number(kbpsRaw, 'output.audio.bitrate_kbps', 8, mode === 'opus' ? 510 : 512, { integer: true }) ?? DEFAULT_AUDIO_KBPS;
    return { mode, bitrate_kbps: kbps };
  }
  if (kbpsRaw !== undefined) return c.fail('output.audio.bitrate_kbps', `applies to aac and opus only, not ${mode}`);
  return { mode };
}

/**
 * `output.path`: an absolute template whose placeholders are known, whose file name is
 * `[A-Za-z0-9._-]` and placeholders (it becomes ffmpeg's segment names for HLS), and which,
 * resolved, lies strictly inside an allowed output root. Placeholders expand to single path
 * segments that are never `.` or `..`, so what is checked here holds for every expansion.
 */
function checkOutputPath(c: Checker, v: unknown, ctx: ValidationContext, group: boolean): string | undefined {
  const field = 'output.path';
  if (typeof v !== 'string' || v.length === 0) return c.fail(field, `must be a non-empty string, got ${describeValue(v)}`);
  if (v.length > MAX_OUTPUT_PATH) return c.fail(field, `must be at most ${MAX_OUTPUT_PATH} characters, got ${v.length}`);
  if (/[\x00-\x1f\x7f]/.test(v)) return c.fail(field, 'contains control characters');
  if (!path.isAbsolute(v)) return c.fail(field, `must be an absolute path, got ${describeValue(v)}`);
  const used = new Set<string>();
  const literal = v.replace(/\{([^{}]*)\}/g, (_, name: string) => {
    used.add(name);
    return '';
  });
  const unknown = [...used].filter((n) => !(OUTPUT_PLACEHOLDERS as readonly string[]).includes(n));
  if (unknown.length) return c.fail(field, `unknown placeholder ${unknown.map((n) => `{${n}}`).join(', ')} (known: ${OUTPUT_PLACEHOLDERS.map((n) => `{${n}}`).join(', ')})`);
  if (/[{}]/.test(literal)) return c.fail(field, 'has a brace that is not part of a placeholder (braces are only for {placeholders})');
  if (used.has('group') && !group) return c.fail(field, 'uses {group}, but the job has no group');
  if (group && !['job_id', 'rendition', 'height', 'width'].some((n) => used.has(n))) {
    return c.fail(field, 'must tell a group\'s jobs apart with {job_id}, {rendition}, {height} or {width}, or every rendition would be written to the same file');
  }
  const normal = path.resolve(v);
  const base = path.basename(normal);
  if (!/^([A-Za-z0-9._-]|\{[a-z_]+\})+$/.test(base) || /^\.+$/.test(base)) {
    return c.fail(field, `file name ${describeValue(base)} must be letters, digits, dot, underscore, hyphen and placeholders`);
  }
  const roots = (ctx.allowedOutputRoots ?? []).map((r) => path.resolve(r));
  if (!roots.some((r) => normal.startsWith(r.endsWith(path.sep) ? r : r + path.sep))) {
    return c.fail(field, `${describeValue(normal)} is outside the allowed output roots (${roots.join(', ') || 'none configured: PRESCIENT_OUTPUT_ROOTS'})`);
  }
  return normal;
}

/** What `output.path`'s placeholders expand to; each value must be one safe path segment. */
export type OutputPathValues = Record<OutputPlaceholder, string | undefined>;
const SAFE_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * A validated `output.path` template with its placeholders expanded. Throws a
 * SchemaValidationError naming `output.path` when a value it uses is missing or is not one
 * safe path segment (so the result is still inside the root the template was checked against).
 */
export function expandOutputPath(template: string, values: OutputPathValues): string {
  const c = new Checker();
  const out = template.replace(/\{([a-z_]+)\}/g, (m, name: string) => {
    const value = (OUTPUT_PLACEHOLDERS as readonly string[]).includes(name) ? values[name as OutputPlaceholder] : undefined;
    if (value === undefined || !SAFE_SEGMENT.test(value)) {
      c.fail('output.path', `{${name}} has no value that is safe in a path here (${describeValue(value)})`);
      return m;
    }
    return value;
  });
  if (c.issues.length) throw c.error();
  return path.resolve(out);
}

/** `{rendition}`: the output's own name, else `<height>p` of its effective height, else `source`. */
export function renditionName(s: EncodingSchema, height?: number): string {
  const h = s.output.resolution?.height ?? height ?? knownInput(s).resolution?.height;
  return s.output.rendition ?? (h ? `${h}p` : 'source');
}

function checkRateControl(c: Checker, raw: unknown, encoder: Encoder): RateControl | undefined {
  const o = c.object(raw, 'output.rate_control');
  if (!o) return undefined;
  const mode = c.oneOf(own(o, 'mode'), 'output.rate_control.mode', ['crf', 'bitrate'] as const);
  if (mode === 'crf') {
    const obj = c.fields(o, 'output.rate_control', ['mode', 'crf']);
    const [lo, hi] = CRF_RANGE[encoder];
    const crf = c.number(obj.crf, 'output.rate_control.crf', lo, hi, { required: true, integer: true });
    return crf === undefined ? undefined : { mode, crf };
  }
  if (mode === 'bitrate') {
    const obj = c.fields(o, 'output.rate_control', ['mode', 'bitrate_kbps']);
    const kbps = c.number(obj.bitrate_kbps, 'output.rate_control.bitrate_kbps', MIN_OUTPUT_BITRATE_KBPS, MAX_BITRATE_KBPS, { required: true });
    return kbps === undefined ? undefined : { mode, bitrate_kbps: kbps };
  }
  return undefined;
}

/**
 * Checks every field of a submitted document and returns the typed schema with defaults
 * applied. Throws SchemaValidationError naming each wrong field.
 */
export function validateEncodingSchema(raw: unknown, ctx: ValidationContext): EncodingSchema {
  const c = new Checker();
  const doc = c.mapping(raw, '(document)', ['kind', 'input', 'output', 'priority', 'submitter', 'deadline', 'group'], true, '');
  if (!doc) throw c.error();
  const kind = doc.kind === undefined ? 'task' : c.oneOf(doc.kind, 'kind', WORK_KINDS);
  const actor = kind === 'actor';
  const input = checkInput(c, doc.input, ctx, actor);
  const output = checkOutput(c, doc.output, ctx, doc.group !== undefined && doc.group !== null, actor);
  if (actor && output?.passes === 2) c.fail('output.passes', 'an actor (a live channel) encodes in one pass');
  if (actor && doc.deadline !== undefined) c.fail('deadline', 'an actor runs until it is stopped, so it has no deadline');
  const priority = doc.priority === undefined ? 'standard' : c.oneOf(doc.priority, 'priority', SLA_CLASSES);
  let submitter: string | undefined = 'anonymous';
  if (doc.submitter !== undefined) {
    submitter = typeof doc.submitter === 'string' && /^[A-Za-z0-9._@-]{1,64}$/.test(doc.submitter)
      ? doc.submitter
      : c.fail('submitter', 'must be 1–64 characters of letters, digits, dot, underscore, @ or hyphen');
  }
  let deadline: string | undefined;
  if (doc.deadline !== undefined) {
    // Short strings only: a date needs no more, and Date's parser need not see 600 KB.
    const t = (typeof doc.deadline === 'string' && doc.deadline.length <= 64) || doc.deadline instanceof Date ? new Date(doc.deadline as string) : undefined;
    const ms = t?.getTime() ?? NaN;
    if (!t || Number.isNaN(ms)) c.fail('deadline', `must be an ISO 8601 date-time, got ${describeValue(doc.deadline)}`);
    else if (ms < MIN_DEADLINE_MS || ms > MAX_DEADLINE_MS) c.fail('deadline', `must be between 1970 and 9999, got ${describeValue(doc.deadline)}`);
    else deadline = t.toISOString();
  }
  const group = checkGroup(c, doc.group);
  if (c.issues.length || !input || !output || !priority || !submitter) throw c.error();
  return dropUndefined({ kind: actor ? ('actor' as const) : undefined, input, output, priority, submitter, deadline, group });
}

/** Whether a schema is a live channel that holds its reservation until stopped. */
export const isActor = (s: EncodingSchema): boolean => s.kind === 'actor';

function checkGroup(c: Checker, raw: unknown): JobGroup | undefined {
  const g = c.mapping(raw, 'group', ['id', 'size', 'placement'], false);
  if (!g) return undefined;
  const id = typeof g.id === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(g.id) ? g.id : c.fail('group.id', 'must be 1–64 letters, digits, underscores or hyphens');
  const size = c.number(g.size, 'group.size', 2, MAX_GROUP_SIZE, { required: true, integer: true });
  const placement = g.placement === undefined ? 'spread' : c.oneOf(g.placement, 'group.placement', GROUP_PLACEMENTS);
  return id && size !== undefined && placement ? { id, size, placement } : undefined;
}

/**
 * What is known of the input: its own settings where the submitter gave them, else what the
 * probe found. The duration is what will be encoded: the submitted `duration_s` cut, when the
 * file is at least that long.
 */
export function knownInput(s: EncodingSchema): { resolution?: Resolution; fps?: number; duration_s?: number } {
  const inp = s.input, p = inp.probe;
  const probed = p?.width && p.height ? { width: p.width, height: p.height } : undefined;
  const cut = inp.duration_s, whole = p?.duration_s;
  return {
    resolution: inp.resolution ?? probed,
    fps: inp.fps ?? p?.fps,
    duration_s: cut !== undefined && whole !== undefined ? Math.min(cut, whole) : cut ?? whole,
  };
}

/** Effective output geometry: the output's own settings, else the input's when known (given or probed). */
export function effectiveOutput(s: EncodingSchema): { resolution?: Resolution; fps?: number; duration_s?: number } {
  const inp = knownInput(s);
  return {
    resolution: s.output.resolution ?? inp.resolution,
    fps: s.output.fps ?? inp.fps,
    duration_s: inp.duration_s,
  };
}

/** A copy without the undefined fields (copied, not deleted: `delete` leaves V8 a slow dictionary object). */
function dropUndefined<T extends object>(o: T): T {
  const out = {} as T;
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
