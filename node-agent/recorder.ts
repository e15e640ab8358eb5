/**
 * Runs one encode the way the model needs it recorded: encode with sampling (every sample
 * spooled to QuestDB as it arrives), then one run row joining the settings, the node's hardware
 * class, the prediction, the measured usage, the input's complexity and the quality.
 * The agent and `prescient calibrate` both record through this, so their rows are alike.
 *
 * Only the encode runs inside the reservation. The complexity sample (when the job's probe did
 * not bring it) and the quality pass come after it, once `onEncoded` has let the caller release
 * the reservation: at nice 19 on any of the node's cores, so they take only cycles the reserved
 * encodes leave idle, and at most one per core at a time (issue 15 measured the reservation
 * held 1.5–2× the encode's time while both ran inside it).
 */
import pLimit, { type LimitFunction } from 'p-limit';
import {
  QUALITY_AFTER_RELEASE, allowedInputRoots, effectiveOutput, stateDir, type ContentComplexity, type EncodeSample, type EncodingSchema, type FailureKind, type ResourceUsage,
} from '../shared/index.js';
import type { Hardware } from './hardware.js';
import { EncodeAbortedError, FfmpegExitError, UnsupportedEncodeError, type EncodeProgress, type EncodeRunner, type MeasuredEncode } from './runner/index.js';
import { ReservationExceededError } from './enforce/index.js';
import type { RunRecord, TelemetrySink } from './telemetry/index.js';
import { measureComplexity, measureQuality, qualityMethod } from './ffmpeg/probe.js';
import type { Log } from '../shared/log.js';

export interface RecordRequest {
  task_id: string;
  schema: EncodingSchema;
  core_ids: number[];
  gpu_ids: number[];
  memory_gb: number;
  attempt: number;
  /** Expected usage the reservation was made from, when there was a prediction. */
  predicted?: ResourceUsage;
  model_version?: string;
  /** False: skip the PSNR/SSIM pass (see EncodeJob.quality). */
  quality?: boolean;
}

export interface RecordedRun {
  result?: MeasuredEncode;
  error?: string;
  /** With `error`: its kind, for the leader to act on (shared FailureKind). */
  failure?: FailureKind;
  complexity?: ContentComplexity;
  /** Whether the quality pass gave figures (absent: none was asked for, or the encode failed). */
  quality?: 'measured' | 'unavailable';
  /** Epoch ms the run started: the run row's timestamp. */
  started_at: number;
}

export interface RecorderOptions {
  node_id: string;
  hardware: Hardware;
  runner: EncodeRunner;
  telemetry: TelemetrySink;
  output_dir: string;
  /** Where file inputs must lie once resolved (EncodeJob.input_roots); default allowedInputRoots(stateDir()). */
  input_roots?: readonly string[];
  /** Where an `output.path` must lie once resolved (EncodeJob.output_roots); default allowedOutputRoots(stateDir()). */
  output_roots?: readonly string[];
  sample_interval_ms?: number;
  log?: Log;
}

export interface RecordHooks {
  signal?: AbortSignal;
  onProgress?: (p: EncodeProgress) => void;
  onSample?: (s: EncodeSample) => void;
  /** Each line of ffmpeg's log, with the pass it came from. */
  onLog?: (pass: number, line: string) => void;
  /**
   * The encode succeeded and what is left (complexity, quality) needs no reservation: the
   * caller releases it now. Called before that work starts, with the encode's result.
   */
  onEncoded?: (result: MeasuredEncode, quality_method?: string) => void;
}

export class RunRecorder {
  /** The work after a release: one ffmpeg per core of the node at a time. */
  private readonly afterwards: LimitFunction;
  /** Aborts the work after releases (stop). */
  private readonly stopping = new AbortController();

  constructor(private readonly o: RecorderOptions) {
    this.afterwards = pLimit(Math.max(1, o.hardware.core_ids.length));
  }

