import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeEnforcement, type EnforcementPlan } from '../../node-agent/enforce/index.js';
import {
  classId, classMinor, classPriority, defaultClassArgs, defaultClassMbit, deleteClassArgs, deleteQdiscArgs, hasNetAdmin, ifpriomapLine, installQdiscArgs,
  mountFsType, parseDefaultRouteDevs, parseIfpriomap, parseRootQdiscs, qdiscHandle, taskClassArgs, tcRate, validInterfaceName,
} from '../../node-agent/enforce/shaping.js';

const node = { version: 1 as const, mount: '/sys/fs/cgroup/net_prio', dir: '/sys/fs/cgroup/net_prio/prescient-n1' };
const plan: EnforcementPlan = {
  node_id: 'n1',
  cpu: { kind: 'affinity' },
  memory: { kind: 'none', why: 'x' },
  gpu: { kind: 'none', why: 'x' },
  bandwidth: { kind: 'cgroup', cgroup: { version: 1, mount: '/sys/fs/cgroup/blkio', dir: '/sys/fs/cgroup/blkio/prescient-n1' } },
  network: { kind: 'tc-htb', cgroup: node, handle: 0x7a3c, interfaces: [{ dev: 'eth0', default_mbit: 100_000 }], unshaped: [] },
};
const bandwidthOf = (p: EnforcementPlan) => describeEnforcement(p).find((e) => e.resource === 'bandwidth')!;

test('a reservation in Mbit/s (10^6 bit/s) becomes a tc rate in bit/s, never zero', () => {
  assert.is(tcRate(8), '8000000bit');
  assert.is(tcRate(0.5), '500000bit');
  assert.is(tcRate(0), '8bit');
});

test('the qdisc handle is stable for a node and stays clear of hand-typed handles and ingress', () => {
  assert.is(qdiscHandle('prescient-n1'), qdiscHandle('prescient-n1'));
  assert.is.not(qdiscHandle('prescient-n1'), qdiscHandle('prescient-n2'));
  for (const n of ['prescient-a', 'prescient-b', 'prescient-enc-1', 'prescient-' + 'x'.repeat(100)]) {
    const h = qdiscHandle(n);
    assert.ok(h >= 0x1000 && h <= 0xefff, h.toString(16));
  }
});

test('a task\'s class minor comes from its id, probes on linearly, and never takes the default class, 0 or ffff', () => {
  assert.is(classMinor('job-1'), classMinor('job-1'));
  assert.is(classMinor('job-1', 1), classMinor('job-1') === 0xfffe ? 2 : classMinor('job-1') + 1);
  const seen = new Set<number>();
  for (let i = 0; i < 0xfffd; i++) {
    const m = classMinor('wrap', i);
    assert.ok(m >= 2 && m <= 0xfffe, String(m));
    seen.add(m);
  }
  assert.is(seen.size, 0xfffd, 'every candidate minor is reached once before any repeats');
});

test('class ids and priorities are written as tc and the kernel read them', () => {
  assert.is(classId(0x7a3c, 0x1f), '7a3c:1f');
  assert.is(classPriority(0x7a3c, 5), 0x7a3c0005);
  assert.is(classPriority(0xefff, 0xfffe), 0xeffffffe, 'stays an unsigned 32-bit number');
  assert.is(ifpriomapLine('eth0', 0x7a3c0005), 'eth0 2050752517');
  assert.equal([...parseIfpriomap('lo 0\neth0 2050752517\n')], [['lo', 0], ['eth0', 2050752517]]);
});

test('the tc argument lists install an HTB root, a default class that never limits, and per-task classes with rate = ceil', () => {
  assert.equal(installQdiscArgs('eth0', 0x7a3c), ['qdisc', 'add', 'dev', 'eth0', 'root', 'handle', '7a3c:', 'htb', 'default', '1']);
  assert.equal(defaultClassArgs('eth0', 0x7a3c, 100_000),
    ['class', 'add', 'dev', 'eth0', 'parent', '7a3c:', 'classid', '7a3c:1', 'htb', 'rate', '100000000000bit', 'ceil', '100000000000bit', 'burst', '12500000', 'cburst', '12500000', 'quantum', '60000']);
  assert.equal(taskClassArgs('add', 'eth0', 0x7a3c, 0x1f, 8),
    ['class', 'add', 'dev', 'eth0', 'parent', '7a3c:', 'classid', '7a3c:1f', 'htb', 'rate', '8000000bit', 'ceil', '8000000bit', 'quantum', '60000']);
  assert.is(taskClassArgs('replace', 'eth1', 0x7a3c, 0x1f, 8)[1], 'replace');
  assert.equal(deleteClassArgs('eth0', 0x7a3c, 0x1f), ['class', 'del', 'dev', 'eth0', 'classid', '7a3c:1f']);
  assert.equal(deleteQdiscArgs('eth0', 0x7a3c), ['qdisc', 'del', 'dev', 'eth0', 'root', 'handle', '7a3c:']);
});

test('the default class runs at 100 Gbit/s, or at the link\'s speed where it reports more', () => {
  assert.is(defaultClassMbit('-1\n'), 100_000);
  assert.is(defaultClassMbit(undefined), 100_000);
  assert.is(defaultClassMbit('10000\n'), 100_000);
  assert.is(defaultClassMbit('200000\n'), 200_000);
});

