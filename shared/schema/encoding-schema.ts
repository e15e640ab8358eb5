/**
 * EncodingSchema: what a submitter asks for. Staged as types, as Temporal's worker options are:
 * `unknown` user document → `validateEncodingSchema` → `EncodingSchema` (every field checked,
 * defaults applied). Nothing downstream ever sees an unchecked string.
 *
 * One source: the valibot schema `JobSchema` below gives the TypeScript types (InferOutput), the
 * validation (every wrong field at once, named by its path) and the JSON Schema that
 * `prescient schema` prints and `schema/job.schema.json` ships for editors.
 */
import path from 'node:path';
import { SchemaValidationError, describeValue, type FieldIssue } from '../errors.js';
import { advertised, crossCheck, described, either, first, flag, fragment, jsonSchemaOf, mapping, num, oneOf, optional, parseDocument, refuse, text, v } from './kit.js';

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


/** Where input files and `output.path`s may lie: set for each validation (parses are synchronous). */
export interface ValidationContext {
  /** Absolute directories an input file must live under. */
  allowedInputRoots: readonly string[];
  /** Absolute directories an `output.path` must lie under; absent or empty: no job may name one. */
  allowedOutputRoots?: readonly string[];
}
let roots: ValidationContext = { allowedInputRoots: [] };

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

const fps = (what: string) => described(num({ min: MIN_FPS, max: MAX_FPS, minText: '1/1001' }), what);
/** `o[k]` when `o` has it as its own: never a member of Object.prototype such as `constructor`. */
const own = (o: object, k: string): unknown => (Object.hasOwn(o, k) ? (o as Record<string, unknown>)[k] : undefined);

// ---------------------------------------------------------------------------------------------
// Pictures: `1920x1080` or { width, height }, even for 4:2:0 video.

const RESOLUTION_TEXT = /^(\d{1,5})x(\d{1,5})$/;
const side = (what: string) => described(num({ above: 0, max: MAX_DIMENSION, integer: true }), what);
const ResolutionMapping = mapping({ width: side('Pixels across.'), height: side('Pixels down.') }, { notMapping: 'must be WIDTHxHEIGHT (1920x1080) or {width, height}' });
const Resolution = advertised(
  v.pipe(
    v.unknown(),
    v.transform((x) => {
      const m = typeof x === 'string' ? RESOLUTION_TEXT.exec(x.trim()) : null;
      return m ? { width: Number(m[1]), height: Number(m[2]) } : x;
    }),
    ResolutionMapping,
    v.check(({ width, height }) => width % 2 === 0 && height % 2 === 0, (i) => {
      const r = i.input as { width: number; height: number };
      return `width and height must be even for 4:2:0 video, got ${r.width}x${r.height}`;
    }),
  ),
  () => ({
    description: 'Picture size: "WIDTHxHEIGHT" or {width, height}; both even (4:2:0 video).',
    anyOf: [{ type: 'string', pattern: RESOLUTION_TEXT.source, examples: ['1920x1080', '1280x720'] }, fragment(ResolutionMapping)],
  }),
);
export type Resolution = v.InferOutput<typeof Resolution>;

// ---------------------------------------------------------------------------------------------
// The input: a file, or an ffmpeg test source; and what a probe of it found.

export const PROBE_ORIGINS = ['submitter', 'node'] as const;
export type ProbeOrigin = (typeof PROBE_ORIGINS)[number];
/** A codec or pixel format name as ffprobe prints it. */
const probeName = () => optional(text(/^[a-z0-9_]{1,32}$/, 'must be 1–32 lowercase letters, digits or underscores'));
/** P.910's SI and TI are gradient and difference magnitudes of 8-bit luma: at most 255·√2 and 255. */
const siti = () => optional(num({ min: 0, max: 400 }));
/** What a probe says of a lavfi source: its content complexity (the rest is its own settings). */
const SITI_FIELDS = {
  by: described(oneOf(PROBE_ORIGINS), 'Who probed: the submitter\'s machine, or a node of the cluster the leader asked.'),
  si_mean: siti(), si_max: siti(), ti_mean: siti(), ti_max: siti(),
  siti_s: optional(described(num({ min: MIN_DURATION_S, max: 600 }), 'Seconds of video the SI/TI sample covers (ffmpeg\'s siti filter, ITU-T P.910).')),
};
/**
 * A test encode of the job's first frames with its own output settings (one pass, one thread,
 * no audio, nothing written): what this content costs this encoder at these settings, which no
 * field of the schema says (x264 `slow` took 22 times the CPU on 320x240 testsrc2 with noise 40
 * at CRF 18 as on the clean picture at CRF 34, measured). node-agent/ffmpeg/probe.ts
 * measurePilot runs it; the model reads CPU per frame, bits and peak memory from it.
 */
