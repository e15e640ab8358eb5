/**
 * Compiles a validated EncodingSchema plus the resources granted to it into ffmpeg argv arrays
 * (never a shell string). Pure: no I/O, no clock.
 *
 * Every value that lands in an argument is checked again here — a finite number in range, a
 * member of its closed set, an allow-listed option — so that a schema that somehow skipped
 * validation still cannot smuggle option or filter-graph syntax into ffmpeg.
 */
import path from 'node:path';
import {
  AUDIO_MODES, DEFAULT_AUDIO_KBPS, ENCODERS, EXTRA_OPTIONS, GPU_ENCODERS, HLS_SEGMENT_S, OUTPUT_CODECS, PRESETS, SYNTHETIC_SOURCES,
  type AudioSpec, type ContentComplexity, type EncodingSchema, type Encoder, type InputSpec, type OutputCodec, type OutputSpec, type RateControl, type Resolution,
} from '../../shared/index.js';
import { UnsupportedEncodeError } from './errors.js';

/** What the leader reserved for one encode. Threads are sized to `core_ids.length`, or to `threads` where given. */
export interface Grant {
  core_ids: readonly number[];
  gpu_ids: readonly number[];
  /** Fewer threads than cores: a pass that may run on any of `core_ids` but should cost as little CPU as it can (1 to core_ids.length). */
  threads?: number;
}

/**
 * How ffmpeg opens a file input on a node (inputs.ts openInput): by the descriptor the agent
 * checked and handed it instead of `input.path`, with only the demuxer ffprobe found allowed.
 */
export interface InputAccess {
  path: string;
  /** A demuxer's name as ffprobe prints it (`mov,mp4,m4a,3gp,3g2,mj2`): becomes `-format_whitelist`. */
  format: string;
}

/** Where one encode writes. */
export interface EncodeTarget {
  /** Becomes a file name, so only `[A-Za-z0-9._-]` is accepted. */
  task_id: string;
  output_dir: string;
  /** Path prefix for two-pass statistics, in a per-task scratch directory. */
  passlog_prefix: string;
  /** A file input as this node hands it; absent: `input.path` itself, any demuxer. */
  input?: InputAccess;
  /**
   * The codec of each audio stream of a file input, as ffprobe names them (`aac`, `opus`, …):
   * `output.audio: auto` copies them where the container carries them all. Absent: not known
   * (auto then encodes); empty: the input has none.
   */
  audio_codecs?: readonly string[];
  /** An HLS output's name: its playlist `<name>.m3u8`, `<name>-init.mp4`, segments `<name>-00000.m4s`. Default task_id. */
  hls_name?: string;
}

/** mp4 for h264/hevc/av1, webm for vp9; hls for `output.format: hls` (fMP4 segments). */
export type Container = 'mp4' | 'webm' | 'hls';

export interface EncodePlan {
  /** One argv (without the ffmpeg binary) per pass, to be run in order. */
  passes: string[][];
  /** What ffmpeg writes: `OUTDIR/<task_id>.part.<ext>`; for HLS the playlist `OUTDIR/<name>.m3u8`, its init and segments beside it. */
  part_path: string;
  /** What `part_path` is renamed to once everything succeeded: `OUTDIR/<task_id>.<ext>` (HLS: the same as part_path). */
  final_path: string;
  container: Container;
}

/** Audio codecs (ffprobe's names) each container takes as they are: `auto` copies these, encodes the rest. */
export const COPYABLE_AUDIO: Record<Container, readonly string[]> = {
  mp4: ['aac', 'mp3', 'ac3', 'eac3', 'alac'],
  hls: ['aac', 'mp3', 'ac3', 'eac3'],
  webm: ['opus', 'vorbis'],
};
/** A synthetic input's audio, when asked for: a 1 kHz tone, stereo at 48 kHz (raw PCM, so always encoded). */
const TONE = 'sine=frequency=1000:sample_rate=48000,aformat=channel_layouts=stereo';

export const CONTAINERS: Record<OutputCodec, Container> = { h264: 'mp4', hevc: 'mp4', av1: 'mp4', vp9: 'webm' };

