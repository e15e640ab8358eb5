import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Ledger, place } from '../../coordinator/index.js';
import type { AgentReport, LedgerState, Plan } from '../../coordinator/ledger/index.js';
import { POLICIES, POLICY_NAMES } from '../../coordinator/placement/index.js';
import type { NodeCapacity, ResourceAllocation } from '../../shared/index.js';

type Op = { kind: 'reserve'; cores: number; mem: number } | { kind: 'release'; pick: number } | { kind: 'lose'; node: number };
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('reserve' as const), cores: fc.integer({ min: 1, max: 4 }), mem: fc.double({ min: 0.1, max: 6, noNaN: true }) }),
  fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('lose' as const), node: fc.integer({ min: 0, max: 2 }) }),
);

test('the ledger is never over-committed and never releases twice over random operation sequences', () => {
  fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
    const l = new Ledger(1, 10_000);
    const caps = [0, 1, 2].map((i) => ({ node_id: `n${i}`, address: '', core_ids: [i * 4, i * 4 + 1, i * 4 + 2, i * 4 + 3], memory_gb: 8, bandwidth_mbps: 1000, gpus: [], cpu_model: '' }));
    caps.forEach((c) => l.upsertNode(c, 0));
    const live = new Set<string>();
    let seq = 0;
    for (const o of ops) {
      if (o.kind === 'reserve') {
        const id = `t${seq++}`;
        const r = place({ task_id: id, cores: o.cores, gpus: 0, memory_gb: o.mem, bandwidth_mbps: 1 }, l.snapshot());
        if (r.kind === 'placed' && l.commit(r.plan, 0).ok) live.add(id);
      } else if (o.kind === 'release' && live.size) {
        const id = [...live][o.pick % live.size];
        assert.ok(l.release(id));
        assert.not.ok(l.release(id));
        live.delete(id);
      } else if (o.kind === 'lose') {
        for (const lost of l.removeNode(`n${o.node}`)) live.delete(lost.task_id);
        if (!l.hasNode(`n${o.node}`)) l.upsertNode(caps[o.node], 0);
      }
      // Invariants: free + reserved = capacity on every node; each reservation is a live task's.
      const res = l.allReservations();
      assert.equal(res.length, live.size);
      for (const n of l.snapshot().nodes) {
        const mine = res.filter((a) => a.node_id === n.capacity.node_id);
        const used = mine.flatMap((a) => a.core_ids);
        assert.equal(new Set(used).size, used.length, 'a core is reserved twice');
        assert.equal(used.length + n.free_core_ids.length, n.capacity.core_ids.length);
        assert.ok(n.free_memory_gb >= -1e-9, 'memory over-committed');
        assert.ok(Math.abs(mine.reduce((s, a) => s + a.memory_gb, 0) + n.free_memory_gb - n.capacity.memory_gb) < 1e-6);
      }
      assert.equal(l.checkInvariants((t) => live.has(t)), []);
    }
  }), { numRuns: 300, seed: 1 });
});

// ── the whole life of a ledger: reserve, release, node loss, leases, stale plans, failover ──

const LEASE = 400;
const CAPS: NodeCapacity[] = [
  { node_id: 'cpu-a', address: '', core_ids: [0, 1, 2, 3], memory_gb: 8, bandwidth_mbps: 100, gpus: [], cpu_model: '' },
  { node_id: 'cpu-b', address: '', core_ids: [0, 1, 2, 3, 4, 5, 6, 7], memory_gb: 16, bandwidth_mbps: 200, gpus: [], cpu_model: '' },
  { node_id: 'gpu-a', address: '', core_ids: [0, 1], memory_gb: 8, bandwidth_mbps: 100, gpus: [{ id: 0, name: 'g', memory_gb: 8, sessions: 2 }], cpu_model: '' },
  { node_id: 'gpu-b', address: '', core_ids: [0, 1, 2, 3], memory_gb: 12, bandwidth_mbps: 100, gpus: [{ id: 0, name: 'g', memory_gb: 8, sessions: 1 }, { id: 3, name: 'g', memory_gb: 8 }], cpu_model: '' },
];