export const PILOT_FRAMES_MAX = 240;
const Pilot = described(mapping({
  frames: described(num({ above: 0, max: PILOT_FRAMES_MAX, integer: true }), 'Frames the test encode made.'),
  cpu_s: described(num({ min: 0, max: 3600 }), 'CPU seconds it took (user + system), on one thread.'),
  video_kb: optional(described(num({ min: 0, max: 2 ** 31, integer: true }), 'Kilobytes of video it made, as ffmpeg counts them.')),
  memory_mb: optional(described(num({ above: 0, max: 2 ** 31 }), 'Peak resident memory of its ffmpeg process, MB.')),
}), 'A test encode of the job\'s first frames with its own output settings (one pass, one thread, no audio).');
export type PilotEncode = v.InferOutput<typeof Pilot>;
const SyntheticProbe = mapping({ ...SITI_FIELDS, pilot: optional(Pilot) });
/**
 * What a probe of the input found before the job was predicted: `prescient submit` probes a file
 * it can read (and a synthetic source's content complexity), and where the submitter could not,
 * the leader asks a node to (node-agent/ffmpeg/probe.ts). Every figure is optional: a probe
 * reports what ffprobe could tell. Its width and height need not be even (a probed file is what
 * it is); the output's are checked where they are set.
 */
const Probe = described(mapping({
  by: SITI_FIELDS.by,
  width: optional(num({ above: 0, max: MAX_DIMENSION, integer: true })),
  height: optional(num({ above: 0, max: MAX_DIMENSION, integer: true })),
  fps: optional(fps('The first video stream\'s frame rate.')),
  codec: probeName(),
  pix_fmt: probeName(),
  duration_s: optional(described(num({ min: MIN_DURATION_S, max: MAX_DURATION_S }), 'Seconds of video.')),
  frames: optional(described(num({ above: 0, max: MAX_DURATION_S * MAX_FPS, integer: true }), 'Frames, counted by the container where it says, else fps × duration.')),
  bitrate_kbps: optional(described(num({ min: MIN_INPUT_BITRATE_KBPS, max: MAX_BITRATE_KBPS }), 'The video stream\'s bitrate (the container\'s where the stream has none).')),
  audio_streams: optional(num({ min: 0, max: 64, integer: true })),
  size_bytes: optional(described(num({ min: 0, max: 2 ** 53, integer: true }), 'The file\'s size when probed (a probe of another version of the file is stale).')),
  mtime_ms: optional(num({ min: 0, max: 2 ** 53 })),
  si_mean: SITI_FIELDS.si_mean, si_max: SITI_FIELDS.si_max, ti_mean: SITI_FIELDS.ti_mean, ti_max: SITI_FIELDS.ti_max, siti_s: SITI_FIELDS.siti_s,
  pilot: optional(Pilot),
}), 'What a probe of the input found (attached by `prescient submit`, or by a node the leader asked).');
export type InputProbe = v.InferOutput<typeof Probe>;

/** An input path: absolute, no control characters, and, once normalised, under an allowed root. */
const InputPath = described(first(v.pipe(
  v.string((i) => `must be a non-empty string, got ${describeValue(i.input)}`),
  v.minLength(1, 'must be a non-empty string, got ""'),
  v.check((p) => !p.includes('\0') && !/[\r\n]/.test(p), 'contains control characters'),
  v.check((p) => path.isAbsolute(p), (i) => `must be an absolute path, got ${describeValue(i.input)}`),
  v.transform((p) => path.resolve(p)),
  v.check((p) => underRoot(p, roots.allowedInputRoots, true), (i) => {
    const listed = roots.allowedInputRoots.map((r) => path.resolve(r)).join(', ') || 'none configured';
    return `${describeValue(i.input)} is outside the allowed input roots (${listed})`;
  }),
)), 'Absolute path of the input file, inside one of the allowed input roots (PRESCIENT_INPUT_ROOTS).');

/** Whether normalised `p` lies under one of `dirs` (or is one, where `itself`). */
function underRoot(p: string, dirs: readonly string[], itself: boolean): boolean {
  return dirs.some((d) => {
    const r = path.resolve(d);
    return (itself && p === r) || p.startsWith(r.endsWith(path.sep) ? r : r + path.sep);
  });
}

