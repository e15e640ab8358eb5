/**
 * The cgroup filesystem: the node's directory in a hierarchy, one child cgroup per task, and
 * putting a process into them. Synchronous where it sits between a fork and an exec.
 *
 *   <mount>/prescient-<node id>/              NodeCgroup: created at agent start, removed at stop
 *   <mount>/prescient-<node id>/task-<id>/    TaskCgroup: created before a task's first ffmpeg,
 *                                             removed after its last; leftovers of a crashed
 *                                             agent are removed at the next start
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseCpuList } from '../../shared/index.js';
import { cgroupName, parseCgroupMounts, parseProcCgroup, type CgroupMounts } from './limits.js';
import type { CgroupHierarchy, NodeCgroup } from './types.js';

export const NODE_CGROUP_PREFIX = 'prescient-';
export const TASK_CGROUP_PREFIX = 'task-';

/** The v1 controller a hierarchy is used for, or v2's name for it (net_prio is v1 only; v2 calls blkio io). */
export type Controller = 'memory' | 'blkio' | 'net_prio' | 'cpuset';

/** This process's cgroup mounts; none where /proc cannot tell (not Linux). */
export function readCgroupMounts(): CgroupMounts {
  try {
    return parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
  } catch {
    return { v1: {} };
  }
}

/** Controllers the cgroup2 root offers (none where every one is bound to v1). */
export function v2Controllers(mount: string | undefined): string[] {
  if (!mount) return [];
  try {
    return readFileSync(path.join(mount, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

export function nodeCgroupDir(h: CgroupHierarchy, node_id: string): string {
  return path.join(h.mount, NODE_CGROUP_PREFIX + cgroupName(node_id));
}

/**
 * Creates the node's directory (kept if it exists). On v2 the controller must also be enabled in
 * its cgroup.subtree_control for the task cgroups below to have its files; the directory holds
 * no process itself, as v2 requires of a parent with controllers enabled.
 */
export function ensureNodeCgroup(h: CgroupHierarchy, node_id: string, controller: Controller): NodeCgroup {
  const dir = nodeCgroupDir(h, node_id);
  try {
    mkdirSync(dir, { mode: 0o755 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  if (h.version === 2) {
    if (controller === 'net_prio') throw new Error('net_prio is a cgroup v1 controller; cgroup v2 has none like it');
    writeFileSync(path.join(dir, 'cgroup.subtree_control'), `+${controller === 'blkio' ? 'io' : controller}`);
  } else if (controller === 'cpuset') {
    // A v1 cpuset takes no process until it has cores and memory nodes: the node's get its parent's.
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      if (readFileSync(path.join(dir, f), 'utf8').trim() === '') writeFileSync(path.join(dir, f), readFileSync(path.join(path.dirname(dir), f), 'utf8').trim());
    }
  }
  return { ...h, dir };
}

/** Task cgroups in a node's directory. */
function children(node: NodeCgroup): string[] {
  try {
    return readdirSync(node.dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(node.dir, e.name));
  } catch {
    return [];
  }
}

/**
 * Removes the task cgroups a crashed agent left. One still holding a process is left alone and
 * reported: it belongs to a live encode (ffmpeg dies with the agent that spawned it, by its
 * parent-death signal), so another agent with the same node id must be running.
 */
export async function removeStaleTaskCgroups(node: NodeCgroup): Promise<{ removed: string[]; occupied: string[] }> {
  const removed: string[] = [], occupied: string[] = [];
  for (const dir of children(node)) {
    if (await removeCgroupDir(dir)) removed.push(dir);
    else occupied.push(dir);
  }
  return { removed, occupied };
}

/** Removes the node's directory and any empty task cgroups in it; false when something is still running there. */
export async function removeNodeCgroup(node: NodeCgroup): Promise<boolean> {
  await removeStaleTaskCgroups(node);
  return removeCgroupDir(node.dir);
}

/**
 * rmdir of a cgroup; true once it is gone. A process that was just reaped can take a moment to
 * leave its cgroup (EBUSY meanwhile), so that is retried briefly.
 */
async function removeCgroupDir(dir: string): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    try {
      rmdirSync(dir);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return true;
      if (code !== 'EBUSY' || attempt >= 20 || cgroupHasProcesses(dir)) return false;
      await sleep(25);
    }
  }
}

function cgroupHasProcesses(dir: string): boolean {
  try {
    return readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').trim() !== '';
  } catch {
    return false;
  }
}

/** One task's cgroup in one hierarchy. */
export class TaskCgroup {
  private constructor(readonly node: NodeCgroup, readonly dir: string) {}

  /** Creates `task-<id>` in the node's directory; a leftover of the same name is removed first, or a fresh name is taken if it is busy. */
  static create(node: NodeCgroup, name: string): TaskCgroup {
    const dir = path.join(node.dir, TASK_CGROUP_PREFIX + cgroupName(name));
    for (const candidate of [dir, `${dir}.${process.pid}.${Date.now().toString(36)}`]) {
      try {
        mkdirSync(candidate, { mode: 0o755 });
        return new TaskCgroup(node, candidate);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        try {
          rmdirSync(candidate);
          mkdirSync(candidate, { mode: 0o755 });
          return new TaskCgroup(node, candidate);
        } catch { /* busy: try the next name */ }
      }
    }
    throw new Error(`${dir} exists and is in use`);
  }

  get version(): 1 | 2 {
    return this.node.version;
  }

  /** The cgroup's path as /proc/<pid>/cgroup shows it. */
  get path(): string {
    return '/' + path.relative(this.node.mount, this.dir);
  }

  has(file: string): boolean {
    return existsSync(path.join(this.dir, file));
  }

  write(file: string, value: string): void {
    writeFileSync(path.join(this.dir, file), value);
  }

  read(file: string): string {
    return readFileSync(path.join(this.dir, file), 'utf8');
  }

  /** Moves a whole process (all its threads) in. */
  admitProcess(pid: number): void {
    this.write('cgroup.procs', String(pid));
  }

  /** v1 only: moves one thread in; whatever it forks next is born here. */
  admitThread(tid: number): void {
    this.write('tasks', String(tid));
  }

  remove(): Promise<boolean> {
    return removeCgroupDir(this.dir);
  }
}

/**
 * v1 writes memory.limit_in_bytes and then memsw (memory + swap), which must never be below it,
 * so swap cannot stretch the reservation; v2 writes memory.max and takes swap away with
 * memory.swap.max. -1 lifts the v1 limit. v2's memory.oom.group makes an OOM kill take the whole
 * cgroup (ffmpeg and any child it started) rather than one process of it.
 */
export function setMemoryLimit(c: TaskCgroup, bytes: number): void {
  if (c.version === 2) {
    c.write('memory.max', bytes < 0 ? 'max' : String(bytes));
    if (c.has('memory.swap.max')) c.write('memory.swap.max', '0');
    if (c.has('memory.oom.group')) c.write('memory.oom.group', '1');
    return;
  }
  const memsw = c.has('memory.memsw.limit_in_bytes');
  if (bytes < 0) {
    if (memsw) c.write('memory.memsw.limit_in_bytes', '-1');
    c.write('memory.limit_in_bytes', '-1');
  } else {
    c.write('memory.limit_in_bytes', String(bytes));
    if (memsw) c.write('memory.memsw.limit_in_bytes', String(bytes));
  }
}

/**
 * Holds the cgroup's processes to `cores`, whatever affinity they set themselves (libx265's
 * thread pools set their own, and left taskset's cores). v1 needs the memory nodes too, which
 * are the node directory's.
 */
export function setCpus(c: TaskCgroup, cores: readonly number[]): void {
  if (!cores.length) throw new Error('no cores to hold the task to');
  if (c.version === 1 && c.read('cpuset.mems').trim() === '') c.write('cpuset.mems', readFileSync(path.join(c.node.dir, 'cpuset.mems'), 'utf8').trim());
  c.write('cpuset.cpus', cores.join(','));
}

/** The cores a cpuset cgroup (the node's directory, or a task's) may use. */
export function cpusOf(dir: string): number[] {
  return parseCpuList(readFileSync(path.join(dir, existsSync(path.join(dir, 'cpuset.cpus.effective')) ? 'cpuset.cpus.effective' : 'cpuset.cpus'), 'utf8'), `${dir} cpuset.cpus`);
}

/** The calling thread's id (a Piscina worker is a thread of the agent's process). */
function ownTid(): number {
  return Number(path.basename(readlinkSync('/proc/thread-self')));
}

/** Where the calling thread is, per hierarchy: `<mount><path>` of its cgroup. */
function ownCgroupDir(c: TaskCgroup, controller: Controller): string {
  const own = parseProcCgroup(readFileSync('/proc/thread-self/cgroup', 'utf8'));
  const rel = own.get(c.version === 2 ? '' : controller);
  if (rel === undefined) throw new Error(`this thread is in no ${controller} cgroup`);
  return path.join(c.node.mount, rel);
}

/** Hooks run around the fork, for what must not hold while the spawning thread is inside (e.g. a tight memory limit). */
export interface SpawnHooks {
  /** Before the thread moves in. */
  beforeFork?(): void;
  /** After it has moved back out, also when the spawn threw. */
  afterFork?(): void;
  /** A cgroup the process could not be put into, and why. */
  missed?(c: TaskCgroup, why: string): void;
}

/**
 * Runs `start`, a synchronous spawn, so that the child is in `cgroups`:
 *
 * - v1: a child is born in its forking thread's cgroups, and v1 lets one thread move alone
 *   (`tasks`). The spawning thread moves into the task cgroups, forks, and moves straight back,
 *   so ffmpeg (and setpriv, taskset, prlimit before it) runs in them from its first instruction.
 * - v2 moves whole processes only, and Node cannot fork into a cgroup (clone3's
 *   CLONE_INTO_CGROUP), so the child's pid is written as soon as spawn() returns. The child has
 *   then usually exec'd setpriv, sometimes already ffmpeg: its first moments go uncharged.
 */
export function spawnInto<T extends ChildProcess>(cgroups: readonly { cgroup: TaskCgroup; controller: Controller }[], start: () => T, hooks: SpawnHooks = {}): T {
  const v1 = cgroups.filter((c) => c.cgroup.version === 1);
  const v2 = cgroups.filter((c) => c.cgroup.version === 2);
  let child: T;
  if (v1.length === 0) child = start();
  else {
    const tid = ownTid();
    const entered: { cgroup: TaskCgroup; home: string }[] = [];
    hooks.beforeFork?.();
    try {
      for (const c of v1) {
        try {
          const home = ownCgroupDir(c.cgroup, c.controller);
          c.cgroup.admitThread(tid);
          entered.push({ cgroup: c.cgroup, home });
        } catch (e) {
          hooks.missed?.(c.cgroup, (e as Error).message);
        }
      }
      child = start();
    } finally {
      for (const { cgroup, home } of entered) leave(cgroup, home, tid);
      hooks.afterFork?.();
    }
  }
  for (const c of v2) {
    if (child.pid === undefined) break; // the spawn failed; its error event says why
    try {
      c.cgroup.admitProcess(child.pid);
    } catch (e) {
      hooks.missed?.(c.cgroup, (e as Error).message);
    }
  }
  return child;
}

/**
 * Moves the thread back home; should that fail, into the node's directory, which has no limit of
 * its own. Should that fail too, the thread stays (the child is running already and must not be
 * orphaned by a throw); the task cgroup then cannot be removed, which release() reports.
 */
function leave(c: TaskCgroup, home: string, tid: number): void {
  for (const dir of [home, c.node.dir]) {
    try {
      writeFileSync(path.join(dir, 'tasks'), String(tid));
      return;
    } catch { /* next */ }
  }
}

/**
 * Whether a process can be put into `cgroup` the way encodes are: spawns `sleep` into it, reads
 * its /proc/<pid>/cgroup back, and ends it.
 */
export async function canAdmit(cgroup: TaskCgroup, controller: Controller): Promise<string | undefined> {
  let missed: string | undefined;
  const child = spawnInto([{ cgroup, controller }], () => spawn('sleep', ['10'], { stdio: 'ignore' }), { missed: (_, why) => { missed = why; } });
  child.on('error', (e) => { missed ??= `could not start a process: ${e.message}`; });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let seen: string | undefined;
  try {
    if (child.pid !== undefined) seen = parseProcCgroup(readFileSync(`/proc/${child.pid}/cgroup`, 'utf8')).get(cgroup.version === 2 ? '' : controller);
  } catch { /* exited already */ }
  child.kill('SIGKILL');
  await exited;
  if (missed) return missed;
  if (seen !== cgroup.path) return `a process started there showed up in ${seen ?? 'no cgroup'} instead of ${cgroup.path}`;
  return undefined;
}
