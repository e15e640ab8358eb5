/**
 * One encode's process tree — ffmpeg and any descendants — read from /proc on each tick.
 *
 * Finding descendants: /proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN, which many
 * kernels (this project's test machines included) lack, and reading every /proc/<pid>/stat each
 * tick would cost more than all the rest. But a child always gets its pid after its parent, so
 * only pids handed out since the last look can be new members. /proc/sys/kernel/ns_last_pid tells
 * whether any were handed out (between ticks usually none, or a few) and which range to check;
 * only /proc entries in that range have their stat read. Where ns_last_pid is unreadable, every
 * process is checked. Even so, on a busy node some process forks between most ticks, so the look
 * is taken only every DISCOVER_EVERY reads: a child that lives shorter than that may go unseen,
 * but what it used still counts once its parent has reaped it (below); only its memory is missed.
 *
 * Members that exit: when a parent reaps a child, the kernel adds the child's CPU time to the
 * parent's cutime/cstime and its I/O counters to the parent's /proc/<pid>/io, so a reaped
 * member's last figures live on in its parent. Between its exit and the reaping they are briefly
 * nowhere; keeping each cumulative figure at its highest so far covers that gap without counting
 * anything twice.
 *
 * Each member's stat, status, io and thread stat files stay open between ticks (see proc.ts)
 * until it exits or the tree is closed.
 */
import { readdirSync } from 'node:fs';
import { parseCpuList } from '../../shared/index.js';
import { kbField, lastPid, parsePidStat, procField, ProcFile, readProc, type PidStat } from './proc.js';

/** Cumulative counters of the tree since each member started. */
export interface Counters {
  /** CPU time of all threads, reaped descendants included, in clock ticks. */
  cpu_ticks: number;
  /** rchar / wchar: bytes through read() and write(), page-cache hits included. */
  rchar: number;
  wchar: number;
  /** read_bytes / write_bytes: bytes that hit storage. */
  read_bytes: number;
  write_bytes: number;
}

export interface TreeReading extends Counters {
  /** Resident memory summed over the tree, in kB. */
  rss_kb: number;
  /** The root process's VmHWM (its own peak RSS) in kB. */
  hwm_kb: number;
  /** Every process's affinity is exactly the reserved cores, and every thread last ran on one of them. */
  on_cores: boolean;
}

/** Reads between looks for new members (the first read always looks). */
export const DISCOVER_EVERY = 5;

const COUNTERS = ['cpu_ticks', 'rchar', 'wchar', 'read_bytes', 'write_bytes'] as const;
const zero = (): Counters => ({ cpu_ticks: 0, rchar: 0, wchar: 0, read_bytes: 0, write_bytes: 0 });

/** Whether `pid` was handed out after `from` up to `to`, allowing for the counter wrapping at pid_max. */
export function allocatedBetween(pid: number, from: number | undefined, to: number | undefined): boolean {
  if (from === undefined || to === undefined) return true;
  return from <= to ? pid > from && pid <= to : pid > from || pid <= to;
}

/** A member process and the /proc files read from it every tick. */
class Member {
  readonly stat: ProcFile;
  readonly status: ProcFile;
  readonly io: ProcFile;
  /** task/<tid>/stat of each thread but the main one, whose stat is the process's. */
  readonly threads = new Map<string, ProcFile>();

  /** Throws if the process is already gone. */
  constructor(readonly pid: number, private starttime?: number) {
    const files: ProcFile[] = [];
    try {
      for (const f of ['stat', 'status', 'io']) files.push(new ProcFile(`/proc/${pid}/${f}`));
    } catch (e) {
      for (const f of files) f.close();
      throw e;
    }
    [this.stat, this.status, this.io] = files;
  }

  /**
   * Its stat and status now; undefined once it is exiting (its memory released: status has no
   * VmRSS any more), has exited, or if the pid was reused before it was opened.
   */
  look(): { stat: PidStat; status: string } | undefined {
    try {
      const stat = parsePidStat(this.stat.read());
      if (stat.state === 'Z' || stat.state === 'X' || (this.starttime !== undefined && stat.starttime !== this.starttime)) return undefined;
      this.starttime = stat.starttime;
      const status = this.status.read();
      return procField(status, 'VmRSS') === undefined ? undefined : { stat, status };
    } catch {
      return undefined;
    }
  }