  /** Stops the complexity and quality passes in flight: their runs are recorded without them. */
  stop(): void {
    this.stopping.abort();
  }

  async record(req: RecordRequest, opts: RecordHooks = {}): Promise<RecordedRun> {
    const started_at = Date.now();
    const ctx = { node: this.o.node_id, codec: req.schema.output.codec };
    // Samples are spooled as they come, so a crash mid-encode keeps what was measured so far.
    let spooling = Promise.resolve();
    const onSample = (s: EncodeSample) => {
      opts.onSample?.(s);
      spooling = spooling.then(() => this.o.telemetry.recordSamples([s], ctx)).catch((e) => this.o.log?.(`telemetry: ${e}`, 'warn'));
    };
    let complexity: ContentComplexity | undefined;
    let result: MeasuredEncode | undefined;
    let error: string | undefined;
    let failure: FailureKind | undefined;
    let quality: RecordedRun['quality'];
    const roots = this.o.input_roots ?? allowedInputRoots(stateDir());
    try {
      result = await this.o.runner.run({
        task_id: req.task_id, schema: req.schema, core_ids: req.core_ids, gpu_ids: req.gpu_ids,
        memory_gb: req.memory_gb, output_dir: this.o.output_dir, input_roots: roots, sample_interval_ms: this.o.sample_interval_ms, quality: false,
        node_id: this.o.node_id, ...(this.o.output_roots && { output_roots: this.o.output_roots }),
      }, { signal: opts.signal, onProgress: opts.onProgress, onSample, onLog: opts.onLog });
    } catch (e) {
      error = opts.signal?.aborted ? 'cancelled' : (e as Error).message;
      failure = opts.signal?.aborted || e instanceof EncodeAbortedError ? 'CANCELLED' : e instanceof ReservationExceededError ? 'MEMORY_EXCEEDED'
        : e instanceof FfmpegExitError ? 'ENCODE_FAILED' : e instanceof UnsupportedEncodeError ? 'UNSUPPORTED' : 'AGENT_ERROR';
    }
    await spooling;
    if (result) {
      const eff = effectiveOutput(req.schema);
      const length_s = eff.duration_s ?? (eff.fps && result.frames ? result.frames / eff.fps : undefined);
      // An HLS rendition is a playlist of segments, which the quality pass's guarded demuxers do not open.
      const wantQuality = req.quality !== false && req.schema.kind !== 'actor' && req.schema.output.format !== 'hls';
      const p = req.schema.input.probe;
      complexity = p?.si_mean !== undefined && p.si_max !== undefined && p.ti_mean !== undefined && p.ti_max !== undefined
        ? { si_mean: p.si_mean, si_max: p.si_max, ti_mean: p.ti_mean, ti_max: p.ti_max, probe_s: p.siti_s ?? 0 } : undefined;
      const later = wantQuality || !complexity;
      // The run is recorded now, before the passes that follow it: they queue at idle priority, and
      // an agent killed meanwhile lost every queued run's row (the chaos test lost 10 that way). The
      // row written once they are done has the same time and job id, so QuestDB's dedup replaces it.
      if (later) await this.o.telemetry.recordRun(this.runRecord(req, started_at, complexity, result, error)).catch((e) => this.o.log?.(`telemetry: run row for ${req.task_id} not recorded: ${e}`, 'warn'));
      opts.onEncoded?.(result, wantQuality ? `${QUALITY_AFTER_RELEASE}: ${qualityMethod(length_s).method}` : undefined);
      // Nothing is reserved for this any more: the node's idle cores, lowest priority, one thread
      // each. A second thread cost these passes 7–10 % more CPU (quality and complexity of an
      // 8 s 720p clip, measured), taken from the encodes they run beside; Ray's tasks run them on one.
      const idle = { core_ids: this.o.hardware.core_ids, gpu_ids: [], threads: 1 };
      const signal = this.stopping.signal;
      complexity ??= await this.afterwards(() => (signal.aborted ? undefined : measureComplexity(req.schema, idle, { signal, idle: true, roots }))).catch(() => undefined);
      if (wantQuality) {
        const { psnr_db, ssim, vmaf }: { psnr_db?: number; ssim?: number; vmaf?: number } = await this.afterwards(() => (signal.aborted ? {} : measureQuality(req.schema, result!.output_path, idle, { signal, idle: true, length_s, roots }))).catch(() => ({}));
        Object.assign(result, { psnr_db, ssim, vmaf });
        quality = result.psnr_db !== undefined || result.ssim !== undefined ? 'measured' : 'unavailable';
      }
    }
    await this.o.telemetry.recordRun(this.runRecord(req, started_at, complexity, result, error))
      .catch((e) => this.o.log?.(`telemetry: run row for ${req.task_id} not recorded: ${e}`, 'error'));
    return { result, error, failure, complexity, started_at, quality };
  }