/** Interval of `-progress` reports; also paces the agent's heartbeats. */
export const PROGRESS_PERIOD_S = 0.5;
/** Bitrate mode is constrained VBR: peaks up to 1.5× the target, a VBV buffer of two seconds' worth. */
const MAXRATE_FACTOR = 1.5;
const BUFSIZE_FACTOR = 2;
/** ffmpeg reports `average:inf` for identical streams; JSON and QuestDB want a finite number. */
export const LOSSLESS_PSNR_DB = 100;

const OPTION_FLAGS: Record<string, string> = { tune: '-tune', profile: '-profile:v', level: '-level', bf: '-bf', refs: '-refs' };

/** Argv for all passes of one encode. Throws UnsupportedEncodeError for combinations ffmpeg 5.1 cannot run. */
export function compileEncode(schema: EncodingSchema, grant: Grant, target: EncodeTarget): EncodePlan {
  if (schema.kind === 'actor') throw new UnsupportedEncodeError('kind', 'an actor runs as a live channel (compileLive), not as a batch encode');
  const { output } = schema;
  const codec = member(output.codec, OUTPUT_CODECS, 'output.codec');
  const encoder = member(output.encoder, ENCODERS[codec] as readonly Encoder[], 'output.encoder');
  const hls = output.format === 'hls';
  const container: Container = hls ? 'hls' : CONTAINERS[codec];
  if (!SAFE_NAME.test(target.task_id)) throw new UnsupportedEncodeError('task_id', `${JSON.stringify(target.task_id)} is not safe as a file name`);
  const name = target.hls_name ?? target.task_id;
  if (!SAFE_NAME.test(name)) throw new UnsupportedEncodeError('output.path', `${JSON.stringify(name)} is not safe as an HLS name`);
  const threads = threadCount(grant);
  const outDir = path.resolve(target.output_dir);
  const part_path = hls ? path.join(outDir, `${name}.m3u8`) : path.join(outDir, `${target.task_id}.part.${container}`);
  const final_path = hls ? part_path : path.join(outDir, `${target.task_id}.${container}`);

  const x265Params: string[] = [];
  const input = [...globalArgs(threads), ...inputArgs(schema.input, threads, 'encode', target.input)];
  const tone = schema.input.kind === 'synthetic' && schema.input.audio === true
    ? ['-f', 'lavfi', '-t', fmt(num(schema.input.duration_s, 'input.duration_s', 0, 24 * 3600)), '-i', TONE] : [];
  const video = codecArgs(schema, grant, threads, x265Params);
  const common = [...input, ...tone, ...video];
  const audio = audioArgs(schema, container, target.audio_codecs);
  const finalOut = hls
    ? [
      // Apple's players take HEVC in fMP4 only as hvc1 (parameter sets in the sample entry).
      ...(codec === 'hevc' ? ['-tag:v', 'hvc1'] : []),
      '-force_key_frames', `expr:gte(t,n_forced*${HLS_SEGMENT_S})`,
      '-f', 'hls', '-hls_time', String(HLS_SEGMENT_S), '-hls_playlist_type', 'vod', '-hls_list_size', '0',
      '-hls_flags', 'independent_segments', '-hls_segment_type', 'fmp4', '-hls_fmp4_init_filename', `${name}-init.mp4`,
      '-hls_segment_filename', path.join(outDir, `${name}-%05d.m4s`), `file:${part_path}`,
    ]
    : ['-f', container, `file:${part_path}`];
  const withX265 = (extra: string[]) => (encoder === 'libx265' ? ['-x265-params', [...x265Params, ...extra].join(':')] : []);
  if (output.passes !== 2) return { passes: [[...common, ...audio, ...withX265([]), ...finalOut]], part_path, final_path, container };

  // The first pass only analyses the picture: no audio is read or encoded for it.
  const videoOnly = ['-map', `0:v:0`, '-an'];
  const nullOut = ['-f', 'null', '/dev/null'];
  if (encoder === 'libsvtav1') throw new UnsupportedEncodeError('output.passes', 'ffmpeg 5.1 cannot run libsvtav1 in two passes');
  if (encoder === 'libx265') {
    // libx265 in ffmpeg 5.1 ignores -pass; x265 takes its own pass/stats settings.
    const stats = `${target.passlog_prefix}.x265`;
    if (stats.includes(':')) throw new UnsupportedEncodeError('passlog_prefix', 'must not contain ":" (the x265-params separator)');
    return {
      passes: [[...input, ...video, ...videoOnly, ...withX265(['pass=1', `stats=${stats}`]), ...nullOut], [...common, ...audio, ...withX265(['pass=2', `stats=${stats}`]), ...finalOut]],
      part_path, final_path, container,
    };
  }
  const pass = (n: 1 | 2) => ['-pass', String(n), '-passlogfile', target.passlog_prefix];
  return { passes: [[...input, ...video, ...videoOnly, ...pass(1), ...nullOut], [...common, ...audio, ...pass(2), ...finalOut]], part_path, final_path, container };
}

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Stream mapping and audio codec. The first video stream always; audio as `output.audio` says:
 * `none` drops it (`-an`); otherwise every audio stream of a file input is mapped optionally
 * (`0:a?`: a video-only input is not an error), and a synthetic input's tone where one was asked
 * for. `auto` copies where the container carries every input audio codec (known from ffprobe),
 * else encodes: AAC for MP4 and HLS, Opus for WebM.
 */
