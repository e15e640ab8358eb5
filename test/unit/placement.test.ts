import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ledger, place, type PlacementRequest } from '../../coordinator/index.js';
import type { NodeCapacity } from '../../shared/index.js';

const node = (id: string, cores: number[], memory_gb: number, gpus = 0): NodeCapacity => ({
  node_id: id, address: `127.0.0.1:1`, core_ids: cores, memory_gb, bandwidth_mbps: 1000, cpu_model: 'test',
  gpus: Array.from({ length: gpus }, (_, i) => ({ id: i, name: 'gpu', memory_gb: 16 })),
});
const req = (over: Partial<PlacementRequest> = {}): PlacementRequest => ({ task_id: 't1', cores: 1, gpus: 0, memory_gb: 1, bandwidth_mbps: 10, ...over });

test('a job is queued with its reason while no node has registered', () => {
  const r = place(req(), new Ledger(1, 10_000).snapshot());
  assert.equal(r.kind, 'queued');
  assert.equal(r.kind === 'queued' && r.short, 'nodes');
});

test('best fit prefers the node the job fills most', () => {
  const l = new Ledger(1, 10_000);
  l.upsertNode(node('big', [0, 1, 2, 3], 16), 0);
  l.upsertNode(node('small', [4], 2), 0);
  const r = place(req(), l.snapshot());
  assert.equal(r.kind === 'placed' && r.plan.node_id, 'small');
  assert.equal(r.kind === 'placed' && r.plan.core_ids, [4]);
});

test('a job that fits no node even when idle is infeasible with each node\'s reason', () => {
  const l = new Ledger(1, 10_000);
  l.upsertNode(node('a', [0], 2), 0);
  l.upsertNode(node('b', [1], 4), 0);
  const r = place(req({ memory_gb: 8 }), l.snapshot());
  assert.equal(r.kind, 'infeasible');
  if (r.kind === 'infeasible') {
    assert.equal(r.reasons.map((x) => x.node_id), ['a', 'b']);
    assert.match(r.reasons[1].reason, /needs 8 GB memory, 4 GB in total/);
    assert.equal(r.tally.map((t) => [t.filter, t.nodes]), [['memory', 2]]);
    assert.is(r.reason, 'fits no node even when idle: memory on 2 nodes (e.g. a: needs 8 GB memory, 2 GB in total)');
  }
});

test('a job that fits an idle node but not a busy one is queued naming the short resource', () => {
  const l = new Ledger(1, 10_000);
  l.upsertNode(node('a', [0, 1], 4), 0);
  const first = place(req({ cores: 2 }), l.snapshot());
  assert.ok(first.kind === 'placed' && l.commit(first.plan, 0).ok);
  const r = place(req({ task_id: 't2' }), l.snapshot());
  assert.equal(r.kind === 'queued' && r.short, 'cores');
  assert.equal(r.kind === 'queued' && r.reason, 'no node has room now: cores on 1 node (a: needs 1 cores, 0 free)');
});

test('a plan made on an old snapshot is refused when its cores were taken meanwhile', () => {
  const l = new Ledger(1, 10_000);
  l.upsertNode(node('a', [0, 1], 4), 0);
  const snap = l.snapshot();
  const p1 = place(req({ task_id: 'x' }), snap), p2 = place(req({ task_id: 'y' }), snap);
  assert.ok(p1.kind === 'placed' && l.commit(p1.plan, 0).ok);
  const second = p2.kind === 'placed' ? l.commit(p2.plan, 0) : undefined;
  assert.equal(second?.ok, false);
  assert.match(second && !second.ok ? second.reason : '', /core 0 on a is not free/);
});

test('releasing returns the cores and memory, and a second release does nothing', () => {
  const l = new Ledger(1, 10_000);
  l.upsertNode(node('a', [0, 1], 4), 0);
  const p = place(req({ cores: 2, memory_gb: 3 }), l.snapshot());
  assert.ok(p.kind === 'placed' && l.commit(p.plan, 0).ok);
  assert.equal(l.snapshot().nodes[0].free_memory_gb, 1);
  assert.ok(l.release('t1'));
  assert.not.ok(l.release('t1'));
  assert.equal(l.snapshot().nodes[0].free_core_ids, [0, 1]);
  assert.equal(l.snapshot().nodes[0].free_memory_gb, 4);
});

test('a reservation carries the ledger term and a lease', () => {
  const l = new Ledger(7, 5000);
  l.upsertNode(node('a', [0], 4), 0);
  const p = place(req(), l.snapshot());
  const c = p.kind === 'placed' ? l.commit(p.plan, 1000) : undefined;
  assert.equal(c?.ok && c.allocation.term, 7);
  assert.equal(c?.ok && c.allocation.lease_expires_at, 6000);
});

test('losing a node returns its reservations so their tasks can be re-queued', () => {
  const l = new Ledger(1, 10_000);
  l.upsertNode(node('a', [0], 4), 0);
  const p = place(req(), l.snapshot());
  assert.ok(p.kind === 'placed' && l.commit(p.plan, 0).ok);
  assert.equal(l.removeNode('a').map((x) => x.task_id), ['t1']);
  assert.equal(l.allReservations(), []);
});

test('a GPU job only lands on a node with a free GPU', () => {
  const l = new Ledger(1, 10_000);
  l.upsertNode(node('cpu', [0, 1], 8), 0);
  l.upsertNode(node('gpu', [2], 8, 1), 0);
  const r = place(req({ gpus: 1 }), l.snapshot());
  assert.equal(r.kind === 'placed' && r.plan.node_id, 'gpu');
  assert.equal(r.kind === 'placed' && r.plan.gpu_ids, [0]);
});

test.run();
