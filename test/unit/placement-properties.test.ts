import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Ledger, type NodeSnapshot } from '../../coordinator/ledger/index.js';
import {
  CHECKS, POLICIES, POLICY_NAMES, columnOffsets, firstMisfit, firstMisfitSlot, fitsSlot, misfitIn, needsOf, place, placeGroup, type PlacementRequest,
} from '../../coordinator/placement/index.js';
import type { NodeCapacity } from '../../shared/index.js';

/** A random fleet, some of it busy. */
const fleet = fc.record({
  nodes: fc.array(fc.record({
    cores: fc.integer({ min: 1, max: 16 }), memory: fc.integer({ min: 1, max: 64 }), bandwidth: fc.integer({ min: 10, max: 1000 }),
    gpus: fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 3 }),
  }), { minLength: 1, maxLength: 40 }),
  busy: fc.array(fc.record({ node: fc.nat(), cores: fc.integer({ min: 1, max: 8 }), memory: fc.double({ min: 0, max: 16, noNaN: true }), gpu: fc.boolean() }), { maxLength: 40 }),
  removed: fc.array(fc.nat(), { maxLength: 3 }),
});
const request = fc.record({
  task_id: fc.string({ minLength: 1, maxLength: 8 }), cores: fc.integer({ min: 0, max: 12 }), gpus: fc.integer({ min: 0, max: 2 }),
  memory_gb: fc.double({ min: 0, max: 48, noNaN: true }), bandwidth_mbps: fc.double({ min: 0, max: 800, noNaN: true }),
});

type Fleet = typeof fleet extends fc.Arbitrary<infer T> ? T : never;

function build(f: Fleet): Ledger {
  const l = new Ledger(1, 1000);
  const caps: NodeCapacity[] = f.nodes.map((n, i) => ({
    node_id: `n${i}`, address: '', core_ids: Array.from({ length: n.cores }, (_, c) => c), memory_gb: n.memory, bandwidth_mbps: n.bandwidth, cpu_model: '',
    gpus: n.gpus.map((sessions, g) => ({ id: g, name: 'g', memory_gb: 8, sessions })),
  }));
  for (const c of caps) l.upsertNode(c, 0);
  f.busy.forEach((b, k) => {
    const n = l.snapshot().node(caps[b.node % caps.length].node_id)!;
    const gpu = b.gpu ? n.free_gpu_ids.slice(0, 1) : [];
    l.commit({ task_id: `busy${k}`, node_id: n.node_id, core_ids: n.free_core_ids.slice(0, b.cores), gpu_ids: gpu, memory_gb: Math.min(b.memory, n.free_memory_gb), bandwidth_mbps: 1 }, 0);
  });
  // Removed nodes leave empty slots the scan must step over.
  for (const r of f.removed) if (l.snapshot().count > 1) l.removeNode(caps[r % caps.length].node_id);
  return l;
}
const every = (l: Ledger) => l.snapshot().nodes;
const fitsNow = (r: PlacementRequest, n: NodeSnapshot) => !firstMisfit(r, n, false);

test('reading the columns decides exactly as the filters and policies do on the node objects', () => {
  fc.assert(fc.property(fleet, request, (f, r) => {
    const snap = build(f).snapshot();
    const needs = needsOf(r);
    for (let i = 0; i < snap.slots; i++) {
      const n = snap.at(i);
      assert.is(fitsSlot(snap, i, needs), n !== undefined && fitsNow(r, n), `slot ${i}`);
      if (n) {
        for (const idle of [false, true]) {
          const b = Math.floor(i / snap.blockSize);
          const fromBlock = misfitIn(idle ? snap.blockTotals(b) : snap.blockFree(b), columnOffsets(snap.blockSize, idle), i - b * snap.blockSize, needs);
          assert.is(firstMisfitSlot(snap, i, needs, idle), firstMisfit(r, n, idle));
          assert.is(fromBlock < 0 ? undefined : CHECKS[fromBlock], firstMisfit(r, n, idle));
        }
      }
      if (n) {
        for (const p of Object.values(POLICIES)) {
          assert.is(p.avoidsSlot?.(r, snap, i) ?? p.avoids?.(r, n), p.avoids?.(r, n), `${p.name} avoidsSlot`);
          assert.is(p.scoreSlot?.(r, snap, i) ?? p.score(r, n), p.score(r, n), `${p.name} scoreSlot`);
        }
      }
    }
  }), { numRuns: 300, seed: 11 });
});

test('every policy places a request whenever some node has room, and its plan commits', () => {
  fc.assert(fc.property(fleet, request, fc.constantFrom(...POLICY_NAMES), (f, r, name) => {
    const l = build(f);
    const res = place(r, l.snapshot(), POLICIES[name]);
    const room = every(l).some((n) => fitsNow(r, n));
    assert.is(res.kind === 'placed', room, res.kind === 'placed' ? res.reason : res.reason);
    if (res.kind === 'placed') {
      assert.ok(fitsNow(r, l.snapshot().node(res.plan.node_id)!));
      const c = l.commit(res.plan, 0);
      assert.ok(c.ok, c.ok ? '' : c.reason);
      assert.equal(l.checkInvariants(), []);
    }
  }), { numRuns: 400, seed: 12 });
});