const SYNTHETIC_SOURCE = described(oneOf(SYNTHETIC_SOURCES), 'The lavfi test source; they differ in content complexity.');
const NOISE = optional(described(num({ min: 0, max: 100 }), '0–100: strength of temporal noise added to raise content complexity.'), 0);
const TONE = optional(described(flag(), 'A 1 kHz stereo test tone alongside the picture (lavfi `sine`).'));
const INPUT_FPS = fps('Frames per second.');
const INPUT_DURATION = described(num({ min: MIN_DURATION_S, max: MAX_DURATION_S }), 'Seconds to encode; a synthetic task needs it, an actor (a live channel) must not have it.');

/** The two forms of a synthetic input, as written and as validated (`kind`-tagged); one output. */
const syntheticInput = (s: { source: SyntheticSource; noise: number; audio?: boolean }, o: {
  resolution: Resolution; fps: number; duration_s?: number; probe?: v.InferOutput<typeof SyntheticProbe>;
}) => compact({ kind: 'synthetic' as const, source: s.source, resolution: o.resolution, fps: o.fps, duration_s: o.duration_s, noise: s.noise, audio: s.audio ? (true as const) : undefined, probe: o.probe as InputProbe | undefined });
const SyntheticWritten = v.pipe(mapping({
  synthetic: described(mapping({ source: SYNTHETIC_SOURCE, noise: NOISE, audio: TONE }), 'An ffmpeg test source as the input.'),
  resolution: Resolution, fps: INPUT_FPS, duration_s: optional(INPUT_DURATION), probe: optional(SyntheticProbe),
}), v.transform((o) => syntheticInput(o.synthetic, o)));
const SyntheticTagged = v.pipe(mapping({
  kind: v.literal('synthetic'), source: SYNTHETIC_SOURCE, noise: NOISE, audio: TONE,
  resolution: Resolution, fps: INPUT_FPS, duration_s: optional(INPUT_DURATION), probe: optional(SyntheticProbe),
}), v.transform((o) => syntheticInput(o, o)));

const FILE_FIELDS = {
  path: InputPath,
  codec: optional(described(oneOf(INPUT_CODECS), 'The input\'s codec, where known (a model feature only).')),
  resolution: optional(Resolution),
  fps: optional(INPUT_FPS),
  bitrate_kbps: optional(num({ min: MIN_INPUT_BITRATE_KBPS, max: MAX_BITRATE_KBPS })),
  duration_s: optional(described(num({ min: MIN_DURATION_S, max: MAX_DURATION_S }), 'Encode only this many seconds from the start.')),
  probe: optional(Probe),
};
type FileFields = { path: string; codec?: InputCodec; resolution?: Resolution; fps?: number; bitrate_kbps?: number; duration_s?: number; probe?: InputProbe };
const fileInput = (o: FileFields) => compact({ kind: 'file' as const, path: o.path, codec: o.codec, resolution: o.resolution, fps: o.fps, bitrate_kbps: o.bitrate_kbps, duration_s: o.duration_s, probe: o.probe });
const FileWritten = v.pipe(mapping(FILE_FIELDS), v.transform((o) => fileInput(o)));
const FileTagged = v.pipe(mapping({ kind: v.literal('file', (i) => `must be "synthetic" or "file", got ${describeValue(i.input)}`), ...FILE_FIELDS }), v.transform((o) => fileInput(o)));

const ONE_INPUT = 'must have exactly one of `path` (a file) or `synthetic` (an ffmpeg test source)';
const EitherInput = refuse(ONE_INPUT);

/** Which form an input is written in: a file or a test source, as written or as validated. */
function inputForm(x: unknown) {
  if (!x || typeof x !== 'object' || Array.isArray(x)) return FileWritten; // says it is required, or not a mapping
  const kind = own(x, 'kind');
  if (kind !== undefined && kind !== 'synthetic' && kind !== 'file') return refuse(`must be "synthetic" or "file", got ${describeValue(kind)}`, 'kind');
  const hasPath = own(x, 'path') !== undefined, hasSynth = kind === 'synthetic' || own(x, 'synthetic') !== undefined;
  if (hasPath === hasSynth) return EitherInput;
  if (hasSynth) return kind === undefined ? SyntheticWritten : SyntheticTagged;
  return kind === undefined ? FileWritten : FileTagged;
}
const Input = advertised(v.lazy(inputForm) as v.GenericSchema<unknown, v.InferOutput<typeof SyntheticWritten> | v.InferOutput<typeof FileWritten>>, () => ({
  description: 'What to encode: a file (`path`) or an ffmpeg test source (`synthetic`).',
  anyOf: [fragment(FileWritten), fragment(SyntheticWritten)],
}));
export type InputSpec = v.InferOutput<typeof Input>;
export type SyntheticInput = Extract<InputSpec, { kind: 'synthetic' }>;
export type FileInput = Extract<InputSpec, { kind: 'file' }>;

