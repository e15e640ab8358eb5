/**
 * Tasks, allocations and usage: the records that travel between submitter, leader and agent.
 */
import type { EncodingSchema } from './schema/encoding-schema.js';

/**
 * Lifecycle of one encoding task. Terminal states are `succeeded`, `failed`, `cancelled`
 * and `rejected`.
 * - `queued`    recorded by the leader, waiting for a node with enough free resources
 * - `placed`    resources reserved on a node and the assignment sent to its agent
 * - `running`   the agent has started ffmpeg
 * - `succeeded` the encode finished; `actual` holds what it used
 * - `failed`    the encode or the node failed; `error` says why
 * - `cancelled` stopped on request before finishing
 * - `rejected`  never admitted: the schema was invalid (`error` names the fields)
 */
export type TaskState = 'queued' | 'placed' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'rejected';
/** Every task state, in lifecycle order. */
export const TASK_STATES: readonly TaskState[] = ['queued', 'placed', 'running', 'succeeded', 'failed', 'cancelled', 'rejected'];
export const TERMINAL_STATES: ReadonlySet<TaskState> = new Set(['succeeded', 'failed', 'cancelled', 'rejected']);

/** Resource figures for one encode; used both for predictions and for measured actuals. */
export interface ResourceUsage {
  /** CPU cores in use on average over the encode. */
  cpu_cores: number;
  /** GPU utilisation in percent of one GPU (0 when the encode ran on CPU). */
  gpu_percent: number;
  /** Peak resident memory in GB. */
  memory_gb: number;
  /** Mean I/O bandwidth (input read plus output written) in Mbit/s. */
  bandwidth_mbps: number;
  /** Wall-clock encoding time in seconds. */
  duration_s: number;
}

/** A prediction: point estimates plus the upper bound the reservation is made at. */
export interface Prediction {
  model_version: string;
  expected: ResourceUsage;
  upper: ResourceUsage;
  /** Share of encodes like this one the upper bound is calibrated to cover (e.g. 0.95). */
  coverage?: number;
  /** What was unusual about this prediction: unseen categories, clamped figures, rules used. */
  flags?: string[];
  /**
   * What the feedback loop changed (coordinator/feedback): per target the log of the factor
   * applied to the model's expected and upper figures on this node, and the memory margin the
   * upper memory was multiplied by. Absent when it changed nothing.
   */
  feedback?: { log_factors: Partial<Record<keyof ResourceUsage, number>>; memory_margin?: number };
}

/** What the leader reserved for a task on one node. */
export interface ResourceAllocation {
  node_id: string;
  core_ids: number[];
  gpu_ids: number[];
  memory_gb: number;
  bandwidth_mbps: number;
  /** Epoch milliseconds after which the reservation lapses unless the agent heartbeats. */
  lease_expires_at: number;
  /** Leadership term of the leader that made the reservation (a fencing token). */
  term: number;
}

/** Measured outcome of a successful encode. */
export interface EncodeResult {
  actual: ResourceUsage;
  output_bytes: number;
  output_path: string;
  /** Mean PSNR (dB) of the output against its source; absent if it could not be measured. */
  psnr_db?: number;
  /** Mean SSIM (0–1) of the output against its source. */
  ssim?: number;
  /** VMAF (0–100), only where the node's ffmpeg has libvmaf. */
  vmaf?: number;
  /** Whether ffmpeg ran pinned to exactly the reserved cores. */
  pinned: boolean;
  frames: number;
  /**
   * Where PSNR/SSIM stand. The quality pass runs after the reservation is released (at the
   * lowest CPU priority, on the node's idle cores), so a job's first `succeeded` event says
   * `pending` and a second one brings the figures (`measured`) or says why there are none
   * (`unavailable`). Absent: the encode was asked for no quality pass.
   */
  quality?: QualityStatus;
  /** How the figures were (or will be) measured, in words: the job's record says which method. */
  quality_method?: string;
  /** What a master playlist says of this output (an HLS rendition's): from its node's report. */
  media?: OutputMedia;
  /** A group's outputs, on each member's record once every member has succeeded (an ABR ladder). */
  group_outputs?: GroupOutputs;
}

