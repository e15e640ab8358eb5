import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_GPU_SESSIONS, FREE, Ledger, TOTAL, type Plan } from '../../coordinator/ledger/index.js';
import type { NodeCapacity, ResourceAllocation } from '../../shared/index.js';

const node = (id: string, cores: number, memory_gb = 16, gpus: Array<number | undefined> = []): NodeCapacity => ({
  node_id: id, address: '127.0.0.1:1', core_ids: Array.from({ length: cores }, (_, i) => i), memory_gb, bandwidth_mbps: 1000, cpu_model: 'test',
  gpus: gpus.map((sessions, i) => ({ id: i, name: 'gpu', memory_gb: 16, sessions })),
});
const plan = (task_id: string, node_id: string, core_ids: number[], over: Partial<Plan> = {}): Plan => ({ task_id, node_id, core_ids, gpu_ids: [], memory_gb: 1, bandwidth_mbps: 10, ...over });
const ledger = (...caps: NodeCapacity[]) => {
  const l = new Ledger(3, 1000);
  for (const c of caps) l.upsertNode(c, 0);
  return l;
};
const refusal = (r: { ok: boolean; code?: string; reason?: string }) => (r.ok ? 'ok' : `${r.code}: ${r.reason}`);

// ── GPU encoder sessions ─────────────────────────────────────────────────────────────────

test('a GPU runs as many GPU tasks as it has encoder sessions, and refuses the next', () => {
  const l = ledger(node('g', 8, 16, [2]));
  assert.ok(l.commit(plan('a', 'g', [0], { gpu_ids: [0] }), 0).ok);
  assert.ok(l.commit(plan('b', 'g', [1], { gpu_ids: [0] }), 0).ok);
  assert.equal(l.snapshot().node('g')!.free_gpu_ids, []);
  assert.match(refusal(l.commit(plan('c', 'g', [2], { gpu_ids: [0] }), 0)), /conflict: gpu 0 on g has no free encoder session \(2 of 2 in use\)/);
  assert.ok(l.release('a'));
  assert.equal(l.snapshot().node('g')!.gpus, [{ id: 0, sessions: 2, free_sessions: 1 }]);
});

test('a GPU that reports no session count (or 0) gets the default', () => {
  const l = ledger(node('g', 8, 16, [undefined, 0, 5]));
  assert.equal(l.snapshot().node('g')!.gpus.map((g) => g.sessions), [DEFAULT_GPU_SESSIONS, DEFAULT_GPU_SESSIONS, 5]);
  assert.is(l.snapshot().node('g')!.gpu_sessions, 2 * DEFAULT_GPU_SESSIONS + 5);
});

test('a task takes one session per GPU, so naming a GPU twice is refused as invalid', () => {
  const l = ledger(node('g', 8, 16, [4]));
  assert.match(refusal(l.commit(plan('a', 'g', [0], { gpu_ids: [0, 0] }), 0)), /^invalid: a GPU is named twice/);
});

// ── commit: what it refuses, and why ─────────────────────────────────────────────────────

test('a plan made against an older version of its node is refused as stale, naming both versions', () => {
  const l = ledger(node('a', 4), node('b', 4));
  const seen = l.snapshot().node('a')!.version;
  assert.ok(l.commit(plan('x', 'a', [3]), 0).ok);
  const r = l.commit(plan('y', 'a', [0], { node_version: seen }), 0);
  assert.equal(refusal(r), `stale: node a changed since the plan was made (version ${seen}, now ${l.snapshot().node('a')!.version})`);
});

test('a change to another node leaves a plan current', () => {
  const l = ledger(node('a', 4), node('b', 4));
  const seen = l.snapshot().node('a')!.version;
  assert.ok(l.commit(plan('x', 'b', [0]), 0).ok);
  assert.ok(l.commit(plan('y', 'a', [0], { node_version: seen }), 0).ok);
});

test('a heartbeat does not make plans stale', () => {
  const l = ledger(node('a', 4));
  const seen = l.snapshot().node('a')!.version;
  assert.ok(l.touch('a', 500));
  assert.is(l.snapshot().node('a')!.last_seen, 500);
  assert.ok(l.commit(plan('y', 'a', [0], { node_version: seen }), 0).ok);
});

