/**
 * Network egress shaping with `tc`: found by trying it at agent start, one HTB class and one
 * net_prio cgroup per task, everything removed at stop or, after a crash, at the next start.
 *
 * Why net_prio and not net_cls + the `cgroup` tc filter: that classifier (cls_cgroup) is a
 * kernel option many kernels leave out (this project's test machine among them), while HTB
 * itself reads skb->priority, which net_prio sets per interface from the sending socket's
 * cgroup, so no filter is needed at all. net_prio only fills in a priority the process left at
 * 0: one that sets SO_PRIORITY or IP_TOS (ffmpeg does neither unless told to) lands in the
 * default class, unshaped. Both controllers are cgroup v1 only; cgroup v2 would need an eBPF
 * classifier, which is not implemented, so a v2-only node reports network shaping accounted-only.
 *
 * Pure parts (ids, tc argument lists, parsers) are in shaping.ts.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { NODE_CGROUP_PREFIX, TaskCgroup, canAdmit, ensureNodeCgroup, nodeCgroupDir, readCgroupMounts, removeNodeCgroup, removeStaleTaskCgroups } from './cgroup.js';
import { TcCommandError } from './errors.js';
import { cgroupName, type CgroupMounts } from './limits.js';
import {
  classId, classMinor, classPriority, defaultClassArgs, defaultClassMbit, deleteClassArgs, deleteQdiscArgs, hasNetAdmin, ifpriomapLine,
  installQdiscArgs, mountFsType, parseDefaultRouteDevs, parseIfpriomap, parseRootQdiscs, qdiscHandle, taskClassArgs, validInterfaceName,
  type RootQdisc,
} from './shaping.js';
import type { CgroupHierarchy, NetworkMechanism, NodeCgroup, ShapedInterface } from './types.js';
import type { Log } from '../../shared/log.js';

const run = promisify(execFile);

/** Where the agent mounts the net_prio hierarchy when nothing has (left mounted at stop: other tools may use it by then). */
export const NET_PRIO_MOUNT = '/sys/fs/cgroup/net_prio';
/** Candidate class ids tried per task before giving up (a node runs a few dozen encodes at most). */
const CLASS_ATTEMPTS = 512;

type TcHtb = Extract<NetworkMechanism, { kind: 'tc-htb' }>;

async function tc(args: string[]): Promise<string> {
  try {
    return (await run('tc', args, { timeout: 10_000 })).stdout;
  } catch (e) {
    throw new TcCommandError(args, String((e as { stderr?: unknown }).stderr ?? ''), e);
  }
}