/** An output as a master playlist lists it (measured by the node that wrote it). */
export interface OutputMedia {
  format: 'hls';
  width?: number;
  height?: number;
  frame_rate?: number;
  /** RFC 6381 codec strings, comma-separated, where every track's is known (`avc1.64001f,mp4a.40.2`). */
  codecs?: string;
  /** The highest bit rate of any segment (BANDWIDTH) and the mean (AVERAGE-BANDWIDTH), bit/s. */
  bandwidth_bps?: number;
  average_bandwidth_bps?: number;
  rendition?: string;
}

/**
 * Where a group's outputs are. `master_playlist`: the HLS master playlist listing every rendition,
 * written by the leader once all had succeeded (`master` says whether that worked, `reason` why
 * not). Only a group whose members are all HLS gets one (`master: 'none'`).
 */
export interface GroupOutputs {
  group: string;
  renditions: { job_id: string; node_id?: string; output_path: string; rendition?: string }[];
  master: 'writing' | 'written' | 'failed' | 'none';
  master_playlist?: string;
  reason?: string;
}

export type QualityStatus = 'pending' | 'measured' | 'unavailable';

/** Where and how the agent runs the quality pass (issue 15: outside the reservation); quality_method adds what it compares. */
export const QUALITY_AFTER_RELEASE = 'after the reservation is released, at nice 19 on the node\'s idle cores';

export interface EncodingTask {
  id: string;
  /**
   * Who submitted it: the name of the certificate NATS let publish on its submit subject (the
   * schema's `submitter` is what the submitter says of itself). Absent on records from before owners.
   */
  owner?: string;
  schema: EncodingSchema;
  state: TaskState;
  submitted_at: number;
  updated_at: number;
  /** Leader term under which this record was last written. */
  term: number;
  allocation?: ResourceAllocation;
  predicted?: Prediction;
  result?: EncodeResult;
  /** Why the task is queued, failed or rejected. */
  reason?: string;
  attempts: number;
  /** When its current reservation was committed (epoch ms): where estimates of its end start. */
  started_at?: number;
  /** Set when cancellation was asked for while it held a reservation: it ends `cancelled`. */
  cancel_requested_at?: number;
  /** Memory it reserves at least, raised each time its memory limit stopped it. */
  memory_floor_gb?: number;
  /**
   * The reservations of its earlier attempts, most recent last (a few at most): a node that ran
   * one may still report its outcome late (it was killed, or a failover was under way), and that
   * report is the job's, not a forgery.
   */
  earlier?: ResourceAllocation[];
  /** When the leader saw its deadline pass while it had not ended (its events say so from then on). */
  deadline_missed_at?: number;
  /** When the leader asked its node to stop an encode that ran past its time limit (it then runs again, or fails after maxAttempts). */
  time_limit_stop_at?: number;
}

/** The message `prescient cancel` (and `prescient stop`) publishes on the cancel subject. */
export interface CancelEnvelope {
  job_id: string;
  requested_at: number;
  /**
   * Which command asked: `stop` is meant for a live channel (kind: actor) only. The CLI refuses
   * `stop` on a batch job where it can read the job's record; a leader may refuse it too.
   * Absent: `cancel` (and requests from before this field).
   */
  action?: 'cancel' | 'stop';
}

/** The message a submitter publishes on the submit subject. */
export interface SubmitEnvelope {
  job_id: string;
  submitted_at: number;
  /** The schema as the submitter wrote it; the leader validates it again before admitting it. */
  schema: unknown;
}