// ---------------------------------------------------------------------------------------------
// The output.

const ALL_ENCODERS = [...new Set(Object.values(ENCODERS).flat())] as Encoder[];
const ALL_PRESETS = [...new Set(Object.values(PRESETS).flat())];
const CRF_MAX = Math.max(...Object.values(CRF_RANGE).map(([, hi]) => hi));

const Crf = mapping({ mode: v.literal('crf'), crf: described(num({ min: 0, max: CRF_MAX, integer: true }), 'Constant rate factor: 0–51 for x264/x265/NVENC h264 and hevc, 0–63 for vp9 and AV1 (0–255 for av1_nvenc).') });
const Bitrate = mapping({ mode: v.literal('bitrate'), bitrate_kbps: described(num({ min: MIN_OUTPUT_BITRATE_KBPS, max: MAX_BITRATE_KBPS }), 'Target video bitrate in kbit/s.') });
const RATE_MODE = oneOf(['crf', 'bitrate'] as const);
/** A mapping picks its form by `mode`; what is not one is refused by the CRF form's messages. */
function rateForm(x: unknown) {
  if (!x || typeof x !== 'object' || Array.isArray(x)) return Crf;
  const mode = own(x, 'mode');
  return mode === 'crf' ? Crf : mode === 'bitrate' ? Bitrate : RateModeOnly;
}
/** Where the mode is wrong, only the mode is named: which other keys belong depends on it. */
const RateModeOnly = v.object({ mode: RATE_MODE }, (i) => (i.expected?.startsWith('"') ? 'is required' : `must be a mapping, got ${describeValue(i.input)}`));
const RateControl = advertised(v.lazy(rateForm) as v.GenericSchema<unknown, v.InferOutput<typeof Crf> | v.InferOutput<typeof Bitrate>>, () => ({
  description: 'Rate control: a constant rate factor, or a target bitrate.',
  oneOf: [fragment(Crf), fragment(Bitrate)],
}));
export type RateControl = v.InferOutput<typeof RateControl>;

const optionValue = (name: string, rule: { values?: readonly string[]; pattern?: RegExp }) => {
  const notAllowed = (i: v.BaseIssue<unknown>) => `value ${describeValue(i.input)} is not allowed${rule.values ? ` (expected one of: ${rule.values.join(', ')})` : ''}`;
  return optional(described(first(v.pipe(
    v.unknown(),
    v.transform((x) => (typeof x === 'number' ? String(x) : x)),
    v.string((i) => `must be a string or number, got ${describeValue(i.input)}`),
    rule.values ? v.picklist(rule.values as string[], notAllowed) : v.regex(rule.pattern!, notAllowed),
  )), `ffmpeg's -${name} (encoders: ${EXTRA_OPTIONS[name].encoders.join(', ')}).`));
};
const Options = mapping(
  Object.fromEntries(Object.entries(EXTRA_OPTIONS).map(([name, rule]) => [name, optionValue(name, rule)])) as Record<string, ReturnType<typeof optionValue>>,
  { unknown: () => `option is not in the allow-list (allowed: ${Object.keys(EXTRA_OPTIONS).join(', ')})` },
);

/** `output.audio`: a mode's name, or `{ mode, bitrate_kbps }`. */
const AUDIO_MODE = described(oneOf(AUDIO_MODES), 'auto: kept when the input has audio (copied where the container carries its codec, else encoded); copy; aac or opus: encoded; none: dropped.');
const AudioMapping = mapping({ mode: AUDIO_MODE, bitrate_kbps: optional(described(num({ min: 8, max: 512, integer: true }), 'For aac (8–512) and opus (8–510); default 128.')) });
const AudioWritten = v.pipe(AUDIO_MODE, v.transform((mode) => ({ mode }) as { mode: AudioMode; bitrate_kbps?: number }));
const Audio = described(
  either({ text: AudioWritten, mapping: AudioMapping }, `must be a mode (${AUDIO_MODES.join(', ')}) or { mode, bitrate_kbps }`),
  'What becomes of the input\'s audio (default auto).',
);

/**
 * `output.path`: an absolute template whose placeholders are known, whose file name is
 * `[A-Za-z0-9._-]` and placeholders (it becomes ffmpeg's segment names for HLS), and which,
 * resolved, lies strictly inside an allowed output root. Placeholders expand to single path
 * segments that are never `.` or `..`, so what is checked here holds for every expansion.
 */
