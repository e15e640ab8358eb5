/**
 * Piscina worker entry: runs one EncodeJob — every pass, then the quality measurement on the
 * same cores — and returns its EncodeResult. Cancellation arrives as a message on the task's
 * port (Piscina's own `signal` would terminate this thread mid-encode).
 */
import { lstat, mkdir, readdir, readFile, realpath, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import {
  allowedInputRoots, allowedOutputRoots, effectiveOutput, expandOutputPath, renditionName, stateDir, SchemaValidationError,
  type EncodeResult, type EncodeSample, type OutputMedia,
} from '../../shared/index.js';
import {
  compileEncode, compileLive, runFfmpeg,
  EncodeAbortedError, FfmpegExitError, UnsupportedEncodeError,
  type FfmpegProgress, type FfmpegRun, type Grant,
} from '../ffmpeg/index.js';
import { mergeUsage, strictClock } from '../sampling/index.js';
import { measureQuality } from '../ffmpeg/probe.js';
import { openInput, realRoots, type HandedInput } from '../ffmpeg/inputs.js';
import { mediaSegments, rfc6381Codecs, segmentBandwidth } from '../ffmpeg/hls.js';
import { ffmpegDir, handedPath, reclaim } from '../ffmpeg/sandbox.js';
import { confineTask, ffmpegGpuIds, ReservationExceededError, type Confinement } from '../enforce/index.js';
import type { EncodeJob, EncodeProgress, FromWorker, MeasuredEncode, SerializedError, ToWorker, WorkerOutcome, WorkerTask } from './types.js';

export default async function encodeTask({ job, port }: WorkerTask): Promise<WorkerOutcome> {
  const abort = new AbortController();
  port.on('message', (m: ToWorker) => { if (m.type === 'abort') abort.abort(); });
  const send = (m: FromWorker) => port.postMessage(m);
  try {
    const run = job.schema.kind === 'actor' ? live : encode;
    const result = await run(job, abort.signal, (progress) => send({ type: 'progress', progress }), (sample) => send({ type: 'sample', sample }), (pass, line) => send({ type: 'log', pass, line }));
    return { ok: true, result };
  } catch (e) {
    return { ok: false, error: serializeError(e) };
  } finally {
    send({ type: 'end' });
    port.close();
  }
}

/** The roots a job's input must resolve inside: its own, else this node's configuration's. */
const rootsOf = (job: EncodeJob) => job.input_roots ?? allowedInputRoots(stateDir());

/**
 * ffmpeg writes `<task_id>.part.<ext>` and its two-pass statistics into `<output_dir>/<task_id>.work/`,
 * the one directory it may write (handed to it, owned by its user: ffmpeg/sandbox.ts). The part
 * file becomes `<output_dir>/<task_id>.<ext>` only once the encode and its quality measurement
 * succeeded; the work directory goes in every case, so a retry never finds a half file.
 *
 * Every encode pass runs in the task's confinement, set up before the first and released after
 * the last (also on failure or cancellation). The quality measurement is not part of what the
 * reservation was predicted from, so it runs pinned to the cores only.
 */
async function encode(
  job: EncodeJob, signal: AbortSignal, onProgress: (p: EncodeProgress) => void, onSample: (s: EncodeSample) => void, onLog: (pass: number, line: string) => void,
): Promise<MeasuredEncode> {
  const grant: Grant = { core_ids: job.core_ids, gpu_ids: job.gpu_ids };
  let input: HandedInput | undefined;
  let workDir: string | undefined;
  let work: FileHandle | undefined;
  let confinement: Confinement | undefined;
  try {
    input = job.schema.input.kind === 'file' ? await openInput(job.schema.input.path, { roots: rootsOf(job), signal }) : undefined;
    // The plan as ffmpeg sees it: it writes through its handed directory. With CUDA_VISIBLE_DEVICES
    // set, ffmpeg numbers the reserved GPUs from 0 (its -gpu option).
    const seen = handedPath('dir');
    const picture = probedPicture(input);
    const target = await outputTarget(job, picture);
    const plan = compileEncode(job.schema, { core_ids: job.core_ids, gpu_ids: ffmpegGpuIds(job.enforcement, job.gpu_ids) }, {
      task_id: job.task_id, output_dir: seen, passlog_prefix: path.join(seen, 'pass'), input: input?.access,
      audio_codecs: input ? audioCodecs(input.ffprobe) : undefined, hls_name: target.name,
    });
    // The work dir is beside the final output, so finished files are renamed into place on one filesystem.
    workDir = path.join(target.dir, `${job.task_id}.work`); // task_id is a safe file name once compiled
    const part_path = path.join(workDir, path.basename(plan.part_path));
    const final_path = target.file ?? path.join(target.dir, path.basename(plan.final_path));
    work = await ffmpegDir(workDir);
    confinement = confineTask(job.enforcement, {
      task_id: job.task_id, core_ids: job.core_ids, gpu_ids: job.gpu_ids, memory_gb: job.memory_gb, bandwidth_mbps: job.bandwidth_mbps,
      paths: [...(input ? [input.real_path] : []), target.dir],
    });
    const runs: FfmpegRun[] = [];
    const clock = strictClock(); // one for all passes: ts_ms identifies a sample within its job
    for (const [i, argv] of plan.passes.entries()) {
      const pass = (i + 1) as 1 | 2;
      let progress: FfmpegProgress | undefined;
      runs.push(await runFfmpeg(argv, {
        core_ids: job.core_ids,
        gpu_ids: job.gpu_ids,
        confinement,
        signal,
        handed: { input: input?.fd, dir: work.fd },
        onLog: (line) => onLog(pass, line),
        onProgress: (p) => {
          progress = p;
          onProgress({ task_id: job.task_id, pass, frame: p.frame, fps: p.fps, speed: p.speed, out_bytes: p.total_size, out_time_s: p.out_time_s });
        },
        sampling: {
          interval_ms: job.sample_interval_ms,
          clock,
          onSample: (s) => onSample({
            ...s, job_id: job.task_id, pass, frame: progress?.frame ?? 0, fps: progress?.fps ?? 0, speed: progress?.speed ?? 0, out_bytes: progress?.total_size ?? 0,
          }),
        },
      }));
    }
    // ffmpeg's user owns the work dir: what is there must be the file it wrote, not a link it left.
    const written = await lstat(part_path);
    if (!written.isFile()) throw new Error(`${part_path} is not a regular file after the encode`);
    const hls = plan.container === 'hls';
    const input_bytes = input?.size ?? 0;
    const { method: _method, ...quality } = job.quality === false || hls ? { method: '' } : await measureQuality(job.schema, part_path, grant, { signal, roots: rootsOf(job) });
    await insideRoots(target.dir, job, target.file !== undefined); // again, just before anything is moved there
    const { output_bytes, media } = hls
      ? await publishHls(workDir, target.dir, path.basename(part_path), job, picture)
      : { output_bytes: written.size, media: undefined };
    if (!hls) {
      await rename(part_path, final_path);
      await reclaim(final_path);
    }
    return {
      actual: usage(runs, input_bytes, output_bytes, job.core_ids.length),
      output_bytes,
      output_path: final_path,
      ...(media && { media }),
      ...quality,
      pinned: runs.every((r) => r.pinned),
      frames: runs.at(-1)?.last_progress?.frame ?? 0,
      usage: mergeUsage(runs.map((r) => r.usage)),
      enforcement: { applied: confinement.applied(), shortfalls: confinement.shortfalls() },
    };
  } catch (e) {
    throw withShortfalls(e, confinement?.shortfalls() ?? []);
  } finally {
    await input?.close();
    await work?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
    await confinement?.release();
  }
}

/**
 * An actor: a live channel that runs in its confinement until it is told to stop, then closes
 * its playlist and reports what it used over its whole run. An abort is its stop: a channel's
 * window is published as it goes, so stopping keeps it rather than discarding it.
 */
async function live(
  job: EncodeJob, signal: AbortSignal, onProgress: (p: EncodeProgress) => void, onSample: (s: EncodeSample) => void, onLog: (pass: number, line: string) => void,
): Promise<MeasuredEncode> {
  let confinement: Confinement | undefined;
  let input: HandedInput | undefined;
  let dir: FileHandle | undefined;
  let written: string | undefined;
  try {
    input = job.schema.input.kind === 'file' ? await openInput(job.schema.input.path, { roots: rootsOf(job), signal }) : undefined;
    const plan = compileLive(job.schema, { core_ids: job.core_ids, gpu_ids: ffmpegGpuIds(job.enforcement, job.gpu_ids) }, {
      task_id: job.task_id, output_dir: job.output_dir, input: input?.access, ffmpeg_dir: handedPath('dir'),
    });
    // A restarted channel starts a fresh window rather than appending to the old one's. The
    // window is published as it is written, so the directory is readable by all, as before.
    dir = await ffmpegDir(plan.dir, 0o755);
    written = plan.dir;
    confinement = confineTask(job.enforcement, {
      task_id: job.task_id, core_ids: job.core_ids, gpu_ids: job.gpu_ids, memory_gb: job.memory_gb, bandwidth_mbps: job.bandwidth_mbps,
      paths: [...(input ? [input.real_path] : []), plan.dir],
    });
    let progress: FfmpegProgress | undefined;
    const clock = strictClock();
    const run = await runFfmpeg(plan.argv, {
      core_ids: job.core_ids, gpu_ids: job.gpu_ids, confinement, stop: signal, handed: { input: input?.fd, dir: dir.fd },
      onLog: (line) => onLog(1, line),
      onProgress: (p) => {
        progress = p;
        onProgress({ task_id: job.task_id, pass: 1, frame: p.frame, fps: p.fps, speed: p.speed, out_bytes: p.total_size, out_time_s: p.out_time_s });
      },
      sampling: {
        interval_ms: job.sample_interval_ms, clock,
        onSample: (s) => onSample({ ...s, job_id: job.task_id, pass: 1, frame: progress?.frame ?? 0, fps: progress?.fps ?? 0, speed: progress?.speed ?? 0, out_bytes: progress?.total_size ?? 0 }),
      },
    });
    // What the channel wrote is what its muxer counted; the window on disk is only its last segments.
    const output_bytes = run.last_progress?.total_size || (await dirBytes(plan.dir));
    return {
      actual: usage([run], 0, output_bytes, job.core_ids.length),
      output_bytes,
      output_path: plan.playlist,
      pinned: run.pinned,
      frames: run.last_progress?.frame ?? 0,
      usage: run.usage,
      enforcement: { applied: confinement.applied(), shortfalls: confinement.shortfalls() },
    };
  } catch (e) {
    throw withShortfalls(e, confinement?.shortfalls() ?? []);
  } finally {
    await input?.close();
    await dir?.close();
    if (written) await reclaim(written).catch(() => undefined);
    await confinement?.release();
  }
}

/** The first video stream's size as ffprobe read it from a file input's headers. */
function probedPicture(input: HandedInput | undefined): { width?: number; height?: number; fps?: number } {
  const streams = (input?.ffprobe as { streams?: { codec_type?: string; width?: number; height?: number; avg_frame_rate?: string }[] } | undefined)?.streams ?? [];
  const v = streams.find((s) => s.codec_type === 'video');
  const [n, d] = (v?.avg_frame_rate ?? '').split('/').map(Number);
  return { width: v?.width, height: v?.height, fps: n > 0 && d > 0 ? n / d : undefined };
}

/** Each audio stream's codec name, as ffprobe gave it (`output.audio: auto` copies what the container carries). */
function audioCodecs(ffprobe: unknown): string[] | undefined {
  const streams = (ffprobe as { streams?: { codec_type?: unknown; codec_name?: unknown }[] } | undefined)?.streams;
  if (!Array.isArray(streams)) return undefined;
  const audio = streams.filter((s) => s?.codec_type === 'audio');
  return audio.every((s) => typeof s.codec_name === 'string') ? audio.map((s) => s.codec_name as string) : undefined;
}

/**
 * Where the output goes: the node's output dir (`<task_id>.<ext>`), or `output.path` expanded for
 * this job and node. That directory is made (by the agent: ffmpeg writes only into the work dir
 * inside it, handed to it) and must resolve inside the output roots, links and all.
 */
async function outputTarget(job: EncodeJob, picture: { width?: number; height?: number }): Promise<{ dir: string; file?: string; name?: string }> {
  const s = job.schema;
  const hls = s.output.format === 'hls';
  if (s.output.path === undefined) {
    await mkdir(job.output_dir, { recursive: true });
    return { dir: job.output_dir, ...(hls && { name: job.task_id }) };
  }
  const eff = effectiveOutput(s).resolution ?? (picture.width && picture.height ? { width: picture.width, height: picture.height } : undefined);
  let file: string;
  try {
    file = expandOutputPath(s.output.path, {
      job_id: job.task_id, group: s.group?.id, rendition: renditionName(s, eff?.height), node: job.node_id,
      height: eff ? String(eff.height) : 'source', width: eff ? String(eff.width) : 'source', codec: s.output.codec,
    });
  } catch (e) {
    if (e instanceof SchemaValidationError) throw new UnsupportedEncodeError('output.path', e.issues.map((i) => i.reason).join('; '));
    throw e;
  }
  const dir = path.dirname(file);
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new UnsupportedEncodeError('output.path', `${dir} cannot be made on this node (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): the agent's user must be able to write there`);
  }
  await insideRoots(dir, job, true);
  return { dir, file, ...(hls && { name: path.basename(file, '.m3u8') }) };
}