export function audioArgs(schema: EncodingSchema, container: Container, audio_codecs?: readonly string[]): string[] {
  const spec: AudioSpec = schema.output.audio ?? { mode: 'auto' };
  const mode = member(spec.mode, AUDIO_MODES, 'output.audio.mode');
  const tone = schema.input.kind === 'synthetic' && schema.input.audio === true;
  if (mode === 'none' || (schema.input.kind === 'synthetic' && !tone) || (audio_codecs !== undefined && audio_codecs.length === 0)) return ['-map', '0:v:0', '-an', '-sn', '-dn'];
  const map = ['-map', '0:v:0', '-map', tone ? '1:a:0' : '0:a?', '-sn', '-dn'];
  const encoded = container === 'webm' ? 'libopus' : 'aac';
  const encode = (kbps: number) => ['-c:a', encoded, '-b:a', `${Math.round(num(kbps, 'output.audio.bitrate_kbps', 8, 512, true))}k`];
  const copyable = !tone && audio_codecs !== undefined && audio_codecs.every((c) => COPYABLE_AUDIO[container].includes(c));
  switch (mode) {
    case 'auto': return [...map, ...(copyable ? ['-c:a', 'copy'] : encode(DEFAULT_AUDIO_KBPS))];
    case 'copy':
      if (tone) throw new UnsupportedEncodeError('output.audio', 'the synthetic tone is raw PCM, which cannot be copied into the output: use auto or an encoded mode');
      if (audio_codecs !== undefined && !copyable) throw new UnsupportedEncodeError('output.audio', `the input's ${audio_codecs.join(', ')} audio cannot be copied into ${container === 'hls' ? 'HLS' : container.toUpperCase()} (it takes ${COPYABLE_AUDIO[container].join(', ')}): use auto or an encoded mode`);
      return [...map, '-c:a', 'copy'];
    case 'aac':
    case 'opus': {
      if ((mode === 'aac') !== (encoded === 'aac')) throw new UnsupportedEncodeError('output.audio', `${mode} audio does not go into ${container === 'hls' ? 'HLS' : container.toUpperCase()}`);
      return [...map, ...encode((spec as { bitrate_kbps?: number }).bitrate_kbps ?? DEFAULT_AUDIO_KBPS)];
    }
  }
}

/** HLS segment length of a live channel, in seconds: keyframes are forced at this interval. */
export const LIVE_SEGMENT_S = 2;
/** Segments a live channel's playlist keeps; older ones are deleted, so its disk use is bounded. */
export const LIVE_WINDOW_SEGMENTS = 6;

