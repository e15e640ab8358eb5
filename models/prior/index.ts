/**
 * The prior: a hand-written cost model of the encoders, anchored on a few `ffmpeg -benchmark`
 * runs of 1280x720 testsrc2 on this project's 2-core development machine (CPU seconds per
 * megapixel-frame at each encoder's default preset, peak RSS). It exists only to give the first
 * brain.js network something sensible to learn before any real telemetry is collected; the
 * model issue replaces it with networks trained on recorded encodes.
 */
import { validateEncodingSchema, type EncodingSchema, type Encoder, PRESETS, ENCODERS, OUTPUT_CODECS } from '../../shared/index.js';
import { encodeFeatures, frameCount, outputPixels, presetSlowness } from '../features.js';
import type { Sample, TargetValues } from '../predictor.js';

/** CPU seconds per megapixel-frame at the default preset, and peak memory per megapixel (GB). */
const ENCODER_COST: Record<Encoder, { cpu: number; defaultSlowness: number; parallel: number; memPerMp: number }> = {
  libx264: { cpu: 0.020, defaultSlowness: 0.625, parallel: 1.0, memPerMp: 0.15 },
  libx265: { cpu: 0.074, defaultSlowness: 0.625, parallel: 1.0, memPerMp: 0.2 },
  'libvpx-vp9': { cpu: 0.076, defaultSlowness: 0.5, parallel: 0.8, memPerMp: 0.15 },
  libsvtav1: { cpu: 0.137, defaultSlowness: 5 / 13, parallel: 1.2, memPerMp: 0.25 },
  'libaom-av1': { cpu: 0.143, defaultSlowness: 0.25, parallel: 0.8, memPerMp: 0.2 },
  h264_nvenc: { cpu: 0.001, defaultSlowness: 0.5, parallel: 0.3, memPerMp: 0.1 },
  hevc_nvenc: { cpu: 0.001, defaultSlowness: 0.5, parallel: 0.3, memPerMp: 0.1 },
  av1_nvenc: { cpu: 0.001, defaultSlowness: 0.5, parallel: 0.3, memPerMp: 0.1 },
};

/** What the prior believes an encode needs. */
export function priorTargets(s: EncodingSchema): TargetValues {
  const cost = ENCODER_COST[s.output.encoder];
  const mp = outputPixels(s) / 1e6;
  const slow = presetSlowness(s.output.encoder, s.output.preset);
  const noise = s.input.kind === 'synthetic' ? s.input.noise / 100 : 0.5;
  const rc = s.output.rate_control;
  const crf51 = rc.mode === 'crf' ? (s.output.encoder.startsWith('libx26') ? rc.crf : (rc.crf * 51) / 63) : 26;
  const cpuPerFrame = cost.cpu * mp * Math.exp(3 * (slow - cost.defaultSlowness)) * (1 + (30 - crf51) / 60) * (1 + noise) * (s.output.passes === 2 ? 1.6 : 1);
  const cores = Math.min(16, Math.max(1, (0.8 + mp * 2.5) * cost.parallel));
  const frames = frameCount(s);
  const fps = frames / Math.max(1e-3, s.input.duration_s ?? 60);
  const outMbits = rc.mode === 'bitrate'
    ? (rc.bitrate_kbps / 1000) * (frames / fps)
    : (0.1 * 2 ** ((23 - crf51) / 6) * (1 + noise) * mp * 1e6 * frames) / 1e6;
  const inMbits = s.input.kind === 'file' && s.input.bitrate_kbps ? (s.input.bitrate_kbps / 1000) * (frames / fps) : 0;
  const seconds = (frames * cpuPerFrame) / cores;
  return {
    cpu_cores: cores,
    memory_gb: 0.03 + mp * cost.memPerMp * (1 + slow),
    bandwidth_mbps: (outMbits + inMbits) / Math.max(seconds, 1e-3),
    cpu_s_per_frame: cpuPerFrame,
  };
}

/** Deterministic pseudo-random numbers (mulberry32) so the shipped prior model is reproducible. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Samples `n` synthetic schemas across codecs, presets, sizes and rates, labelled by the prior. */
export function priorSamples(n: number, seed = 42): Sample[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const sizes = ['320x240', '640x360', '854x480', '1280x720', '1920x1080', '2560x1440', '3840x2160'];
  const out: Sample[] = [];
  for (let i = 0; i < n; i++) {
    const codec = pick(OUTPUT_CODECS.filter((c) => c !== 'hevc' || r() < 0.9));
    const encoder = pick(ENCODERS[codec].filter((e) => !e.endsWith('nvenc'))) as Encoder;
    const byBitrate = r() < 0.3;
    const schema = validateEncodingSchema({
      input: { synthetic: { source: 'testsrc2', noise: pick([0, 0, 25, 50, 100]) }, resolution: pick(sizes), fps: pick([24, 25, 30, 50, 60]), duration_s: pick([1, 2, 5, 10, 30, 60, 300, 1800]) },
      output: {
        codec, encoder, preset: pick(PRESETS[encoder]),
        rate_control: byBitrate ? { mode: 'bitrate', bitrate_kbps: pick([500, 1500, 3000, 6000, 12000]) } : { mode: 'crf', crf: pick([18, 23, 28, 32, 38]) },
        passes: byBitrate && r() < 0.3 ? 2 : 1,
      },
    }, { allowedInputRoots: [] });
    out.push({ features: encodeFeatures(schema), targets: priorTargets(schema) });
  }
  return out;
}