  /** Whether every thread other than the main one last ran on one of `cores`; threads come and go between ticks. */
  threadsOn(cores: ReadonlySet<number>): boolean {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${this.pid}/task`);
    } catch {
      return true; // exited since its stat was read: nothing ran off the cores
    }
    const live = new Set(tids);
    for (const [tid, f] of this.threads) if (!live.has(tid)) { f.close(); this.threads.delete(tid); }
    let on = true;
    for (const tid of tids) {
      if (tid === String(this.pid)) continue;
      try {
        let f = this.threads.get(tid);
        if (!f) this.threads.set(tid, (f = new ProcFile(`/proc/${this.pid}/task/${tid}/stat`)));
        on &&= cores.has(parsePidStat(f.read()).processor);
      } catch {
        // the thread exited; its file goes at the next tick
      }
    }
    return on;
  }

  close(): void {
    for (const f of [this.stat, this.status, this.io, ...this.threads.values()]) f.close();
    this.threads.clear();
  }
}

export class ProcessTree {
  private readonly members = new Map<number, Member>();
  private readonly total = zero();
  /** ns_last_pid at the last look for new members; the root's pid at first, as its descendants come after it. */
  private scannedTo: number | undefined;
  private reads = 0;
  private readonly cores: ReadonlySet<number>;
  private readonly coreList: string;

  /** Throws if the root process is already gone. */
  constructor(private readonly root: number, cores: readonly number[]) {
    this.cores = new Set(cores);
    this.coreList = [...this.cores].sort((a, b) => a - b).join(',');
    this.members.set(root, new Member(root));
    this.scannedTo = root;
  }

  /** The tree now; undefined once the root process is exiting or has exited. */
  read(): TreeReading | undefined {
    if (this.reads++ % DISCOVER_EVERY === 0) this.discover();
    const sum = zero();
    const out = { rss_kb: 0, hwm_kb: 0, on_cores: true };
    for (const [pid, m] of this.members) {
      const now = m.look();
      if (!now) {
        if (pid === this.root) return undefined;
        m.close();
        this.members.delete(pid);
        continue;
      }
      const { stat, status } = now;
      sum.cpu_ticks += stat.cpu_ticks;
      addIo(m.io, sum);
      out.rss_kb += kbField(status, 'VmRSS');
      if (pid === this.root) out.hwm_kb = kbField(status, 'VmHWM');
      out.on_cores &&= this.cores.has(stat.processor)
        && parseCpuList(procField(status, 'Cpus_allowed_list') ?? '').join(',') === this.coreList
        && m.threadsOn(this.cores);
    }
    for (const k of COUNTERS) this.total[k] = Math.max(this.total[k], sum[k]);
    return { ...this.total, ...out };
  }

  /** Closes the files kept open; the tree cannot be read afterwards. */
  close(): void {
    for (const m of this.members.values()) m.close();
    this.members.clear();
  }

  /** Adds processes created since the last look whose parent is in the tree. */
  private discover(): void {
    const to = lastPid();
    if (to !== undefined && to === this.scannedTo) return;
    const fresh = new Map<number, PidStat>();
    for (const name of readdirSync('/proc')) {
      const pid = Number(name);
      if (!(pid > 0) || this.members.has(pid) || !allocatedBetween(pid, this.scannedTo, to)) continue;
      try {
        fresh.set(pid, parsePidStat(readProc(`/proc/${pid}/stat`)));
      } catch {
        // already gone
      }
    }
    // A grandchild may be listed before its parent joined; repeat until nothing joins.
    for (let grew = true; grew;) {
      grew = false;
      for (const [pid, s] of fresh) {
        if (!this.members.has(s.ppid)) continue;
        fresh.delete(pid);
        try {
          this.members.set(pid, new Member(pid, s.starttime));
          grew = true;
        } catch {
          // exited meanwhile
        }
      }
    }
    this.scannedTo = to;
  }
}

/** Adds /proc/<pid>/io to `sum`; a process exiting right now adds nothing (the running maximum holds). */
function addIo(io: ProcFile, sum: Counters): void {
  try {
    const text = io.read();
    sum.rchar += Number(procField(text, 'rchar') ?? 0);
    sum.wchar += Number(procField(text, 'wchar') ?? 0);
    sum.read_bytes += Number(procField(text, 'read_bytes') ?? 0);
    sum.write_bytes += Number(procField(text, 'write_bytes') ?? 0);
  } catch {
    // exiting
  }
}