/** What an actor (a live channel) runs and where it writes. */
export interface LivePlan {
  argv: string[];
  /** `OUTDIR/<task_id>.live/`: the playlist, the init segment and the rolling window of segments. */
  dir: string;
  /** `dir/index.m3u8`; closed with #EXT-X-ENDLIST when the channel is stopped gracefully (SIGINT). */
  playlist: string;
}

/**
 * Argv of a live channel: input paced at real time (`-re`; a file loops, a lavfi source has no
 * end), one pass, a rolling HLS window of fMP4 segments (every codec fits fMP4). Segments are
 * published in place as they complete: a live window is not a file a retry could leave half of.
 */
export function compileLive(
  schema: EncodingSchema, grant: Grant,
  target: Pick<EncodeTarget, 'task_id' | 'output_dir' | 'input'> & {
    /** The path ffmpeg reaches `dir` by (a handed descriptor); default `dir` itself. */
    ffmpeg_dir?: string;
  },
): LivePlan {
  if (schema.kind !== 'actor') throw new UnsupportedEncodeError('kind', 'only an actor runs as a live channel');
  if (schema.output.passes !== 1) throw new UnsupportedEncodeError('output.passes', 'a live channel encodes in one pass');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(target.task_id)) throw new UnsupportedEncodeError('task_id', `${JSON.stringify(target.task_id)} is not safe as a file name`);
  const threads = threadCount(grant);
  const dir = path.join(path.resolve(target.output_dir), `${target.task_id}.live`);
  const playlist = path.join(dir, 'index.m3u8');
  const writeIn = target.ffmpeg_dir ?? dir;
  const x265Params: string[] = [];
  const argv = [
    ...globalArgs(threads),
    ...inputArgs(schema.input, threads, 'live', target.input),
    ...codecArgs(schema, grant, threads, x265Params),
    // A live channel is video only (its window is one video rendition).
    '-map', '0:v:0', '-an', '-sn', '-dn',
    ...(schema.output.encoder === 'libx265' ? ['-x265-params', x265Params.join(':')] : []),
    '-force_key_frames', `expr:gte(t,n_forced*${LIVE_SEGMENT_S})`,
    '-f', 'hls', '-hls_time', String(LIVE_SEGMENT_S), '-hls_list_size', String(LIVE_WINDOW_SEGMENTS),
    '-hls_flags', 'delete_segments+independent_segments+temp_file',
    '-hls_segment_type', 'fmp4', '-hls_fmp4_init_filename', 'init.mp4',
    '-hls_segment_filename', path.join(writeIn, 'seg-%06d.m4s'),
    `file:${path.join(writeIn, 'index.m3u8')}`,
  ];
  return { argv, dir, playlist };
}

/** Everything between the input and the muxer: codec, preset, rate control, geometry, options, threads, GPU. */
function codecArgs(schema: EncodingSchema, grant: Grant, threads: number, x265Params: string[]): string[] {
  const { output } = schema;
  const codec = member(output.codec, OUTPUT_CODECS, 'output.codec');
  const encoder = member(output.encoder, ENCODERS[codec] as readonly Encoder[], 'output.encoder');
  const common = [
    '-c:v', encoder,
    ...presetArgs(encoder, member(output.preset, PRESETS[encoder], 'output.preset')),
    ...rateControlArgs(encoder, output.rate_control),
    ...geometryArgs(output),
    '-pix_fmt', output.options.pix_fmt ?? 'yuv420p',
    ...optionArgs(encoder, output.options, x265Params),
    '-threads', String(threads),
  ];
  // ffmpeg 5.1's libx265 and libsvtav1 ignore -threads and size their pools by the online cores.
  if (encoder === 'libx265') x265Params.push(`pools=${threads}`);
  if (encoder === 'libsvtav1') common.push('-svtav1-params', `lp=${threads}`);
  if (GPU_ENCODERS.has(encoder)) {
    if (grant.gpu_ids.length === 0) throw new UnsupportedEncodeError('gpu_ids', `${encoder} needs a granted GPU`);
    common.push('-gpu', String(num(grant.gpu_ids[0], 'gpu_ids[0]', 0, 64, true)));
  }
  return common;
}

