import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Ledger } from '../../coordinator/ledger/index.js';
import {
  POLICIES, POLICY_NAMES, UnknownPolicyError, defaultLimit, place, placementPolicy, type PlacementRequest, type PlacementResult,
} from '../../coordinator/placement/index.js';
import type { NodeCapacity } from '../../shared/index.js';

const node = (id: string, cores: number, memory_gb = 16, sessions: number[] = []): NodeCapacity => ({
  node_id: id, address: '127.0.0.1:1', core_ids: Array.from({ length: cores }, (_, i) => i), memory_gb, bandwidth_mbps: 1000, cpu_model: 'test',
  gpus: sessions.map((s, i) => ({ id: i, name: 'gpu', memory_gb: 16, sessions: s })),
});
const req = (over: Partial<PlacementRequest> = {}): PlacementRequest => ({ task_id: 't', cores: 1, gpus: 0, memory_gb: 1, bandwidth_mbps: 10, ...over });
const ledger = (...caps: NodeCapacity[]) => {
  const l = new Ledger(1, 10_000);
  for (const c of caps) l.upsertNode(c, 0);
  return l;
};
/** Reserves directly, to make a node busy. */
const busy = (l: Ledger, id: string, task: string, cores: number[], gpu_ids: number[] = []) =>
  assert.ok(l.commit({ task_id: task, node_id: id, core_ids: cores, gpu_ids, memory_gb: 0, bandwidth_mbps: 0 }, 0).ok);
const nodeOf = (r: PlacementResult) => (r.kind === 'placed' ? r.plan.node_id : `${r.kind}: ${r.reason}`);

// ── the three policies ──────────────────────────────────────────────────────────────────

