/**
 * Feature spec v1: how an EncodingSchema becomes the numeric vector the networks read.
 * Every column is documented here; changing a column means a new FEATURE_SPEC_VERSION, so a
 * model trained on one spec is never fed vectors of another.
 */
import { EncodingSchema, ENCODERS, GPU_ENCODERS, OUTPUT_CODECS, PRESETS, effectiveOutput } from '../shared/index.js';

export const FEATURE_SPEC_VERSION = 'features-v1';

/** Column names, in vector order. */
export const FEATURE_NAMES = [
  // output codec one-hot, with an explicit bucket for anything unknown
  ...OUTPUT_CODECS.map((c) => `codec_${c}`),
  'codec_other',
  // 1 when the encoder runs on a GPU
  'gpu_encoder',
  // preset position from fastest (0) to slowest (1) within the encoder's own preset list
  'preset_slowness',
  // log2 of output pixels per frame, scaled so 320x240 ≈ 0.25 and 3840x2160 ≈ 0.75
  'log_pixels',
  // output frames per second / 120
  'fps',
  // log10 of frames to encode / 6 (1 = a million frames)
  'log_frames',
  // CRF as a share of the encoder's range (0.5 when rate control is by bitrate)
  'crf',
  // log10 of target bitrate in kbit/s / 5 (0 when rate control is by CRF)
  'log_bitrate',
  // 1 for two-pass
  'two_pass',
  // synthetic source noise 0..1 (content complexity proxy; 0.5 when unknown)
  'complexity',
] as const;

export const FEATURE_COUNT = FEATURE_NAMES.length;

/** Preset rank 0 (fastest) .. 1 (slowest); lists in the schema run fastest → slowest. */
export function presetSlowness(encoder: string, preset: string): number {
  const list = (PRESETS as Record<string, readonly string[]>)[encoder];
  if (!list) return 0.5;
  const i = list.indexOf(preset);
  return i < 0 ? 0.5 : list.length === 1 ? 0.5 : i / (list.length - 1);
}

/** Frames the encode will produce, when the duration is known (else one minute's worth). */
export function frameCount(s: EncodingSchema): number {
  const eff = effectiveOutput(s);
  return Math.max(1, Math.round((eff.fps ?? 30) * (eff.duration_s ?? 60)));
}

export function outputPixels(s: EncodingSchema): number {
  const r = effectiveOutput(s).resolution ?? { width: 1920, height: 1080 };
  return r.width * r.height;
}

/** Encodes one schema as a feature vector in FEATURE_NAMES order. */
export function encodeFeatures(s: EncodingSchema): number[] {
  const codecKnown = (OUTPUT_CODECS as readonly string[]).includes(s.output.codec) && ENCODERS[s.output.codec].includes(s.output.encoder);
  const onehot = OUTPUT_CODECS.map((c) => (codecKnown && c === s.output.codec ? 1 : 0));
  const rc = s.output.rate_control;
  const eff = effectiveOutput(s);
  const v = [
    ...onehot,
    codecKnown ? 0 : 1,
    GPU_ENCODERS.has(s.output.encoder) ? 1 : 0,
    presetSlowness(s.output.encoder, s.output.preset),
    Math.log2(outputPixels(s)) / 32,
    (eff.fps ?? 30) / 120,
    Math.log10(frameCount(s)) / 6,
    rc.mode === 'crf' ? rc.crf / (s.output.encoder === 'av1_nvenc' ? 255 : s.output.encoder.startsWith('libx26') || s.output.encoder.endsWith('nvenc') ? 51 : 63) : 0.5,
    rc.mode === 'bitrate' ? Math.log10(rc.bitrate_kbps) / 5 : 0,
    s.output.passes === 2 ? 1 : 0,
    s.input.kind === 'synthetic' ? s.input.noise / 100 : 0.5,
  ];
  return v.map((x) => (Number.isFinite(x) ? x : 0));
}
