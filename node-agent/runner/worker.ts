/**
 * Piscina worker entry: runs one EncodeJob — every pass, then the quality measurement on the
 * same cores — and returns its EncodeResult. Cancellation arrives as a message on the task's
 * port (Piscina's own `signal` would terminate this thread mid-encode).
 */
import { mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { EncodeResult, EncodeSample } from '../../shared/index.js';
import {
  compileEncode, compileLive, runFfmpeg,
  EncodeAbortedError, FfmpegExitError, UnsupportedEncodeError,
  type EncodePlan, type FfmpegProgress, type FfmpegRun, type Grant,
} from '../ffmpeg/index.js';
import { mergeUsage, strictClock } from '../sampling/index.js';
import { measureQuality } from '../ffmpeg/probe.js';
import { confineTask, ffmpegGpuIds, ReservationExceededError, type Confinement } from '../enforce/index.js';
import type { EncodeJob, EncodeProgress, FromWorker, MeasuredEncode, SerializedError, ToWorker, WorkerOutcome, WorkerTask } from './types.js';

export default async function encodeTask({ job, port }: WorkerTask): Promise<WorkerOutcome> {
  const abort = new AbortController();
  port.on('message', (m: ToWorker) => { if (m.type === 'abort') abort.abort(); });
  const send = (m: FromWorker) => port.postMessage(m);
  try {
    const run = job.schema.kind === 'actor' ? live : encode;
    const result = await run(job, abort.signal, (progress) => send({ type: 'progress', progress }), (sample) => send({ type: 'sample', sample }));
    return { ok: true, result };
  } catch (e) {
    return { ok: false, error: serializeError(e) };
  } finally {
    send({ type: 'end' });
    port.close();
  }
}

/**
 * ffmpeg writes `<task_id>.part.<ext>`, which becomes `<task_id>.<ext>` only once the encode and
 * its quality measurement succeeded; on any failure it is deleted, so a retry never finds a half file.
 *
 * Every encode pass runs in the task's confinement, set up before the first and released after
 * the last (also on failure or cancellation). The quality measurement is not part of what the
 * reservation was predicted from, so it runs pinned to the cores only.
 */
async function encode(
  job: EncodeJob, signal: AbortSignal, onProgress: (p: EncodeProgress) => void, onSample: (s: EncodeSample) => void,
): Promise<MeasuredEncode> {
  const grant: Grant = { core_ids: job.core_ids, gpu_ids: job.gpu_ids };
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'prescient-passlog-'));
  let plan: EncodePlan | undefined;
  let confinement: Confinement | undefined;
  let done = false;
  try {
    // With CUDA_VISIBLE_DEVICES set, ffmpeg numbers the reserved GPUs from 0 (its -gpu option).
    plan = compileEncode(job.schema, { core_ids: job.core_ids, gpu_ids: ffmpegGpuIds(job.enforcement, job.gpu_ids) }, {
      task_id: job.task_id, output_dir: job.output_dir, passlog_prefix: path.join(scratch, 'pass'),
    });
    await mkdir(job.output_dir, { recursive: true });
    confinement = confineTask(job.enforcement, {
      task_id: job.task_id, core_ids: job.core_ids, gpu_ids: job.gpu_ids, memory_gb: job.memory_gb, bandwidth_mbps: job.bandwidth_mbps,
      paths: [...(job.schema.input.kind === 'file' ? [job.schema.input.path] : []), job.output_dir],
    });
    await rm(plan.part_path, { force: true });
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
    const output_bytes = (await stat(plan.part_path)).size;
    const input_bytes = job.schema.input.kind === 'file' ? (await stat(job.schema.input.path)).size : 0;
    const { method: _method, ...quality } = job.quality === false ? { method: '' } : await measureQuality(job.schema, plan.part_path, grant, { signal });
    await rename(plan.part_path, plan.final_path);
    done = true;
    return {
      actual: usage(runs, input_bytes, output_bytes, job.core_ids.length),
      output_bytes,
      output_path: plan.final_path,
      ...quality,
      pinned: runs.every((r) => r.pinned),
      frames: runs.at(-1)?.last_progress?.frame ?? 0,
      usage: mergeUsage(runs.map((r) => r.usage)),
      enforcement: { applied: confinement.applied(), shortfalls: confinement.shortfalls() },
    };
  } catch (e) {
    throw withShortfalls(e, confinement?.shortfalls() ?? []);
  } finally {
    await rm(scratch, { recursive: true, force: true });
    if (!done && plan) await rm(plan.part_path, { force: true });
    await confinement?.release();
  }
}

/**
 * An actor: a live channel that runs in its confinement until it is told to stop, then closes
 * its playlist and reports what it used over its whole run. An abort is its stop: a channel's
 * window is published as it goes, so stopping keeps it rather than discarding it.
 */
async function live(
  job: EncodeJob, signal: AbortSignal, onProgress: (p: EncodeProgress) => void, onSample: (s: EncodeSample) => void,
): Promise<MeasuredEncode> {
  let confinement: Confinement | undefined;
  try {
    const plan = compileLive(job.schema, { core_ids: job.core_ids, gpu_ids: ffmpegGpuIds(job.enforcement, job.gpu_ids) }, { task_id: job.task_id, output_dir: job.output_dir });
    // A restarted channel starts a fresh window rather than appending to the old one's.
    await rm(plan.dir, { recursive: true, force: true });
    await mkdir(plan.dir, { recursive: true });
    confinement = confineTask(job.enforcement, {
      task_id: job.task_id, core_ids: job.core_ids, gpu_ids: job.gpu_ids, memory_gb: job.memory_gb, bandwidth_mbps: job.bandwidth_mbps,
      paths: [...(job.schema.input.kind === 'file' ? [job.schema.input.path] : []), plan.dir],
    });
    let progress: FfmpegProgress | undefined;
    const clock = strictClock();
    const run = await runFfmpeg(plan.argv, {
      core_ids: job.core_ids, gpu_ids: job.gpu_ids, confinement, stop: signal,
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
    await confinement?.release();
  }
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
