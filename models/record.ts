/**
 * What the model knows about one encode, whatever it came from: a submitted EncodingSchema,
 * a run row read back from QuestDB, or a line of somebody's own CSV/TSV log mapped with a
 * mapping file. Every field is optional: third-party logs carry what they carry, and the
 * feature encoder (features.ts) turns a missing value into an explicit "unknown".
 *
 * Units are fixed here (pixels, frames per second, kbit/s, seconds, GB); a mapping file scales
 * its columns into them.
 */
import { GPU_ENCODERS, effectiveOutput, knownInput, type EncodingSchema } from '../shared/index.js';

/** The five things Prescient predicts for an encode. */
export const TARGETS = ['cpu_cores', 'gpu_percent', 'memory_gb', 'bandwidth_mbps', 'duration_s'] as const;
export type Target = (typeof TARGETS)[number];
export type TargetValues = Record<Target, number>;

/**
 * - `cpu_cores`: mean CPU cores in use over the encode (CPU time ÷ wall time).
 * - `gpu_percent`: mean utilisation of one GPU, 0–100 (0 for CPU encoders).
 * - `memory_gb`: peak resident memory, GB (1024³ bytes).
 * - `bandwidth_mbps`: mean I/O bandwidth, input read plus output written, Mbit/s.
 * - `duration_s`: wall-clock encoding time, seconds.
 */
export const TARGET_UNITS: Record<Target, string> = {
  cpu_cores: 'cores', gpu_percent: '%', memory_gb: 'GB', bandwidth_mbps: 'Mbit/s', duration_s: 's',
};

export interface OutputRecord {
  /** Output codec name (h264, hevc, vp9, av1, or anything a log calls it: mpeg4, vp8, …). */
  codec?: string;
  /** Encoder implementation (libx264, libsvtav1, h264_nvenc, …). */
  encoder?: string;
  /** Preset as the encoder names it (medium, p4, 8, …). */
  preset?: string;
  width?: number;
  height?: number;
  fps?: number;
  /** `crf` or `bitrate` (or another name a log uses). */
  rc_mode?: string;
  crf?: number;
  bitrate_kbps?: number;
  passes?: number;
  /** Keyframe interval in frames. */
  gop?: number;
}

export interface InputRecord {
  /** Input codec (h264, mpeg2, prores, rawvideo, …). */
  codec?: string;
  width?: number;
  height?: number;
  fps?: number;
  bitrate_kbps?: number;
  duration_s?: number;
  /** Frames to encode; fps × duration when not given. */
  frames?: number;
  /** Frame-type counts of the input, when a log has them (I, P, B frames). */
  i_frames?: number;
  p_frames?: number;
  b_frames?: number;
  /** Input file size in bytes. */
  size_bytes?: number;
}

export interface ContentRecord {
  /** Spatial / temporal information (ITU-T P.910), from ffmpeg's siti filter. */
  si_mean?: number;
  ti_mean?: number;
  /** Strength of noise added to a synthetic source, 0–100. */
  noise?: number;
  /** A pilot encode's CPU seconds per frame (the job's own settings, one thread: shared PilotEncode). */
  pilot_cpu_per_frame?: number;
  /** A pilot encode's bits per frame. */
  pilot_bits_per_frame?: number;
  /** A pilot encode's peak memory, MB. */
  pilot_memory_mb?: number;
}

export interface NodeRecord {
  /** CPU cores the encode was granted. */
  cores?: number;
  /** Hardware class: the CPU model, or whatever a log uses to tell machines apart. */
  hw_class?: string;
  /** GPUs the encode was granted (GPU encoders get one). */
  gpus?: number;
  /** Memory of the machine (or what the encode was granted), GB: logs of cloud instances give it by instance type. */
  memory_gb?: number;
}

export interface EncodeRecord {
  output: OutputRecord;
  input: InputRecord;
  content: ContentRecord;
  node: NodeRecord;
  /** Further numeric columns a mapping file passes as features, by name. */
  extra: Record<string, number>;
}

/** One past encode with what it actually needed; targets a source does not have are absent. */
export interface LabelledRow {
  record: EncodeRecord;
  targets: Partial<TargetValues>;
  /** Stable identity (job id, or a hash of the source line): decides the held-out split. */
  key: string;
  /**
   * The source video it encoded (a file's name up to its first `~` or `.`, a lavfi source with
   * its noise, or a log's source column): rows of one source are held out and calibrated
   * together, so figures and bounds are those of a source the model has never seen. Absent:
   * the row is a source of its own.
   */
  group?: string;
  /** When it ran (epoch ms), where known: decides time windows. */
  ts?: number;
}

