/** The core's memory of recently ended tasks (coordinator/core/recent.ts): the last N set, as a Map with eviction would keep them. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Recent } from '../../coordinator/core/recent.js';

/** What Recent replaces: a Map, a key set again moved to the end, the first key deleted past `max`. */
function model(max: number) {
  const m = new Map<string, number>();
  return {
    m,
    set(k: string, v: number) { m.delete(k); m.set(k, v); if (m.size > max) m.delete(m.keys().next().value!); },
  };
}

test('keeps the last N keys set, a key set again counting as the newest, as a Map with eviction does', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 40 }), fc.array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer()), { maxLength: 3000 }), (max, ops) => {
    const r = new Recent<number>(max), ref = model(max);
    for (const [k, v] of ops) {
      r.set(`t${k}`, v);
      ref.set(`t${k}`, v);
      assert.is(r.size, ref.m.size);
    }
    assert.equal([...r.values()], [...ref.m.values()]);
    for (let k = 0; k <= 60; k++) {
      assert.is(r.get(`t${k}`), ref.m.get(`t${k}`));
      assert.is(r.has(`t${k}`), ref.m.has(`t${k}`));
    }
  }), { numRuns: 200 });
});

test('stays small when the same few keys are set again and again (stale entries are dropped)', () => {
  const r = new Recent<number>(10);
  for (let i = 0; i < 100_000; i++) r.set(`t${i % 5}`, i);
  assert.is(r.size, 5);
  assert.equal([...r.values()], [99_995, 99_996, 99_997, 99_998, 99_999]);
  assert.ok((r as unknown as { order: unknown[] }).order.length < 3000, 'its entry list does not grow with every set');
});

test.run();