  private runRecord(req: RecordRequest, ts: number, cx: ContentComplexity | undefined, r: MeasuredEncode | undefined, error: string | undefined): RunRecord {
    const s = req.schema, out = s.output, rc = out.rate_control, eff = effectiveOutput(s), hw = this.o.hardware;
    const gpu = hw.gpus.find((g) => g.id === req.gpu_ids[0]);
    return {
      ts, node: this.o.node_id, job_id: req.task_id, codec: out.codec, encoder: out.encoder, preset: out.preset,
      status: r ? (s.kind === 'actor' ? 'stopped' : 'succeeded') : error === 'cancelled' ? 'cancelled' : 'failed',
      rc_mode: rc.mode, source: s.input.kind === 'synthetic' ? s.input.source : 'file',
      cpu_model: hw.cpu_model, gpu_model: gpu?.name, model_version: req.model_version ?? 'none',
      width: eff.resolution?.width, height: eff.resolution?.height, fps: eff.fps, input_duration_s: s.input.duration_s,
      crf: rc.mode === 'crf' ? rc.crf : undefined, bitrate_kbps: rc.mode === 'bitrate' ? rc.bitrate_kbps : undefined,
      passes: out.passes, total_frames: eff.fps && eff.duration_s ? Math.round(eff.fps * eff.duration_s) : undefined,
      schema_json: JSON.stringify(s),
      hw_cores: hw.core_ids.length, cores_granted: req.core_ids.length, gpus_granted: req.gpu_ids.length,
      memory_gb_granted: req.memory_gb, attempt: req.attempt,
      si_mean: cx?.si_mean, si_max: cx?.si_max, ti_mean: cx?.ti_mean, ti_max: cx?.ti_max,
      pred_cpu_cores: req.predicted?.cpu_cores, pred_memory_gb: req.predicted?.memory_gb,
      pred_bandwidth_mbps: req.predicted?.bandwidth_mbps, pred_duration_s: req.predicted?.duration_s, pred_gpu_percent: req.predicted?.gpu_percent,
      cpu_cores: r?.actual.cpu_cores, memory_gb: r?.actual.memory_gb, bandwidth_mbps: r?.actual.bandwidth_mbps,
      duration_s: r?.actual.duration_s, gpu_percent: r?.actual.gpu_percent,
      output_bytes: r?.output_bytes, frames: r?.frames, psnr_db: r?.psnr_db, ssim: r?.ssim, vmaf: r?.vmaf, pinned: r?.pinned,
      samples: r?.usage.samples, cpu_cores_mean: r?.usage.cpu_cores_mean, cpu_cores_peak: r?.usage.cpu_cores_peak,
      memory_gb_peak: r?.usage.memory_gb_peak, bandwidth_mbps_mean: r?.usage.bandwidth_mbps_mean,
      bandwidth_mbps_peak: r?.usage.bandwidth_mbps_peak, gpu_percent_mean: r?.usage.gpu_percent_mean,
      stayed_on_cores: r?.usage.stayed_on_cores, error,
    };
  }
}