type LifeOp =
  | { kind: 'reserve'; cores: number; gpus: number; mem: number; bw: number; policy: number }
  | { kind: 'replace'; pick: number; policy: number }
  | { kind: 'release'; pick: number }
  | { kind: 'lose'; node: number }
  | { kind: 'tick'; ms: number; touch: number[] }
  | { kind: 'stale'; cores: number; pick: number }
  | { kind: 'save' }
  | { kind: 'failover'; report: number[]; dies: number[] };

const node = fc.integer({ min: 0, max: CAPS.length - 1 });
const lifeOp: fc.Arbitrary<LifeOp> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('reserve' as const), cores: fc.integer({ min: 1, max: 3 }), gpus: fc.integer({ min: 0, max: 1 }), mem: fc.double({ min: 0.05, max: 5, noNaN: true }), bw: fc.double({ min: 0, max: 60, noNaN: true }), policy: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('replace' as const), pick: fc.nat(), policy: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('lose' as const), node }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 150 }), touch: fc.array(node, { maxLength: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('stale' as const), cores: fc.integer({ min: 1, max: 2 }), pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('save' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('failover' as const), report: fc.subarray([0, 1, 2, 3]), dies: fc.array(fc.nat(), { maxLength: 3 }) }) },
);

const sameAlloc = (a: ResourceAllocation, b: ResourceAllocation) =>
  a.node_id === b.node_id && [...a.core_ids].sort().join() === [...b.core_ids].sort().join() && [...a.gpu_ids].sort().join() === [...b.gpu_ids].sort().join()
  && Math.abs(a.memory_gb - b.memory_gb) < 1e-9 && Math.abs(a.bandwidth_mbps - b.bandwidth_mbps) < 1e-9;