export const emptyRecord = (): EncodeRecord => ({ output: {}, input: {}, content: {}, node: {}, extra: {} });

/** ffprobe's codec names where the model's vocabulary has a shorter one. */
const PROBED_CODEC_NAMES: Record<string, string> = { mpeg2video: 'mpeg2', mpeg1video: 'mpeg1' };

/**
 * What a validated schema says about its encode; `node` is filled from where it runs. A file's
 * geometry, length, codec, bitrate, size and content complexity come from its probe wherever the
 * submitter did not give them (shared `knownInput`).
 */
export function describeSchema(s: EncodingSchema, node: NodeRecord = {}): EncodeRecord {
  const out = s.output, inp = s.input, eff = effectiveOutput(s), known = knownInput(s), rc = out.rate_control, probe = inp.probe, pilot = probe?.pilot;
  const fps = eff.fps, duration = known.duration_s;
  const probedCodec = probe?.codec !== undefined ? PROBED_CODEC_NAMES[probe.codec] ?? probe.codec : undefined;
  return {
    output: {
      codec: out.codec, encoder: out.encoder, preset: out.preset,
      width: eff.resolution?.width, height: eff.resolution?.height, fps,
      rc_mode: rc.mode, crf: rc.mode === 'crf' ? rc.crf : undefined, bitrate_kbps: rc.mode === 'bitrate' ? rc.bitrate_kbps : undefined,
      passes: out.passes, gop: out.gop,
    },
    input: {
      // A lavfi source's picture is made, not decoded: each generator has its own cost (mandelbrot
      // computes every pixel, smptebars copies bars), so it stands in for the input codec.
      codec: inp.kind === 'synthetic' ? `lavfi_${inp.source}` : inp.codec ?? probedCodec,
      width: known.resolution?.width, height: known.resolution?.height, fps: known.fps,
      bitrate_kbps: inp.kind === 'file' ? inp.bitrate_kbps ?? probe?.bitrate_kbps : undefined, duration_s: duration,
      frames: fps !== undefined && duration !== undefined ? Math.max(1, Math.round(fps * duration)) : undefined,
      size_bytes: inp.kind === 'file' ? probe?.size_bytes : undefined,
    },
    content: {
      noise: inp.kind === 'synthetic' ? inp.noise : undefined, si_mean: probe?.si_mean, ti_mean: probe?.ti_mean,
      pilot_cpu_per_frame: pilot ? pilot.cpu_s / pilot.frames : undefined,
      // ffmpeg rounds the kilobytes: 0 is under half of one, taken as a quarter.
      pilot_bits_per_frame: pilot?.video_kb !== undefined ? (Math.max(pilot.video_kb, 0.25) * 8192) / pilot.frames : undefined,
      pilot_memory_mb: pilot?.memory_mb,
    },
    // Written out rather than spread: every record's node has one shape, which keeps the
    // feature getters that read it monomorphic (a spread's shape follows its input's).
    node: { cores: node.cores, hw_class: node.hw_class, gpus: node.gpus ?? (GPU_ENCODERS.has(out.encoder) ? 1 : 0), memory_gb: node.memory_gb },
    extra: {},
  };
}

/** A node's hardware class as the model sees it: its CPU model, and the GPU an encode was given. */
export const hardwareClass = (cpuModel: string, gpuModel?: string): string => (gpuModel ? `${cpuModel} + ${gpuModel}` : cpuModel);

/**
 * The source a schema encodes, for grouping rows (LabelledRow.group): a lavfi generator with its
 * noise (`lavfi:testsrc2+40`: other noise, other pictures; the generator itself is a feature, as
 * a camera or a codec would be), or a file's name up to its first `~` or `.` (`file:bbb` for
 * `/media/bbb~1080p-hevc.mkv`: variants of one source named SOURCE~VARIANT are one source).
 */
export function sourceKey(s: EncodingSchema): string {
  const inp = s.input;
  if (inp.kind === 'synthetic') return `lavfi:${inp.source}+${inp.noise}`;
  const name = inp.path.slice(inp.path.lastIndexOf('/') + 1);
  return `file:${name.split(/[~.]/)[0] || name}`;
}
