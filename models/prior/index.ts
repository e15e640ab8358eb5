/**
 * The prior: a hand-written cost model of the encoders, anchored on a few `ffmpeg -benchmark`
 * runs of 1280x720 testsrc2 on this project's 2-core development machine (CPU seconds per
 * megapixel-frame at each encoder's default preset, peak RSS). It labels synthetic rows with
 * known structure and noise, which the tests and benchmarks train on where recorded encodes
 * would be too few or too slow to make. The shipped model is trained on real encodes instead
 * (models/default).
 */
import { ENCODERS, GPU_ENCODERS, OUTPUT_CODECS, PRESETS, type Encoder } from '../../shared/index.js';
import { outputFrames, presetSlowness } from '../features.js';
import { seededRandom } from '../network.js';
import type { EncodeRecord, LabelledRow, TargetValues } from '../record.js';

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

/** What the prior believes an encode needs (noise-free). */
export function priorTargets(r: EncodeRecord): TargetValues {
  const encoder = r.output.encoder as Encoder;
  const cost = ENCODER_COST[encoder];
  const mp = ((r.output.width ?? 1920) * (r.output.height ?? 1080)) / 1e6;
  const slow = presetSlowness(encoder, r.output.preset) ?? cost.defaultSlowness;
  const noise = (r.content.noise ?? 50) / 100;
  const crf51 = r.output.crf !== undefined ? (encoder.startsWith('libx26') ? r.output.crf : (r.output.crf * 51) / 63) : 26;
  const cpuPerFrame = cost.cpu * mp * Math.exp(3 * (slow - cost.defaultSlowness)) * (1 + (30 - crf51) / 60) * (1 + noise) * (r.output.passes === 2 ? 1.6 : 1);
  const cores = Math.min(r.node.cores ?? 16, Math.max(1, (0.8 + mp * 2.5) * cost.parallel));
  const frames = outputFrames(r) ?? 1500;
  const fps = r.output.fps ?? 30;
  const seconds = (frames * cpuPerFrame) / cores;
  const outMbits = r.output.bitrate_kbps !== undefined
    ? (r.output.bitrate_kbps / 1000) * (frames / fps)
    : 0.1 * 2 ** ((23 - crf51) / 6) * (1 + noise) * mp * frames;
  const gpu = GPU_ENCODERS.has(encoder);
  return {
    cpu_cores: cores,
    gpu_percent: gpu ? Math.min(100, 10 + 30 * mp * (1 + slow)) : 0,
    memory_gb: 0.03 + mp * cost.memPerMp * (1 + slow),
    bandwidth_mbps: outMbits / Math.max(seconds, 1e-3),
    duration_s: seconds,
  };
}

/**
 * `n` synthetic encodes across codecs, presets, sizes, rates, content, core counts and (when
 * `gpus`) NVENC, labelled by the prior with multiplicative log-normal noise of `noise` (σ in log10).
 */
export function priorRows(n: number, o: { seed?: number; noise?: number; gpus?: boolean; hwClasses?: string[] } = {}): LabelledRow[] {
  const r = seededRandom(o.seed ?? 42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const gauss = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const sizes = [[320, 240], [640, 360], [854, 480], [1280, 720], [1920, 1080], [2560, 1440], [3840, 2160]];
  const out: LabelledRow[] = [];
  for (let i = 0; i < n; i++) {
    const codec = pick(OUTPUT_CODECS);
    const encoder = pick(ENCODERS[codec].filter((e) => o.gpus || !GPU_ENCODERS.has(e))) as Encoder;
    const byBitrate = r() < 0.3;
    const [w, h] = pick(sizes);
    const fps = pick([24, 25, 30, 50, 60]), duration = pick([1, 2, 5, 10, 30, 60, 300, 1800]);
    const rec: EncodeRecord = {
      output: {
        codec, encoder, preset: pick(PRESETS[encoder]), width: w, height: h, fps,
        rc_mode: byBitrate ? 'bitrate' : 'crf',
        ...(byBitrate ? { bitrate_kbps: pick([500, 1500, 3000, 6000, 12000]) } : { crf: pick([18, 23, 28, 32, 38]) }),
        passes: byBitrate && !GPU_ENCODERS.has(encoder) && encoder !== 'libsvtav1' && r() < 0.3 ? 2 : 1,
      },
      input: { codec: 'rawvideo', width: w, height: h, fps, duration_s: duration, frames: fps * duration },
      content: { noise: pick([0, 0, 25, 50, 100]) },
      node: { cores: pick([1, 2, 4, 8, 16]), gpus: GPU_ENCODERS.has(encoder) ? 1 : 0, hw_class: o.hwClasses ? pick(o.hwClasses) : 'prior-cpu' },
      extra: {},
    };
    const truth = priorTargets(rec);
    const noisy = Object.fromEntries(Object.entries(truth).map(([k, v]) => [k, v * 10 ** ((o.noise ?? 0.05) * gauss())])) as TargetValues;
    // Physical limits hold in measurements too: no more than the granted cores, or a whole GPU.
    noisy.cpu_cores = Math.min(noisy.cpu_cores, rec.node.cores!);
    noisy.gpu_percent = Math.min(100, noisy.gpu_percent);
    out.push({ record: rec, targets: noisy, key: `prior-${o.seed ?? 42}-${i}` });
  }
  return out;
}