/** Synchronous, for confineTask, which sets a task up before its first spawn (in a worker thread, so only that worker waits). */
function tcSync(args: string[]): string {
  try {
    return execFileSync('tc', args, { timeout: 10_000, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new TcCommandError(args, String((e as { stderr?: unknown }).stderr ?? ''), e);
  }
}

const message = (e: unknown) => (e as Error).message.split('\n')[0];

export interface NetworkDetectOptions {
  node_id: string;
  /** Interfaces to shape; default those of the default routes. */
  interfaces?: readonly string[];
  log: Log;
}

/**
 * Whether per-task egress shaping holds on this node, and on which interfaces: net_prio mounted
 * (mounted here if the kernel has it unmounted on a v1 layout), CAP_NET_ADMIN, tc, an HTB root
 * qdisc installed on each interface whose root is still the kernel's default, and a probe task
 * (a real class, a cgroup with its priority, a process put in it) set up and removed again.
 * Never throws: a missing piece is the `why` of `none`.
 */
export async function detectNetwork(o: NetworkDetectOptions): Promise<NetworkMechanism> {
  const none = (why: string): NetworkMechanism => ({ kind: 'none', why });
  const h = await netPrioHierarchy(readCgroupMounts(), o.log);
  if ('why' in h) return none(h.why);
  if (!hasNetAdmin(readText('/proc/self/status') ?? '')) return none('the agent lacks CAP_NET_ADMIN, which installing a qdisc needs');
  try {
    await run('tc', ['-V'], { timeout: 5000 });
  } catch (e) {
    return none(`tc (iproute2) did not run: ${message(e)}`);
  }
  const devs = o.interfaces ?? await defaultRouteDevs();
  if (devs.length === 0) {
    return none(o.interfaces ? 'no interface is configured to shape (--shape-interfaces is empty)' : 'the node has no default route, so no interface to shape (name them with --shape-interfaces)');
  }

  let node: NodeCgroup;
  try {
    node = ensureNodeCgroup(h, o.node_id, 'net_prio');
  } catch (e) {
    return none(`cgroup v1 net_prio: cannot create ${nodeCgroupDir(h, o.node_id)} (${message(e)})`);
  }
  const stale = await removeStaleTaskCgroups(node);
  if (stale.removed.length) o.log(`removed ${stale.removed.length} stale task cgroup(s) in ${node.dir} left by an earlier run of this agent`);
  if (stale.occupied.length) {
    o.log(`task cgroups still in use in ${node.dir} (another agent with node id ${o.node_id}?): ${stale.occupied.join(', ')}`, 'warn');
    return none(`task cgroups of node id ${o.node_id} are in use (${stale.occupied.join(', ')}): another agent with this id seems to run, so its qdiscs are left alone`);
  }
  const name = path.basename(node.dir);
  const handle = qdiscHandle(name);
  const clash = siblings(h).filter((n) => n !== name && qdiscHandle(n) === handle);
  if (clash.length) {
    await removeNodeCgroup(node);
    return none(`node ids ${name} and ${clash.join(', ')} on this host map to the same qdisc handle ${handle.toString(16)}:; rename one`);
  }
  for (const dev of await removeOwnQdiscs(handle)) o.log(`removed qdisc ${handle.toString(16)}: on ${dev} left by an earlier run of this agent`);

  const interfaces: ShapedInterface[] = [], unshaped: string[] = [];
  for (const dev of devs) {
    const r = await install(dev, handle);
    if (typeof r === 'string') unshaped.push(r);
    else interfaces.push(r);
  }
  const m: TcHtb = { kind: 'tc-htb', cgroup: node, handle, interfaces, unshaped };
  const why = interfaces.length === 0 ? unshaped.join('; ') : await probe(m);
  if (why === undefined) return m;
  await releaseNetwork(m);
  return none(why);
}

/** Sets up a task as an encode's would be, checks each piece took, and removes it again. */
async function probe(m: TcHtb): Promise<string | undefined> {
  let t: TaskShaping | undefined;
  try {
    t = TaskShaping.create(m, `probe-${process.pid}`, 1);
    const prio = classPriority(m.handle, t.minor);
    const map = parseIfpriomap(t.cgroup.read('net_prio.ifpriomap'));
    for (const i of m.interfaces) {
      if (map.get(i.dev) !== prio) return `net_prio.ifpriomap of ${t.cgroup.dir} did not keep the priority for ${i.dev}`;
      const shown = await tc(['class', 'show', 'dev', i.dev]);
      if (!shown.includes(`class htb ${classId(m.handle, t.minor)} `)) return `tc class ${classId(m.handle, t.minor)} on ${i.dev} was not there after it was added`;
    }
    const missed = await canAdmit(t.cgroup, 'net_prio');
    return missed && `cgroup v1 net_prio: ${missed}`;
  } catch (e) {
    return message(e);
  } finally {
    await t?.release();
  }
}

/**
 * The net_prio hierarchy, mounted at NET_PRIO_MOUNT if the kernel has the controller but nothing
 * mounted it, and only on a v1 layout (/sys/fs/cgroup a tmpfs): a v2-only host gets no v1
 * hierarchies from the agent.
 */
async function netPrioHierarchy(mounts: CgroupMounts, log: Log): Promise<CgroupHierarchy | { why: string }> {
  if (mounts.v1.net_prio) return { version: 1, mount: mounts.v1.net_prio };
  const listed = /^net_prio\s+(\d+)\s+\d+\s+(\d+)\s*$/m.exec(readText('/proc/cgroups') ?? '');
  if (!listed || listed[2] !== '1') return { why: 'the kernel has no net_prio cgroup controller (CONFIG_CGROUP_NET_PRIO), which tags a task\'s packets for its class' };
  const fstype = mountFsType(readText('/proc/self/mountinfo') ?? '', '/sys/fs/cgroup');
  if (fstype !== 'tmpfs') {
    return { why: `this node uses cgroup v2 only (/sys/fs/cgroup is ${fstype ?? 'not mounted'}): v2 has no net_prio or net_cls controller to tell a task's packets apart, and shaping there (an eBPF classifier) is not implemented` };
  }
  if (listed[1] !== '0') return { why: 'the net_prio cgroup hierarchy is mounted, but not where this agent can see it' };
  let made = false;
  try {
    mkdirSync(NET_PRIO_MOUNT, { mode: 0o755 });
    made = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return { why: `cannot create ${NET_PRIO_MOUNT} to mount the net_prio cgroup hierarchy (${message(e)})` };
  }
  try {
    await run('mount', ['-t', 'cgroup', '-o', 'net_prio', 'net_prio', NET_PRIO_MOUNT], { timeout: 10_000 });
  } catch (e) {
    if (made) try { rmdirSync(NET_PRIO_MOUNT); } catch { /* keep */ }
    return { why: `the net_prio cgroup hierarchy is not mounted, and mounting it at ${NET_PRIO_MOUNT} failed (${String((e as { stderr?: unknown }).stderr ?? '').trim() || message(e)})` };
  }
  log(`mounted the cgroup v1 net_prio hierarchy at ${NET_PRIO_MOUNT} for network shaping`);
  return { version: 1, mount: NET_PRIO_MOUNT };
}

async function defaultRouteDevs(): Promise<string[]> {
  const out: string[] = [];
  for (const family of ['-4', '-6']) {
    try {
      for (const dev of parseDefaultRouteDevs((await run('ip', [family, 'route', 'show', 'default'], { timeout: 5000 })).stdout)) if (!out.includes(dev)) out.push(dev);
    } catch { /* no such family, or no ip: no default route of it */ }
  }
  return out;
}

/** Installs the HTB root qdisc and its default class on `dev`, or says why not. */
async function install(dev: string, handle: number): Promise<ShapedInterface | string> {
  if (!validInterfaceName(dev)) return `${JSON.stringify(dev)} is not an interface name`;
  if (!existsSync(path.join('/sys/class/net', dev))) return `${dev}: no such interface`;
  let root: RootQdisc | undefined;
  try {
    root = parseRootQdiscs(await tc(['qdisc', 'show', 'dev', dev, 'root']), dev)[0];
  } catch (e) {
    return `${dev}: ${message(e)}`;
  }
  // Handle 0: is the qdisc the kernel attached itself (pfifo_fast, mq, fq_codel, noqueue); deleting ours brings it back.
  if (root && root.handle !== 0) return `${dev} already has a root qdisc (${root.kind} ${root.handle.toString(16)}:) that this agent did not install; it is left as it is`;
  const default_mbit = defaultClassMbit(readText(path.join('/sys/class/net', dev, 'speed')));
  try {
    await tc(installQdiscArgs(dev, handle));
  } catch (e) {
    return `${dev}: ${message(e)}`;
  }
  try {
    await tc(defaultClassArgs(dev, handle, default_mbit));
  } catch (e) {
    await tc(deleteQdiscArgs(dev, handle)).catch(() => undefined);
    return `${dev}: ${message(e)}`;
  }
  return { dev, default_mbit };
}

/** Deletes the root qdisc `<handle>:` wherever it is installed; the devices it was on. */
async function removeOwnQdiscs(handle: number): Promise<string[]> {
  let roots: RootQdisc[];
  try {
    roots = parseRootQdiscs(await tc(['qdisc', 'show']));
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const r of roots.filter((q) => q.kind === 'htb' && q.handle === handle)) {
    try {
      await tc(deleteQdiscArgs(r.dev, handle));
      removed.push(r.dev);
    } catch { /* gone meanwhile */ }
  }
  return removed;
}

/** Names of the node directories in the hierarchy. */
function siblings(h: CgroupHierarchy): string[] {
  try {
    return readdirSync(h.mount, { withFileTypes: true }).filter((e) => e.isDirectory() && e.name.startsWith(NODE_CGROUP_PREFIX)).map((e) => e.name);
  } catch {
    return [];
  }
}

/** Removes the qdiscs and the node's net_prio directory; what is left behind (in use, or refused). */
export async function releaseNetwork(m: NetworkMechanism): Promise<string[]> {
  if (m.kind !== 'tc-htb') return [];
  const left: string[] = [];
  for (const i of m.interfaces) {
    try {
      await tc(deleteQdiscArgs(i.dev, m.handle));
    } catch (e) {
      // The kernel refuses a handle that is not the root's: ours is gone already (or the interface is).
      const still = await tc(['qdisc', 'show', 'dev', i.dev, 'root']).then((t) => parseRootQdiscs(t, i.dev)[0]?.handle === m.handle, () => false);
      if (still) left.push(`tc qdisc ${m.handle.toString(16)}: on ${i.dev} (${message(e)})`);
    }
  }
  if (!(await removeNodeCgroup(m.cgroup))) left.push(m.cgroup.dir);
  return left;
}

/**
 * What a killed agent with this node id left of network shaping: its qdiscs on any interface and
 * its net_prio directory (where that hierarchy is mounted). What is still in use is returned.
 */
export async function removeNetworkLeftovers(node_id: string): Promise<string[]> {
  const name = NODE_CGROUP_PREFIX + cgroupName(node_id);
  await removeOwnQdiscs(qdiscHandle(name));
  const mount = readCgroupMounts().v1.net_prio;
  if (!mount || !existsSync(path.join(mount, name))) return [];
  const node: NodeCgroup = { version: 1, mount, dir: path.join(mount, name) };
  return (await removeNodeCgroup(node)) ? [] : [node.dir];
}

/**
 * One task's shaping: an HTB class at its reservation on every shaped interface (the same minor
 * on each) and a net_prio cgroup whose ifpriomap sends its packets there.
 */
export class TaskShaping {
  private released = false;

  private constructor(readonly mechanism: TcHtb, readonly cgroup: TaskCgroup, readonly minor: number, readonly mbps: number) {}

  /** Synchronous (confineTask runs before the first spawn); undoes what it made before throwing. */
  static create(m: TcHtb, task_id: string, mbps: number): TaskShaping {
    const cgroup = TaskCgroup.create(m.cgroup, task_id);
    let minor: number | undefined;
    try {
      minor = claimClass(m, task_id, mbps);
      const prio = classPriority(m.handle, minor);
      for (const i of m.interfaces) cgroup.write('net_prio.ifpriomap', ifpriomapLine(i.dev, prio));
      return new TaskShaping(m, cgroup, minor, mbps);
    } catch (e) {
      if (minor !== undefined) for (const i of m.interfaces) try { tcSync(deleteClassArgs(i.dev, m.handle, minor)); } catch { /* not made */ }
      void cgroup.remove(); // empty, so its rmdir happens before this returns
      throw e;
    }
  }

  /** `7a3c:1f` */
  get class_id(): string {
    return classId(this.mechanism.handle, this.minor);
  }

  get interfaces(): string[] {
    return this.mechanism.interfaces.map((i) => i.dev);
  }

  /** Removes the cgroup (once its processes are gone) and the classes; what could not be removed. Safe to call more than once. */
  async release(): Promise<string[]> {
    if (this.released) return [];
    this.released = true;
    const left: string[] = [];
    if (!(await this.cgroup.remove())) left.push(`${this.cgroup.dir} could not be removed (still in use); the agent removes it at its next start`);
    for (const dev of this.interfaces) {
      try {
        await tc(deleteClassArgs(dev, this.mechanism.handle, this.minor));
      } catch (e) {
        // Gone with its qdisc (the agent stopped) or its interface: nothing to remove.
        const still = await tc(['class', 'show', 'dev', dev]).then((t) => t.includes(`class htb ${this.class_id} `), () => false);
        if (still) left.push(`tc class ${this.class_id} on ${dev} could not be removed (${message(e)})`);
      }
    }
    return left;
  }
}

/**
 * Claims a class id for the task: the first candidate whose `tc class add` on the first
 * interface succeeds is its own (see classMinor); the further interfaces get the same id with
 * `replace`, which also takes over a class a failed release left there.
 */
function claimClass(m: TcHtb, task_id: string, mbps: number): number {
  const [first, ...rest] = m.interfaces;
  if (!first) throw new Error('no interface is shaped');
  for (let attempt = 0; attempt < CLASS_ATTEMPTS; attempt++) {
    const minor = classMinor(task_id, attempt);
    try {
      tcSync(taskClassArgs('add', first.dev, m.handle, minor, mbps));
    } catch (e) {
      if (e instanceof TcCommandError && e.exists) continue;
      throw e;
    }
    try {
      for (const i of rest) tcSync(taskClassArgs('replace', i.dev, m.handle, minor, mbps));
    } catch (e) {
      for (const i of m.interfaces) try { tcSync(deleteClassArgs(i.dev, m.handle, minor)); } catch { /* not made */ }
      throw e;
    }
    return minor;
  }
  throw new Error(`no free tc class id under ${m.handle.toString(16)}: on ${first.dev} after ${CLASS_ATTEMPTS} tries`);
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}
