/**
 * What this node can really enforce, found by trying it at agent start: a test cgroup is created,
 * given a limit, has a process put into it and is removed again (for network shaping also a test
 * tc class, see network.ts). Nothing is assumed from the kernel version or from being root. Stale
 * cgroups and qdiscs of a crashed agent with the same node id are removed on the way.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  TaskCgroup, canAdmit, cpusOf, ensureNodeCgroup, nodeCgroupDir, readCgroupMounts, removeNodeCgroup, removeStaleTaskCgroups, setCpus, setMemoryLimit, v2Controllers,
  type Controller,
} from './cgroup.js';
import { diskOf } from './devices.js';
import { detectNetwork, releaseNetwork, removeNetworkLeftovers } from './network.js';
import { DATA_LIMIT_PER_RESERVED, MEMORY_HEADROOM_BYTES, formatMib, hierarchyOf, throttleLine, type BlockDevice } from './limits.js';
import {
  RESERVED_RESOURCES, type BandwidthMechanism, type CgroupHierarchy, type Enforcement, type EnforcementOptions, type EnforcementPlan,
  type CpuMechanism, type MemoryMechanism, type NetworkMechanism, type NodeCgroup, type ReservedResource,
} from './types.js';
import { formatMbit } from './shaping.js';
import type { Log } from '../../shared/log.js';

const run = promisify(execFile);

export interface DetectOptions extends EnforcementOptions {
  node_id: string;
  /** GPUs the node has (nvidia-smi); with none there is nothing to restrict. */
  gpu_count: number;
  /** Where outputs are written: its disk is the one the bandwidth probe throttles. */
  output_dir: string;
  log?: Log;
}

/** Probes each resource's strongest mechanism and falls back; never throws for a missing one. */
export async function detectEnforcement(o: DetectOptions): Promise<EnforcementPlan> {
  const off = new Set<ReservedResource>(o.accounted_only ?? []);
  const disabled = (r: ReservedResource) => ({ kind: 'none' as const, why: `turned off on this agent (--accounted-only ${r})` });
  const mounts = readCgroupMounts();
  const v2 = v2Controllers(mounts.v2);
  const log = o.log ?? (() => undefined);
  const memoryH = hierarchyOf(mounts, 'memory', v2), blkioH = hierarchyOf(mounts, 'blkio', v2), cpusetH = hierarchyOf(mounts, 'cpuset', v2);
  const plan: EnforcementPlan = {
    node_id: o.node_id,
    cpu: off.has('cpu') ? disabled('cpu') : await detectCpu(cpusetH, o.node_id, log),
    memory: off.has('memory') ? disabled('memory') : await detectMemory(memoryH, o.node_id, log),
    gpu: off.has('gpu') ? disabled('gpu') : o.gpu_count > 0 ? { kind: 'visible-devices' } : { kind: 'none', why: 'no GPU on this node (nvidia-smi lists none)' },
    bandwidth: off.has('bandwidth') ? disabled('bandwidth') : await detectBandwidth(blkioH, o.node_id, o.output_dir, log),
    network: off.has('bandwidth') ? disabled('bandwidth') : await detectNetwork({ node_id: o.node_id, interfaces: o.shape_interfaces, log }),
  };
  // A node directory made for a probe that failed is of no use (on v2 memory, io and cpuset share one).
  const used = new Set([plan.memory, plan.bandwidth, plan.cpu].flatMap((m) => (m.kind === 'cgroup' || m.kind === 'cpuset' ? [m.cgroup.dir] : [])));
  for (const [h, r] of [[memoryH, 'memory'], [blkioH, 'bandwidth'], [cpusetH, 'cpu']] as const) {
    if (h && !off.has(r) && !used.has(nodeCgroupDir(h, o.node_id))) await removeNodeCgroup({ ...h, dir: nodeCgroupDir(h, o.node_id) });
  }
  return plan;
}

async function detectCpu(h: CgroupHierarchy | undefined, node_id: string, log: Log): Promise<CpuMechanism> {
  if (!h) return { kind: 'affinity', why_not_cpuset: 'no cpuset cgroup controller is mounted (neither cgroup v1 cpuset nor cgroup2 offering cpuset)' };
  const tried = await probe(h, node_id, 'cpuset', (c) => setCpus(c, cpusOf(c.node.dir).slice(0, 1)), log);
  return 'node' in tried ? { kind: 'cpuset', cgroup: tried.node } : { kind: 'affinity', why_not_cpuset: tried.why };
}