const OutputPath = described(first(v.pipe(
  v.string((i) => `must be a non-empty string, got ${describeValue(i.input)}`),
  v.minLength(1, 'must be a non-empty string, got ""'),
  v.maxLength(MAX_OUTPUT_PATH, (i) => `must be at most ${MAX_OUTPUT_PATH} characters, got ${(i.input as string).length}`),
  v.check((p) => !/[\x00-\x1f\x7f]/.test(p), 'contains control characters'),
  v.check((p) => path.isAbsolute(p), (i) => `must be an absolute path, got ${describeValue(i.input)}`),
  v.check((p) => placeholders(p).every((n) => (OUTPUT_PLACEHOLDERS as readonly string[]).includes(n)), (i) => {
    const unknown = placeholders(i.input as string).filter((n) => !(OUTPUT_PLACEHOLDERS as readonly string[]).includes(n));
    return `unknown placeholder ${unknown.map((n) => `{${n}}`).join(', ')} (known: ${OUTPUT_PLACEHOLDERS.map((n) => `{${n}}`).join(', ')})`;
  }),
  v.check((p) => !/[{}]/.test(p.replace(/\{([^{}]*)\}/g, '')), 'has a brace that is not part of a placeholder (braces are only for {placeholders})'),
  v.transform((p) => path.resolve(p)),
  v.check((p) => /^([A-Za-z0-9._-]|\{[a-z_]+\})+$/.test(path.basename(p)) && !/^\.+$/.test(path.basename(p)),
    (i) => `file name ${describeValue(path.basename(i.input as string))} must be letters, digits, dot, underscore, hyphen and placeholders`),
  v.check((p) => underRoot(p, roots.allowedOutputRoots ?? [], false), (i) => {
    const listed = (roots.allowedOutputRoots ?? []).map((r) => path.resolve(r)).join(', ') || 'none configured: PRESCIENT_OUTPUT_ROOTS';
    return `${describeValue(i.input)} is outside the allowed output roots (${listed})`;
  }),
)), `Where the output goes: an absolute path template inside the allowed output roots (PRESCIENT_OUTPUT_ROOTS), e.g. /srv/out/{group}/{rendition}.m3u8, its file name ending in .mp4, .webm or .m3u8; placeholders: ${OUTPUT_PLACEHOLDERS.map((n) => `{${n}}`).join(' ')}. Absent: <agent output dir>/<job id>.<ext>.`);
/** The placeholder names a template uses. */
const placeholders = (p: string) => [...p.matchAll(/\{([^{}]*)\}/g)].map((m) => m[1]);

/** The container a `file` output of each codec is written in (node-agent/ffmpeg/args.ts CONTAINERS). */
const CONTAINER_OF: Record<OutputCodec, 'mp4' | 'webm'> = { h264: 'mp4', hevc: 'mp4', av1: 'mp4', vp9: 'webm' };
const defaultEncoder = (codec: OutputCodec, encoder?: Encoder): Encoder => encoder ?? (ENCODERS[codec][0] as Encoder);

const OutputFields = mapping({
  codec: described(oneOf(OUTPUT_CODECS), 'The output video codec.'),
  encoder: optional(described(oneOf(ALL_ENCODERS), `The ffmpeg encoder; it must encode the codec (${OUTPUT_CODECS.map((c) => `${c}: ${ENCODERS[c].join(', ')}`).join('; ')}). Default: the first listed; NVENC encoders need a GPU node.`)),
  preset: optional(described(oneOf(ALL_PRESETS), `The encoder's preset (x264/x265: ultrafast…veryslow; NVENC: p1…p7; libvpx-vp9 and libaom-av1: cpu-used 0–8; libsvtav1: 0–13).`)),
  rate_control: RateControl,
  resolution: optional(Resolution),
  fps: optional(fps('Output frame rate; absent: the input\'s.')),
  gop: optional(described(num({ min: 1, max: 10_000, integer: true }), 'Keyframe interval in frames.')),
  passes: optional(num({ min: 1, max: 2, integer: true }), 1),
  options: optional(described(Options, 'Extra encoder options from an allow-list.')),
  path: optional(OutputPath),
  format: optional(described(oneOf(OUTPUT_FORMATS), 'file: one MP4 (h264, hevc, av1) or WebM (vp9) file; hls: a VOD HLS rendition (fMP4 segments). Absent: file, or hls where path ends in .m3u8.')),
  rendition: optional(described(text(/^[A-Za-z0-9_-]{1,32}$/, 'must be 1–32 letters, digits, underscores or hyphens'), 'This rendition\'s name in a ladder ({rendition}); absent: <height>p.')),
  audio: optional(Audio),
});
type OutputFields = v.InferOutput<typeof OutputFields>;