test('a plan made under another term, on an unknown node, for a task already reserved, or with bad amounts is refused with its code', () => {
  const l = ledger(node('a', 4));
  assert.match(refusal(l.commit(plan('x', 'a', [0], { term: 2 }), 0)), /^term: the plan was made under term 2; the ledger is at term 3/);
  assert.match(refusal(l.commit(plan('x', 'zz', [0]), 0)), /^unknown-node: node zz is not in the ledger/);
  assert.ok(l.commit(plan('x', 'a', [0]), 0).ok);
  assert.match(refusal(l.commit(plan('x', 'a', [1]), 0)), /^duplicate: task x already holds a reservation/);
  assert.match(refusal(l.commit(plan('y', 'a', [1, 1]), 0)), /^invalid: a core is named twice/);
  assert.match(refusal(l.commit(plan('y', 'a', [1], { memory_gb: -1 }), 0)), /^invalid: memory -1/);
  assert.match(refusal(l.commit(plan('y', 'a', [9]), 0)), /^conflict: core 9 is not on a/);
  assert.match(refusal(l.commit(plan('y', 'a', [1], { memory_gb: 40 }), 0)), /^conflict: memory on a: 40 GB wanted, 15 GB free/);
});

test('commitAll applies every plan of a group or none of them', () => {
  const l = ledger(node('a', 4), node('b', 2));
  const va = l.snapshot().node('a')!.version, vb = l.snapshot().node('b')!.version;
  // Two plans on one node from one snapshot: checked one after the other, both against its version then.
  const ok = l.commitAll([plan('r1', 'a', [0], { node_version: va }), plan('r2', 'a', [1], { node_version: va }), plan('r3', 'b', [0], { node_version: vb })], 0);
  assert.ok(ok.ok);
  assert.equal(l.reservedTaskIds('a').sort(), ['r1', 'r2']);
  const before = JSON.stringify(l.toState());
  const bad = l.commitAll([plan('r4', 'a', [2]), plan('r5', 'b', [0])], 0);
  assert.equal(bad.ok ? '' : `${bad.task_id} ${bad.code}`, 'r5 conflict');
  assert.is(JSON.stringify(l.toState()), before, 'a refused group left something behind');
  const clash = l.commitAll([plan('r6', 'a', [2]), plan('r7', 'a', [2])], 0);
  assert.equal(clash.ok ? '' : `${clash.task_id}: ${clash.reason}`, 'r7: core 2 on a is not free');
});

// ── leases ───────────────────────────────────────────────────────────────────────────────

test('expire drops exactly the reservations whose lease has passed, and a heartbeat extends them', () => {
  const l = ledger(node('a', 4), node('b', 4));
  l.commit(plan('x', 'a', [0]), 0); // lease until 1000
  l.commit(plan('y', 'b', [0]), 0);
  l.touch('b', 600); // y: until 1600
  assert.equal(l.expire(1000), [], 'a lease that ends now has not passed yet');
  const gone = l.expire(1001);
  assert.equal(gone.map((d) => d.task_id), ['x']);
  assert.match(gone[0].reason, /its lease on a ran out 1 ms ago/);
  assert.not.ok(l.release('x'), 'an expired reservation was released again');
  assert.equal(l.snapshot().node('a')!.free_core_ids, [0, 1, 2, 3]);
  assert.equal(l.expire(1601).map((d) => d.task_id), ['y']);
});

// ── nodes ────────────────────────────────────────────────────────────────────────────────

test('a node that re-registers smaller keeps the reservations that still fit and returns the others', () => {
  const l = ledger(node('a', 8, 16));
  l.commit(plan('x', 'a', [0, 1], { memory_gb: 4 }), 0);
  l.commit(plan('y', 'a', [6, 7], { memory_gb: 4 }), 0);
  const evicted = l.upsertNode(node('a', 4, 16), 10);
  assert.equal(evicted.map((e) => e.task_id), ['y']);
  assert.match(evicted[0].reason, /no longer fits a after it re-registered: core 6 is not on a/);
  assert.equal(l.reservedTaskIds('a'), ['x']);
  assert.equal(l.checkInvariants(), []);
});

test('a snapshot is the same object until something changes, and an old one keeps what it saw', () => {
  const l = ledger(node('a', 4), node('b', 64));
  const s1 = l.snapshot();
  assert.is(l.snapshot(), s1);
  assert.is(s1.max_cores, 64);
  l.commit(plan('x', 'a', [0]), 0);
  const s2 = l.snapshot();
  assert.is.not(s2, s1);
  assert.equal(s1.node('a')!.free_core_ids, [0, 1, 2, 3]);
  assert.equal(s2.node('a')!.free_core_ids, [1, 2, 3]);
  assert.is(s2.node('b'), s1.node('b'), 'an unchanged node is shared, not copied');
  l.removeNode('b');
  assert.is(l.snapshot().max_cores, 4);
  assert.is(s2.node('b')!.node_id, 'b');
  assert.is(l.snapshot().node('b'), undefined);
});