test('a request that fits no node now is queued if some node could fit it idle, and infeasible otherwise', () => {
  fc.assert(fc.property(fleet, request, (f, r) => {
    const l = build(f);
    const res = place(r, l.snapshot());
    if (res.kind === 'placed') return;
    const someday = every(l).some((n) => !firstMisfit(r, n, true));
    assert.is(res.kind, someday ? 'queued' : 'infeasible');
    // The tally counts every node, once: those that can never fit it, or those short now.
    const never = every(l).filter((n) => firstMisfit(r, n, true)).length;
    const counted = res.tally.reduce((s, t) => s + t.nodes, 0);
    assert.is(counted, res.kind === 'infeasible' ? l.snapshot().count : l.snapshot().count - never);
    if (res.kind === 'queued' && never) assert.ok(res.reason.includes(`; ${never} more can never fit it`), res.reason);
  }), { numRuns: 400, seed: 13 });
});

test('scoring every feasible node, a policy picks a node no other feasible node outscores', () => {
  fc.assert(fc.property(fleet, request, fc.constantFrom(...POLICY_NAMES), (f, r, name) => {
    const snap = build(f).snapshot();
    const policy = POLICIES[name];
    const res = place(r, snap, policy, { limit: 'all' });
    if (res.kind !== 'placed') return;
    const feasible = snap.nodes.filter((n) => fitsNow(r, n));
    const preferred = feasible.filter((n) => !policy.avoids?.(r, n));
    const pool = preferred.length ? preferred : feasible;
    const top = Math.max(...pool.map((n) => policy.score(r, n)));
    assert.is(res.score, top);
    assert.ok(pool.some((n) => n.node_id === res.plan.node_id));
  }), { numRuns: 400, seed: 14 });
});

test('in a fleet of several blocks of slots, mostly full, a scan still places whenever a node has room', () => {
  // Hundreds of nodes span several 64-slot blocks; blocks whose nodes are all full are skipped whole.
  const big = fc.record({
    nodes: fc.integer({ min: 130, max: 520 }),
    // Nodes with room, often at the edges of a block, where a skip could overshoot.
    room: fc.array(fc.oneof(fc.nat(), fc.record({ b: fc.nat(7), at: fc.constantFrom(0, 1, 62, 63) }).map(({ b, at }) => b * 64 + at)), { maxLength: 3 }),
    removed: fc.array(fc.nat(), { maxLength: 20 }),
  });
  fc.assert(fc.property(big, request, fc.constantFrom(...POLICY_NAMES), (f, r, name) => {
    const l = new Ledger(1, 1000);
    for (let i = 0; i < f.nodes; i++) {
      l.upsertNode({ node_id: `n${i}`, address: '', core_ids: [0, 1, 2, 3, 4, 5, 6, 7], memory_gb: 32, bandwidth_mbps: 1000, cpu_model: '', gpus: i % 3 ? [] : [{ id: 0, name: 'g', memory_gb: 8, sessions: 2 }] }, 0);
    }
    const open = new Set(f.room.map((k) => k % f.nodes));
    for (let i = 0; i < f.nodes; i++) {
      if (open.has(i)) continue;
      assert.ok(l.commit({ task_id: `full${i}`, node_id: `n${i}`, core_ids: [0, 1, 2, 3, 4, 5, 6, 7], gpu_ids: i % 3 ? [] : [0, 0].slice(0, 1), memory_gb: 30, bandwidth_mbps: 900 }, 0).ok);
    }
    for (const k of f.removed) l.removeNode(`n${k % f.nodes}`);
    const snap = l.snapshot();
    const res = place(r, snap, POLICIES[name]);
    const room = snap.nodes.some((n) => fitsNow(r, n));
    assert.is(res.kind === 'placed', room);
    const all = place(r, snap, POLICIES[name], { limit: 'all' });
    if (all.kind === 'placed') {
      const policy = POLICIES[name];
      const feasible = snap.nodes.filter((n) => fitsNow(r, n));
      const preferred = feasible.filter((n) => !policy.avoids?.(r, n));
      assert.is(all.score, Math.max(...(preferred.length ? preferred : feasible).map((n) => policy.score(r, n))));
    }
  }), { numRuns: 150, seed: 16 });
});

test('a group is placed whole or not at all, and a placed group commits whole', () => {
  fc.assert(fc.property(fleet, fc.array(request, { minLength: 1, maxLength: 4 }), fc.constantFrom('together' as const, 'spread' as const), (f, reqs, mode) => {
    const l = build(f);
    const members = reqs.map((r, i) => ({ ...r, task_id: `m${i}` }));
    const res = placeGroup(members, l.snapshot(), { mode });
    if (res.kind !== 'placed') return;
    assert.is(res.plans.length, members.length);
    const nodes = res.plans.map((p) => p.node_id);
    if (mode === 'together') assert.is(new Set(nodes).size, 1);
    else assert.is(new Set(nodes).size, nodes.length);
    const c = l.commitAll(res.plans, 0);
    assert.ok(c.ok, c.ok ? '' : c.reason);
    assert.equal(l.checkInvariants(), []);
  }), { numRuns: 400, seed: 15 });
});

test.run();