test('over reserve, release, node loss, lease expiry, stale plans and failovers the ledger keeps every invariant', () => {
  fc.assert(fc.property(fc.array(lifeOp, { minLength: 10, maxLength: 120, size: 'large' }), (ops) => {
    let term = 1;
    let l = new Ledger(term, LEASE);
    let now = 0;
    for (const c of CAPS) l.upsertNode(c, now);
    /** The truth: what each task that holds resources holds. */
    const live = new Map<string, ResourceAllocation>();
    const gone = new Set<string>();
    let saved: LedgerState = JSON.parse(JSON.stringify(l.toState()));
    let seq = 0;
    const isLive = (t: string) => live.has(t);
    const pickLive = (k: number) => [...live.keys()].sort()[k % live.size];
    const drop = (t: string) => { live.delete(t); gone.add(t); };

    for (const o of ops) {
      if (o.kind === 'reserve' || o.kind === 'replace') {
        let id = `t${seq++}`;
        let req = { task_id: id, cores: 0, gpus: 0, memory_gb: 0, bandwidth_mbps: 0 };
        if (o.kind === 'reserve') req = { task_id: id, cores: o.cores, gpus: o.gpus, memory_gb: o.mem, bandwidth_mbps: o.bw };
        else {
          // A task re-queued and placed again keeps its id (as the leader does on a refusal).
          if (!live.size) continue;
          id = pickLive(o.pick);
          const a = live.get(id)!;
          assert.ok(l.release(id));
          live.delete(id);
          req = { task_id: id, cores: a.core_ids.length, gpus: a.gpu_ids.length, memory_gb: a.memory_gb, bandwidth_mbps: a.bandwidth_mbps };
        }
        const r = place(req, l.snapshot(), POLICIES[POLICY_NAMES[o.policy % POLICY_NAMES.length]]);
        if (r.kind === 'placed') {
          const c = l.commit(r.plan, now);
          assert.ok(c.ok, 'a fresh plan from the current snapshot commits');
          if (c.ok) { live.set(id, c.allocation); gone.delete(id); }
        } else if (o.kind === 'replace') gone.add(id);
      } else if (o.kind === 'release') {
        if (!live.size) continue;
        const id = pickLive(o.pick);
        assert.ok(l.release(id));
        assert.not.ok(l.release(id), 'released twice');
        drop(id);
      } else if (o.kind === 'lose') {
        const id = CAPS[o.node].node_id;
        for (const lost of l.removeNode(id)) {
          assert.is(lost.allocation.node_id, id);
          drop(lost.task_id);
        }
        assert.not.ok(l.hasNode(id));
        l.upsertNode(CAPS[o.node], now);
      } else if (o.kind === 'tick') {
        now += o.ms;
        for (const n of o.touch) assert.ok(l.touch(CAPS[n].node_id, now));
        for (const d of l.expire(now)) {
          assert.ok(live.has(d.task_id), 'expired a reservation of a task that held none');
          assert.ok(d.allocation.lease_expires_at < now);
          drop(d.task_id);
          assert.not.ok(l.release(d.task_id), 'an expired reservation was released again');
        }
        for (const a of l.allReservations()) assert.ok(a.lease_expires_at >= now, 'a lapsed lease survived expire()');
      } else if (o.kind === 'stale') {
        // A plan made on a snapshot is refused once its node changed, and says so.
        const snap = l.snapshot();
        const r = place({ task_id: `s${seq++}`, cores: o.cores, gpus: 0, memory_gb: 0.1, bandwidth_mbps: 0 }, snap);
        if (r.kind !== 'placed') continue;
        const nodeId = r.plan.node_id;
        const onNode = [...live.entries()].filter(([, a]) => a.node_id === nodeId).map(([t]) => t).sort();
        if (onNode.length) {
          const t = onNode[o.pick % onNode.length];
          assert.ok(l.release(t));
          drop(t);
        } else {
          const n = snap.node(nodeId)!;
          const id = `s${seq++}`;
          const c = l.commit({ task_id: id, node_id: nodeId, core_ids: [n.free_core_ids.at(-1)!], gpu_ids: [], memory_gb: 0, bandwidth_mbps: 0, node_version: n.version }, now);
          assert.ok(c.ok, 'a plan against the current node version commits');
          if (c.ok) live.set(id, c.allocation);
        }
        const stale = l.commit(r.plan, now);
        assert.equal(stale.ok, false, 'a plan against an old node version was committed');
        assert.equal(!stale.ok && stale.code, 'stale');
        const otherTerm = l.commit({ ...r.plan, node_version: l.snapshot().node(nodeId)!.version, term: term - 1 }, now);
        assert.equal(!otherTerm.ok && otherTerm.code, 'term');
      } else if (o.kind === 'save') {
        saved = JSON.parse(JSON.stringify(l.toState()));
      } else {
        // Failover from the last save: some tasks ended meanwhile, some agents report.
        const died = new Map<string, ResourceAllocation>();
        for (const k of o.dies) {
          if (!live.size) break;
          const t = pickLive(k);
          died.set(t, live.get(t)!);
          drop(t);
        }
        term++;
        const next = Ledger.fromState(JSON.parse(JSON.stringify(saved)), term, LEASE, now);
        assert.equal(next.restoreSkipped, []);
        const reporting = [...new Set(o.report.map((n) => CAPS[n].node_id))];
        // Agents may still report a task that ended during the failover.
        const reports: AgentReport[] = reporting.map((node_id) => ({
          node_id, running: [...live.entries(), ...died.entries()].filter(([, a]) => a.node_id === node_id).map(([task_id, allocation]) => ({ task_id, allocation })),
        }));
        const r = next.reconcile(reports, isLive, now);
        assert.equal(next.checkInvariants(isLive), []);
        for (const rep of reports) {
          for (const { task_id, allocation } of rep.running) {
            if (died.has(task_id)) {
              assert.ok(r.ignored.some((e) => e.task_id === task_id), `ended task ${task_id} was reported but not ignored`);
              continue;
            }
            const held = next.reservation(task_id);
            const refused = r.refused.some((e) => e.task_id === task_id);
            assert.ok(refused || (held && sameAlloc(held, allocation)), `reported task ${task_id} is not reserved as it runs`);
          }
        }
        for (const e of r.dropped) {
          assert.not.ok(isLive(e.task_id));
          assert.not.ok(next.release(e.task_id), 'a dropped reservation was released again');
        }
        // From here the new ledger is the leader's truth: tasks it does not hold are re-queued.
        for (const [t] of live) {
          const held = next.reservation(t);
          if (held) live.set(t, held);
          else drop(t);
        }
        l = next;
      }
      const violations = l.checkInvariants(isLive);
      assert.equal(violations, [], `after ${o.kind}: ${violations.join('; ')}`);
      assert.is(l.allReservations().length, live.size);
      for (const [t, a] of live) assert.ok(sameAlloc(l.reservation(t)!, a), `task ${t}'s reservation differs from what it holds`);
      for (const t of gone) assert.is(l.reservation(t), undefined);
      for (const n of l.snapshot().nodes) {
        assert.ok(n.free_memory_gb >= 0 && n.free_bandwidth_mbps >= 0 && n.gpus.every((g) => g.free_sessions >= 0), `${n.node_id} is over-committed`);
      }
    }
  }), { numRuns: 500, seed: 5 });
});

