import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Ledger, place } from '../../coordinator/index.js';

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
    }
  }), { numRuns: 300, seed: 1 });
});

test.run();
