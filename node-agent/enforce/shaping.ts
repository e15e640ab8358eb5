/**
 * Pure parts of network egress shaping: qdisc and class ids, the `tc` argument lists, and the
 * parsers for what `tc`, `ip` and /proc say. No I/O (network.ts runs them).
 *
 *   dev ── root qdisc  htb <H>: default 1                     H: one per node id (qdiscHandle)
 *            ├── class <H>:1      rate ≥ the link's           traffic of no task, never held back
 *            └── class <H>:<m>    rate = ceil = reservation   one per running task (classMinor)
 *
 * A task's packets reach its class without a tc filter: its processes sit in a net_prio cgroup
 * whose `net_prio.ifpriomap` sets skb->priority to `<H>:<m>` on each shaped interface, and HTB
 * puts a packet whose priority names one of its leaf classes straight into it (htb_classify).
 */

/** The default class: whatever no task's cgroup tagged. */
export const DEFAULT_CLASS_MINOR = 1;
/** Task classes take minors in [2, 0xfffe]; 0 means "no class" to tc and 0xffff is reserved. */
const FIRST_TASK_MINOR = 2;
const TASK_MINORS = 0xfffe - FIRST_TASK_MINOR + 1;
/** Explicit, so the kernel does not derive one from rate/r2q and warn that it is too small or big. */
const QUANTUM_BYTES = 60_000;
/** The default class never limits: at least this, or the link's own speed where it reports more. */
export const UNLIMITED_MBIT = 100_000;

/** 32-bit FNV-1a: stable across processes and Node versions, which a class id derived from a name needs. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const ch of Buffer.from(s, 'utf8')) {
    h ^= ch;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * The root qdisc's major handle for a node (its cgroup directory's name, `prescient-<id>`), in
 * [0x1000, 0xefff]: clear of the small numbers people type by hand (1:, 10:) and of ffff:
 * (ingress). Derived rather than stored, so the next start of a crashed agent with the same node
 * id recognises its own qdisc and another agent's is left alone.
 */
export function qdiscHandle(nodeDirName: string): number {
  return 0x1000 + (fnv1a(nodeDirName) % (0xefff - 0x1000 + 1));
}

/**
 * The `attempt`-th candidate class minor for a task: its hash, then linear probing. Whoever's
 * `tc class add` succeeds owns the id (the kernel answers EEXIST to the rest under RTNL), so
 * worker threads and agents need no lock of their own to allocate.
 */
export function classMinor(task_id: string, attempt = 0): number {
  return FIRST_TASK_MINOR + ((fnv1a(task_id) + attempt) % TASK_MINORS);
}

/** A class id as tc writes it: `7a3c:1f`. */
export function classId(handle: number, minor: number): string {
  return `${handle.toString(16)}:${minor.toString(16)}`;
}

/** The skb->priority (TC_H_MAKE) that puts a packet into class `<handle>:<minor>`. */
export function classPriority(handle: number, minor: number): number {
  return ((handle << 16) | minor) >>> 0;
}

/** Mbit/s (10^6 bit/s) as tc's rate in bit/s, never 0 (tc refuses it). */
export function tcRate(mbps: number): string {
  return `${Math.max(8, Math.round(mbps * 1e6))}bit`;
}

export function installQdiscArgs(dev: string, handle: number): string[] {
  return ['qdisc', 'add', 'dev', dev, 'root', 'handle', `${handle.toString(16)}:`, 'htb', 'default', DEFAULT_CLASS_MINOR.toString(16)];
}

export function deleteQdiscArgs(dev: string, handle: number): string[] {
  return ['qdisc', 'del', 'dev', dev, 'root', 'handle', `${handle.toString(16)}:`];
}

/**
 * The default class at `mbit` with a burst of 1 ms at that rate: tc's own default burst (rate/HZ
 * + MTU) rounds to 0 at tens of Gbit/s.
 */
