/**
 * Pure parts of enforcement: the limits a reservation becomes, the environment that hides GPUs,
 * and the parsers for what /proc and the cgroup files say. No I/O.
 */
import { ConfigError } from '../../shared/index.js';
import { RESERVED_RESOURCES, type CgroupHierarchy, type EnforcementPlan, type ReservedResource } from './types.js';

const GIB = 2 ** 30;
const MIB = 2 ** 20;
const PAGE = 4096;

/**
 * Added to the reserved memory for a cgroup limit. A reservation is a predicted peak RSS; the
 * cgroup also charges the page cache of the output being written and whatever of ffmpeg's
 * start-up (libraries not yet cached, the first frames) it faults in first. A 320x240 libx264
 * encode peaked at 25 MB of cgroup charge here, so 32 MiB lets the smallest encodes start.
 */
export const MEMORY_HEADROOM_BYTES = 32 * MIB;

/** The cgroup memory limit for a reservation of `memory_gb` GiB: the reservation plus the headroom, in whole pages. */
export function memoryLimitBytes(memory_gb: number): number {
  return Math.ceil((memory_gb * GIB + MEMORY_HEADROOM_BYTES) / PAGE) * PAGE;
}

/**
 * RLIMIT_DATA as a multiple of the reserved (resident) memory, for nodes without a memory cgroup.
 *
 * RLIMIT_AS caps the whole address space, and encoders map far more than they touch: glibc
 * reserves a 64 MiB heap per thread arena, libraries and thread stacks count in full. At 720p,
 * VmPeak vs. VmHWM was 2.2 GB vs. 0.29 GB for libsvtav1, 0.8 vs. 0.26 for libx265, 0.63 vs.
 * 0.24 for libx264: a cap at the reservation would kill sound encodes. RLIMIT_DATA (Linux ≥ 4.7)
 * counts only private writable mappings, so arena reservations (PROT_NONE), code and file
 * mappings are left out; what remains is memory allocated but not necessarily touched. The same
 * encodes peaked at VmData 1.06 GB (libsvtav1, 3.7× its RSS), 0.40 (x264, 1.7×), 0.34 (x265),
 * 0.22 (vp9), hence 4×. Even so it is a backstop against runaway encodes, not a hold on RSS, and a
 * refused allocation ends an encode as its code handles it: x264, SVT-AV1 and libvpx fail
 * cleanly, libx265 was seen to hang. A cgroup is always preferred.
 */
export const DATA_LIMIT_PER_RESERVED = 4;

/** RLIMIT_DATA in bytes for a reservation of `memory_gb` GiB. */
export function dataLimitBytes(memory_gb: number): number {
  return Math.ceil((memory_gb * GIB * DATA_LIMIT_PER_RESERVED + MEMORY_HEADROOM_BYTES) / PAGE) * PAGE;
}

/** Lines with which ffmpeg or its encoders report a refused allocation (seen under prlimit --data). */
const ALLOCATION_REFUSED = /malloc of size \d+ failed|allocate memory failed|Memory allocation error|Cannot allocate memory|out of memory|bad_alloc/i;

/** Whether ffmpeg's stderr says an allocation was refused. */
export function allocationRefused(stderr: string): boolean {
  return ALLOCATION_REFUSED.test(stderr);
}

/** A reserved bandwidth in Mbit/s as the bytes per second a throttle takes. */
export function throttleBytesPerSecond(bandwidth_mbps: number): number {
  return Math.max(1, Math.floor((bandwidth_mbps * 1e6) / 8));
}

/** A block device as `major:minor`. */
export interface BlockDevice {
  major: number;
  minor: number;
}

/** Splits a Linux dev_t (as `stat(…, { bigint: true }).dev` gives it) into major and minor, as glibc's major()/minor() do. */
export function deviceNumbers(dev: bigint): BlockDevice {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n);
  const minor = (dev & 0xffn) | ((dev >> 12n) & 0xffffff00n);
  return { major: Number(major), minor: Number(minor) };
}

/** What a throttle file takes for one disk: v1 one line per blkio.throttle.*_bps_device file, v2 one io.max line. */
export function throttleLine(version: 1 | 2, d: BlockDevice, bytes_per_s: number): string {
  return version === 1 ? `${d.major}:${d.minor} ${bytes_per_s}` : `${d.major}:${d.minor} rbps=${bytes_per_s} wbps=${bytes_per_s}`;
}

/**
 * How ffmpeg is shown only its reserved GPUs. CUDA numbers the devices it lets a process see
 * from 0, so the encoder's `-gpu` must be the position within CUDA_VISIBLE_DEVICES (0 for the
 * first reserved GPU), not the node's index. CUDA_DEVICE_ORDER=PCI_BUS_ID makes CUDA number
 * devices as nvidia-smi does (its default puts the fastest first), so the ids mean the same GPUs.
 * An encode with no GPU reserved sees none.
 */