test('an old snapshot keeps the free and total amounts of a node that re-registered smaller', () => {
  const l = ledger(node('a', 4, 16), node('b', 8, 16));
  const s1 = l.snapshot();
  l.upsertNode(node('a', 2, 4), 10);
  const s2 = l.snapshot();
  const slot = [...Array(s2.slots).keys()].find((i) => s2.at(i)?.node_id === 'a')!;
  assert.equal([s1.amount(slot, TOTAL.cores), s1.amount(slot, TOTAL.memory), s1.amount(slot, FREE.cores)], [4, 16, 4]);
  assert.equal([s2.amount(slot, TOTAL.cores), s2.amount(slot, TOTAL.memory), s2.amount(slot, FREE.cores)], [2, 4, 2]);
  l.removeNode('a');
  assert.ok(l.snapshot().amount(slot, TOTAL.cores) < 0, 'an empty slot must fit nothing');
  assert.is(s2.amount(slot, TOTAL.cores), 2);
});

// ── invariants: each kind of damage is named ─────────────────────────────────────────────

test('checkInvariants is empty for a sound ledger and names a core held twice, over-commitment, free+held ≠ capacity and tasks that are not live', () => {
  const l = ledger(node('a', 4, 8));
  const x = l.commit(plan('x', 'a', [0], { memory_gb: 2 }), 0);
  const y = l.commit(plan('y', 'a', [1], { memory_gb: 2 }), 0);
  assert.equal(l.checkInvariants((t) => t === 'x' || t === 'y'), []);
  assert.ok(x.ok && y.ok);
  // Damage the ledger through the allocation objects it handed out.
  const ya = (y as { allocation: ResourceAllocation }).allocation;
  ya.core_ids.push(0, 2);
  ya.memory_gb = 7;
  const v = l.checkInvariants((t) => t === 'x');
  assert.ok(v.includes('core 0 on a is held by both x and y'), v.join('\n'));
  assert.ok(v.includes('core 2 on a is both free and held by y'), v.join('\n'));
  assert.ok(v.includes('memory on a is over-committed: 9 GB held of 8 GB'), v.join('\n'));
  assert.ok(v.some((s) => /^memory on a: 4 free \+ 9 held ≠ 8 GB in total$/.test(s)), v.join('\n'));
  assert.ok(v.includes('task y holds a reservation on a but is not live'), v.join('\n'));
});

test('checkInvariants names a GPU over its sessions and a reservation on a node the ledger does not have', () => {
  const l = ledger(node('g', 4, 8, [1]));
  const x = l.commit(plan('x', 'g', [0], { gpu_ids: [0] }), 0);
  const y = l.commit(plan('y', 'g', [1]), 0);
  const z = l.commit(plan('z', 'g', [2]), 0);
  assert.ok(x.ok && y.ok && z.ok);
  (y as { allocation: ResourceAllocation }).allocation.gpu_ids.push(0);
  (z as { allocation: ResourceAllocation }).allocation.node_id = 'ghost';
  const v = l.checkInvariants();
  assert.ok(v.includes('GPU 0 on g is over-committed: 2 sessions held of 1'), v.join('\n'));
  assert.ok(v.includes('GPU 0 on g: 0 free + 2 held ≠ 1 sessions'), v.join('\n'));
  assert.ok(v.includes('task z holds a reservation on ghost, which is not in the ledger'), v.join('\n'));
  assert.ok(v.includes('the index lists task z under g, but it holds no reservation there'), v.join('\n'));
});

// ── persistence ──────────────────────────────────────────────────────────────────────────

test('a ledger saved as JSON comes back under the new term with the same reservations and fresh leases', () => {
  const l = ledger(node('a', 4, 8), node('g', 2, 8, [2]));
  l.commit(plan('x', 'a', [0, 1], { memory_gb: 2.3 }), 0);
  l.commit(plan('y', 'g', [0], { gpu_ids: [0], memory_gb: 0.1 }), 0);
  const state = JSON.parse(JSON.stringify(l.toState()));
  const back = Ledger.fromState(state, 4, 1000, 5000);
  assert.is(back.term, 4);
  assert.equal(back.checkInvariants(), []);
  assert.equal(back.reservation('x')!.core_ids, [0, 1]);
  assert.is(back.reservation('x')!.term, 3, 'a restored reservation keeps the term that made it');
  assert.is(back.reservation('x')!.lease_expires_at, 6000);
  assert.is(back.snapshot().node('a')!.last_seen, 5000);
  assert.equal(back.snapshot().node('g')!.gpus[0].free_sessions, 1);
  assert.is(back.snapshot().node('a')!.free_memory_gb, 5.7);
  assert.equal(back.takeChanges().nodes.map((n) => n.capacity.node_id).sort(), ['a', 'g'], 'a new leader rewrites every node on its first save');
});

