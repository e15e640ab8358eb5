/** The SLA queue's order and start estimates (coordinator/queue): classes, aging, submitters, deadlines. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { DEFAULT_QUEUE_POLICY, OrderedQueue, anyLate, estimateStarts, orderQueue, type Demand } from '../../coordinator/queue/index.js';
import type { EncodingTask, NodeCapacity, SlaClass } from '../../shared/index.js';

const T0 = Date.UTC(2026, 10, 25, 12);
const MIN = 60_000;

let seq = 0;
function task(o: { cls?: SlaClass; submitter?: string; at?: number; deadline?: number; seconds?: number; state?: EncodingTask['state']; id?: string } = {}): EncodingTask {
  const d = o.seconds ?? 60;
  return {
    id: o.id ?? `t${String(seq++).padStart(3, '0')}`,
    schema: {
      input: { kind: 'synthetic', source: 'testsrc2', noise: 0, resolution: { width: 320, height: 240 }, fps: 25, duration_s: 1 },
      output: { codec: 'h264', encoder: 'libx264', preset: 'ultrafast', rate_control: { mode: 'crf', crf: 28 }, passes: 1 },
      priority: o.cls ?? 'standard', submitter: o.submitter ?? 'alice',
      ...(o.deadline !== undefined ? { deadline: new Date(o.deadline).toISOString() } : {}),
    } as EncodingTask['schema'],
    state: o.state ?? 'queued', submitted_at: o.at ?? T0, updated_at: o.at ?? T0, term: 1, attempts: 0,
    predicted: { model_version: 'm', expected: usage(d), upper: usage(d * 1.5) },
  };
}
const usage = (duration_s: number) => ({ cpu_cores: 1, gpu_percent: 0, memory_gb: 0.5, bandwidth_mbps: 5, duration_s });
const ids = (ts: EncodingTask[]) => ts.map((t) => t.id);

test('premium goes before standard before batch when submitted together', () => {
  const b = task({ cls: 'batch', id: 'b' }), s = task({ cls: 'standard', id: 's' }), p = task({ cls: 'premium', id: 'p' });
  assert.equal(orderQueue([b, s, p]).map((e) => e.task.id), ['p', 's', 'b']);
  assert.equal(orderQueue([b, s, p]).map((e) => e.position), [1, 2, 3]);
});

test('a batch job that has waited longer than its class delay goes before a fresh premium job: nothing starves', () => {
  const oldBatch = task({ cls: 'batch', id: 'old-batch', at: T0 - DEFAULT_QUEUE_POLICY.classDelayMs.batch - MIN });
  const freshPremium = task({ cls: 'premium', id: 'fresh-premium', at: T0 });
  const youngBatch = task({ cls: 'batch', id: 'young-batch', at: T0 - 5 * MIN });
  assert.equal(orderQueue([freshPremium, youngBatch, oldBatch]).map((e) => e.task.id), ['old-batch', 'fresh-premium', 'young-batch']);
});

test('one submitter\'s burst is interleaved with another submitter\'s jobs of the same class', () => {
  const burst = Array.from({ length: 6 }, (_, i) => task({ submitter: 'bulk', id: `bulk-${i}`, at: T0 + i }));
  const other = task({ submitter: 'carol', id: 'carol-0', at: T0 + 10_000 });
  const order = orderQueue([...burst, other]).map((e) => e.task.id);
  // carol's job arrives 10 s after the burst but goes third: bulk's second job waits one spacing, its third two.
  assert.equal(order.slice(0, 3), ['bulk-0', 'bulk-1', 'carol-0']);
  assert.equal(order.filter((id) => id.startsWith('bulk')), burst.map((t) => t.id), 'a submitter\'s own jobs keep their order');
});

test('a deadline pulls a job forward to the latest start that still meets it on the upper bound', () => {
  // Batch would wait 15 minutes; it must start by T0 + 90 s, so it goes before standard work
  // (virtual start T0 + 2 min) and stays behind premium work submitted with it (T0).
  const urgent = task({ cls: 'batch', id: 'urgent', at: T0, deadline: T0 + 3 * MIN, seconds: 60 });
  const standard = task({ cls: 'standard', id: 'standard', at: T0 }), premium = task({ cls: 'premium', id: 'premium', at: T0 });
  const order = orderQueue([standard, urgent, premium]);
  assert.equal(order.map((e) => e.task.id), ['premium', 'urgent', 'standard']);
  assert.is(order[1].latest_start, T0 + 3 * MIN - 90_000, 'deadline minus 1.5 × 60 s');
  assert.is(order[2].latest_start, undefined);
});

test('only queued tasks are ordered', () => {
  const running = task({ state: 'running' }), done = task({ state: 'succeeded' }), q = task();
  assert.equal(orderQueue([running, done, q]).map((e) => e.task.id), [q.id]);
});

const node = (id: string, cores: number, memory_gb = 8): NodeCapacity => ({
  node_id: id, address: '', core_ids: Array.from({ length: cores }, (_, i) => i), memory_gb, bandwidth_mbps: 1000, gpus: [], cpu_model: 'x',
});
const oneCore = (): Demand => ({ cores: 1, gpus: 0, memory_gb: 0.5, bandwidth_mbps: 5 });

test('start estimates replay the queue as work ends: what fits now starts now, the rest when earlier work ends', () => {
  const runningTask = { ...task({ state: 'running', seconds: 100 }), allocation: { node_id: 'a', core_ids: [0], gpu_ids: [], memory_gb: 0.5, bandwidth_mbps: 5, lease_expires_at: 0, term: 1 }, started_at: T0 - 40_000 };
  const q = [task({ id: 'q1', seconds: 30 }), task({ id: 'q2', seconds: 30, at: T0 + 1 }), task({ id: 'q3', seconds: 30, at: T0 + 2 })];
  const est = estimateStarts(orderQueue(q), [node('a', 2)], [runningTask], oneCore, T0);
  assert.is(est.get('q1')!.at, T0, 'one core is free now');
  assert.is(est.get('q2')!.at, T0 + 30_000, 'q1 ends first');
  assert.is(est.get('q3')!.at, T0 + 60_000, 'the running task ends at 60 s, q2 at 60 s');
  assert.match(est.get('q2')!.why, /after earlier work on a ends/);
});

test('a job that fits no node has no estimate and does not hold back the jobs behind it', () => {
  const huge = task({ id: 'huge' }), small = task({ id: 'small', at: T0 + 1 });
  const est = estimateStarts(orderQueue([huge, small]), [node('a', 2)], [], (t) => (t.id === 'huge' ? { ...oneCore(), cores: 64 } : oneCore()), T0);
  assert.is(est.get('huge')!.at, undefined);
  assert.match(est.get('huge')!.why, /fits no node even when idle/);
  assert.is(est.get('small')!.at, T0);
});

test('without nodes nothing has an estimate, and the reason says so', () => {
  const est = estimateStarts(orderQueue([task({ id: 'x' })]), [], [], oneCore, T0);
  assert.equal(est.get('x'), { why: 'no nodes have registered' });
});

test('anyLate answers exactly what the full replay says: some job starts after its due time, or never', () => {
  const CLASSES: SlaClass[] = ['premium', 'standard', 'batch'];
  const job = fc.record({
    cls: fc.constantFrom(...CLASSES), cores: fc.integer({ min: 1, max: 6 }), seconds: fc.integer({ min: 10, max: 900 }),
    age: fc.integer({ min: 0, max: 20 * MIN }), arrivesIn: fc.option(fc.integer({ min: 1, max: 10 * MIN })), slack: fc.option(fc.integer({ min: 0, max: 30 * MIN })),
  });
  fc.assert(fc.property(
    fc.array(job, { maxLength: 40 }), fc.array(fc.integer({ min: 1, max: 8 }), { maxLength: 4 }), fc.array(fc.integer({ min: 0, max: 15 * MIN }), { minLength: 3, maxLength: 3 }),
    (jobs, cores, bounds) => {
      const bound = Object.fromEntries(CLASSES.map((c, i) => [c, bounds[i]])) as Record<SlaClass, number>;
      const ts = jobs.map((j, i) => ({ ...task({ id: `j${i}`, cls: j.cls, seconds: j.seconds, at: j.arrivesIn === null ? T0 - j.age : T0 + j.arrivesIn, deadline: j.slack === null ? undefined : T0 + j.slack }), cores: j.cores }));
      const demand = (t: EncodingTask): Demand => ({ cores: (t as EncodingTask & { cores: number }).cores, gpus: 0, memory_gb: 0.5, bandwidth_mbps: 5 });
      const arrives = (t: EncodingTask) => (t.submitted_at > T0 ? t.submitted_at : undefined);
      const order = orderQueue(ts);
      const nodes = cores.map((c, i) => node(`n${i}`, c));
      const latest = new Map(order.map((e) => [e.task.id, e.latest_start ?? Infinity]));
      const due = (t: EncodingTask) => Math.max(T0, Math.min(latest.get(t.id)!, t.submitted_at + bound[t.schema.priority]));
      const est = estimateStarts(order, nodes, [], demand, T0, undefined, arrives);
      const full = order.some((e) => { const at = est.get(e.task.id)?.at; return at === undefined || at > due(e.task); });
      assert.is(anyLate(order, nodes, [], demand, T0, due, arrives), full);
    },
  ), { numRuns: 300, seed: 7 });
});

test('the queue kept in order as jobs come and go has the order orderQueue gives the same jobs, after every change', () => {
  const CLASSES: SlaClass[] = ['premium', 'standard', 'batch'];
  // Few submitters and close times, so ranks within a submitter's jobs shift and keys tie often.
  const op = fc.record({
    kind: fc.constantFrom('add', 'add', 'delete', 'repredict', 'read'), pick: fc.nat(), cls: fc.constantFrom(...CLASSES), submitter: fc.constantFrom('a', 'b', 'c'),
    at: fc.integer({ min: 0, max: 20 }), deadline: fc.option(fc.integer({ min: 0, max: 30 * MIN })), seconds: fc.integer({ min: 1, max: 900 }),
  });
  fc.assert(fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
    const q = new OrderedQueue(DEFAULT_QUEUE_POLICY);
    const held = new Set<EncodingTask>(), left: EncodingTask[] = [];
    let n = 0;
    for (const o of ops) {
      const list = [...held];
      if (o.kind === 'add') {
        // A new job, or one that left coming back (a re-queue keeps its submission time).
        const back = o.pick % 3 === 0 ? left.splice(o.pick % Math.max(1, left.length), 1)[0] : undefined;
        const t = back ?? task({ id: `j${n++}`, cls: o.cls, submitter: o.submitter, at: T0 + o.at * 1000, seconds: o.seconds, deadline: o.deadline === null ? undefined : T0 + o.deadline });
        held.add(t);
        q.add(t);
      } else if (o.kind === 'delete' && list.length) {
        const t = list[o.pick % list.length];
        held.delete(t);
        left.push(t);
        assert.ok(q.delete(t));
      } else if (o.kind === 'repredict' && list.length) {
        // Its prediction changed while queued (its deadline's latest start moves): added again to say so.
        const t = list[o.pick % list.length];
        t.predicted = { model_version: 'm', expected: usage(o.seconds), upper: usage(o.seconds * 3) };
        q.add(t);
      }
      assert.is(q.size, held.size);
      if (o.kind === 'read' || o.pick % 2 === 0) assert.equal(ids([...q.tasks()]), orderQueue([...held]).map((e) => e.task.id));
    }
    assert.equal(ids([...q.tasks()]), orderQueue([...held]).map((e) => e.task.id));
  }), { numRuns: 400, seed: 11 });
});

test('a job deleted and added again, and a submitter\'s last job leaving, keep the order right', () => {
  const q = new OrderedQueue();
  const a1 = task({ id: 'a1', submitter: 'a', at: T0 }), a2 = task({ id: 'a2', submitter: 'a', at: T0 + 1 }), b1 = task({ id: 'b1', submitter: 'b', at: T0 + 2 });
  for (const t of [a1, a2, b1]) q.add(t);
  assert.equal(ids([...q.tasks()]), ['a1', 'b1', 'a2'], 'a2 is behind b1 by the submitter spacing');
  q.delete(a1);
  assert.equal(ids([...q.tasks()]), ['a2', 'b1'], 'a2 moves up to a1\'s rank');
  q.add(a1);
  q.delete(b1);
  assert.equal(ids([...q.tasks()]), ['a1', 'a2']);
  q.add(b1);
  assert.equal(ids([...q.tasks()]), orderQueue([a1, a2, b1]).map((e) => e.task.id));
});

test.run();
