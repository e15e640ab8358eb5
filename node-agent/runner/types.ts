/** The runner's public types and the message protocol between it and its Piscina workers. */
import type { MessagePort } from 'node:worker_threads';
import type { EncodeResult, EncodeSample, EncodingSchema, Enforcement, UsageSummary } from '../../shared/index.js';
import type { EnforcementPlan } from '../enforce/index.js';

/** One encode as the agent hands it over: the validated schema plus what the leader reserved. */
export interface EncodeJob {
  task_id: string;
  schema: EncodingSchema;
  /** ffmpeg is pinned to exactly these cores and runs this many threads. */
  core_ids: number[];
  /** Node GPU indices (nvidia-smi's); with GPU enforcement ffmpeg sees only these. */
  gpu_ids: number[];
  /** Reserved memory in GiB; held to where `enforcement` allows (see node-agent/README.md). */
  memory_gb: number;
  /** Reserved I/O bandwidth in Mbit/s; throttled on disk where `enforcement` allows. Absent: not throttled. */
  bandwidth_mbps?: number;
  /** What this node enforces (detectEnforcement). Absent: ffmpeg is only pinned to its cores. */
  enforcement?: EnforcementPlan;
  /** Without `output.path` the output lands at `<output_dir>/<task_id>.<mp4|webm|m3u8>`. */
  output_dir: string;
  /** Directories an `output.path` must lie in once its symlinks are resolved. Absent: allowedOutputRoots(stateDir()). */
  output_roots?: readonly string[];
  /** This node's id: `{node}` in `output.path`. */
  node_id?: string;
  /**
   * Directories a file input must lie in once its symlinks are resolved (ffmpeg/inputs.ts): the
   * agent's allowed input roots. Absent: allowedInputRoots(stateDir()), this node's configuration.
   */
  input_roots?: readonly string[];
  /** How often the encode is sampled; default 1000, at least MIN_SAMPLE_INTERVAL_MS (100). */
  sample_interval_ms?: number;
  /** False: no PSNR/SSIM pass after the encode (calibration needs only what the encode used). Default true. */
  quality?: boolean;
}

/** What a finished encode yields: its EncodeResult plus the summary of its samples over all passes. */
export type MeasuredEncode = EncodeResult & { usage: UsageSummary; enforcement: AppliedEnforcement };

/** What the encode's processes were held to, per resource, and what of the node's plan did not hold for it. */
export interface AppliedEnforcement {
  applied: Enforcement[];
  /** Empty when everything the node's plan promised held. */
  shortfalls: string[];
}

/** One `-progress` report of a running encode, every PROGRESS_PERIOD_S. */
export interface EncodeProgress {
  task_id: string;
  /** Two-pass encodes report pass 1 (no output bytes) and then pass 2, each from frame 0. */
  pass: 1 | 2;
  frame: number;
  fps: number;
  speed: number;
  out_bytes: number;
  out_time_s: number;
}

export interface EncodeRunner {
  /**
   * Encodes, measures quality, then renames the output into place. Rejects with
   * EncodeAbortedError when `signal` aborts (ffmpeg has exited by then and no `.part` file is
   * left), FfmpegExitError when ffmpeg fails, UnsupportedEncodeError for what ffmpeg 5.1 cannot run,
   * an Error whose message starts "encode exceeded its memory reservation" when its limit stopped it.
   * `onSample` gets every sample of every encode pass (not of the quality measurement), all of
   * them before the promise settles.
   */
  run(job: EncodeJob, opts?: { signal?: AbortSignal; onProgress?: (p: EncodeProgress) => void; onSample?: (s: EncodeSample) => void; onLog?: (pass: number, line: string) => void }): Promise<MeasuredEncode>;
  /** Cancels running encodes, waits for them to clean up, and stops the worker threads. */
  close(): Promise<void>;
}

/** What the main thread hands a worker; `port` is transferred. */
export interface WorkerTask {
  job: EncodeJob;
  port: MessagePort;
}
export type ToWorker = { type: 'abort' };
/** `end` is the worker's last message on the port, sent before it returns its outcome. */
export type FromWorker = { type: 'progress'; progress: EncodeProgress } | { type: 'sample'; sample: EncodeSample } | { type: 'log'; pass: number; line: string } | { type: 'end' };

/**
 * Errors lose their class crossing threads, so the worker returns them as data and the main
 * thread rebuilds the typed error.
 */
export type WorkerOutcome =
  | { ok: true; result: MeasuredEncode }
  | { ok: false; error: SerializedError };
export type SerializedError =
  | { name: 'EncodeAbortedError' }
  | { name: 'FfmpegExitError'; exit_code: number | null; exit_signal: string | null; stderr_tail: string }
  | { name: 'UnsupportedEncodeError'; field: string; reason: string }
  | { name: 'ReservationExceededError'; resource: 'memory'; reserved_gb: number; how: string; message: string; stack?: string }
  | { name: 'Error'; message: string; stack?: string };