async function detectMemory(h: CgroupHierarchy | undefined, node_id: string, log: Log): Promise<MemoryMechanism> {
  const tried = h
    ? await probe(h, node_id, 'memory', (c) => setMemoryLimit(c, 256 * 2 ** 20), log)
    : { why: 'no memory cgroup controller is mounted (neither cgroup v1 memory nor cgroup2 offering memory)' };
  if ('node' in tried) return { kind: 'cgroup', cgroup: tried.node };
  try {
    await run('prlimit', ['--data=1073741824', '--', 'true'], { timeout: 5000 });
    return { kind: 'rlimit', why_not_cgroup: tried.why };
  } catch (e) {
    return { kind: 'none', why: `${tried.why}; prlimit did not run either (${(e as Error).message.split('\n')[0]})` };
  }
}

async function detectBandwidth(h: CgroupHierarchy | undefined, node_id: string, output_dir: string, log: Log): Promise<BandwidthMechanism> {
  if (!h) return { kind: 'none', why: 'no I/O cgroup controller is mounted (neither cgroup v1 blkio nor cgroup2 offering io)' };
  const out = diskOf(output_dir);
  if ('why' in out) return { kind: 'none', why: `outputs are written where no disk can be throttled: ${out.why}` };
  const tried = await probe(h, node_id, 'blkio', (c) => throttle(c, out.disk), log);
  return 'node' in tried ? { kind: 'cgroup', cgroup: tried.node } : { kind: 'none', why: tried.why };
}

/** Writes a generous throttle for `disk` and reads it back (a disk the throttle does not take is refused with ENODEV). */
function throttle(c: TaskCgroup, disk: BlockDevice): void {
  const bps = 1e9;
  const file = c.version === 1 ? 'blkio.throttle.read_bps_device' : 'io.max';
  c.write(file, throttleLine(c.version, disk, bps));
  if (!c.read(file).includes(`${disk.major}:${disk.minor} `)) throw new Error(`${file} did not keep the rule for ${disk.major}:${disk.minor}`);
}

/**
 * Sets up the node's directory in the hierarchy (removing stale task cgroups), then makes a test
 * task cgroup, configures it as an encode's would be, and checks a process lands in it.
 */
async function probe(h: CgroupHierarchy, node_id: string, controller: Controller, configure: (c: TaskCgroup) => void, log: Log): Promise<{ node: NodeCgroup } | { why: string }> {
  const what = `cgroup v${h.version} ${h.version === 2 && controller === 'blkio' ? 'io' : controller}`;
  let node: NodeCgroup;
  try {
    node = ensureNodeCgroup(h, node_id, controller);
  } catch (e) {
    return { why: `${what}: cannot create ${nodeCgroupDir(h, node_id)} (${(e as Error).message})` };
  }
  const stale = await removeStaleTaskCgroups(node);
  if (stale.removed.length) log(`removed ${stale.removed.length} stale task cgroup(s) in ${node.dir} left by an earlier run of this agent`);
  if (stale.occupied.length) log(`task cgroups still in use in ${node.dir} (another agent with node id ${node_id}?): ${stale.occupied.join(', ')}`, 'warn');
  let c: TaskCgroup | undefined;
  let why: string | undefined;
  try {
    c = TaskCgroup.create(node, `probe-${process.pid}`);
    configure(c);
    why = await canAdmit(c, controller);
  } catch (e) {
    why = (e as Error).message;
  } finally {
    await c?.remove();
  }
  return why === undefined ? { node } : { why: `${what}: ${why}` };
}

/** The node's cgroup directories and qdiscs, removed when the agent stops; returns what is still in use. */
export async function releaseEnforcement(plan: EnforcementPlan): Promise<string[]> {
  const left: string[] = [];
  const dirs = new Set<string>();
  for (const m of [plan.memory, plan.bandwidth, plan.cpu]) {
    if ((m.kind !== 'cgroup' && m.kind !== 'cpuset') || dirs.has(m.cgroup.dir)) continue;
    dirs.add(m.cgroup.dir);
    if (!(await removeNodeCgroup(m.cgroup))) left.push(m.cgroup.dir);
  }
  left.push(...(await releaseNetwork(plan.network)));
  return left;
}

/**
 * What an agent with this node id left behind when it could not release it (SIGKILL, a crash):
 * its cgroup directories in every hierarchy and its qdiscs. The next start of that agent removes
 * them too; this is for when it will not start again (tests, decommissioning). Returns what is
 * still in use.
 */
export async function removeNodeLeftovers(node_id: string): Promise<string[]> {
  const mounts = readCgroupMounts();
  const v2 = v2Controllers(mounts.v2);
  const dirs = new Set<string>();
  const left: string[] = [];
  for (const controller of ['memory', 'blkio', 'cpuset'] as const) {
    const h = hierarchyOf(mounts, controller, v2);
    if (!h || dirs.has(nodeCgroupDir(h, node_id))) continue;
    dirs.add(nodeCgroupDir(h, node_id));
    if (!(await removeNodeCgroup({ ...h, dir: nodeCgroupDir(h, node_id) }))) left.push(nodeCgroupDir(h, node_id));
  }
  left.push(...(await removeNetworkLeftovers(node_id)));
  return left;
}

