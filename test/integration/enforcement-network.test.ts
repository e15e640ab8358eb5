/**
 * Network egress shaping on this machine, for real: a veth pair into a fresh network namespace,
 * the agent's detection shaping the root side, a sender started through a task's confinement and
 * a receiver in the namespace measuring what arrives. The root namespace's own interfaces (lo,
 * eth0: the test stacks of other files run on them) are never touched.
 *
 * What to expect is decided by this file's own look at the host (net_prio in /proc/cgroups, a
 * v1 layout at /sys/fs/cgroup, CAP_NET_ADMIN, tc), not by the code under test: where shaping
 * cannot work, the tests assert that detection says so and why.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  confineTask, describeEnforcement, detectEnforcement, qdiscHandle, releaseEnforcement, removeNodeLeftovers, type Confinement, type EnforcementPlan,
} from '../../node-agent/enforce/index.js';
import { classMinor } from '../../node-agent/enforce/shaping.js';

const SINK = fileURLToPath(new URL('../helpers/net-sink.js', import.meta.url));
const SOURCE = fileURLToPath(new URL('../helpers/net-source.js', import.meta.url));
const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-netshape-test-'));
const id = process.pid % 100_000;
const NS = `pnt${id}`;
const VR = `pvr${id}`, VN = `pvn${id}`; // the shaped root side and its peer in NS
const VA = `pva${id}`, VB = `pvb${id}`; // a pair left alone (accounted-only test)
const subnet = `10.213.${id % 250}`;
const HERE = `${subnet}.1`, THERE = `${subnet}.2`;
const NODE = `nettest-${process.pid}`;
const OTHER = `nettest-other-${process.pid}`;
const OFF = `nettest-off-${process.pid}`;
const MBPS = 8;

// ── the test's own look at the host ──────────────────────────────────────────────────────

const netPrio = /^net_prio\s+\d+\s+\d+\s+1\s*$/m.test(readFileSync('/proc/cgroups', 'utf8'));
const v1Layout = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' - ')).some(([mount, fs]) => mount?.split(' ')[4] === '/sys/fs/cgroup' && fs?.startsWith('tmpfs '));
const netAdmin = (BigInt(`0x${/^CapEff:\s*(\w+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`) & (1n << 12n)) !== 0n;
const tcRuns = spawnSync('tc', ['-V']).status === 0;
const canShape = netPrio && v1Layout && netAdmin && tcRuns;

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
const tcOut = (...args: string[]) => execFileSync('tc', args, { encoding: 'utf8' });
const rootQdisc = (dev: string) => tcOut('qdisc', 'show', 'dev', dev, 'root').trim();
const netPrioMount = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' - ')).find((p) => p[1]?.startsWith('cgroup ') && p[1].split(' ')[2]?.split(',').includes('net_prio'))?.[0].split(' ')[4];
const nodeDir = (node: string) => { const m = netPrioMount(); return m && path.join(m, `prescient-${node}`); };
const hex = (n: number) => n.toString(16);

let plan: EnforcementPlan;
const logs: string[] = [];

function reservation(task_id: string, bandwidth_mbps = MBPS) {
  return { task_id, core_ids: [], gpu_ids: [], memory_gb: 0, bandwidth_mbps, paths: [] };
}

/** The class id a confinement's applied() names (`tc class 7a3c:1f`). */
function classOf(c: Confinement): string {
  const m = /tc class ([0-9a-f]+:[0-9a-f]+)/.exec(c.applied().find((e) => e.resource === 'bandwidth')!.detail);
  assert.ok(m, 'the applied bandwidth names its tc class');
  return m![1];
}

/**
 * Sends `bytes` to a sink in the namespace, the sender started by `start` (through a
 * confinement or not), and returns the throughput the sink saw from its first byte to its last.
 */
