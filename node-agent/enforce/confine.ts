/**
 * One encode's confinement: what the node's plan allows, applied to this task's reservation.
 * Whatever cannot be set up at run time is noted and the encode runs without it; a memory
 * cgroup that cannot be made falls back to the RLIMIT_DATA backstop. Reserved bandwidth is held
 * twice: on disk (blkio/io throttle) and on the network (a tc class for its egress).
 */
import type { ChildProcess } from 'node:child_process';
import { TaskCgroup, setCpus, setMemoryLimit, spawnInto, type Controller } from './cgroup.js';
import { diskOf } from './devices.js';
import { ReservationExceededError } from './errors.js';
import { TaskShaping } from './network.js';
import { formatMbit } from './shaping.js';
import {
  allocationRefused, dataLimitBytes, formatMib, gpuView, memoryLimitBytes, parseOomKills, throttleBytesPerSecond, throttleLine,
  DATA_LIMIT_PER_RESERVED, MEMORY_HEADROOM_BYTES, type BlockDevice,
} from './limits.js';
import type { Confinement, Enforcement, EnforcementPlan, NodeCgroup, ProcessExit, ReservedResource, TaskReservation } from './types.js';

type MemoryHold =
  | { via: 'cgroup'; cgroup: TaskCgroup; limit: number }
  | { via: 'rlimit'; limit: number; why_not_cgroup: string }
  | { via: 'none'; why: string };
type BandwidthHold =
  | { via: 'cgroup'; cgroup: TaskCgroup; disks: BlockDevice[]; bytes_per_s: number; unthrottled: string[] }
  | { via: 'none'; why: string };
type NetworkHold = { via: 'tc'; shaping: TaskShaping } | { via: 'none'; why: string };
type CpuHold = { via: 'cpuset'; cgroup: TaskCgroup } | { via: 'affinity'; why_not_cpuset?: string } | { via: 'none'; why: string };

/** Where a run-time shortfall is noted: per resource, bandwidth's network half apart from its disk half. */
type NoteKey = ReservedResource | 'network';

const NO_PLAN = 'the runner was given no enforcement plan (detectEnforcement)';

/** Sets up the task's cgroups and limits before its first ffmpeg starts. */
export function confineTask(plan: EnforcementPlan | undefined, r: TaskReservation): Confinement {
  return new TaskConfinement(plan, r);
}

class TaskConfinement implements Confinement {
  readonly pin_cores: boolean;
  readonly command_prefix: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  private readonly cgroups = new Map<string, TaskCgroup>();
  private readonly cpu: CpuHold;
  private readonly memory: MemoryHold;
  private readonly bandwidth: BandwidthHold;
  private readonly network: NetworkHold;
  /** Per resource, what did not hold at run time although the plan said it would. */
  private readonly notes = new Map<NoteKey, string>();
  private readonly leftovers: string[] = [];
  private released = false;
  /** ffmpeg held more than the limit by the time it could be set; it was killed. */
  private overLimitAtStart = false;

  constructor(private readonly plan: EnforcementPlan | undefined, private readonly r: TaskReservation) {
    // taskset with a cpuset too: the affinity an encoder starts with is then its cores already.
    this.pin_cores = !plan || plan.cpu.kind !== 'none';
    this.env = plan?.gpu.kind === 'visible-devices' ? gpuView(r.gpu_ids).env : {};
    this.cpu = this.holdCpu();
    this.memory = this.holdMemory();
    this.bandwidth = this.holdBandwidth();
    this.network = this.holdNetwork();
    this.command_prefix = this.memory.via === 'rlimit' ? ['prlimit', `--data=${this.memory.limit}`, '--'] : [];
  }

  private holdCpu(): CpuHold {
    const c = this.plan?.cpu;
    if (!c) return { via: 'affinity', why_not_cpuset: NO_PLAN };
    if (c.kind === 'none') return { via: 'none', why: c.why };
    if (c.kind === 'affinity') return { via: 'affinity', why_not_cpuset: c.why_not_cpuset };
    if (!this.r.core_ids.length) return { via: 'affinity', why_not_cpuset: 'no cores were reserved' };
    try {
      const cgroup = this.cgroup(c.cgroup);
      setCpus(cgroup, this.r.core_ids);
      return { via: 'cpuset', cgroup };
    } catch (e) {
      const why = `its cpuset cgroup could not be set up (${(e as Error).message})`;
      this.notes.set('cpu', `${why}; affinity (taskset) only`);
      return { via: 'affinity', why_not_cpuset: why };
    }
  }