test('any plan whose node version is not the node\'s current one is refused as stale, and one that is current commits', () => {
  fc.assert(fc.property(fc.integer({ min: -3, max: 3 }), fc.integer({ min: 1, max: 4 }), (delta, cores) => {
    const l = new Ledger(1, LEASE);
    for (const c of CAPS) l.upsertNode(c, 0);
    const n = l.snapshot().node('cpu-b')!;
    const plan: Plan = { task_id: 'x', node_id: 'cpu-b', core_ids: n.free_core_ids.slice(0, cores), gpu_ids: [], memory_gb: 1, bandwidth_mbps: 1, node_version: n.version + delta };
    const c = l.commit(plan, 0);
    assert.is(c.ok, delta === 0);
    if (!c.ok) assert.is(c.code, 'stale');
  }), { numRuns: 100, seed: 2 });
});

test('a snapshot never changes after it is taken, whatever the ledger does next', () => {
  fc.assert(fc.property(fc.array(lifeOp, { maxLength: 40 }), (ops) => {
    const l = new Ledger(1, LEASE);
    for (const c of CAPS) l.upsertNode(c, 0);
    const snap = l.snapshot();
    const before = JSON.stringify(snap.nodes);
    const count = snap.count;
    let seq = 0;
    for (const o of ops) {
      if (o.kind === 'reserve') {
        const r = place({ task_id: `t${seq++}`, cores: o.cores, gpus: o.gpus, memory_gb: o.mem, bandwidth_mbps: o.bw }, l.snapshot());
        if (r.kind === 'placed') l.commit(r.plan, 0);
      } else if (o.kind === 'release') {
        const ids = l.reservedTaskIds(CAPS[o.pick % CAPS.length].node_id);
        if (ids.length) l.release(ids[0]);
      } else if (o.kind === 'lose') l.removeNode(CAPS[o.node].node_id);
      else if (o.kind === 'tick') for (const n of o.touch) l.touch(CAPS[n].node_id, o.ms);
    }
    assert.is(JSON.stringify(snap.nodes), before);
    assert.is(snap.count, count);
    // Each block's maxima are exactly the largest free amounts of its slots, then and now.
    for (const s of [snap, l.snapshot()]) {
      for (let b = 0; b * s.blockSize < s.slots; b++) {
        for (const c of [0, 1, 2, 3, 4] as const) {
          let m = -0.5;
          for (let i = b * s.blockSize; i < Math.min(s.slots, (b + 1) * s.blockSize); i++) m = Math.max(m, s.amount(i, c));
          assert.is(s.blockMax(b, c), m, `block ${b} column ${c}`);
        }
      }
    }
    for (let i = 0; i < snap.slots; i++) {
      const n = snap.at(i)!;
      assert.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((c) => snap.amount(i, c as 0)), [
        n.free_core_ids.length, n.free_gpu_ids.length, n.free_memory_gb, n.free_bandwidth_mbps, n.free_gpu_sessions,
        n.capacity.core_ids.length, n.gpus.length, n.capacity.memory_gb, n.capacity.bandwidth_mbps, n.gpu_sessions,
      ]);
      assert.is(snap.node(n.node_id), n);
    }
  }), { numRuns: 200, seed: 3 });
});

test.run();