const Output = v.pipe(
  OutputFields,
  crossCheck<OutputFields>([['codec'], ['encoder']], (o, fail) => {
    if (o.encoder && !ENCODERS[o.codec].includes(o.encoder)) fail(['encoder'], `unknown value ${describeValue(o.encoder)} (expected one of: ${ENCODERS[o.codec].join(', ')})`);
  }),
  crossCheck<OutputFields>([['codec'], ['encoder'], ['preset']], (o, fail) => {
    const encoder = defaultEncoder(o.codec, o.encoder);
    if (o.preset !== undefined && ENCODERS[o.codec].includes(encoder) && !PRESETS[encoder].includes(o.preset)) {
      fail(['preset'], `unknown value ${describeValue(o.preset)} (expected one of: ${PRESETS[encoder].join(', ')})`);
    }
  }),
  crossCheck<OutputFields>([['codec'], ['encoder'], ['rate_control']], (o, fail) => {
    const encoder = defaultEncoder(o.codec, o.encoder);
    if (o.rate_control.mode !== 'crf' || !ENCODERS[o.codec].includes(encoder)) return;
    const [lo, hi] = CRF_RANGE[encoder];
    if (o.rate_control.crf < lo || o.rate_control.crf > hi) fail(['rate_control', 'crf'], `must be at most ${hi} for ${encoder}, got ${o.rate_control.crf}`);
  }),
  crossCheck<OutputFields>([['codec'], ['encoder'], ['passes'], ['rate_control']], (o, fail) => {
    if (o.passes !== 2) return;
    const encoder = defaultEncoder(o.codec, o.encoder);
    if (o.rate_control.mode === 'crf') fail(['passes'], 'two-pass encoding needs rate_control.mode "bitrate"');
    // ffmpeg 5.1's libsvtav1 wrapper ignores -pass, so a "two-pass" encode would silently be one.
    if (GPU_ENCODERS.has(encoder) || encoder === 'libsvtav1') fail(['passes'], `two-pass is not supported with ${encoder}`);
  }),
  crossCheck<OutputFields>([['codec'], ['encoder'], ['options']], (o, fail) => {
    const encoder = defaultEncoder(o.codec, o.encoder);
    for (const name of Object.keys(o.options ?? {})) {
      if (!EXTRA_OPTIONS[name].encoders.includes(encoder)) fail(['options', name], `is not supported with encoder ${encoder}`);
    }
  }),
  crossCheck<OutputFields>([['codec'], ['path'], ['format']], (o, fail) => {
    if (o.path === undefined) return;
    const ext = path.extname(o.path).slice(1);
    const hls = (o.format ?? (ext === 'm3u8' ? 'hls' : 'file')) === 'hls';
    const want = hls ? 'm3u8' : CONTAINER_OF[o.codec];
    if (ext !== want) fail(['path'], `must end in .${want} for ${hls ? 'an HLS output' : `a ${o.codec} file`}, got ${describeValue(path.basename(o.path))}`);
  }),
  crossCheck<OutputFields>([['codec'], ['path'], ['format'], ['audio']], (o, fail) => {
    if (!o.audio) return;
    const container = outputFormat(o) === 'hls' ? 'hls' : CONTAINER_OF[o.codec];
    const { mode, bitrate_kbps } = o.audio;
    const at = ['audio', 'mode'];
    if (mode === 'aac' && container === 'webm') fail(at, 'a WebM file (vp9) carries Opus or Vorbis audio, not AAC: use opus, copy or auto');
    else if (mode === 'opus' && container !== 'webm') fail(at, `Opus is written to WebM (vp9) outputs only; ${container === 'hls' ? 'HLS' : 'MP4'} gets aac, copy or auto`);
    else if (mode === 'opus' && bitrate_kbps !== undefined && bitrate_kbps > 510) fail(['audio', 'bitrate_kbps'], `must be at most 510, got ${bitrate_kbps}`);
    else if (mode !== 'aac' && mode !== 'opus' && bitrate_kbps !== undefined) fail(['audio', 'bitrate_kbps'], `applies to aac and opus only, not ${mode}`);
  }),
  v.transform((o) => {
    const encoder = defaultEncoder(o.codec, o.encoder);
    const { mode, bitrate_kbps } = o.audio ?? {};
    const audio = mode === undefined ? undefined
      : mode === 'aac' || mode === 'opus' ? { mode, bitrate_kbps: bitrate_kbps ?? DEFAULT_AUDIO_KBPS } : { mode };
    return compact({
      codec: o.codec, encoder, preset: (o.preset ?? DEFAULT_PRESET[encoder]) as string, rate_control: o.rate_control, resolution: o.resolution,
      fps: o.fps, gop: o.gop, passes: o.passes as 1 | 2, options: (o.options ?? {}) as Record<string, string>, path: o.path,
      format: o.path !== undefined && outputFormat(o) === 'hls' ? ('hls' as const) : o.format, rendition: o.rendition, audio: audio as AudioSpec | undefined,
    });
  }),
);
/** `file` unless set, or unless the path ends in .m3u8. */
function outputFormat(o: { path?: string; format?: OutputFormat }): OutputFormat {
  return o.format ?? (o.path !== undefined && path.extname(o.path) === '.m3u8' ? 'hls' : 'file');
}
export type OutputSpec = v.InferOutput<typeof Output>;