  private holdMemory(): MemoryHold {
    const m = this.plan?.memory;
    if (!m) return { via: 'none', why: NO_PLAN };
    if (m.kind === 'none') return { via: 'none', why: m.why };
    if (!(this.r.memory_gb > 0)) return { via: 'none', why: 'no memory was reserved' };
    const rlimit = (why_not_cgroup: string): MemoryHold => ({ via: 'rlimit', limit: dataLimitBytes(this.r.memory_gb), why_not_cgroup });
    if (m.kind === 'rlimit') return rlimit(m.why_not_cgroup);
    const limit = memoryLimitBytes(this.r.memory_gb);
    try {
      const cgroup = this.cgroup(m.cgroup);
      setMemoryLimit(cgroup, limit);
      return { via: 'cgroup', cgroup, limit };
    } catch (e) {
      const why = `its memory cgroup could not be set up (${(e as Error).message})`;
      this.notes.set('memory', `${why}; RLIMIT_DATA used instead`);
      return rlimit(why);
    }
  }

  private holdBandwidth(): BandwidthHold {
    const b = this.plan?.bandwidth;
    if (!b) return { via: 'none', why: NO_PLAN };
    if (b.kind === 'none') return { via: 'none', why: b.why };
    if (!(this.r.bandwidth_mbps! > 0)) return { via: 'none', why: 'no bandwidth was reserved' };
    const disks: BlockDevice[] = [], unthrottled: string[] = [];
    for (const p of this.r.paths) {
      const d = diskOf(p);
      if ('why' in d) unthrottled.push(d.why);
      else if (!disks.some((x) => x.major === d.disk.major && x.minor === d.disk.minor)) disks.push(d.disk);
    }
    if (disks.length === 0) return { via: 'none', why: unthrottled.join('; ') || 'the encode reads and writes no file' };
    const bytes_per_s = throttleBytesPerSecond(this.r.bandwidth_mbps!);
    try {
      const cgroup = this.cgroup(b.cgroup);
      for (const d of disks) {
        if (cgroup.version === 2) cgroup.write('io.max', throttleLine(2, d, bytes_per_s));
        else for (const f of ['blkio.throttle.read_bps_device', 'blkio.throttle.write_bps_device']) cgroup.write(f, throttleLine(1, d, bytes_per_s));
      }
      return { via: 'cgroup', cgroup, disks, bytes_per_s, unthrottled };
    } catch (e) {
      const why = `its I/O cgroup could not be set up (${(e as Error).message})`;
      this.notes.set('bandwidth', why);
      return { via: 'none', why };
    }
  }

  private holdNetwork(): NetworkHold {
    const n = this.plan?.network;
    if (!n) return { via: 'none', why: NO_PLAN };
    if (n.kind === 'none') return { via: 'none', why: n.why };
    if (!(this.r.bandwidth_mbps! > 0)) return { via: 'none', why: 'no bandwidth was reserved' };
    try {
      return { via: 'tc', shaping: TaskShaping.create(n, this.r.task_id, this.r.bandwidth_mbps!) };
    } catch (e) {
      const why = `its network egress class could not be set up (${(e as Error).message})`;
      this.notes.set('network', why);
      return { via: 'none', why };
    }
  }

  /** The task's cgroup in a node directory; on v2 memory and io share one. */
  private cgroup(node: NodeCgroup): TaskCgroup {
    let c = this.cgroups.get(node.dir);
    if (!c) this.cgroups.set(node.dir, (c = TaskCgroup.create(node, this.r.task_id)));
    return c;
  }