/** Refuses an `output.path` directory that resolves (through links) outside this node's output roots. */
async function insideRoots(dir: string, job: EncodeJob, named: boolean): Promise<void> {
  if (!named) return;
  const real = await realpath(dir);
  const roots = await realRoots(job.output_roots ?? allowedOutputRoots(stateDir()));
  if (!roots.some((r) => real.startsWith(r.endsWith(path.sep) ? r : r + path.sep) || real === r)) {
    throw new UnsupportedEncodeError('output.path', `${dir} resolves to ${real}, outside this node's output roots (${roots.join(', ') || 'none exists on this node'})`);
  }
}

/**
 * Moves an HLS rendition from the work dir into place: the init segment and the segments first,
 * the playlist last (renamed over any earlier one), so a player never finds a playlist whose
 * segments are not there yet. Returns the bytes written and what a master playlist needs.
 */
async function publishHls(workDir: string, dir: string, playlistName: string, job: EncodeJob, picture: { width?: number; height?: number; fps?: number }): Promise<{ output_bytes: number; media: OutputMedia }> {
  const name = path.basename(playlistName, '.m3u8');
  const text = await readFile(path.join(workDir, playlistName), 'utf8');
  const segments = mediaSegments(text);
  const sized: { duration_s: number; bytes: number }[] = [];
  let output_bytes = 0;
  const move = async (f: string) => {
    const st = await lstat(path.join(workDir, f));
    if (!st.isFile()) throw new Error(`${f} is not a regular file after the encode`);
    output_bytes += st.size;
    await rename(path.join(workDir, f), path.join(dir, f));
    await reclaim(path.join(dir, f));
    return st.size;
  };
  const init = `${name}-init.mp4`;
  const codecs = rfc6381Codecs(await readFile(path.join(workDir, init)).catch(() => Buffer.alloc(0)));
  await move(init);
  for (const s of segments) sized.push({ duration_s: s.duration_s, bytes: await move(s.uri) });
  await move(playlistName);
  const bw = segmentBandwidth(sized);
  const eff = effectiveOutput(job.schema);
  const res = eff.resolution ?? (picture.width && picture.height ? { width: picture.width, height: picture.height } : undefined);
  const fps = eff.fps ?? picture.fps;
  return {
    output_bytes,
    media: {
      format: 'hls',
      ...(res && { width: res.width, height: res.height }),
      ...(fps !== undefined && { frame_rate: Math.round(fps * 1000) / 1000 }),
      ...(codecs && { codecs }),
      ...(bw && { bandwidth_bps: bw.peak_bps, average_bandwidth_bps: bw.average_bps }),
      ...(job.schema.output.rendition && { rendition: job.schema.output.rendition }),
    },
  };
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const f of await readdir(dir).catch(() => [])) total += (await stat(path.join(dir, f)).catch(() => ({ size: 0 }))).size;
  return total;
}

