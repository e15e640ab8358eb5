import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeEnforcement, detectEnforcement, RESERVED_RESOURCES, type EnforcementPlan } from '../../node-agent/enforce/index.js';

const v1: EnforcementPlan = {
  node_id: 'n1',
  cpu: { kind: 'affinity' },
  memory: { kind: 'cgroup', cgroup: { version: 1, mount: '/sys/fs/cgroup/memory', dir: '/sys/fs/cgroup/memory/prescient-n1' } },
  gpu: { kind: 'visible-devices' },
  bandwidth: { kind: 'cgroup', cgroup: { version: 1, mount: '/sys/fs/cgroup/blkio', dir: '/sys/fs/cgroup/blkio/prescient-n1' } },
  network: { kind: 'none', why: 'no interface is configured to shape (--shape-interfaces is empty)' },
};

const byResource = (plan: EnforcementPlan) => Object.fromEntries(describeEnforcement(plan).map((e) => [e.resource, e]));

test('a node with v1 cgroups reports every resource enforced and says by what, in resource order', () => {
  const report = describeEnforcement(v1);
  assert.equal(report.map((e) => e.resource), [...RESERVED_RESOURCES]);
  assert.ok(report.every((e) => e.mode === 'enforced'));
  const r = byResource(v1);
  assert.match(r.cpu.detail, 'taskset');
  assert.match(r.memory.detail, 'cgroup v1');
  assert.match(r.memory.detail, 'memory.limit_in_bytes');
  assert.match(r.memory.detail, '/sys/fs/cgroup/memory/prescient-n1');
  assert.match(r.gpu.detail, 'CUDA_VISIBLE_DEVICES');
  assert.match(r.bandwidth.detail, 'blkio.throttle');
  assert.match(r.bandwidth.detail, 'network: not shaped (no interface is configured to shape');
});

test('a v2 node reports memory.max and io.max', () => {
  const cg = { version: 2 as const, mount: '/sys/fs/cgroup', dir: '/sys/fs/cgroup/prescient-n1' };
  const r = byResource({ ...v1, memory: { kind: 'cgroup', cgroup: cg }, bandwidth: { kind: 'cgroup', cgroup: cg } });
  assert.match(r.memory.detail, 'memory.max');
  assert.match(r.bandwidth.detail, 'io.max');
});

test('memory held only by the rlimit backstop is reported as RLIMIT_DATA with the reason no cgroup was used', () => {
  const r = byResource({ ...v1, memory: { kind: 'rlimit', why_not_cgroup: 'cgroup v1 memory: EACCES' } });
  assert.is(r.memory.mode, 'enforced');
  assert.match(r.memory.detail, 'RLIMIT_DATA');
  assert.match(r.memory.detail, '4×');
  assert.match(r.memory.detail, 'EACCES');
});

test('a resource that cannot be enforced is reported accounted-only with its reason', () => {
  const r = byResource({ ...v1, gpu: { kind: 'none', why: 'no GPU on this node' }, bandwidth: { kind: 'none', why: 'outputs are on tmpfs' } });
  assert.equal(r.gpu, { resource: 'gpu', mode: 'accounted-only', detail: 'no GPU on this node' });
  assert.equal(r.bandwidth, { resource: 'bandwidth', mode: 'accounted-only', detail: 'disk: not throttled (outputs are on tmpfs); network: not shaped (no interface is configured to shape (--shape-interfaces is empty))' });
});

test('an agent told to only account for every resource enforces none and says it was turned off', async () => {
  const plan = await detectEnforcement({ node_id: 'unit-off', gpu_count: 2, output_dir: '/tmp', accounted_only: [...RESERVED_RESOURCES] });
  for (const e of describeEnforcement(plan)) {
    assert.is(e.mode, 'accounted-only', e.resource);
    assert.match(e.detail, `--accounted-only ${e.resource}`);
  }
});

test.run();
