/**
 * What an encode's input is, measured before the job is predicted:
 *
 * - `probeInput`: a file's geometry, frame rate, length, codec, bitrate, pixel format and audio
 *   streams from ffprobe, and its content complexity (spatial and temporal information, ffmpeg's
 *   `siti` filter over the first seconds); a lavfi source's complexity alone (the rest is its own
 *   settings). `prescient submit` attaches the result to the job; where the submitter cannot read
 *   the file, the leader asks a node to probe it (agent `Probe`).
 * - `ProbeCache`: probes by path, size and modification time (a changed file is probed again),
 *   kept in memory and, for the CLI, in a JSON file between runs.
 * - `measureComplexity`: the complexity alone, as the recorder measures it for every run row.
 * - `measurePilot`: a test encode of the job's first frames with its own settings (its CPU, bits
 *   and peak memory), which `prescient submit` and calibration attach to the probe.
 *
 * ffprobe and ffmpeg run without a shell, unprivileged, on a file input the agent opened and
 * checked (inputs.ts: inside `roots` after symlinks, no playlist or concat list), with a time
 * limit. An input that cannot be probed gives undefined, never a guess.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PILOT_FRAMES_MAX, type ContentComplexity, type EncodingSchema, type InputProbe, type InputSpec, type PilotEncode, type ProbeOrigin } from '../../shared/index.js';
import {
  COMPLEXITY_PROBE_FRAMES, PILOT_FRAMES, compileComplexityProbe, compilePilot, compileQuality, parseQuality, parseSiti, parseVideoKb, type Grant, type QualitySegment,
} from './args.js';
import { ffmpegCapabilities } from './capabilities.js';
import { FfmpegExitError } from './errors.js';
import { openInput, openOwn, resolveInput, type HandedInput } from './inputs.js';
import { runFfmpeg } from './run.js';
import { handedPath } from './sandbox.js';

export { ffprobePath } from './inputs.js';

/** Where a measurement's file input may be (inputs.ts): absent, it is only resolved, not held to any root. */
export interface InputOptions {
  roots?: readonly string[];
  signal?: AbortSignal;
}

/** Opens a schema's file input for a measurement (undefined for a lavfi source). */
const openFor = (schema: Pick<EncodingSchema, 'input'>, o: InputOptions) => (schema.input.kind === 'file' ? openInput(schema.input.path, o) : Promise.resolve(undefined));

/**
 * The input's complexity over its first COMPLEXITY_PROBE_FRAMES frames (`probe_s`: their length
 * where the rate is known); `input`: already opened by the caller.
 */
export async function measureComplexity(
  schema: Pick<EncodingSchema, 'input'>, grant: Grant, o: InputOptions & { fps?: number; idle?: boolean; input?: HandedInput } = {},
): Promise<ContentComplexity | undefined> {
  const seconds = COMPLEXITY_PROBE_FRAMES / (o.fps ?? schema.input.fps ?? 25);
  let opened: HandedInput | undefined;
  try {
    const input = o.input ?? (opened = await openFor(schema, o));
    const r = await runFfmpeg(compileComplexityProbe(schema, grant, COMPLEXITY_PROBE_FRAMES, input?.access), { core_ids: grant.core_ids, signal: o.signal, idle: o.idle, handed: { input: input?.fd } });
    return parseSiti(r.stderr, Math.round(Math.min(seconds, schema.input.duration_s ?? seconds) * 1000) / 1000);
  } catch (e) {
    if (o.signal?.aborted) throw e;
    return undefined;
  } finally {
    await opened?.close();
  }
}

/** Cache keys (ProbeCache): a lavfi source by what makes its pictures, a file by its path, size and modification time. */
const lavfiKey = (i: Extract<InputSpec, { kind: 'synthetic' }>) => `lavfi\0${i.source}\0${i.resolution.width}x${i.resolution.height}\0${i.fps}\0${i.noise}`;
const fileKey = (file: string, size: number, mtime_ms: number) => `file\0${file}\0${size}\0${mtime_ms}`;

/** A pilot encode taking longer than this is stopped and the job goes without one (then predicted as unpiloted). */
export const PILOT_TIMEOUT_MS = 30_000;