  /** The cgroups a process must be put into, each with the v1 controller it is there for. */
  private targets(): { cgroup: TaskCgroup; controller: Controller }[] {
    const out: { cgroup: TaskCgroup; controller: Controller }[] = [];
    if (this.cpu.via === 'cpuset') out.push({ cgroup: this.cpu.cgroup, controller: 'cpuset' });
    if (this.memory.via === 'cgroup' && !out.some((t) => t.cgroup === (this.memory as { cgroup: TaskCgroup }).cgroup)) out.push({ cgroup: this.memory.cgroup, controller: 'memory' });
    if (this.bandwidth.via === 'cgroup' && !out.some((t) => t.cgroup === (this.bandwidth as { cgroup: TaskCgroup }).cgroup)) {
      out.push({ cgroup: this.bandwidth.cgroup, controller: 'blkio' });
    }
    if (this.network.via === 'tc') out.push({ cgroup: this.network.shaping.cgroup, controller: 'net_prio' });
    return out;
  }

  spawn<T extends ChildProcess>(start: () => T): T {
    if (this.released) throw new Error(`confinement of ${this.r.task_id} was already released`);
    const mem = this.memory.via === 'cgroup' && this.memory.cgroup.version === 1 ? this.memory : undefined;
    let overLimit = false;
    const child = spawnInto(this.targets(), start, {
      // While the agent's own thread is in the task's memory cgroup, an OOM kill there could pick
      // the agent. No other process of the task runs during a fork (passes run one after
      // another), so the limit is lifted for that moment and set again once the thread is out:
      // milliseconds in which ffmpeg is already charged to the cgroup but not yet limited.
      beforeFork: mem && (() => { try { setMemoryLimit(mem.cgroup, -1); } catch { /* keeps the limit: the window is short */ } }),
      afterFork: mem && (() => {
        try {
          setMemoryLimit(mem.cgroup, mem.limit);
        } catch (e) {
          // EBUSY: the kernel could not reclaim the cgroup down to the limit, i.e. ffmpeg already holds more.
          if ((e as NodeJS.ErrnoException).code === 'EBUSY') overLimit = true;
          else this.notes.set('memory', `the limit could not be set again after the fork (${(e as Error).message})`);
        }
      }),
      missed: (c, why) => {
        if (this.cpu.via === 'cpuset' && this.cpu.cgroup === c) this.notes.set('cpu', `ffmpeg could not be put into ${c.dir} (${why}); affinity (taskset) only`);
        for (const res of ['memory', 'bandwidth'] as const) {
          const hold = this[res];
          if (hold.via === 'cgroup' && hold.cgroup === c) this.notes.set(res, `ffmpeg could not be put into ${c.dir} (${why})`);
        }
        if (this.network.via === 'tc' && this.network.shaping.cgroup === c) this.notes.set('network', `ffmpeg could not be put into ${c.dir} (${why})`);
      },
    });
    if (overLimit) {
      this.overLimitAtStart = true;
      child.kill('SIGKILL');
    }
    return child;
  }

  breach(exit: ProcessExit): Error | undefined {
    if (exit.code === 0) return undefined;
    const m = this.memory;
    if (m.via === 'cgroup' && this.overLimitAtStart) {
      return new ReservationExceededError(this.r.memory_gb, `ffmpeg already held more than its cgroup memory limit of ${formatMib(m.limit)} when the limit was set, moments after it started`);
    }
    if (m.via === 'cgroup' && oomKilled(m.cgroup, exit)) {
      return new ReservationExceededError(this.r.memory_gb,
        `the OOM killer stopped ffmpeg at its cgroup v${m.cgroup.version} memory limit of ${formatMib(m.limit)} (the reservation plus ${formatMib(MEMORY_HEADROOM_BYTES)} start-up headroom)`);
    }
    if (m.via === 'rlimit' && allocationRefused(exit.stderr)) {
      return new ReservationExceededError(this.r.memory_gb,
        `ffmpeg was refused an allocation by its RLIMIT_DATA of ${formatMib(m.limit)} (${DATA_LIMIT_PER_RESERVED}× the reservation; no memory cgroup for this encode)`);
    }
    return undefined;
  }

