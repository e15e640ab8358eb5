import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ledger } from '../../coordinator/ledger/index.js';
import { POLICIES, placeGroup, type GroupResult, type PlacementRequest } from '../../coordinator/placement/index.js';
import type { NodeCapacity } from '../../shared/index.js';

const node = (id: string, cores: number, memory_gb = 16, sessions: number[] = []): NodeCapacity => ({
  node_id: id, address: '127.0.0.1:1', core_ids: Array.from({ length: cores }, (_, i) => i), memory_gb, bandwidth_mbps: 1000, cpu_model: 'test',
  gpus: sessions.map((s, i) => ({ id: i, name: 'gpu', memory_gb: 16, sessions: s })),
});
const ledger = (...caps: NodeCapacity[]) => {
  const l = new Ledger(1, 10_000);
  for (const c of caps) l.upsertNode(c, 0);
  return l;
};
/** An ABR ladder: 1080p, 720p, 480p, 360p. */
const ladder = (over: Partial<PlacementRequest> = {}): PlacementRequest[] => [4, 2, 1, 1].map((cores, i) => ({ task_id: `r${i}`, cores, gpus: 0, memory_gb: cores, bandwidth_mbps: 20, ...over }));
const nodesOf = (r: GroupResult) => (r.kind === 'placed' ? r.plans.map((p) => p.node_id) : []);

test('together puts every rendition on one node, and the ledger commits them as one', () => {
  const l = ledger(node('small', 4), node('big', 16, 64));
  const r = placeGroup(ladder(), l.snapshot(), { mode: 'together' });
  assert.equal(nodesOf(r), ['big', 'big', 'big', 'big']);
  assert.ok(r.kind === 'placed');
  if (r.kind !== 'placed') return;
  assert.equal(r.plans.map((p) => p.core_ids), [[0, 1, 2, 3], [4, 5], [6], [7]]);
  const c = l.commitAll(r.plans, 0);
  assert.ok(c.ok, c.ok ? '' : c.reason);
  assert.is(l.snapshot().node('big')!.free_core_ids.length, 8);
  assert.equal(l.checkInvariants(), []);
});

test('together: GPU renditions may share one GPU, one session each, up to its sessions', () => {
  const l = ledger(node('g', 8, 16, [3]));
  const three = placeGroup(ladder({ gpus: 1, cores: 1, memory_gb: 1 }).slice(0, 3), l.snapshot(), { mode: 'together' }, POLICIES['gpu-aware']);
  assert.equal(three.kind === 'placed' && three.plans.map((p) => p.gpu_ids), [[0], [0], [0]]);
  const four = placeGroup(ladder({ gpus: 1, cores: 1, memory_gb: 1 }), l.snapshot(), { mode: 'together' }, POLICIES['gpu-aware']);
  assert.is(four.kind, 'infeasible');
  assert.match(four.kind === 'infeasible' ? four.reason : '', /g: rendition r3 does not fit beside the others \(its GPU sessions are taken by the other renditions\)/);
});

test('together: a ladder no node could hold even when idle is infeasible, counting what each node lacks', () => {
  const l = ledger(node('a', 4), node('b', 6));
  const r = placeGroup(ladder(), l.snapshot(), { mode: 'together' });
  assert.is(r.kind, 'infeasible');
  assert.is(r.kind === 'infeasible' && r.reason, 'no node could hold all 4 renditions together even when idle: cores on 2 nodes (e.g. a: needs 8 cores, 4 in total (all 4 renditions together))');
});

test('together: a ladder that would fit an idle node but not now is queued, and nothing is placed', () => {
  const l = ledger(node('a', 8), node('b', 8));
  assert.ok(l.commit({ task_id: 'x', node_id: 'a', core_ids: [0], gpu_ids: [], memory_gb: 0, bandwidth_mbps: 0 }, 0).ok);
  assert.ok(l.commit({ task_id: 'y', node_id: 'b', core_ids: [0], gpu_ids: [], memory_gb: 0, bandwidth_mbps: 0 }, 0).ok);
  const r = placeGroup(ladder(), l.snapshot(), { mode: 'together' });
  assert.equal(r.kind === 'queued' && [r.short, r.reason], ['cores', 'no node has room now for all 4 renditions together: cores on 2 nodes (e.g. a: needs 8 cores, 7 free (all 4 renditions together))']);
});

test('spread gives every rendition a node of its own', () => {
  const l = ledger(node('a', 8), node('b', 8), node('c', 8), node('d', 8), node('e', 8));
  const r = placeGroup(ladder(), l.snapshot(), { mode: 'spread' }, POLICIES.spread);
  assert.is(new Set(nodesOf(r)).size, 4);
  assert.ok(r.kind === 'placed' && l.commitAll(r.plans, 0).ok);
  assert.equal(l.checkInvariants(), []);
});

test('spread: the most demanding rendition chooses first, so a ladder fits where greedy order would not', () => {
  // Only 'big' fits the 1080p rendition; placing the small ones first could take it.
  const l = ledger(node('big', 4), node('s1', 2), node('s2', 2), node('s3', 2));
  const r = placeGroup(ladder(), l.snapshot(), { mode: 'spread', limit: 'all' }, POLICIES.spread);
  assert.is(nodesOf(r)[0], 'big');
});

test('spread: more renditions than nodes is infeasible', () => {
  const r = placeGroup(ladder(), ledger(node('a', 64), node('b', 64)).snapshot(), { mode: 'spread' });
  assert.equal(r.kind === 'infeasible' && r.reason, '4 renditions need a node each, but the fleet has 2');
});

test('spread: a rendition whose only node with room holds a sibling is queued, naming it', () => {
  const l = ledger(node('a', 8), node('b', 8), node('c', 8), node('d', 8));
  for (const id of ['b', 'c', 'd']) assert.ok(l.commit({ task_id: `x${id}`, node_id: id, core_ids: [0, 1, 2, 3, 4, 5, 6], gpu_ids: [], memory_gb: 0, bandwidth_mbps: 0 }, 0).ok);
  const r = placeGroup(ladder(), l.snapshot(), { mode: 'spread' });
  assert.is(r.kind, 'queued');
  if (r.kind !== 'queued') return;
  assert.is(r.member, 'r1');
  assert.match(r.reason, /rendition r1: no node has room now: cores on 3 nodes .*; .*a: already holds another rendition of this group/);
});

test('a group whose plans went stale is refused as a whole by commitAll', () => {
  const l = ledger(node('a', 8), node('b', 8), node('c', 8), node('d', 8));
  const r = placeGroup(ladder(), l.snapshot(), { mode: 'spread' });
  assert.ok(r.kind === 'placed');
  if (r.kind !== 'placed') return;
  const last = r.plans[3];
  assert.ok(l.commit({ task_id: 'intruder', node_id: last.node_id, core_ids: [7], gpu_ids: [], memory_gb: 0, bandwidth_mbps: 0 }, 0).ok);
  const c = l.commitAll(r.plans, 0);
  assert.equal(c.ok ? '' : [c.code, c.task_id], ['stale', 'r3']);
  assert.equal(l.allReservations().length, 1, 'part of the group was committed');
});

test('a group that names a task twice is refused, and an empty group places trivially', () => {
  const l = ledger(node('a', 8));
  assert.equal(placeGroup([...ladder().slice(0, 2), ladder()[0]], l.snapshot(), { mode: 'together' }).kind, 'infeasible');
  assert.equal(placeGroup([], l.snapshot(), { mode: 'spread' }).kind, 'placed');
});

test.run();
