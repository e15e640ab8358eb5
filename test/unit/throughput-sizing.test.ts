import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EFFICIENCY_THRESHOLD, IDLE_GRACE_MS, curveOf, isCpuBatch, lazyCurve, sizeWithReason, throughputCores, type SizingContext } from '../../coordinator/sizing/index.js';
import { Ledger } from '../../coordinator/ledger/index.js';
import type { EncodingTask, NodeCapacity } from '../../shared/index.js';

/** A curve from a speed-up law: time at c cores = t1 / c^alpha (alpha 1 is perfect scaling). */
const curve = (t1: number, alpha: number, cores = 8) =>
  curveOf(Array.from({ length: cores }, (_, i) => ({ expected: t1 / (i + 1) ** alpha, upper: (1.3 * t1) / (i + 1) ** alpha })));
const ctx = (over: Partial<SizingContext> = {}): SizingContext => ({
  curve: curve(20, 0.5), waiting: 0, idle_cores: 8, most_idle_on_a_node: 8, now: 10_000, submitted_at: 0, ...over,
});

test('with others waiting, a job that scales sub-linearly gets one core', () => {
  // 2 cores at alpha 0.5: E = 1 / 2^0.5 = 0.71, under the threshold.
  const s = throughputCores(ctx({ waiting: 3 }));
  assert.is(s.cores, 1);
  assert.match(s.why, /3 job\(s\) waiting/);
});

test('with others waiting, a job that scales well keeps the cores it uses efficiently, up to an equal share', () => {
  // alpha 0.95: E(c) = c^-0.05 stays ≥ 0.8 up to 8 cores; 8 idle among 2 jobs → 4 each.
  assert.is(throughputCores(ctx({ curve: curve(20, 0.95), waiting: 1 })).cores, 4);
  // Alone in the queue with 8 idle it could have 8, but only one node has 3 free.
  assert.is(throughputCores(ctx({ curve: curve(20, 0.95), waiting: 0, most_idle_on_a_node: 3 })).cores, 3);
});

test('the efficiency threshold is where a further core stops paying for itself', () => {
  // alpha = 0.7: E(2) = 2^-0.3 = 0.81 (kept), E(3) = 3^-0.3 = 0.72 (not).
  assert.ok(2 ** -0.3 >= EFFICIENCY_THRESHOLD && 3 ** -0.3 < EFFICIENCY_THRESHOLD);
  assert.is(throughputCores(ctx({ curve: curve(20, 0.7), waiting: 1 })).cores, 2);
});

test('with others waiting, a job whose time claims a speed-up its predicted CPU does not back gets one core, and the reason gives the lower efficiency', () => {
  // Times say 2 cores run it 1.8× faster (E = 0.9), but it is expected to keep only 1.2 of them busy (E ≤ 0.6).
  const claimed = curveOf([{ expected: 18, upper: 23, cpu_cores: 1 }, { expected: 10, upper: 13, cpu_cores: 1.2 }]);
  const s = throughputCores(ctx({ curve: claimed, waiting: 2, most_idle_on_a_node: 2, idle_cores: 8 }));
  assert.is(s.cores, 1);
  assert.match(s.why, /a 2nd core would run at efficiency 0\.60/);
  // Backed by its CPU (1.9 of 2 busy), the same times earn the 2nd core.
  const backed = curveOf([{ expected: 18, upper: 23, cpu_cores: 1 }, { expected: 10, upper: 13, cpu_cores: 1.9 }]);
  assert.is(throughputCores(ctx({ curve: backed, waiting: 2, most_idle_on_a_node: 2, idle_cores: 8 })).cores, 2);
});

test('with nobody waiting, idle cores are used while each saves at least 5 %', () => {
  // A flat curve beyond 2 cores: only the 2nd core pays.
  const flat = curveOf([{ expected: 10, upper: 13 }, { expected: 7, upper: 9 }, { expected: 6.9, upper: 9 }, { expected: 6.9, upper: 9 }]);
  const s = throughputCores(ctx({ curve: flat, most_idle_on_a_node: 4 }));
  assert.is(s.cores, 2);
  assert.match(s.why, /nothing else waiting/);
});

test('a job that arrives alone waits the grace period before taking idle cores, then takes them', () => {
  const early = throughputCores(ctx({ now: 100, submitted_at: 0 }));
  assert.is(early.retry_at, IDLE_GRACE_MS);
  const later = throughputCores(ctx({ now: IDLE_GRACE_MS, submitted_at: 0 }));
  assert.is(later.retry_at, undefined);
  assert.ok(later.cores > 1, `took ${later.cores}`);
});