/**
 * A pilot encode of the job (args.ts compilePilot): the CPU seconds, video kilobytes and peak memory of its
 * first PILOT_FRAMES frames with the job's own settings, on one thread of `grant`'s cores.
 * Undefined when it fails, is stopped by PILOT_TIMEOUT_MS, or ffmpeg did not report its CPU:
 * never a guess. Cancelling `o.signal` cancels it (and throws).
 */
export async function measurePilot(
  schema: EncodingSchema, grant: Grant, o: InputOptions & { input?: HandedInput; timeout_ms?: number } = {},
): Promise<PilotEncode | undefined> {
  let opened: HandedInput | undefined;
  const signal = o.signal ? AbortSignal.any([o.signal, AbortSignal.timeout(o.timeout_ms ?? PILOT_TIMEOUT_MS)]) : AbortSignal.timeout(o.timeout_ms ?? PILOT_TIMEOUT_MS);
  try {
    const input = o.input ?? (opened = await openFor(schema, o));
    const r = await runFfmpeg(compilePilot(schema, { ...grant, threads: 1 }, PILOT_FRAMES, input?.access), { core_ids: grant.core_ids, signal, handed: { input: input?.fd } });
    const frames = r.last_progress?.frame;
    if (r.cpu_s === undefined || !frames || !(frames > 0)) return undefined;
    const video_kb = parseVideoKb(r.stderr);
    const memory_mb = Math.round(r.usage.memory_gb_peak * 1024 * 10) / 10;
    return { frames: Math.min(frames, PILOT_FRAMES_MAX), cpu_s: Math.round(r.cpu_s * 1000) / 1000, ...(video_kb !== undefined && { video_kb }), ...(memory_mb > 0 && { memory_mb }) };
  } catch (e) {
    if (o.signal?.aborted) throw e;
    return undefined;
  } finally {
    await opened?.close();
  }
}

/**
 * A pilot of `schema` (measurePilot), from `cache` when the same input (a file of the same size
 * and modification time, the probe says) was tried with the same output settings: one job's
 * pilot is then exactly another's, and so is its prediction.
 */
export async function pilotFor(schema: EncodingSchema, grant: Grant, o: InputOptions & { cache?: ProbeCache } = {}): Promise<PilotEncode | undefined> {
  const inp = schema.input, p = inp.probe;
  // A lavfi source's length matters too: a job shorter than the pilot is piloted whole.
  const key = inp.kind === 'synthetic' ? `${lavfiKey(inp)}\0${inp.duration_s}`
    : p?.size_bytes !== undefined && p.mtime_ms !== undefined ? fileKey(inp.path, p.size_bytes, p.mtime_ms) : undefined;
  const full = key === undefined ? undefined : `pilot\0${key}\0${JSON.stringify(schema.output)}`;
  const hit = full === undefined ? undefined : o.cache?.get(full)?.pilot;
  if (hit) return hit;
  const pilot = await measurePilot(schema, grant, o);
  if (pilot && full !== undefined) o.cache?.set(full, { by: p?.by ?? 'submitter', pilot });
  return pilot;
}

/** Outputs up to this long are compared whole; longer ones on QUALITY_SEGMENTS stretches. */
export const QUALITY_WHOLE_UP_TO_S = 6;
/** Where the stretches of a longer output lie (fractions of its length), and how long each is. */
export const QUALITY_SEGMENTS = [0.1, 0.5, 0.9] as const;
export const QUALITY_SEGMENT_S = 2;

/** How measureQuality compares an output of `length_s` seconds (undefined: unknown, compared whole): the job's record says which. */
export function qualityMethod(length_s: number | undefined): { segments?: QualitySegment[]; method: string } {
  if (length_s === undefined || !(length_s > QUALITY_WHOLE_UP_TO_S)) return { method: 'whole output against its source' };
  const segments = QUALITY_SEGMENTS.map((f) => ({ start_s: Math.round(Math.max(0, Math.min(length_s - QUALITY_SEGMENT_S, f * length_s - QUALITY_SEGMENT_S / 2)) * 1000) / 1000, duration_s: QUALITY_SEGMENT_S }));
  return { segments, method: `${segments.length} segments of ${QUALITY_SEGMENT_S} s against its source (from ${segments.map((x) => `${x.start_s} s`).join(', ')}; the mean of their means)` };
}