/** A stretch of the output the quality pass compares (seconds from its start). */
export interface QualitySegment { start_s: number; duration_s: number }

/**
 * Argv comparing an encoded file with its reference: the regenerated lavfi source for synthetic
 * input, the input file otherwise. The distorted stream is brought to the reference's geometry
 * (scale2ref, so an input file of unknown size works too) and frame rate; when the input's rate is
 * unknown the reference is converted to the output's rate instead. Read the result with parseQuality.
 */
export function compileQuality(schema: EncodingSchema, distorted_path: string, grant: Grant, opts: { vmaf?: boolean; segment?: QualitySegment; input?: InputAccess } = {}): string[] {
  const { input, output } = schema;
  const threads = threadCount(grant);
  // Compare in the output's pixel format: otherwise the reference keeps the source's full
  // chroma and even a lossless encode scores ~39 dB.
  const pix = `format=${output.options.pix_fmt ?? 'yuv420p'}`;
  const dist: string[] = [pix];
  const ref: string[] = [pix];
  if (output.fps !== undefined && output.fps !== input.fps) {
    if (input.fps !== undefined) dist.push(`fps=${fmt(num(input.fps, 'input.fps', 0, 240))}`);
    else ref.push(`fps=${fmt(num(output.fps, 'output.fps', 0, 240))}`);
  }
  dist.push('setpts=PTS-STARTPTS');
  ref.push('setpts=PTS-STARTPTS');
  const rescale = output.resolution !== undefined && !sameSize(output.resolution, input.resolution);
  // Each metric filter passes its first input through, so they chain: psnr → ssim (→ libvmaf).
  const refs = opts.vmaf ? 3 : 2;
  const refLabels = Array.from({ length: refs }, (_, i) => `[r${i + 1}]`).join('');
  const graph = [
    `[0:v]${dist.join(',')}[d]`,
    `[1:v]${ref.join(',')}[r]`,
    ...(rescale ? ['[d][r]scale2ref=flags=bicubic[ds][rs]', `[rs]split=${refs}${refLabels}`, '[ds][r1]psnr[dp]'] : [`[r]split=${refs}${refLabels}`, '[d][r1]psnr[dp]']),
    ...(opts.vmaf ? ['[dp][r2]ssim[dq]', `[dq][r3]libvmaf=n_threads=${threads}`] : ['[dp][r2]ssim']),
  ].join(';');
  // A segment reads the same stretch of both (an input seek decodes up to its exact frame).
  // No -ss at 0: a seek to 0 in an mp4 whose first frame's timestamp is past 0 (B-frame delay)
  // lands a frame off its reference (22.8 dB where the whole output scores 36.4).
  const start = opts.segment ? num(opts.segment.start_s, 'segment.start_s', 0, 24 * 3600) : 0;
  const seg = opts.segment ? [...(start > 0 ? ['-ss', fmt(start)] : []), '-t', fmt(num(opts.segment.duration_s, 'segment.duration_s', 0.04, 24 * 3600))] : [];
  const source = inputArgs(input, threads, 'encode', opts.input);
  const at = source.lastIndexOf('-i');
  return [
    ...globalArgs(threads),
    '-protocol_whitelist', 'file', '-threads', String(threads), ...seg, '-i', `file:${path.resolve(distorted_path)}`,
    ...source.slice(0, at), ...seg, ...source.slice(at),
    '-filter_complex', graph,
    '-f', 'null', '-',
  ];
}

/**
 * Reads the final PSNR and SSIM summary lines from ffmpeg's stderr. An infinite PSNR (identical
 * streams) is reported as LOSSLESS_PSNR_DB; a metric whose line is missing is left out.
 */