// ---------------------------------------------------------------------------------------------
// The job.

/**
 * Jobs that belong together, such as the renditions of one source in an ABR ladder: placed all
 * at once or not at all, on one node (`together`) or each on a different node (`spread`).
 */
const Group = mapping({
  id: described(text(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1–64 letters, digits, underscores or hyphens'), 'The group\'s id, the same in each of its jobs.'),
  size: described(num({ min: 2, max: MAX_GROUP_SIZE, integer: true }), 'How many jobs the group has: none is placed until all have arrived.'),
  placement: optional(described(oneOf(GROUP_PLACEMENTS), 'together: all on one node; spread: each on a different node.'), 'spread'),
});
export type JobGroup = v.InferOutput<typeof Group>;

const Deadline = advertised(first(v.pipe(
  v.unknown(),
  // Short strings only: a date needs no more, and Date's parser need not see 600 KB.
  v.check((x) => (typeof x === 'string' && x.length <= 64) || x instanceof Date, (i) => `must be an ISO 8601 date-time, got ${describeValue(i.input)}`),
  v.transform((x) => new Date(x as string | Date).getTime()),
  v.check((ms) => !Number.isNaN(ms), (i) => `must be an ISO 8601 date-time, got ${describeValue(i.input)}`),
  v.check((ms) => ms >= MIN_DEADLINE_MS && ms <= MAX_DEADLINE_MS, (i) => `must be between 1970 and 9999, got ${new Date(i.input as number).toISOString()}`),
  v.transform((ms) => new Date(ms).toISOString()),
)), { type: 'string', format: 'date-time', description: 'Optional completion deadline (ISO 8601); an actor has none.' });

const DocumentFields = mapping({
  kind: optional(described(oneOf(WORK_KINDS), 'task (the default): a batch encode that ends when its input is encoded; actor: a live channel that holds its reservation until `prescient stop`.')),
  input: Input,
  output: described(Output, 'How to encode: codec, encoder, preset, rate control, size, where the output goes and what becomes of the audio.'),
  priority: optional(described(oneOf(SLA_CLASSES), 'Service class, most urgent first.'), 'standard'),
  submitter: optional(described(text(/^[A-Za-z0-9._@-]{1,64}$/, 'must be 1–64 characters of letters, digits, dot, underscore, @ or hyphen'), 'Who submitted the job.'), 'anonymous'),
  deadline: optional(Deadline),
  group: optional(described(Group, 'Jobs placed together or not at all, such as the renditions of an ABR ladder.')),
});
type DocumentFields = v.InferOutput<typeof DocumentFields>;
const ACTOR_OUTPUT = 'an actor (a live channel) writes its rolling HLS window in the node\'s output directory';

/** The job schema: one source for the type, the validation and the JSON Schema (`prescient schema`). */
export const JobSchema = v.pipe(
  DocumentFields,
  // A kind that is neither is read as a task, as `kind` is named wrong on its own.
  crossCheck<DocumentFields>([['input']], (d, fail) => {
    if (d.input.kind !== 'synthetic') return;
    // A live source has no end: a duration would say the channel stops by itself, which it does not.
    if (d.kind === 'actor' && d.input.duration_s !== undefined) fail(['input', 'duration_s'], 'must not be set for an actor: a live channel runs until it is stopped');
    if (d.kind !== 'actor' && d.input.duration_s === undefined) fail(['input', 'duration_s'], 'is required');
  }),
  crossCheck<DocumentFields>([['kind'], ['output'], ['deadline']], (d, fail) => {
    if (d.kind !== 'actor') return;
    if (d.output.passes === 2) fail(['output', 'passes'], 'an actor (a live channel) encodes in one pass');
    if (d.output.path !== undefined) fail(['output', 'path'], ACTOR_OUTPUT);
    else if (d.output.format !== undefined) fail(['output', 'format'], ACTOR_OUTPUT);
    if (d.output.audio && d.output.audio.mode !== 'none') fail(['output', 'audio'], 'an actor (a live channel) is video only: leave it out or set none');
    if (d.deadline !== undefined) fail(['deadline'], 'an actor runs until it is stopped, so it has no deadline');
  }),
  crossCheck<DocumentFields>([['output'], ['group']], (d, fail) => {
    if (d.output.path === undefined) return;
    const used = placeholders(d.output.path);
    if (used.includes('group') && !d.group) fail(['output', 'path'], 'uses {group}, but the job has no group');
    else if (d.group && !['job_id', 'rendition', 'height', 'width'].some((n) => used.includes(n))) {
      fail(['output', 'path'], 'must tell a group\'s jobs apart with {job_id}, {rendition}, {height} or {width}, or every rendition would be written to the same file');
    }
  }),
  v.transform((d) => compact({
    kind: d.kind === 'actor' ? ('actor' as const) : undefined,
    input: d.input, output: d.output, priority: d.priority, submitter: d.submitter, deadline: d.deadline, group: d.group,
  })),
);
export type EncodingSchema = v.InferOutput<typeof JobSchema>;

/** A copy without the undefined fields (copied, not deleted: `delete` leaves V8 a slow dictionary object). */
function compact<T extends object>(o: T): { [K in keyof T as undefined extends T[K] ? never : K]: T[K] } & { [K in keyof T as undefined extends T[K] ? K : never]?: Exclude<T[K], undefined> } {
  const out = {} as Record<string, unknown>;
  for (const k of Object.keys(o)) if ((o as Record<string, unknown>)[k] !== undefined) out[k] = (o as Record<string, unknown>)[k];
  return out as never;
}

/** Runs `schema` over `raw` with these roots; the value, or a SchemaValidationError naming each wrong field. */
function validate<S extends v.GenericSchema>(schema: S, raw: unknown, ctx: ValidationContext): v.InferOutput<S> {
  const outer = roots;
  roots = ctx;
  try {
    const r = parseDocument(schema, raw);
    if (r.ok) return r.value;
    throw new SchemaValidationError(r.issues, r.omitted);
  } finally {
    roots = outer;
  }
}

/**
 * Checks every field of a submitted document and returns the typed schema with defaults
 * applied. Throws SchemaValidationError naming each wrong field.
 */
export function validateEncodingSchema(raw: unknown, ctx: ValidationContext): EncodingSchema {
  return validate(JobSchema, raw, ctx);
}

/** An input path as a submission's is checked (absolute, no control characters, under an allowed root); throws SchemaValidationError. */
export function validateInputPath(raw: unknown, ctx: ValidationContext): string {
  return validate(JustPath, { input: { path: raw } }, ctx);
}
const JustPath = v.pipe(mapping({ input: mapping({ path: InputPath }) }), v.transform((o) => o.input.path));
const JustProbe = v.pipe(mapping({ input: mapping({ probe: Probe }) }), v.transform((o) => o.input.probe));

/** A probe as `input.probe` of a file is checked (every field in its range); throws SchemaValidationError. */
export function validateInputProbe(raw: unknown): InputProbe {
  return validate(JustProbe, { input: { probe: raw } }, roots);
}

/** The JSON Schema of a job document, for editors and other tools (`prescient schema`). */
export function encodingSchemaJsonSchema() {
  return jsonSchemaOf(DocumentFields, {
    id: 'https://prescient.dev/schema/job.json',
    title: 'Prescient encoding job',
    description: 'A job for `prescient submit`: what to encode, how, and when. Rules across fields (an encoder of the codec, its presets and CRF range, two-pass only with a bitrate, an actor\'s limits) are checked on submission.',
  });
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
  const issues: FieldIssue[] = [];
  const out = template.replace(/\{([a-z_]+)\}/g, (m, name: string) => {
    const value = (OUTPUT_PLACEHOLDERS as readonly string[]).includes(name) ? values[name as OutputPlaceholder] : undefined;
    if (value === undefined || !SAFE_SEGMENT.test(value)) {
      issues.push({ field: 'output.path', reason: `{${name}} has no value that is safe in a path here (${describeValue(value)})` });
      return m;
    }
    return value;
  });
  if (issues.length) throw new SchemaValidationError(issues);
  return path.resolve(out);
}

/** `{rendition}`: the output's own name, else `<height>p` of its effective height, else `source`. */
export function renditionName(s: EncodingSchema, height?: number): string {
  const h = s.output.resolution?.height ?? height ?? knownInput(s).resolution?.height;
  return s.output.rendition ?? (h ? `${h}p` : 'source');
}

/** Whether a schema is a live channel that holds its reservation until stopped. */
export const isActor = (s: EncodingSchema): boolean => s.kind === 'actor';

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