  applied(): Enforcement[] {
    const ok = (resource: ReservedResource, detail: string): Enforcement => ({ resource, mode: 'enforced', detail });
    const not = (resource: ReservedResource, detail: string): Enforcement => ({ resource, mode: 'accounted-only', detail });
    const c = this.cpu, cores = this.r.core_ids.join(',');
    const cpu = c.via === 'cpuset' && !this.notes.has('cpu') ? ok('cpu', `cgroup v${c.cgroup.version} cpuset.cpus = ${cores} (${c.cgroup.dir}): every thread held to them; affinity too (taskset)`)
      : c.via !== 'none' ? ok('cpu', `affinity to cores ${cores} (taskset)${this.notes.has('cpu') ? `: ${this.notes.get('cpu')}` : c.via === 'affinity' && c.why_not_cpuset ? `; no cpuset: ${c.why_not_cpuset}` : ''}`)
        : not('cpu', c.why);

    const m = this.memory;
    const memory = this.notes.has('memory') && m.via === 'cgroup' ? not('memory', this.notes.get('memory')!)
      : m.via === 'cgroup' ? ok('memory', `cgroup v${m.cgroup.version} ${m.cgroup.version === 1 ? 'memory.limit_in_bytes' : 'memory.max'} = ${formatMib(m.limit)} (${m.cgroup.dir})`)
        : m.via === 'rlimit' ? ok('memory', `RLIMIT_DATA = ${formatMib(m.limit)}, ${DATA_LIMIT_PER_RESERVED}× the reservation, a backstop on allocated memory (${m.why_not_cgroup})`)
          : not('memory', m.why);

    const gpu = this.plan?.gpu.kind === 'visible-devices' ? ok('gpu', `CUDA_VISIBLE_DEVICES=${this.env.CUDA_VISIBLE_DEVICES}${this.r.gpu_ids.length ? '' : ' (no GPU reserved: none visible)'}`)
      : not('gpu', this.plan?.gpu.kind === 'none' ? this.plan.gpu.why : NO_PLAN);

    return [cpu, memory, gpu, this.appliedBandwidth()];
  }

  /** Enforced where the disk throttle or the network shaping held; the detail says both. */
  private appliedBandwidth(): Enforcement {
    const b = this.bandwidth, n = this.network;
    const disk = this.notes.has('bandwidth') && b.via === 'cgroup' ? { held: false, text: this.notes.get('bandwidth')! }
      : b.via === 'cgroup' ? { held: true, text: `cgroup v${b.cgroup.version} ${b.cgroup.version === 1 ? 'blkio.throttle.{read,write}_bps_device' : 'io.max'} = ${b.bytes_per_s} B/s on disk ${b.disks.map((d) => `${d.major}:${d.minor}`).join(', ')}${b.unthrottled.length ? `; not throttled: ${b.unthrottled.join('; ')}` : ''}` }
        : { held: false, text: `disk not throttled: ${b.why}` };
    const net = this.notes.has('network') && n.via === 'tc' ? { held: false, text: `network not shaped: ${this.notes.get('network')!}` }
      : n.via === 'tc' ? { held: true, text: `egress shaped on ${n.shaping.interfaces.join(', ')} at ${formatMbit(n.shaping.mbps)} (tc class ${n.shaping.class_id}); ingress accounted only` }
        : { held: false, text: `network not shaped: ${n.why}` };
    const mode = disk.held || net.held ? 'enforced' : 'accounted-only';
    // With --accounted-only bandwidth (or nothing reserved) both halves give the same reason: once is enough.
    const same = b.via === 'none' && n.via === 'none' && b.why === n.why;
    return { resource: 'bandwidth', mode, detail: same ? b.why : `${disk.text}; ${net.text}` };
  }

  shortfalls(): string[] {
    return [...[...this.notes].map(([key, why]) => `${key === 'network' ? 'bandwidth (network egress)' : key} not enforced as planned: ${why}`), ...this.leftovers];
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    for (const c of this.cgroups.values()) {
      if (!(await c.remove())) this.leftovers.push(`${c.dir} could not be removed (still in use); the agent removes it at its next start`);
    }
    if (this.network.via === 'tc') this.leftovers.push(...(await this.network.shaping.release()));
  }
}

/** Whether the kernel's OOM killer acted in the cgroup; kernels before 4.13 lack the counter, so there a SIGKILL after the limit was hit counts. */
function oomKilled(c: TaskCgroup, exit: ProcessExit): boolean {
  try {
    const kills = parseOomKills(c.read(c.version === 1 ? 'memory.oom_control' : 'memory.events'));
    if (kills !== undefined) return kills > 0;
    return exit.signal === 'SIGKILL' && c.version === 1 && Number(c.read('memory.failcnt')) > 0;
  } catch {
    return false;
  }
}