/** The plan as the agent registers it (NodeCapacity.enforcement) and `prescient nodes` shows it. */
export function describeEnforcement(plan: EnforcementPlan): Enforcement[] {
  const detail: Record<ReservedResource, { enforced: boolean; detail: string }> = {
    cpu: plan.cpu.kind === 'cpuset'
      ? { enforced: true, detail: `a cgroup v${plan.cpu.cgroup.version} cpuset per task under ${plan.cpu.cgroup.dir} holds every thread of ffmpeg to the reserved cores, whatever affinity an encoder sets itself; taskset as well, and its threads sized to them` }
      : plan.cpu.kind === 'affinity'
        ? { enforced: true, detail: `ffmpeg started with its affinity set to the reserved cores (taskset), its threads sized to them; an encoder that resets its threads' affinity (libx265) can leave them: no cpuset (${plan.cpu.why_not_cpuset ?? 'not probed'})` }
        : { enforced: false, detail: plan.cpu.why },
    memory: describeMemory(plan.memory),
    gpu: plan.gpu.kind === 'visible-devices'
      ? { enforced: true, detail: 'ffmpeg sees only the reserved GPUs (CUDA_VISIBLE_DEVICES in PCI bus order; -gpu counts within them)' }
      : { enforced: false, detail: plan.gpu.why },
    bandwidth: describeBandwidth(plan.bandwidth, plan.network),
  };
  return RESERVED_RESOURCES.map((resource) => ({ resource, mode: detail[resource].enforced ? 'enforced' : 'accounted-only', detail: detail[resource].detail }));
}

function describeMemory(m: MemoryMechanism): { enforced: boolean; detail: string } {
  switch (m.kind) {
    case 'cgroup': return {
      enforced: true,
      detail: `a cgroup v${m.cgroup.version} per task under ${m.cgroup.dir}: ${m.cgroup.version === 1 ? 'memory.limit_in_bytes and memsw' : 'memory.max, no swap'} at the reservation + ${formatMib(MEMORY_HEADROOM_BYTES)}; the OOM killer stops an encode above it`,
    };
    case 'rlimit': return {
      enforced: true,
      detail: `RLIMIT_DATA (prlimit --data) at ${DATA_LIMIT_PER_RESERVED}× the reservation: a backstop on allocated, not resident, memory (${m.why_not_cgroup})`,
    };
    case 'none': return { enforced: false, detail: m.why };
  }
}

/** Bandwidth is enforced where the disk throttle or the network shaping holds; the detail says what each does. */
function describeBandwidth(b: BandwidthMechanism, n: NetworkMechanism): { enforced: boolean; detail: string } {
  const disk = b.kind === 'none' ? `disk: not throttled (${b.why})` : `disk: a cgroup v${b.cgroup.version} per task under ${b.cgroup.dir} throttles the disks of its input and output at the reservation, ${b.cgroup.version === 1
    ? 'blkio.throttle read/write_bps_device: disk reads and writes made by ffmpeg itself (v1 cannot charge buffered writeback to a cgroup, so buffered output is throttled only when it is synced)'
    : 'io.max rbps/wbps: disk reads and writes, writeback included'}`;
  const network = n.kind === 'none' ? `network: not shaped (${n.why})` : describeNetwork(n);
  // Both turned off by --accounted-only bandwidth: one reason is enough.
  if (b.kind === 'none' && n.kind === 'none' && b.why === n.why) return { enforced: false, detail: b.why };
  return { enforced: b.kind !== 'none' || n.kind !== 'none', detail: `${disk}; ${network}` };
}

function describeNetwork(n: Extract<NetworkMechanism, { kind: 'tc-htb' }>): string {
  const devs = n.interfaces.map((i) => i.dev).join(', ');
  const defaults = [...new Set(n.interfaces.map((i) => formatMbit(i.default_mbit)))].join(' / ');
  return `network: egress shaped on ${devs} by tc, an HTB class per task at the reservation (root qdisc ${n.handle.toString(16)}:, other traffic in a default class at ${defaults}),`
    + ` its processes in a cgroup v1 net_prio cgroup under ${n.cgroup.dir} that steers their packets there; ingress (downloads) accounted only: received packets cannot be told apart by cgroup`
    + `${n.unshaped.length ? `; not shaped: ${n.unshaped.join('; ')}` : ''}`;
}