async function transfer(bytes: number, start: (s: () => ChildProcess) => ChildProcess, port: number): Promise<{ mbps: number; bytes: number; pid: number; cgroup: string }> {
  const sink = spawn('ip', ['netns', 'exec', NS, process.execPath, SINK, THERE, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  sink.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const sinkDone = once(sink, 'close');
  try {
    for (const until = Date.now() + 10_000; !out.includes('listening');) {
      if (Date.now() > until || sink.exitCode !== null) throw new Error(`the sink in ${NS} did not start listening: ${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const sender = start(() => spawn(process.execPath, [SOURCE, THERE, String(port), String(bytes)], { stdio: ['ignore', 'ignore', 'inherit'] }));
    const sent = once(sender, 'close');
    let cgroup = '';
    try { cgroup = readFileSync(`/proc/${sender.pid}/cgroup`, 'utf8'); } catch { /* already done */ }
    const [code] = await sent;
    assert.is(code, 0, 'the sender finished');
    await sinkDone;
    const r = JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!) as { bytes: number; seconds: number };
    return { mbps: (r.bytes * 8) / r.seconds / 1e6, bytes: r.bytes, pid: sender.pid!, cgroup };
  } finally {
    if (sink.exitCode === null) sink.kill('SIGKILL');
  }
}

test.before(async () => {
  try { ip('netns', 'del', NS); } catch { /* none left */ }
  ip('netns', 'add', NS);
  ip('link', 'add', VR, 'type', 'veth', 'peer', 'name', VN, 'netns', NS);
  ip('addr', 'add', `${HERE}/30`, 'dev', VR);
  ip('link', 'set', VR, 'up');
  ip('-n', NS, 'addr', 'add', `${THERE}/30`, 'dev', VN);
  ip('-n', NS, 'link', 'set', VN, 'up');
  ip('-n', NS, 'link', 'set', 'lo', 'up');
  ip('link', 'add', VA, 'type', 'veth', 'peer', 'name', VB);
  ip('link', 'set', VA, 'up'); // up, so it has the kernel's default root qdisc to compare with
  ip('link', 'set', VB, 'up');
  plan = await detectEnforcement({ node_id: NODE, gpu_count: 0, output_dir: dir, shape_interfaces: [VR], log: (m) => logs.push(m) });
});

test.after(async () => {
  if (plan) await releaseEnforcement(plan);
  for (const node of [NODE, OTHER, OFF]) await removeNodeLeftovers(node);
  for (const args of [['netns', 'del', NS], ['link', 'del', VR], ['link', 'del', VA]]) try { ip(...args); } catch { /* gone with the namespace */ }
  rmSync(dir, { recursive: true, force: true });
});

// ── detection ────────────────────────────────────────────────────────────────────────────

test('egress shaping is detected on the configured interface exactly where the host allows it, else accounted-only with the reason', () => {
  const bandwidth = describeEnforcement(plan).find((e) => e.resource === 'bandwidth')!;
  if (!canShape) {
    assert.is(plan.network.kind, 'none');
    return assert.match(bandwidth.detail, 'network: not shaped (');
  }
  assert.is(plan.network.kind, 'tc-htb', JSON.stringify(plan.network));
  if (plan.network.kind !== 'tc-htb') return;
  assert.equal(plan.network.interfaces.map((i) => i.dev), [VR]);
  assert.is(plan.network.handle, qdiscHandle(`prescient-${NODE}`));
  assert.match(rootQdisc(VR), `qdisc htb ${hex(plan.network.handle)}: root`);
  assert.match(tcOut('class', 'show', 'dev', VR), `class htb ${hex(plan.network.handle)}:1 root`);
  assert.is(bandwidth.mode, 'enforced');
  assert.match(bandwidth.detail, `network: egress shaped on ${VR} by tc`);
  assert.match(bandwidth.detail, 'ingress (downloads) accounted only');
  assert.ok(existsSync(nodeDir(NODE)!), 'the node\'s net_prio directory is made at detection');
});

// ── shaping ──────────────────────────────────────────────────────────────────────────────

test(`a sender confined to ${MBPS} Mbit/s delivers close to that, while an unconfined sender on the same path gets far more`, async () => {
  if (!canShape) return;
  const c = confineTask(plan, reservation('shaped'));
  let shaped: Awaited<ReturnType<typeof transfer>>;
  try {
    const bandwidth = c.applied().find((e) => e.resource === 'bandwidth')!;
    assert.is(bandwidth.mode, 'enforced');
    assert.match(bandwidth.detail, `egress shaped on ${VR} at 8 Mbit/s (tc class `);
    assert.match(bandwidth.detail, 'ingress accounted only');
    shaped = await transfer(3_000_000, (start) => c.spawn(start), 5201);
    assert.match(shaped.cgroup, `net_prio:/prescient-${NODE}/task-shaped`);
    const stats = tcOut('-s', 'class', 'show', 'dev', VR);
    const sent = new RegExp(`class htb ${classOf(c)} [^\\n]*\\n\\s*Sent (\\d+) bytes`).exec(stats);
    assert.ok(sent && Number(sent[1]) >= 3_000_000, `the task's class carried the payload:\n${stats}`);
    assert.equal(c.shortfalls(), []);
  } finally {
    await c.release();
  }
  const free = await transfer(50_000_000, (start) => start(), 5202);
  console.log(`  shaped at ${MBPS} Mbit/s: ${shaped.mbps.toFixed(2)} Mbit/s (${shaped.bytes} B); unconfined: ${free.mbps.toFixed(0)} Mbit/s (${free.bytes} B)`);
  assert.ok(shaped.mbps >= MBPS * 0.75 && shaped.mbps <= MBPS * 1.25, `shaped sender got ${shaped.mbps.toFixed(2)} Mbit/s, not ${MBPS} ± 25 %`);
  assert.ok(free.mbps > MBPS * 10, `unconfined sender got only ${free.mbps.toFixed(1)} Mbit/s`);
});

test('release removes the task\'s class and its net_prio cgroup, and a second release does nothing', async () => {
  if (!canShape) return;
  const c = confineTask(plan, reservation('released'));
  const cls = classOf(c);
  const cg = path.join(nodeDir(NODE)!, 'task-released');
  assert.ok(existsSync(cg));
  const [major, minor] = cls.split(':').map((x) => parseInt(x, 16));
  assert.match(readFileSync(path.join(cg, 'net_prio.ifpriomap'), 'utf8'), `${VR} ${((major << 16) | minor) >>> 0}\n`, 'its packets on the interface get the class as priority');
  assert.match(tcOut('class', 'show', 'dev', VR), `class htb ${cls} `);
  await c.release();
  await c.release();
  assert.not.ok(tcOut('class', 'show', 'dev', VR).includes(`class htb ${cls} `), 'class removed');
  assert.not.ok(existsSync(cg), 'cgroup removed');
  assert.equal(c.shortfalls(), []);
});

test('tasks running at once get different classes even when their ids hash to the same one', async () => {
  if (!canShape) return;
  // Two task ids whose first candidate class is the same (a birthday search over 65533 minors).
  const byMinor = new Map<number, string>();
  let pair: [string, string] | undefined;
  for (let i = 0; !pair; i++) {
    const t = `clash-${i}`, m = classMinor(t);
    const seen = byMinor.get(m);
    if (seen) pair = [seen, t];
    else byMinor.set(m, t);
  }
  const [a, b] = pair.map((t) => confineTask(plan, reservation(t, 4)));
  try {
    assert.is.not(classOf(a), classOf(b));
    assert.is(classOf(a), `${hex((plan.network as { handle: number }).handle)}:${hex(classMinor(pair[0]))}`);
    assert.is(classOf(b), `${hex((plan.network as { handle: number }).handle)}:${hex(classMinor(pair[1], 1))}`, 'the second takes the next free id');
  } finally {
    await a.release();
    await b.release();
  }
});

test('a second node id finds the interface taken by the first and leaves it alone, saying so', async () => {
  if (!canShape) return;
  const before = rootQdisc(VR);
  const other = await detectEnforcement({ node_id: OTHER, gpu_count: 0, output_dir: dir, shape_interfaces: [VR] });
  try {
    assert.is(other.network.kind, 'none');
    assert.match(describeEnforcement(other).find((e) => e.resource === 'bandwidth')!.detail,
      `${VR} already has a root qdisc (htb ${hex((plan.network as { handle: number }).handle)}:) that this agent did not install`);
    assert.is(rootQdisc(VR), before);
  } finally {
    await releaseEnforcement(other);
  }
  assert.is(rootQdisc(VR), before, 'the first node\'s qdisc is still there');
  assert.not.ok(existsSync(nodeDir(OTHER)!), 'no net_prio directory kept for a node that shapes nothing');
});

test('a crashed agent\'s stale class, cgroup and qdisc are removed when the same node id starts again', async () => {
  if (!canShape) return;
  const c = confineTask(plan, reservation('orphan'));
  const cls = classOf(c);
  // The agent "crashes": nothing is released. Its next start detects again.
  const seen: string[] = [];
  const again = await detectEnforcement({ node_id: NODE, gpu_count: 0, output_dir: dir, shape_interfaces: [VR], log: (m) => seen.push(m) });
  plan = again;
  assert.is(again.network.kind, 'tc-htb', JSON.stringify(again.network));
  assert.not.ok(existsSync(path.join(nodeDir(NODE)!, 'task-orphan')), 'stale cgroup removed');
  assert.not.ok(tcOut('class', 'show', 'dev', VR).includes(`class htb ${cls} `), 'stale class removed');
  assert.ok(seen.some((m) => m.includes('removed 1 stale task cgroup')), seen.join('\n'));
  assert.ok(seen.some((m) => m.includes(`removed qdisc ${hex(qdiscHandle(`prescient-${NODE}`))}: on ${VR}`)), seen.join('\n'));
  assert.match(rootQdisc(VR), `qdisc htb ${hex(qdiscHandle(`prescient-${NODE}`))}: root`, 'a fresh qdisc is installed');
  await c.release(); // the old confinement's release finds nothing left to remove
});

test('with --accounted-only bandwidth nothing is installed: no qdisc, no class, no net_prio directory', async () => {
  const before = rootQdisc(VA);
  const off = await detectEnforcement({ node_id: OFF, gpu_count: 0, output_dir: dir, shape_interfaces: [VA], accounted_only: ['bandwidth'] });
  try {
    assert.equal(off.network, { kind: 'none', why: 'turned off on this agent (--accounted-only bandwidth)' });
    assert.equal(describeEnforcement(off).find((e) => e.resource === 'bandwidth'), { resource: 'bandwidth', mode: 'accounted-only', detail: 'turned off on this agent (--accounted-only bandwidth)' });
    assert.is(rootQdisc(VA), before);
    assert.match(before, /^qdisc \S+ 0: root/);
    const d = nodeDir(OFF);
    assert.ok(d === undefined || !existsSync(d));
    const c = confineTask(off, reservation('off'));
    assert.is(c.applied().find((e) => e.resource === 'bandwidth')!.mode, 'accounted-only');
    await c.release();
  } finally {
    await releaseEnforcement(off);
  }
});

test('stopping the agent removes its qdisc and its net_prio directory', async () => {
  if (!canShape) return;
  const left = await releaseEnforcement(plan);
  assert.equal(left, []);
  assert.match(rootQdisc(VR), /^qdisc \S+ 0: root/, 'the kernel\'s default qdisc is back');
  assert.not.ok(existsSync(nodeDir(NODE)!));
  assert.equal(await releaseEnforcement(plan), [], 'a second release finds nothing to remove');
});

test.run();
