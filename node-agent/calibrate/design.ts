/**
 * A calibration design: varied real encodes drawn at random (seeded) until a time budget is
 * spent, for data sets a full matrix cannot cover: real files and synthetic sources, clips from 2
 * to 60 s, sizes up to 1080p and beyond, every CPU encoder across its presets, CRF and bitrate
 * (one or two passes), scaled and re-timed outputs, keyframe intervals and core counts. Each
 * drawn encode is priced with `estimate` (the model in service's expected duration) and redrawn
 * while it would take longer than `max_run_s`, so the budget buys many runs rather than a few
 * slow ones. Pure: the same options give the same runs.
 */
import {
  ENCODERS, PRESETS, SYNTHETIC_SOURCES, validateEncodingSchema,
  type EncodingSchema, type Encoder, type InputProbe, type ValidationContext,
} from '../../shared/index.js';
import { seededRandom } from '../../models/index.js';
import type { CalibrationRun } from './matrix.js';

export interface DesignOptions {
  /** Real inputs, with their probes (their size, rate and length shape the draws). */
  files: Array<{ path: string; probe: InputProbe }>;
  /** Draw lavfi sources too (default true). */
  synthetic?: boolean;
  /** Core counts to grant. */
  core_counts: number[];
  /** Stop once the estimated durations add up to this. */
  budget_s: number;
  /** No single run estimated longer than this. */
  max_run_s: number;
  /** At most this many runs. */
  max_runs?: number;
  seed: number;
  /** Expected seconds for a run (the model in service's prediction). */
  estimate: (schema: EncodingSchema, cores: number) => number;
}

const CPU_ENCODERS: Array<[Encoder, number]> = [['libx264', 0.26], ['libx265', 0.22], ['libvpx-vp9', 0.16], ['libsvtav1', 0.16], ['libaom-av1', 0.2]];
/** The slowest presets take minutes per second of 720p here; these are left out. */
const TOO_SLOW: Partial<Record<Encoder, readonly string[]>> = {
  libx264: ['placebo'], libx265: ['veryslow', 'placebo'], 'libaom-av1': ['0', '1'], libsvtav1: ['0', '1', '2'], 'libvpx-vp9': ['0'],
};
const CRF: Record<string, [number, number]> = { libx264: [16, 38], libx265: [18, 38], 'libvpx-vp9': [18, 52], libsvtav1: [20, 56], 'libaom-av1': [20, 52] };
const SIZES: Array<[number, number]> = [[320, 180], [426, 240], [640, 360], [720, 480], [854, 480], [960, 540], [1280, 720], [1600, 900], [1920, 1080], [2560, 1440]];
const FRAME_RATES = [24, 25, 30, 50, 60];
const NOISE = [0, 0, 5, 15, 30, 50, 80];
/** Heights an output is scaled to (its width keeps the input's aspect, rounded to even). */
const LADDER = [144, 240, 360, 480, 540, 720, 1080];

