/**
 * The calibration matrix: short real encodes spanning codecs × presets × resolutions × rate
 * control × content complexity × core counts, so a new hardware class gets its first data.
 * Pure and deterministic: the same options always give the same list in the same order.
 */
import {
  ENCODERS, OUTPUT_CODECS, PRESETS, validateEncodingSchema,
  type EncodingSchema, type Encoder, type OutputCodec, type ValidationContext,
} from '../../shared/index.js';

/** One content choice: a synthetic source with its noise level, or a user file. */
export type CalibrationContent = { source: string; noise: number } | { path: string };

export interface MatrixOptions {
  codecs?: OutputCodec[];
  /** Output sizes as WIDTHxHEIGHT. */
  resolutions?: string[];
  /** Presets per encoder; by default a fast, the default and a slow one. */
  presets?: Partial<Record<Encoder, string[]>>;
  contents?: CalibrationContent[];
  /** Seconds of each synthetic clip. */
  duration_s?: number;
  fps?: number;
  /** Several clip lengths / frame rates (each multiplies the matrix); override duration_s / fps. */
  durations_s?: number[];
  frame_rates?: number[];
  /** CRFs as offsets from each encoder's mid-range CRF (default [0]). */
  crf_offsets?: number[];
  /** Target bitrates as multiples of the size-scaled default (default [1]). */
  bitrate_scales?: number[];
  /** Core counts to grant (each ≤ the node's cores). */
  core_counts?: number[];
  /** At most this many runs, spread across every dimension of the matrix. */
  limit?: number;
}

export interface CalibrationRun {
  schema: EncodingSchema;
  cores: number;
  /** A short description for logs: "libx264 medium 640x360 crf23 testsrc2+40 2c". */
  label: string;
}

/** Presets sampled per encoder: fast, default, slow — the slowest are left out as too slow to calibrate. */
export const DEFAULT_PRESETS: Record<Encoder, string[]> = {
  libx264: ['veryfast', 'medium', 'slow'],
  libx265: ['veryfast', 'medium', 'slow'],
  'libvpx-vp9': ['8', '5', '2'],
  libsvtav1: ['12', '8', '5'],
  'libaom-av1': ['8', '6', '4'],
  h264_nvenc: ['p1', 'p4', 'p7'],
  hevc_nvenc: ['p1', 'p4', 'p7'],
  av1_nvenc: ['p1', 'p4', 'p7'],
};

/** From flat colour bars to heavy temporal noise. */
export const DEFAULT_CONTENTS: CalibrationContent[] = [
  { source: 'smptebars', noise: 0 },
  { source: 'testsrc2', noise: 0 },
  { source: 'mandelbrot', noise: 0 },
  { source: 'testsrc2', noise: 40 },
];

/** A middle-of-the-range CRF per encoder family, and a bitrate scaled to the picture size. */
const midCrf = (e: Encoder) => (e.startsWith('libx26') || e.endsWith('nvenc') ? 26 : 35);
const CRF_LIMITS = (e: Encoder): [number, number] => (e === 'av1_nvenc' ? [0, 255] : e.startsWith('libx26') || e.endsWith('nvenc') ? [0, 51] : [0, 63]);
const bitrateFor = (w: number, h: number) => Math.max(200, Math.round((w * h * 30 * 0.07) / 1000 / 100) * 100);

/**
 * Every combination, validated like any submitted job. `gpu` says whether GPU encoders are
 * included (only on nodes with a GPU); CPU encoders are the first listed for each codec.
 */
export function calibrationMatrix(o: MatrixOptions, ctx: ValidationContext, nodeCores: number, gpu = false): CalibrationRun[] {
  const runs: CalibrationRun[] = [];
  const codecs = o.codecs ?? [...OUTPUT_CODECS];
  const resolutions = o.resolutions ?? ['320x240', '640x360', '1280x720'];
  const contents = o.contents ?? DEFAULT_CONTENTS;
  const coreCounts = [...new Set(o.core_counts ?? [nodeCores])].filter((c) => c >= 1 && c <= nodeCores);
  if (!coreCounts.length) throw new Error(`core counts must be between 1 and ${nodeCores}`);
  const durations = o.durations_s ?? [o.duration_s ?? 2], frameRates = o.frame_rates ?? [o.fps ?? 25];
  const crfOffsets = o.crf_offsets ?? [0], bitrateScales = o.bitrate_scales ?? [1];
  for (const codec of codecs) {
    const encoders = (ENCODERS[codec] as readonly Encoder[]).filter((e) => gpu || !e.endsWith('nvenc'));
    for (const encoder of encoders) {
      for (const preset of o.presets?.[encoder] ?? DEFAULT_PRESETS[encoder].filter((p) => PRESETS[encoder].includes(p))) {
        const [lo, hi] = CRF_LIMITS(encoder);
        const rates: Array<{ rc: Record<string, unknown>; text: string }> = [
          ...crfOffsets.map((d) => Math.min(hi, Math.max(lo, midCrf(encoder) + d))).map((crf) => ({ rc: { mode: 'crf', crf }, text: `crf${crf}` })),
        ];
        for (const res of resolutions) {
          const [w, h] = res.split('x').map(Number);
          const withBitrates = [...rates, ...bitrateScales.map((k) => Math.max(100, Math.round(bitrateFor(w, h) * k)))
            .map((kbps) => ({ rc: { mode: 'bitrate', bitrate_kbps: kbps }, text: `${kbps}k` }))];
          for (const { rc: rate_control, text: rcText } of withBitrates) {
            for (const content of contents) {
              for (const duration_s of 'path' in content ? [undefined] : durations) {
                for (const fps of 'path' in content ? [undefined] : frameRates) {
                  for (const cores of coreCounts) {
                    const input = 'path' in content
                      ? { path: content.path }
                      : { synthetic: { source: content.source, noise: content.noise }, resolution: res, fps, duration_s };
                    const schema = validateEncodingSchema({
                      input, output: { codec, encoder, preset, rate_control, resolution: res }, priority: 'batch', submitter: 'calibrate',
                    }, ctx);
                    const what = 'path' in content ? content.path.split('/').pop() : `${content.source}${content.noise ? `+${content.noise}` : ''}`;
                    const clip = duration_s === undefined ? '' : `${durations.length > 1 ? ` ${duration_s}s` : ''}${frameRates.length > 1 ? ` ${fps}fps` : ''}`;
                    runs.push({ schema, cores, label: `${encoder} ${preset} ${res} ${rcText} ${what}${clip} ${cores}c` });
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  if (o.limit === undefined || o.limit >= runs.length) return runs;
  return spreadPick(runs, Math.max(0, o.limit));
}

/**
 * Picks `k` of `xs` along the golden-ratio sequence, in matrix order. Evenly spaced picks would
 * land on the same inner-loop values whenever the stride is a multiple of the inner dimensions;
 * this low-discrepancy walk varies every dimension while staying deterministic.
 */
function spreadPick<T>(xs: T[], k: number): T[] {
  const chosen = new Set<number>();
  for (let i = 0; chosen.size < k; i++) {
    let j = Math.floor(((i * 0.6180339887498949) % 1) * xs.length);
    while (chosen.has(j)) j = (j + 1) % xs.length;
    chosen.add(j);
  }
  return [...chosen].sort((a, b) => a - b).map((j) => xs[j]);
}