export function gpuView(gpu_ids: readonly number[]): { env: Record<string, string>; ffmpeg_gpu_ids: number[] } {
  return {
    env: { CUDA_VISIBLE_DEVICES: gpu_ids.join(','), CUDA_DEVICE_ORDER: 'PCI_BUS_ID' },
    ffmpeg_gpu_ids: gpu_ids.map((_, i) => i),
  };
}

/** The GPU indices ffmpeg's `-gpu` takes for a task: positions within its reserved GPUs where the plan hides the others, node indices otherwise. */
export function ffmpegGpuIds(plan: EnforcementPlan | undefined, gpu_ids: readonly number[]): number[] {
  return plan?.gpu.kind === 'visible-devices' ? gpuView(gpu_ids).ffmpeg_gpu_ids : [...gpu_ids];
}

/** GiB for messages: `0.04`, `1.5`, `12`. */
export function formatGb(gb: number): string {
  return String(Number(gb.toPrecision(3)));
}

export function formatMib(bytes: number): string {
  return `${Math.round(bytes / MIB)} MiB`;
}

/** A name that is safe as one path component of a cgroup directory. */
export function cgroupName(id: string): string {
  const safe = id.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120);
  return safe === '' || safe === '.' || safe === '..' ? '_' : safe;
}

/** Parses `--accounted-only cpu,memory`: a comma-separated list of reserved resources. */
export function parseResourceList(value: string, setting = '--accounted-only'): ReservedResource[] {
  const names = value.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !RESERVED_RESOURCES.includes(n as ReservedResource));
  if (unknown.length) throw new ConfigError(setting, `${unknown.join(', ')} ${unknown.length === 1 ? 'is not a resource' : 'are not resources'}; use ${RESERVED_RESOURCES.join(', ')}`);
  return RESERVED_RESOURCES.filter((r) => names.includes(r));
}

/** Where each cgroup controller is mounted, from /proc/self/mountinfo. */
export interface CgroupMounts {
  /** v1 hierarchies by controller (`memory`, `blkio`, ...). */
  v1: Record<string, string>;
  /** The cgroup2 mount, if any (its root's cgroup.controllers says which controllers it has). */
  v2?: string;
}

/**
 * Reads the cgroup mounts out of mountinfo (`id parent maj:min root mountpoint opts … - fstype
 * source superopts`). Only mounts of a hierarchy's root (`/`) are taken: a bind mount of a
 * sub-cgroup would put our directories somewhere else than its name says.
 */
export function parseCgroupMounts(mountinfo: string): CgroupMounts {
  const out: CgroupMounts = { v1: {} };
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const [, , , root, mountpoint] = line.slice(0, sep).split(' ');
    const [fstype, , superopts = ''] = line.slice(sep + 3).split(' ');
    if (root !== '/' || !mountpoint) continue;
    const mount = unescapeMountinfo(mountpoint);
    if (fstype === 'cgroup2') out.v2 ??= mount;
    else if (fstype === 'cgroup') {
      for (const opt of superopts.split(',')) if (!(opt in out.v1) && !['rw', 'ro'].includes(opt) && !opt.includes('=')) out.v1[opt] = mount;
    }
  }
  return out;
}

/**
 * The hierarchy that holds `controller` (v1 name; `io` is blkio's v2 name), given the controllers
 * the cgroup2 root offers: on a hybrid host a controller is bound to v1 or to v2, never both.
 */
export function hierarchyOf(mounts: CgroupMounts, controller: 'memory' | 'blkio' | 'cpuset', v2Controllers: readonly string[]): CgroupHierarchy | undefined {
  if (mounts.v1[controller]) return { version: 1, mount: mounts.v1[controller] };
  const v2Name = controller === 'blkio' ? 'io' : controller;
  if (mounts.v2 && v2Controllers.includes(v2Name)) return { version: 2, mount: mounts.v2 };
  return undefined;
}

/**
 * A thread's or process's cgroup per v1 controller, and the v2 one under the key `''`, from
 * /proc/<pid>/cgroup (`id:controllers:path`).
 */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === '') out.set('', m[2]);
    for (const c of m[1].split(',')) if (c) out.set(c, m[2]);
  }
  return out;
}

/** The `oom_kill N` counter of v1 memory.oom_control or v2 memory.events; undefined where the kernel lacks it (< 4.13). */
export function parseOomKills(text: string): number | undefined {
  const m = /^oom_kill (\d+)$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}