export function designCalibration(o: DesignOptions, ctx: ValidationContext): CalibrationRun[] {
  const r = seededRandom(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const weighted = <T>(xs: ReadonlyArray<[T, number]>): T => {
    let u = r() * xs.reduce((a, [, w]) => a + w, 0);
    for (const [x, w] of xs) if ((u -= w) <= 0) return x;
    return xs[xs.length - 1][0];
  };
  const logUniform = (lo: number, hi: number) => lo * (hi / lo) ** r();
  const even = (x: number) => Math.max(2, 2 * Math.round(x / 2));
  const files = o.files.filter((f) => f.probe.width && f.probe.height && f.probe.fps && f.probe.duration_s);
  const synthetic = o.synthetic !== false;
  if (!files.length && !synthetic) throw new Error('a design needs files with a probed size, rate and length, or synthetic sources');

  const runs: CalibrationRun[] = [];
  let spent = 0, misses = 0;
  while (spent < o.budget_s && runs.length < (o.max_runs ?? Infinity) && misses < 10_000) {
    const useFile = files.length > 0 && (!synthetic || r() < 0.45);
    let input: Record<string, unknown>, w: number, h: number, fps: number;
    if (useFile) {
      const f = pick(files), p = f.probe;
      [w, h, fps] = [p.width!, p.height!, p.fps!];
      const cut = r() < 0.5 && p.duration_s! > 3 ? Math.round(logUniform(2, p.duration_s!) * 10) / 10 : undefined;
      input = { path: f.path, ...(cut !== undefined && { duration_s: cut }) };
    } else {
      [w, h] = pick(SIZES);
      fps = pick(FRAME_RATES);
      input = { synthetic: { source: pick(SYNTHETIC_SOURCES), noise: pick(NOISE) }, resolution: `${w}x${h}`, fps, duration_s: Math.round(logUniform(2, 60) * 10) / 10 };
    }
    const encoder = weighted(CPU_ENCODERS);
    const codec = (Object.keys(ENCODERS) as Array<keyof typeof ENCODERS>).find((c) => ENCODERS[c].includes(encoder))!;
    const preset = pick(PRESETS[encoder].filter((p) => !TOO_SLOW[encoder]?.includes(p)));
    const u = r();
    let outW = w, outH = h;
    if (u < 0.35) {
      const smaller = LADDER.filter((x) => x < h);
      if (smaller.length) { outH = pick(smaller); outW = even((w * outH) / h); }
    } else if (u < 0.4) {
      const bigger = LADDER.filter((x) => x > h && x <= 2 * h);
      if (bigger.length) { outH = pick(bigger); outW = even((w * outH) / h); }
    }
    const outFps = r() < 0.15 && fps >= 48 ? fps / 2 : undefined;
    const byBitrate = r() < 0.4;
    const bpp = logUniform(0.02, 0.25);
    const kbps = Math.max(50, Math.round((bpp * outW * outH * (outFps ?? fps)) / 1000));
    const [lo, hi] = CRF[encoder];
    const output = {
      codec, encoder, preset,
      rate_control: byBitrate ? { mode: 'bitrate', bitrate_kbps: kbps } : { mode: 'crf', crf: Math.round(lo + r() * (hi - lo)) },
      ...(byBitrate && encoder !== 'libsvtav1' && r() < 0.25 && { passes: 2 }),
      ...((outW !== w || outH !== h) && { resolution: `${outW}x${outH}` }),
      ...(outFps !== undefined && { fps: outFps }),
      ...(r() < 0.3 && { gop: Math.round((outFps ?? fps) * pick([1, 2, 4, 10])) }),
    };
    const cores = pick(o.core_counts);
    let schema: EncodingSchema;
    try {
      schema = validateEncodingSchema({ input, output, priority: 'batch', submitter: 'calibrate' }, ctx);
    } catch {
      misses++;
      continue;
    }
    const file = useFile ? files.find((f) => f.path === (input.path as string)) : undefined;
    if (file) schema.input.probe = file.probe;
    const seconds = o.estimate(schema, cores);
    if (!(seconds <= o.max_run_s)) { misses++; continue; }
    spent += seconds;
    const inp = schema.input, rc = schema.output.rate_control;
    const what = inp.kind === 'file' ? `${inp.path.split('/').pop()}${inp.duration_s ? ` ${inp.duration_s}s` : ''}` : `${inp.source}${inp.noise ? `+${inp.noise}` : ''} ${w}x${h}@${fps} ${inp.duration_s}s`;
    runs.push({
      schema, cores,
      label: `${encoder} ${preset} ${rc.mode === 'crf' ? `crf${rc.crf}` : `${rc.bitrate_kbps}k`}${schema.output.passes === 2 ? ' 2-pass' : ''} ${what}${outW !== w || outH !== h ? ` ->${outW}x${outH}` : ''}${outFps ? ` ->${outFps}fps` : ''} ${cores}c (~${seconds.toFixed(0)} s)`,
    });
  }
  return runs;
}