export function parseQuality(stderr: string): { psnr_db?: number; ssim?: number; vmaf?: number } {
  const psnr = [...stderr.matchAll(/\bPSNR\b.*?\baverage:(inf|\d+(?:\.\d+)?)/g)].at(-1)?.[1];
  const ssim = [...stderr.matchAll(/\bSSIM\b.*?\bAll:(\d+(?:\.\d+)?)/g)].at(-1)?.[1];
  const vmaf = [...stderr.matchAll(/\bVMAF score:\s*(\d+(?:\.\d+)?)/g)].at(-1)?.[1];
  return {
    ...(psnr !== undefined && { psnr_db: psnr === 'inf' ? LOSSLESS_PSNR_DB : Number(psnr) }),
    ...(ssim !== undefined && { ssim: Number(ssim) }),
    ...(vmaf !== undefined && { vmaf: Number(vmaf) }),
  };
}

/**
 * Frames the content-complexity probe reads from the start of the input. siti costs about 0.1 s
 * of CPU per 1080p frame here (a 2-second sample took 6.8 s), and its means settle within a dozen
 * frames; the submit-time probe and the run row measure the same frames, so the model sees the
 * same figure at prediction as in training.
 */
export const COMPLEXITY_PROBE_FRAMES = 12;

/**
 * Argv measuring the input's spatial and temporal information (ITU-T P.910, ffmpeg's `siti`
 * filter) over its first frames. Read the result with parseSiti.
 */
export function compileComplexityProbe(schema: Pick<EncodingSchema, 'input'>, grant: Grant, frames = COMPLEXITY_PROBE_FRAMES, input?: InputAccess): string[] {
  const threads = threadCount(grant);
  return [
    ...globalArgs(threads),
    ...inputArgs(schema.input, threads, 'probe', input),
    '-frames:v', String(Math.round(num(frames, 'probe frames', 1, 10_000))), '-vf', 'siti=print_summary=1', '-f', 'null', '-',
  ];
}

/** Frames a pilot encode makes (shared PilotEncode), unless the job has fewer: as many as the complexity sample reads. */
export const PILOT_FRAMES = COMPLEXITY_PROBE_FRAMES;

/**
 * Argv of a pilot encode: the job's own encode (compileEncode) of its first `frames` frames, in
 * one pass, without audio, into the null muxer, on `grant`'s threads. Two-pass and HLS jobs are
 * tried as one pass to a plain stream: the model learns what the second pass and segmenting add.
 */
export function compilePilot(schema: EncodingSchema, grant: Grant, frames = PILOT_FRAMES, input?: InputAccess): string[] {
  const n = Math.round(num(frames, 'pilot frames', 1, 10_000));
  const one: EncodingSchema = { ...schema, output: { ...schema.output, passes: 1, format: undefined, audio: { mode: 'none' } } };
  const plan = compileEncode(one, grant, { task_id: 'pilot', output_dir: '/', passlog_prefix: '/pilot', input });
  const argv = plan.passes[0];
  // compileEncode ends a plain output with `-f CONTAINER file:PATH`: the pilot writes nothing.
  if (argv.at(-3) !== '-f' || !argv.at(-1)?.startsWith('file:')) throw new Error('compilePilot: the encode\'s output is not where it is expected');
  return [...argv.slice(0, -3), '-frames:v', String(n), '-f', 'null', '-'];
}

/** The kilobytes of video a run made, from ffmpeg's closing `video:NkB` line; undefined when missing. */
export function parseVideoKb(stderr: string): number | undefined {
  const m = /\bvideo:(\d+)kB\b/.exec(stderr);
  return m ? Number(m[1]) : undefined;
}

/** Reads the SITI summary ffmpeg prints at the end of a probe; undefined when it is missing. */
export function parseSiti(stderr: string, probe_s: number): ContentComplexity | undefined {
  const m = /SITI Summary:[\s\S]*?Spatial Information:\s*Average:\s*([\d.]+)\s*Max:\s*([\d.]+)[\s\S]*?Temporal Information:\s*Average:\s*([\d.]+)\s*Max:\s*([\d.]+)/.exec(stderr);
  if (!m) return undefined;
  return { si_mean: Number(m[1]), si_max: Number(m[2]), ti_mean: Number(m[3]), ti_max: Number(m[4]), probe_s };
}