/** A failure on a node that could not enforce for this encode what it promised says so (FfmpegExitError crosses threads without its message, so there in its stderr tail). */
function withShortfalls(e: unknown, short: string[]): unknown {
  if (short.length === 0 || e instanceof EncodeAbortedError || !(e instanceof Error)) return e;
  const note = short.join('; ');
  if (e instanceof FfmpegExitError) return new FfmpegExitError(e.exit_code, e.exit_signal, `${e.stderr_tail}\n[prescient] ${note}`.trim());
  e.message += ` (${note})`;
  return e;
}


/**
 * Passes are summed. duration_s is what the reservation was held for (ffmpeg start-up included);
 * cpu_cores divides -benchmark's CPU time by its own transcode time, as both leave start-up out
 * (~0.1 s that would otherwise drag short encodes' figure down), capped at the cores when pinned. memory_gb is the highest of each
 * pass's sampled peak and -benchmark's maxrss. Bandwidth counts what ffmpeg read plus the output
 * file. Each pass reads at least the whole input file: a floor for the samples, which miss a
 * pass's last interval (all of a shorter pass). GPU use of nvenc is not in `actual` yet (the
 * samples and `usage` carry nvidia-smi's figures).
 */
function usage(runs: FfmpegRun[], input_bytes: number, output_bytes: number, cores: number): EncodeResult['actual'] {
  const wall = runs.reduce((s, r) => s + r.wall_s, 0);
  const cpu = runs.reduce((s, r) => s + (r.cpu_s ?? 0), 0);
  const transcode = runs.reduce((s, r) => s + (r.transcode_s ?? r.wall_s), 0);
  const read = runs.reduce((s, r) => s + Math.max(r.read_bytes, input_bytes), 0);
  return {
    // Pinned, it cannot have used more than its cores: a few % above is -benchmark's two clocks disagreeing.
    cpu_cores: runs.every((r) => r.pinned) ? Math.min(cores, cpu / transcode) : cpu / transcode,
    gpu_percent: 0,
    memory_gb: Math.max(...runs.map((r) => r.usage.memory_gb_peak)),
    bandwidth_mbps: ((read + output_bytes) * 8) / wall / 1e6,
    duration_s: wall,
  };
}

function serializeError(e: unknown): SerializedError {
  if (e instanceof EncodeAbortedError) return { name: 'EncodeAbortedError' };
  if (e instanceof FfmpegExitError) return { name: 'FfmpegExitError', exit_code: e.exit_code, exit_signal: e.exit_signal, stderr_tail: e.stderr_tail };
  if (e instanceof UnsupportedEncodeError) return { name: 'UnsupportedEncodeError', field: e.field, reason: e.reason };
  if (e instanceof ReservationExceededError) {
    return { name: 'ReservationExceededError', resource: e.resource, reserved_gb: e.reserved_gb, how: e.how, message: e.message, ...(e.stack && { stack: e.stack }) };
  }
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: 'Error', message: err.message, ...(err.stack && { stack: err.stack }) };
}