test('root qdiscs are read from tc with and without a device, and the kernel\'s own default is handle 0', () => {
  const all = 'qdisc noqueue 0: dev lo root refcnt 2 \nqdisc htb 7a3c: dev eth0 root refcnt 2 r2q 10 default 0x1\nqdisc pfifo 8001: dev eth0 parent 7a3c:1 limit 1000p\nqdisc mq 0: dev eth1 root \nqdisc fq_codel 0: dev eth1 parent :1 limit 10240p\n';
  assert.equal(parseRootQdiscs(all), [{ dev: 'lo', kind: 'noqueue', handle: 0 }, { dev: 'eth0', kind: 'htb', handle: 0x7a3c }, { dev: 'eth1', kind: 'mq', handle: 0 }]);
  assert.equal(parseRootQdiscs('qdisc pfifo_fast 0: root refcnt 2 bands 3 priomap 1 2 2 2\n', 'eth0'), [{ dev: 'eth0', kind: 'pfifo_fast', handle: 0 }]);
});

test('the interfaces to shape by default are those of the default routes, each once', () => {
  assert.equal(parseDefaultRouteDevs('default via 192.0.2.1 dev eth0 \ndefault via 10.0.0.1 dev wg0 proto static metric 50\n'), ['eth0', 'wg0']);
  assert.equal(parseDefaultRouteDevs('default via fd00::1 dev eth0 metric 1024 pref medium\n10.0.0.0/8 dev eth1\n'), ['eth0']);
  assert.equal(parseDefaultRouteDevs(''), []);
});

test('interface names that could not be a kernel interface or one tc argument are refused', () => {
  for (const ok of ['eth0', 'veth-a.10', 'enp0s31f6', 'br@x']) assert.ok(validInterfaceName(ok), ok);
  for (const bad of ['', 'a b', 'x'.repeat(16), '../x', '..', '-x', 'eth0:1']) assert.not.ok(validInterfaceName(bad), bad);
});

test('CAP_NET_ADMIN is read from CapEff, and the filesystem at a mount point from mountinfo', () => {
  assert.ok(hasNetAdmin('Name:\tnode\nCapEff:\t000001fffeffffff\n'));
  assert.not.ok(hasNetAdmin('CapEff:\t0000000000000000\n'));
  assert.not.ok(hasNetAdmin('CapEff:\t0000000000000fff\n'), 'bits 0-11 only');
  const info = '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n';
  assert.is(mountFsType(info, '/sys/fs/cgroup'), 'tmpfs');
  assert.is(mountFsType('29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n', '/sys/fs/cgroup'), 'cgroup2');
  assert.is(mountFsType(info, '/nowhere'), undefined);
});

test('a node with both the disk throttle and egress shaping reports bandwidth enforced by both, and that ingress is only accounted', () => {
  const b = bandwidthOf(plan);
  assert.is(b.mode, 'enforced');
  assert.match(b.detail, 'disk: a cgroup v1 per task under /sys/fs/cgroup/blkio/prescient-n1');
  assert.match(b.detail, 'network: egress shaped on eth0 by tc, an HTB class per task at the reservation (root qdisc 7a3c:');
  assert.match(b.detail, 'default class at 100000 Mbit/s');
  assert.match(b.detail, 'net_prio cgroup under /sys/fs/cgroup/net_prio/prescient-n1');
  assert.match(b.detail, 'ingress (downloads) accounted only');
});

test('bandwidth is enforced when only the network is shaped, and says why the disk is not throttled', () => {
  const b = bandwidthOf({ ...plan, bandwidth: { kind: 'none', why: 'outputs are on tmpfs' } });
  assert.is(b.mode, 'enforced');
  assert.match(b.detail, 'disk: not throttled (outputs are on tmpfs); network: egress shaped on eth0');
});

test('an interface that could not be shaped is named with its reason beside the ones that are', () => {
  const b = bandwidthOf({ ...plan, network: { ...plan.network, unshaped: ['eth1 already has a root qdisc (htb 1:) that this agent did not install; it is left as it is'] } as EnforcementPlan['network'] });
  assert.match(b.detail, 'not shaped: eth1 already has a root qdisc (htb 1:)');
});

test('with neither half holding, bandwidth is accounted-only and gives both reasons, or one when they are the same', () => {
  const both = bandwidthOf({ ...plan, bandwidth: { kind: 'none', why: 'outputs are on tmpfs' }, network: { kind: 'none', why: 'the agent lacks CAP_NET_ADMIN' } });
  assert.equal(both, { resource: 'bandwidth', mode: 'accounted-only', detail: 'disk: not throttled (outputs are on tmpfs); network: not shaped (the agent lacks CAP_NET_ADMIN)' });
  const off = 'turned off on this agent (--accounted-only bandwidth)';
  assert.equal(bandwidthOf({ ...plan, bandwidth: { kind: 'none', why: off }, network: { kind: 'none', why: off } }), { resource: 'bandwidth', mode: 'accounted-only', detail: off });
});

test.run();