/**
 * PSNR and SSIM (and VMAF where this ffmpeg has libvmaf) of an encode's output against its
 * source: whole, or the mean over sampled segments (qualityMethod) of an output `length_s` long.
 * A failed measurement gives {} rather than failing a good encode; cancellation still cancels, and
 * an input refused by its checks (UnsupportedEncodeError) is thrown.
 * `idle`: at the lowest CPU priority (after the reservation is released).
 */
export async function measureQuality(
  schema: EncodingSchema, distorted: string, grant: Grant, o: InputOptions & { idle?: boolean; length_s?: number } = {},
): Promise<{ psnr_db?: number; ssim?: number; vmaf?: number; method: string }> {
  const { segments, method } = qualityMethod(o.length_s);
  let input: HandedInput | undefined;
  let dist: Awaited<ReturnType<typeof openOwn>> | undefined;
  try {
    const { vmaf } = await ffmpegCapabilities();
    input = await openFor(schema, o);
    dist = await openOwn(distorted);
    const parts: { psnr_db?: number; ssim?: number; vmaf?: number }[] = [];
    for (const segment of segments ?? [undefined]) {
      const run = await runFfmpeg(compileQuality(schema, handedPath('distorted'), grant, { vmaf, segment, input: input?.access }), {
        core_ids: grant.core_ids, signal: o.signal, idle: o.idle, handed: { input: input?.fd, distorted: dist.fd },
      });
      parts.push(parseQuality(run.stderr));
    }
    const avg = (k: 'psnr_db' | 'ssim' | 'vmaf') => {
      const xs = parts.map((p) => p[k]).filter((x): x is number => x !== undefined);
      return xs.length === parts.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined;
    };
    return { psnr_db: avg('psnr_db'), ssim: avg('ssim'), vmaf: avg('vmaf'), method };
  } catch (e) {
    if (e instanceof FfmpegExitError) return { method };
    throw e;
  } finally {
    await input?.close();
    await dist?.close();
  }
}

export interface ProbeOptions {
  by: ProbeOrigin;
  /** Cores the complexity sample may run on (default: all of this machine's). */
  core_ids?: number[];
  cache?: ProbeCache;
  signal?: AbortSignal;
  /**
   * Directories the file's real path must lie in: a node passes its allowed input roots. Absent
   * (a submitter's probe), the path is only resolved: the probe reads with the submitter's rights.
   */
  roots?: readonly string[];
}

/**
 * Probes an input. A file that cannot be read or is not video gives undefined; one whose
 * complexity sample fails still gives what ffprobe told.
 */
export async function probeInput(input: InputSpec, o: ProbeOptions): Promise<InputProbe | undefined> {
  const grant = { core_ids: o.core_ids ?? allCores(), gpu_ids: [] };
  if (input.kind === 'synthetic') {
    const key = lavfiKey(input);
    const hit = o.cache?.get(key);
    if (hit) return { ...hit, by: o.by };
    const cx = await measureComplexity({ input }, grant, { signal: o.signal });
    if (!cx) return undefined;
    const probe: InputProbe = { by: o.by, si_mean: cx.si_mean, si_max: cx.si_max, ti_mean: cx.ti_mean, ti_max: cx.ti_max, siti_s: cx.probe_s };
    o.cache?.set(key, probe);
    return probe;
  }
  let st;
  try {
    st = await stat(await resolveInput(input.path, o.roots));
  } catch {
    return undefined;
  }
  if (!st.isFile()) return undefined;
  const key = fileKey(input.path, st.size, st.mtimeMs);
  const hit = o.cache?.get(key);
  if (hit) return { ...hit, by: o.by };
  // Refused (outside the roots, a playlist) or unreadable: not probed, and the encode will say why.
  const opened = await openInput(input.path, { roots: o.roots, signal: o.signal, streams: true }).catch(() => undefined);
  if (!opened) return undefined;
  try {
    const found = readFfprobe(opened.ffprobe);
    if (!found) return undefined;
    const probe: InputProbe = { by: o.by, ...found, size_bytes: opened.size, mtime_ms: Math.round(opened.mtime_ms) };
    const whole: InputSpec = { ...input, duration_s: undefined };
    const cx = await measureComplexity({ input: whole }, grant, { signal: o.signal, fps: probe.fps, input: opened });
    if (cx) Object.assign(probe, { si_mean: cx.si_mean, si_max: cx.si_max, ti_mean: cx.ti_mean, ti_max: cx.ti_max, siti_s: Math.min(cx.probe_s, probe.duration_s ?? cx.probe_s) });
    o.cache?.set(key, probe);
    return probe;
  } finally {
    await opened.close();
  }
}