export function defaultClassArgs(dev: string, handle: number, mbit: number): string[] {
  const rate = tcRate(mbit);
  const burst = String(Math.max(64 * 1024, Math.ceil((mbit * 1e6) / 8 / 1000)));
  return ['class', 'add', 'dev', dev, 'parent', `${handle.toString(16)}:`, 'classid', classId(handle, DEFAULT_CLASS_MINOR), 'htb',
    'rate', rate, 'ceil', rate, 'burst', burst, 'cburst', burst, 'quantum', String(QUANTUM_BYTES)];
}

/**
 * A task's class: rate = ceil, so it neither borrows nor lends. `add` claims the id (EEXIST if
 * taken); `replace` is for the further interfaces of a task whose id the first one granted.
 */
export function taskClassArgs(verb: 'add' | 'replace', dev: string, handle: number, minor: number, mbps: number): string[] {
  const rate = tcRate(mbps);
  return ['class', verb, 'dev', dev, 'parent', `${handle.toString(16)}:`, 'classid', classId(handle, minor), 'htb',
    'rate', rate, 'ceil', rate, 'quantum', String(QUANTUM_BYTES)];
}

export function deleteClassArgs(dev: string, handle: number, minor: number): string[] {
  return ['class', 'del', 'dev', dev, 'classid', classId(handle, minor)];
}

/** One line for net_prio.ifpriomap: the interface and the priority its packets get. */
export function ifpriomapLine(dev: string, priority: number): string {
  return `${dev} ${priority}`;
}

/** Parses net_prio.ifpriomap (`dev prio` per line). */
export function parseIfpriomap(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [dev, prio] = line.trim().split(/\s+/);
    if (dev && prio !== undefined && /^\d+$/.test(prio)) out.set(dev, Number(prio));
  }
  return out;
}

/** A root qdisc as `tc qdisc show` lists it; handle 0 is the one the kernel attached by itself. */
export interface RootQdisc {
  dev: string;
  kind: string;
  handle: number;
}

/** Root qdiscs in `tc qdisc show [dev X]` output (`qdisc htb 7a3c: dev eth0 root refcnt 2 …`; with `dev X` the `dev` word is absent). */
export function parseRootQdiscs(text: string, dev?: string): RootQdisc[] {
  const out: RootQdisc[] = [];
  for (const line of text.split('\n')) {
    const m = /^qdisc (\S+) ([0-9a-f]+): (?:dev (\S+) )?root\b/.exec(line.trim());
    const on = m?.[3] ?? dev;
    if (m && on) out.push({ dev: on, kind: m[1], handle: parseInt(m[2], 16) });
  }
  return out;
}

/** Interfaces of the default routes in `ip route show default` (and `ip -6 …`) output, in order, once each. */
export function parseDefaultRouteDevs(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /\bdev (\S+)/.exec(line);
    if (line.startsWith('default') && m && !out.includes(m[1])) out.push(m[1]);
  }
  return out;
}

/** An interface name the kernel could have (IFNAMSIZ 16 with the NUL; no slash, colon or space) that tc cannot take for an option (no leading `-`). */
export function validInterfaceName(dev: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,14}$/.test(dev);
}

/** Whether /proc/<pid>/status's CapEff includes CAP_NET_ADMIN (bit 12), which installing a qdisc needs. */
export function hasNetAdmin(procStatus: string): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(procStatus);
  return m !== null && (BigInt(`0x${m[1]}`) & (1n << 12n)) !== 0n;
}

/** The filesystem type mounted at `point`, from /proc/self/mountinfo. */
export function mountFsType(mountinfo: string, point: string): string | undefined {
  let found: string | undefined;
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    if (line.slice(0, sep).split(' ')[4] === point) found = line.slice(sep + 3).split(' ')[0];
  }
  return found; // the last mount at a point is the one seen
}

/** A link's speed (/sys/class/net/<dev>/speed, Mbit/s; -1 or unreadable for most virtual links) as the default class's rate. */
export function defaultClassMbit(speed: string | undefined): number {
  const n = Number(speed?.trim());
  return Number.isFinite(n) && n > UNLIMITED_MBIT ? n : UNLIMITED_MBIT;
}

/** Mbit/s for messages: `8`, `0.5`, `12.3`. */
export function formatMbit(mbps: number): string {
  return `${Number(mbps.toPrecision(3))} Mbit/s`;
}