/** A status change published on a job's event subject. */
export interface TaskEvent {
  job_id: string;
  /** The job's owner (EncodingTask.owner): its events are published under that name. */
  owner?: string;
  state: TaskState;
  at: number;
  term: number;
  node_id?: string;
  reason?: string;
  predicted?: Prediction;
  allocation?: ResourceAllocation;
  result?: EncodeResult;
  /**
   * What this event tells beyond a state: `deadline_missed` (its deadline passed before it ended),
   * `time_limit` (its encode ran past its time limit and is being stopped, to run again).
   */
  notice?: 'deadline_missed' | 'time_limit';
  /** When its deadline was seen to pass, on this and every later event. */
  deadline_missed_at?: number;
}

/**
 * Whether `e` is the last event its job will have: terminal, and not a success whose quality
 * pass is still to come (see EncodeResult.quality).
 */
export function isFinalEvent(e: TaskEvent): boolean {
  return TERMINAL_STATES.has(e.state) && !(e.state === 'succeeded' && e.result?.quality === 'pending');
}

/** Live progress of a running encode. */
export interface TaskProgress {
  job_id: string;
  node_id: string;
  /** 1, or 2 for the second pass of a two-pass encode (each counts frames from 0). */
  pass: number;
  passes: number;
  frame: number;
  /** Frames the encode will produce, when the input duration is known. */
  total_frames?: number;
  fps: number;
  speed: number;
  out_bytes: number;
}

/**
 * Where an agent's figures for a GPU's video engines come from (node-agent/gpu-models.ts).
 * - `known`    the model is in the agent's table (and, for a driver-capped card, the driver
 *              version was readable): the engine counts and `sessions` are the table's.
 * - `assumed`  the model (or its driver version) is not: the figures are conservative guesses.
 */
export type GpuProfile = 'known' | 'assumed';

/**
 * One GPU as its agent reports it. Agents from before GPU discovery send only id, name,
 * memory and `sessions` 0; protobuf delivers the newer fields to the leader as '' and 0.
 */
export interface GpuCapacity {
  /** nvidia-smi's index (PCI bus order). */
  id: number;
  name: string;
  memory_gb: number;
  /**
   * Concurrent encoder (NVENC) sessions the GPU runs. With a `profile` it is the agent's
   * figure, and 0 means the GPU has no NVENC: no GPU task is placed on it. Without one (an
   * older agent), absent or 0 means the ledger's default (coordinator/ledger/node.ts sessionsOf).
   */
  sessions?: number;
  /** NVIDIA driver version as nvidia-smi reports it ("550.54.15"); '' or absent when unknown. */
  driver?: string;
  /** NVENC (encoder) engines; meaningful only with a `profile`. */
  nvenc_engines?: number;
  /** NVDEC (decoder) engines; meaningful only with a `profile`. */
  nvdec_engines?: number;
  /** Set by agents that discovered their GPUs; '' or absent from older ones. */
  profile?: GpuProfile | '';
}

/** Hardware a node agent reports when it registers. */
export interface NodeCapacity {
  node_id: string;
  /** host:port of the agent's gRPC server. */
  address: string;
  core_ids: number[];
  memory_gb: number;
  bandwidth_mbps: number;
  gpus: GpuCapacity[];
  cpu_model: string;
  /** What the agent holds encodes to, per resource (node-agent/enforce/); absent from agents that predate it. */
  enforcement?: Enforcement[];
}

/** Resources a reservation is made of. */
export type ReservedResource = 'cpu' | 'memory' | 'gpu' | 'bandwidth';

/**
 * How a node holds encodes to one reserved resource.
 * - `enforced`       a limit stops an encode from using more than it was given; `detail` says how
 * - `accounted-only` the reservation is booked in the ledger and measured, nothing stops an
 *                    encode going over it; `detail` says why
 */
export interface Enforcement {
  resource: ReservedResource;
  mode: 'enforced' | 'accounted-only';
  detail: string;
}

/** Builds a job id that sorts by submission time and is safe inside NATS subjects. */
export function newJobId(now = Date.now()): string {
  const rand = Math.random().toString(36).slice(2, 10).padEnd(8, '0');
  return `j${now.toString(36)}${rand}`;
}