const allCores = () => Array.from({ length: os.availableParallelism() }, (_, i) => i);

/** A positive finite number from ffprobe's text, or undefined. */
const positive = (v: unknown): number | undefined => {
  const n = typeof v === 'string' || typeof v === 'number' ? Number(v) : NaN;
  return Number.isFinite(n) && n > 0 ? n : undefined;
};
/** "30000/1001" → 29.97; "0/0" → undefined. */
const rate = (v: unknown): number | undefined => {
  if (typeof v !== 'string') return undefined;
  const [a, b] = v.split('/').map(Number);
  return positive(b === undefined ? a : a / b);
};
/** A name ffprobe printed, as the schema's probe allows it (lowercase letters, digits, underscores). */
const name = (v: unknown): string | undefined => (typeof v === 'string' && /^[a-z0-9_]{1,32}$/.test(v) ? v : undefined);

type Probed = Omit<InputProbe, 'by' | 'size_bytes' | 'mtime_ms' | 'si_mean' | 'si_max' | 'ti_mean' | 'ti_max' | 'siti_s'>;

/**
 * The figures of ffprobe's JSON (`-show_format -show_streams`) the model reads, from its first
 * video stream (cover art is not video); undefined when there is none. Exported for tests.
 */
export function readFfprobe(json: unknown): Probed | undefined {
  const doc = json as { streams?: Array<Record<string, unknown>>; format?: Record<string, unknown> };
  const streams = Array.isArray(doc?.streams) ? doc.streams : [];
  const video = streams.find((s) => s?.codec_type === 'video' && (s.disposition as Record<string, unknown> | undefined)?.attached_pic !== 1);
  if (!video) return undefined;
  const format = doc.format ?? {};
  const fps = rate(video.avg_frame_rate) ?? rate(video.r_frame_rate);
  const duration_s = positive(video.duration) ?? positive(format.duration);
  const frames = positive(video.nb_frames) ?? (fps && duration_s ? Math.max(1, Math.round(fps * duration_s)) : undefined);
  const bps = positive(video.bit_rate) ?? positive(format.bit_rate);
  const out: Probed = {
    width: positive(video.width), height: positive(video.height), fps: fps && Math.round(fps * 1000) / 1000,
    codec: name(video.codec_name), pix_fmt: name(video.pix_fmt),
    duration_s: duration_s && Math.round(duration_s * 1000) / 1000, frames: frames && Math.round(frames),
    bitrate_kbps: bps && Math.round(bps / 100) / 10, audio_streams: streams.filter((s) => s?.codec_type === 'audio').length,
  };
  for (const k of Object.keys(out) as (keyof Probed)[]) if (out[k] === undefined) delete out[k];
  return out;
}

/** Probes kept: a probe is small, and a farm's inputs are many. */
const CACHE_ENTRIES = 10_000;

/**
 * Probes by key (path, size and modification time for a file; the source's settings for a lavfi
 * source), least recently used dropped first. With a file, entries are read from it on start and
 * written back by `save` (atomically: a crash never leaves half a cache).
 */
export class ProbeCache {
  private readonly entries = new Map<string, InputProbe>();
  private dirty = false;

  constructor(private readonly file?: string) {
    if (!file) return;
    try {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as unknown;
      if (saved && typeof saved === 'object' && Array.isArray((saved as { entries?: unknown }).entries)) {
        for (const e of (saved as { entries: unknown[] }).entries) {
          if (Array.isArray(e) && typeof e[0] === 'string' && e[1] && typeof e[1] === 'object') this.entries.set(e[0], e[1] as InputProbe);
        }
      }
    } catch {
      // No cache yet, or an unreadable one: start empty (a probe is only ever redone).
    }
  }

  get size(): number { return this.entries.size; }

  get(key: string): InputProbe | undefined {
    const p = this.entries.get(key);
    if (p) { this.entries.delete(key); this.entries.set(key, p); }
    return p;
  }

  set(key: string, p: InputProbe): void {
    this.entries.delete(key);
    this.entries.set(key, p);
    while (this.entries.size > CACHE_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.dirty = true;
  }

  save(): void {
    if (!this.file || !this.dirty) return;
    mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ entries: [...this.entries] }));
    renameSync(tmp, this.file);
    this.dirty = false;
  }
}
