/**
 * What a node can hold encodes to, as detected at agent start (`EnforcementPlan`), and what one
 * encode's processes were held to (`Confinement`). A plan is plain data: it crosses into the
 * Piscina workers with each job.
 */
import type { ChildProcess } from 'node:child_process';
import type { Enforcement, ReservedResource } from '../../shared/index.js';

export type { Enforcement, ReservedResource };

/** Every reserved resource, in the order reports list them. */
export const RESERVED_RESOURCES: readonly ReservedResource[] = ['cpu', 'memory', 'gpu', 'bandwidth'];

/** Options an admin sets on the agent (`--accounted-only`, `--shape-interfaces`). */
export interface EnforcementOptions {
  /** Resources to reserve and measure but not enforce, e.g. where writing cgroups is forbidden. */
  accounted_only?: readonly ReservedResource[];
  /** Interfaces whose egress is shaped per task; default: those of the default routes. Empty: none. */
  shape_interfaces?: readonly string[];
}

/** A cgroup hierarchy a controller is mounted in: v1 has one per controller, v2 one for all. */
export interface CgroupHierarchy {
  version: 1 | 2;
  /** Mount point of the hierarchy, e.g. /sys/fs/cgroup/memory (v1) or /sys/fs/cgroup (v2). */
  mount: string;
}

/**
 * Per-task cgroups live in `dir`, the node's own directory (`<mount>/prescient-<node id>`), one
 * child per task (`task-<task id>`), so that stale ones of a crashed agent are found by name.
 */
export interface NodeCgroup extends CgroupHierarchy {
  dir: string;
}

/**
 * CPU, strongest first:
 * - `cpuset`    a per-task cpuset cgroup holds every thread to the reserved cores, whatever
 *               affinity an encoder sets itself (libx265's thread pools do); taskset as well
 * - `affinity`  ffmpeg starts with its affinity set to the reserved cores (taskset): an encoder
 *               that resets its threads' affinity leaves them
 * - `none`      it is left to roam
 */
export type CpuMechanism = { kind: 'cpuset'; cgroup: NodeCgroup } | { kind: 'affinity'; why_not_cpuset?: string } | { kind: 'none'; why: string };

/**
 * Memory, strongest first:
 * - `cgroup`  memory.limit_in_bytes (v1) / memory.max (v2) of a per-task cgroup: resident memory
 *             and page cache, the OOM killer stops an encode at the limit
 * - `rlimit`  RLIMIT_DATA via prlimit, a loose backstop (see limits.ts): allocations beyond it fail
 * - `none`    measured only
 */
export type MemoryMechanism =
  | { kind: 'cgroup'; cgroup: NodeCgroup }
  | { kind: 'rlimit'; why_not_cgroup: string }
  | { kind: 'none'; why: string };

/** Bandwidth on disk: I/O throttled by a per-task blkio (v1) / io (v2) cgroup, or measured only. */
export type BandwidthMechanism = { kind: 'cgroup'; cgroup: NodeCgroup } | { kind: 'none'; why: string };

/** An interface whose egress this node shapes. */
export interface ShapedInterface {
  dev: string;
  /** Rate of the default class (traffic of no task): at least the link's, so it never holds anything back. */
  default_mbit: number;
}

/**
 * Bandwidth on the network, egress only (see shaping.ts):
 * - `tc-htb`  an HTB root qdisc `<handle>:` on each interface, one class per task at its
 *             reservation; the task's processes sit in a net_prio (cgroup v1) cgroup under `cgroup`
 *             whose ifpriomap sends their packets to that class
 * - `none`    not shaped
 * Ingress cannot be shaped this way: received packets belong to no cgroup until a socket takes them.
 */
export type NetworkMechanism =
  | { kind: 'tc-htb'; cgroup: NodeCgroup; handle: number; interfaces: ShapedInterface[]; unshaped: string[] }
  | { kind: 'none'; why: string };

/** GPUs: ffmpeg sees only the reserved GPUs (CUDA_VISIBLE_DEVICES), or all of the node's. */
export type GpuMechanism = { kind: 'visible-devices' } | { kind: 'none'; why: string };

/** What this node holds encodes to and how; made by `detectEnforcement`, described by `describeEnforcement`. */
export interface EnforcementPlan {
  node_id: string;
  cpu: CpuMechanism;
  memory: MemoryMechanism;
  gpu: GpuMechanism;
  /** Reserved bandwidth held on disk (`bandwidth`) and on the network (`network`); enforced where either holds. */
  bandwidth: BandwidthMechanism;
  network: NetworkMechanism;
}

/** What one encode reserved, as far as its confinement needs to know. */
export interface TaskReservation {
  task_id: string;
  core_ids: readonly number[];
  gpu_ids: readonly number[];
  memory_gb: number;
  /** Absent or not positive: nothing to throttle or shape. */
  bandwidth_mbps?: number;
  /** Files and directories the encode reads or writes; their disks are the ones throttled. */
  paths: readonly string[];
}

/** How ffmpeg exited, for telling a limit's kill from any other failure. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * Holds one encode's ffmpeg processes to its reservation. Made by `confineTask` before the first
 * pass, used for every pass, released once after the last one (also on failure or cancellation).
 */
export interface Confinement {
  /** Whether ffmpeg is started under `taskset -c <reserved cores>`. */
  readonly pin_cores: boolean;
  /** Put between `setpriv … --` and `taskset`: e.g. `prlimit --data=N --` (each execs in place). */
  readonly command_prefix: readonly string[];
  /** Added to ffmpeg's environment: which GPUs it may see. */
  readonly env: Readonly<Record<string, string>>;
  /**
   * Runs `start` (a synchronous spawn) so that the process it creates is in the task's cgroups
   * from its first instruction where the hierarchy allows it (v1), else right after the fork (v2).
   */
  spawn<T extends ChildProcess>(start: () => T): T;
  /** The error to fail with when a limit, not ffmpeg itself, ended a process that exited badly. */
  breach(exit: ProcessExit): Error | undefined;
  /** Per resource, what this task's processes were held to (a run-time failure turns `enforced` into `accounted-only`). */
  applied(): Enforcement[];
  /** What did not hold at run time although the node's plan said it would (for the result and the log). */
  shortfalls(): string[];
  /** Removes the task's cgroups; safe to call more than once. */
  release(): Promise<void>;
}