test('a saved state whose reservations clash restores what fits and lists the rest', () => {
  const l = ledger(node('a', 4));
  l.commit(plan('x', 'a', [0]), 0);
  const state = l.toState();
  state.nodes[0].reservations.push({ task_id: 'y', allocation: { ...state.nodes[0].reservations[0].allocation } });
  state.nodes[0].reservations.push({ task_id: 'x', allocation: { ...state.nodes[0].reservations[0].allocation, core_ids: [3] } });
  const back = Ledger.fromState(state, 4, 1000);
  assert.equal(back.restoreSkipped.map((s) => `${s.task_id}: ${s.reason}`), ['y: core 0 on a is not free', 'x: task x is also reserved on a']);
  assert.equal(back.checkInvariants(), []);
});

test('takeChanges lists the nodes changed and removed since the last call', () => {
  const l = ledger(node('a', 4), node('b', 4), node('c', 4));
  l.takeChanges();
  l.commit(plan('x', 'a', [0]), 0);
  l.removeNode('b');
  const ch = l.takeChanges();
  assert.equal(ch.nodes.map((n) => n.capacity.node_id), ['a']);
  assert.equal(ch.nodes[0].reservations.map((r) => r.task_id), ['x']);
  assert.equal(ch.removed, ['b']);
  assert.equal(l.takeChanges().nodes, []);
});

test('changes a store failed to write come back with the next takeChanges', () => {
  const l = ledger(node('a', 4), node('b', 4), node('c', 4));
  l.takeChanges();
  l.commit(plan('x', 'a', [0]), 0);
  l.removeNode('b');
  const failed = l.takeChanges();
  l.commit(plan('y', 'c', [0]), 0);
  l.returnChanges(failed);
  const next = l.takeChanges();
  assert.equal([next.nodes.map((n) => n.capacity.node_id).sort(), next.removed], [['a', 'c'], ['b']]);
});

// ── reconciliation after a failover ──────────────────────────────────────────────────────

test('reconcile confirms, adopts, replaces, drops, ignores, refuses and leaves unreported, saying why', () => {
  const l = ledger(node('a', 4), node('b', 4), node('c', 4));
  l.commit(plan('same', 'a', [0]), 0);
  l.commit(plan('moved', 'a', [1]), 0);
  l.commit(plan('ended', 'b', [0]), 0);
  l.commit(plan('quiet', 'c', [0]), 0);
  l.commit(plan('starting', 'a', [3]), 0);
  const alloc = (node_id: string, core_ids: number[]): ResourceAllocation => ({ node_id, core_ids, gpu_ids: [], memory_gb: 1, bandwidth_mbps: 10, lease_expires_at: 0, term: 2 });
  const live = new Set(['same', 'moved', 'quiet', 'new', 'clash', 'starting']);
  const r = l.reconcile([
    { node_id: 'a', running: [{ task_id: 'same', allocation: alloc('a', [0]) }] },
    { node_id: 'b', running: [{ task_id: 'moved', allocation: alloc('', [1]) }, { task_id: 'new', allocation: alloc('b', [2]) }, { task_id: 'zombie', allocation: alloc('b', [3]) }, { task_id: 'clash', allocation: alloc('b', [2]) }] },
  ], (t) => live.has(t), 700);
  const names = (xs: Array<{ task_id: string }>) => xs.map((x) => x.task_id);
  assert.equal(names(r.confirmed), ['same']);
  assert.equal(names(r.adopted), ['new']);
  assert.equal(names(r.replaced), ['moved']);
  assert.match(r.replaced[0].reason, /reserved on a, but running on b/);
  assert.equal(names(r.dropped), ['ended']);
  assert.equal(names(r.ignored), ['zombie']);
  assert.equal(names(r.refused), ['clash']);
  assert.match(r.refused[0].reason, /core 2 on b is not free/);
  assert.equal(r.unreported.map((e) => `${e.task_id}: ${e.reason}`), ['quiet: c has not reported', 'starting: a reported without it (it may still be starting)']);
  assert.is(l.reservation('moved')!.node_id, 'b');
  assert.is(l.reservation('new')!.term, 3, 'an adopted reservation is made under the new term');
  assert.is(l.reservation('same')!.lease_expires_at, 1700);
  assert.is(l.reservation('ended'), undefined);
  assert.equal(l.checkInvariants((t) => live.has(t)), []);
});

test.run();