test('sizing a job on a 128-core node asks the model only for the points its rule reads', () => {
  const asked: number[] = [];
  const lazy = lazyCurve(128, (c) => { asked.push(c); return { expected: 20 / c ** 0.5, upper: 26 / c ** 0.5 }; });
  assert.is(throughputCores(ctx({ curve: lazy, waiting: 10, idle_cores: 128, most_idle_on_a_node: 128 })).cores, 1);
  assert.equal(asked.sort((a, b) => a - b), [1, 2]);
  // Asked again, nothing is predicted twice.
  throughputCores(ctx({ curve: lazy, waiting: 10, idle_cores: 128, most_idle_on_a_node: 128 }));
  assert.is(asked.length, 2);
});

test('on a fleet with plenty of idle cores, a job that arrives alone takes them without waiting', () => {
  const s = throughputCores(ctx({ now: 100, submitted_at: 0, idle_cores: 1000, most_idle_on_a_node: 8 }));
  assert.is(s.retry_at, undefined);
  assert.ok(s.cores > 1, `took ${s.cores}`);
});

test('a deadline gets the fewest cores whose upper bound meets it, even when others wait', () => {
  // upper at c cores = 26 / c: 13 s needs 2 cores, 7 s needs 4.
  const s = throughputCores(ctx({ curve: curve(20, 1), waiting: 4, now: 0, deadline_at: 7_000 }));
  assert.is(s.cores, 4);
  assert.match(s.why, /deadline/);
  // No size meets it: all that one node has free.
  assert.is(throughputCores(ctx({ curve: curve(20, 1), now: 0, deadline_at: 1_000, most_idle_on_a_node: 5 })).cores, 5);
});

const node = (id: string, cores: number): NodeCapacity => ({
  node_id: id, address: '127.0.0.1:1', core_ids: Array.from({ length: cores }, (_, i) => i), memory_gb: 16, bandwidth_mbps: 1000, cpu_model: 'test', gpus: [],
});
const task = (encoder: string, kind?: 'actor'): EncodingTask => ({
  id: 't', state: 'queued', submitted_at: 0, updated_at: 0, term: 1, attempts: 0,
  schema: { ...(kind && { kind }), input: { kind: 'synthetic', source: 'testsrc2' }, output: { encoder, codec: 'h264' }, priority: 'standard', submitter: 'x' } as unknown as EncodingTask['schema'],
  predicted: {
    expected: { cpu_cores: 1.9, memory_gb: 0.2, bandwidth_mbps: 1, duration_s: 4, gpu_percent: 0 },
    upper: { cpu_cores: 2, memory_gb: 0.3, bandwidth_mbps: 2, duration_s: 6, gpu_percent: 0 },
  } as EncodingTask['predicted'],
});

test('only the predictive policy sizes CPU batch jobs for throughput; memory stays at the calibrated bound', () => {
  const l = new Ledger(1, 10_000);
  l.upsertNode(node('n', 8), 0);
  const snap = l.snapshot();
  const t = task('libx264');
  const sized = sizeWithReason(t, snap, { kind: 'predictive' }, ctx({ waiting: 2 }));
  assert.is(sized.req.cores, 1, 'the throughput rule, not the 2 cores the job would keep busy');
  assert.is(sized.req.memory_gb, 0.3);
  assert.ok(sized.why);
  assert.is(sizeWithReason(t, snap, { kind: 'predictive' }).req.cores, 2, 'without the pass view: the cores it keeps busy');
  assert.is(sizeWithReason(t, snap, { kind: 'fixed-slots', slots: 2 }, ctx()).req.cores, 4);
  assert.ok(isCpuBatch(t));
  assert.not.ok(isCpuBatch(task('h264_nvenc')));
  assert.not.ok(isCpuBatch(task('libx264', 'actor')));
});

test('with the class prediction at hand, bandwidth is reserved at its bound for the cores chosen, memory never below the admission bound', () => {
  const l = new Ledger(1, 10_000);
  l.upsertNode(node('n', 8), 0);
  const asked: number[] = [];
  const at = (cores: number) => { asked.push(cores); return { upper: { memory_gb: 0.1 + 0.05 * cores, bandwidth_mbps: 3 * cores } }; };
  const sized = sizeWithReason(task('libx264'), l.snapshot(), { kind: 'predictive' }, ctx({ waiting: 2, at }));
  assert.is(sized.req.cores, 1);
  assert.is(sized.req.bandwidth_mbps, 3);
  assert.is(sized.req.memory_gb, 0.3, 'the admission bound (0.3), above the one-core bound (0.15)');
  assert.ok(asked.every((c) => c === 1), `asked at ${asked.join(',')}`);
  const hungry = (cores: number) => ({ upper: { memory_gb: 0.4 * cores, bandwidth_mbps: 1 } });
  assert.is(sizeWithReason(task('libx264'), l.snapshot(), { kind: 'predictive' }, ctx({ waiting: 2, at: hungry })).req.memory_gb, 0.4);
  const stopped = { ...task('libx264'), memory_floor_gb: 0.6 };
  assert.is(sizeWithReason(stopped, l.snapshot(), { kind: 'predictive' }, ctx({ waiting: 2, at })).req.memory_gb, 0.6);
});

test.run();