/**
 * Flags every run gets: no prompts, machine-readable progress on stdout, and `-benchmark`, whose
 * closing `bench:` lines give the process's exact CPU time and peak RSS.
 */
function globalArgs(threads: number): string[] {
  const t = String(threads);
  return [
    '-hide_banner', '-nostdin', '-nostats', '-y', '-benchmark',
    '-progress', 'pipe:1', '-stats_period', String(PROGRESS_PERIOD_S),
    '-filter_threads', t, '-filter_complex_threads', t,
  ];
}

/**
 * Synthetic input is a lavfi source limited with `-t` (mandelbrot and life have no `duration`
 * option). Both the source and the noise filter must be reproducible, since the quality pass
 * regenerates them as its reference: noise's default seed is fixed, life's is random unless set.
 */
function inputArgs(input: InputSpec, threads: number, use: 'encode' | 'live' | 'probe' = 'encode', access?: InputAccess): string[] {
  const live = use === 'live';
  // Live: read at the input's own rate, not as fast as possible; a file starts over at its end.
  const pace = live ? ['-re', ...(input.kind === 'file' ? ['-stream_loop', '-1'] : [])] : [];
  if (input.kind === 'file') {
    const opened = access?.path ?? input.path;
    for (const p of [input.path, opened]) {
      if (typeof p !== 'string' || !path.isAbsolute(p) || /[\0\r\n]/.test(p)) throw new UnsupportedEncodeError('input.path', 'must be an absolute path without control characters');
    }
    if (access && !/^[\w,-]+$/.test(access.format)) throw new UnsupportedEncodeError('input.path', `demuxer ${JSON.stringify(access.format)} is not a name ffmpeg knows`);
    // input.duration_s: encode only that much from the start (and compare only that much).
    const length = !live && use !== 'probe' && input.duration_s !== undefined ? ['-t', fmt(num(input.duration_s, 'input.duration_s', 0, 24 * 3600))] : [];
    // `file:` stops ffmpeg from reading a protocol (concat:, http:, ...) into the path, and the
    // whitelist stops a demuxer from opening any other protocol for what the file names.
    const guard = ['-protocol_whitelist', 'file', ...(access ? ['-format_whitelist', access.format] : [])];
    return [...guard, ...pace, '-threads', String(threads), ...length, '-i', `file:${opened}`];
  }
  const source = member(input.source, SYNTHETIC_SOURCES, 'input.source');
  const { width, height } = size(input.resolution, 'input.resolution');
  const opts = [`size=${width}x${height}`, `rate=${fmt(num(input.fps, 'input.fps', 0, 240))}`];
  if (source === 'life') opts.push('seed=1');
  const noise = Math.round(num(input.noise, 'input.noise', 0, 100));
  const graph = `${source}=${opts.join(':')}${noise > 0 ? `,noise=alls=${noise}:allf=t` : ''}`;
  // A probe bounds its read with its own -t, so a live source (no duration) can be probed too.
  const length = live || (use === 'probe' && input.duration_s === undefined) ? [] : ['-t', fmt(num(input.duration_s, 'input.duration_s', 0, 24 * 3600))];
  return [...pace, '-f', 'lavfi', ...length, '-i', graph];
}

function presetArgs(encoder: Encoder, preset: string): string[] {
  switch (encoder) {
    case 'libvpx-vp9': return ['-deadline', 'good', '-cpu-used', preset, '-row-mt', '1'];
    case 'libaom-av1': return ['-cpu-used', preset, '-row-mt', '1'];
    default: return ['-preset', preset]; // x264/x265 names, SVT-AV1 numbers, nvenc p1–p7
  }
}