test('best fit packs a job onto the node it fills most', () => {
  const l = ledger(node('roomy', 16), node('half', 16));
  busy(l, 'half', 'x', [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.is(nodeOf(place(req({ cores: 4 }), l.snapshot(), POLICIES['best-fit'])), 'half');
});

test('spread sends a job to the least loaded node', () => {
  const l = ledger(node('roomy', 16), node('half', 16));
  busy(l, 'half', 'x', [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.is(nodeOf(place(req({ cores: 4 }), l.snapshot(), POLICIES.spread)), 'roomy');
});

test('best fit puts a GPU job on the busiest GPU with a free session; spread on the emptiest', () => {
  const l = ledger(node('g', 8, 16, [3, 3]));
  busy(l, 'g', 'x', [0], [1]);
  const packed = place(req({ gpus: 1 }), l.snapshot(), POLICIES['best-fit']);
  const spread = place(req({ gpus: 1 }), l.snapshot(), POLICIES.spread);
  assert.equal(packed.kind === 'placed' && packed.plan.gpu_ids, [1]);
  assert.equal(spread.kind === 'placed' && spread.plan.gpu_ids, [0]);
});

test('gpu-aware sends a GPU job to the GPU with the most free sessions in the fleet', () => {
  const l = ledger(node('two-left', 8, 16, [3]), node('all-free', 8, 16, [2, 4]), node('cpu', 32));
  busy(l, 'two-left', 'x', [0], [0]);
  busy(l, 'all-free', 'y', [0], [1]);
  const r = place(req({ gpus: 1 }), l.snapshot(), POLICIES['gpu-aware'], { limit: 'all' });
  // two-left: GPU 0 has 2 free; all-free: GPU 0 has 2, GPU 1 has 3 free.
  assert.equal(r.kind === 'placed' && [r.plan.node_id, r.plan.gpu_ids], ['all-free', [1]]);
  assert.is(r.kind === 'placed' && r.policy, 'gpu-aware');
});

test('gpu-aware keeps CPU jobs off GPU nodes while a CPU-only node has room', () => {
  const l = ledger(node('gpu', 4, 16, [3]), node('cpu', 64, 256));
  // Best fit alone would pack the job onto the small GPU node.
  assert.is(nodeOf(place(req({ cores: 2 }), l.snapshot(), POLICIES['best-fit'])), 'gpu');
  assert.is(nodeOf(place(req({ cores: 2 }), l.snapshot(), POLICIES['gpu-aware'])), 'cpu');
});

test('gpu-aware puts a CPU job on a GPU node when no CPU-only node has room, and says so', () => {
  const l = ledger(node('gpu', 8, 16, [3]), node('cpu', 2, 16));
  busy(l, 'cpu', 'x', [0, 1]);
  const r = place(req({ cores: 2 }), l.snapshot(), POLICIES['gpu-aware']);
  assert.is(nodeOf(r), 'gpu');
  assert.match(r.kind === 'placed' ? r.reason : '', /the policy avoids this node for this request, but no node it prefers had room/);
});

test('gpu-aware finds a CPU-only node with room even when GPU nodes fill the first part of the scan', () => {
  const caps = Array.from({ length: 200 }, (_, i) => node(`g${String(i).padStart(3, '0')}`, 8, 16, [3]));
  caps.push(node('cpu-only', 8, 16));
  const r = place(req({ cores: 2 }), ledger(...caps).snapshot(), POLICIES['gpu-aware']);
  assert.is(nodeOf(r), 'cpu-only');
});

test('a GPU job takes one encoder session on one GPU', () => {
  const l = ledger(node('g', 8, 16, [3]));
  for (const id of ['a', 'b', 'c']) {
    const r = place(req({ task_id: id, gpus: 1 }), l.snapshot(), POLICIES['gpu-aware']);
    assert.ok(r.kind === 'placed' && l.commit(r.plan, 0).ok);
  }
  const r = place(req({ task_id: 'd', gpus: 1 }), l.snapshot(), POLICIES['gpu-aware']);
  assert.equal(r.kind === 'queued' && [r.short, r.reason], ['gpus', 'no node has room now: gpus on 1 node (g: needs a free encoder session on 1 GPU, 0 of 1 GPUs have one)']);
});

// ── choosing a policy by name ───────────────────────────────────────────────────────────

test('placementPolicy finds each policy by name', () => {
  assert.equal(POLICY_NAMES, ['best-fit', 'spread', 'gpu-aware']);
  for (const name of POLICY_NAMES) assert.is(placementPolicy(name).name, name);
});

test('an unknown policy name throws an error naming the valid policies', () => {
  let err: unknown;
  try { placementPolicy('first-fit'); } catch (e) { err = e; }
  assert.instance(err, UnknownPolicyError);
  assert.is((err as Error).message, 'unknown placement policy "first-fit"; valid policies: best-fit, spread, gpu-aware');
  assert.is((err as UnknownPolicyError).given, 'first-fit');
  assert.throws(() => placementPolicy('toString'), /unknown placement policy "toString"/);
});

// ── results that say why ────────────────────────────────────────────────────────────────

test('a placed result names the node, the score and the policy, and its plan the node version', () => {
  const l = ledger(node('a', 4));
  const r = place(req(), l.snapshot(), POLICIES.spread);
  assert.ok(r.kind === 'placed');
  if (r.kind !== 'placed') return;
  assert.is(r.policy, 'spread');
  assert.match(r.reason, /^placed on a by spread: score 0\.\d{3}, the best of 1 scored \(1 feasible, 1 of 1 slots checked\)$/);
  assert.is(r.plan.node_version, l.snapshot().node('a')!.version);
  assert.is(r.plan.term, 1);
});

test('in a large fleet an infeasible job reports counts per filter with a few example nodes', () => {
  const caps = Array.from({ length: 1000 }, (_, i) => node(`n${String(i).padStart(4, '0')}`, i % 4 === 0 ? 4 : 64, i % 4 === 0 ? 512 : 64));
  const r = place(req({ cores: 8, memory_gb: 100 }), ledger(...caps).snapshot());
  assert.is(r.kind, 'infeasible');
  if (r.kind !== 'infeasible') return;
  assert.equal(r.tally.map((t) => [t.filter, t.nodes, t.examples.length]), [['memory', 750, 3], ['cores', 250, 3]]);
  assert.is(r.reasons.length, 6);
  assert.is(r.reason, 'fits no node even when idle: memory on 750 nodes (e.g. n0001: needs 100 GB memory, 64 GB in total); cores on 250 nodes (e.g. n0000: needs 8 cores, 4 in total)');
});

test('a queued job names the resource most nodes lacked, and how many nodes can never fit it', () => {
  const l = ledger(node('a', 8, 16), node('b', 8, 16), node('c', 8, 4), node('d', 2, 64));
  busy(l, 'a', 'x', [0, 1, 2, 3, 4, 5]);
  busy(l, 'b', 'y', [0, 1, 2, 3, 4, 5, 6]);
  const r = place(req({ cores: 4, memory_gb: 8 }), l.snapshot());
  assert.equal(r.kind === 'queued' && r.tally.map((t) => [t.filter, t.nodes]), [['cores', 2]]);
  assert.is(r.kind === 'queued' && r.reason,
    'no node has room now: cores on 2 nodes (e.g. a: needs 4 cores, 2 free); 2 more can never fit it (cores on 1 node (d: needs 4 cores, 2 in total); memory on 1 node (c: needs 8 GB memory, 4 GB in total))');
});

// ── the limit iterator ──────────────────────────────────────────────────────────────────

test('with every node feasible, a decision scores only max(2, ceil(log2 N)) of them', () => {
  const l = ledger(...Array.from({ length: 1000 }, (_, i) => node(`n${i}`, 8)));
  const r = place(req(), l.snapshot());
  assert.is(defaultLimit(1000), 10);
  assert.equal(r.kind === 'placed' && [r.feasible, r.scanned], [10, 10]);
  const all = place(req(), l.snapshot(), POLICIES['best-fit'], { limit: 'all' });
  assert.equal(all.kind === 'placed' && all.feasible, 1000);
  const three = place(req(), l.snapshot(), POLICIES['best-fit'], { limit: 3 });
  assert.equal(three.kind === 'placed' && three.feasible, 3);
});

test('the scan starts where the task id hashes to, so one task replays and many tasks spread over the fleet', () => {
  const l = ledger(...Array.from({ length: 64 }, (_, i) => node(`n${i}`, 8)));
  const snap = l.snapshot();
  assert.is(nodeOf(place(req({ task_id: 'job-17' }), snap, POLICIES.spread)), nodeOf(place(req({ task_id: 'job-17' }), snap, POLICIES.spread)));
  const chosen = new Set(Array.from({ length: 64 }, (_, i) => nodeOf(place(req({ task_id: `job-${i}` }), snap, POLICIES.spread))));
  assert.ok(chosen.size > 16, `64 tasks landed on only ${chosen.size} nodes`);
});

test('a scan that finds nothing feasible still finds the one node with room, however far it is', () => {
  const caps = Array.from({ length: 500 }, (_, i) => node(`n${String(i).padStart(3, '0')}`, 2));
  const l = ledger(...caps);
  for (let i = 0; i < 500; i++) if (i !== 321) busy(l, caps[i].node_id, `x${i}`, [0, 1]);
  assert.is(nodeOf(place(req(), l.snapshot())), 'n321');
});

test.run();