function rateControlArgs(encoder: Encoder, rc: RateControl): string[] {
  if (rc.mode === 'crf') {
    const crf = String(num(rc.crf, 'output.rate_control.crf', 0, 255, true));
    if (GPU_ENCODERS.has(encoder)) return ['-rc', 'vbr', '-cq', crf, '-b:v', '0'];
    // libvpx and libaom treat -crf as a cap unless the target bitrate is zero.
    if (encoder === 'libvpx-vp9' || encoder === 'libaom-av1') return ['-crf', crf, '-b:v', '0'];
    return ['-crf', crf];
  }
  if (rc.mode !== 'bitrate') throw new UnsupportedEncodeError('output.rate_control.mode', `unknown mode ${JSON.stringify((rc as { mode: unknown }).mode)}`);
  const kbps = Math.max(1, Math.round(num(rc.bitrate_kbps, 'output.rate_control.bitrate_kbps', 0, 1_000_000)));
  return ['-b:v', `${kbps}k`, '-maxrate', `${Math.round(kbps * MAXRATE_FACTOR)}k`, '-bufsize', `${kbps * BUFSIZE_FACTOR}k`];
}

function geometryArgs(output: OutputSpec): string[] {
  const args: string[] = [];
  if (output.resolution !== undefined) {
    const { width, height } = size(output.resolution, 'output.resolution');
    args.push('-vf', `scale=${width}:${height}`);
  }
  if (output.fps !== undefined) args.push('-r', fmt(num(output.fps, 'output.fps', 0, 240)));
  if (output.gop !== undefined) args.push('-g', String(num(output.gop, 'output.gop', 1, 10_000, true)));
  return args;
}

/** Allow-listed extra options; `pix_fmt` is placed by the caller, x265's level goes into x265-params. */
function optionArgs(encoder: Encoder, options: Record<string, string>, x265Params: string[]): string[] {
  const args: string[] = [];
  for (const [name, value] of Object.entries(options)) {
    const rule = Object.hasOwn(EXTRA_OPTIONS, name) ? EXTRA_OPTIONS[name] : undefined;
    const allowed = rule && rule.encoders.includes(encoder) && typeof value === 'string' && (rule.values ? rule.values.includes(value) : rule.pattern!.test(value));
    if (!allowed) throw new UnsupportedEncodeError(`output.options.${name}`, `${JSON.stringify(value)} is not allowed with ${encoder}`);
    if (name === 'pix_fmt') continue;
    // ffmpeg 5.1's libx265 silently ignores -level.
    if (name === 'level' && encoder === 'libx265') x265Params.push(`level-idc=${value}`);
    else args.push(OPTION_FLAGS[name], value);
  }
  return args;
}

function threadCount({ core_ids, threads }: Pick<Grant, 'core_ids' | 'threads'>): number {
  if (!Array.isArray(core_ids) || core_ids.length === 0) throw new UnsupportedEncodeError('core_ids', 'at least one core must be granted');
  core_ids.forEach((c, i) => num(c, `core_ids[${i}]`, 0, 4095, true));
  if (new Set(core_ids).size !== core_ids.length) throw new UnsupportedEncodeError('core_ids', 'lists a core twice');
  return threads === undefined ? core_ids.length : num(threads, 'threads', 1, core_ids.length, true);
}

function num(v: unknown, field: string, lo: number, hi: number, integer = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi || (integer && !Number.isInteger(v))) {
    throw new UnsupportedEncodeError(field, `must be a${integer ? ' whole' : ''} number in [${lo}, ${hi}], got ${JSON.stringify(v)}`);
  }
  return v;
}

function member<T extends string>(v: unknown, allowed: readonly T[], field: string): T {
  if (!allowed.includes(v as T)) throw new UnsupportedEncodeError(field, `${JSON.stringify(v)} is not one of ${allowed.join(', ')}`);
  return v as T;
}

function size(r: Resolution, field: string): Resolution {
  return { width: num(r?.width, `${field}.width`, 2, 8192, true), height: num(r?.height, `${field}.height`, 2, 8192, true) };
}

function sameSize(a: Resolution, b: Resolution | undefined): boolean {
  return b !== undefined && a.width === b.width && a.height === b.height;
}

/** Decimal without exponent notation, which ffmpeg's time and rate parsers reject. */
function fmt(n: number): string {
  return String(Number(n.toFixed(6)));
}
