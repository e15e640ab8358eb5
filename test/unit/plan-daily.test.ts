/**
 * A workload template's daily curve (issue 19): 24 multipliers of its rate, one per hour of the
 * day (UTC; the simulation starts at midnight), shaping its Poisson arrivals. Counted over
 * simulated days with a seed; a malformed curve is refused naming the field.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModelFile, seededRandom } from '../../models/index.js';
import { arrivals, parseFleet, parseWorkload, simulate } from '../../coordinator/plan/index.js';

const job = { input: { resolution: '640x360', fps: 30, duration_s: 4 }, output: { codec: 'h264', preset: 'veryfast', rate_control: { mode: 'crf', crf: 28 } } };
const thrown = (fn: () => unknown) => { try { fn(); return ''; } catch (e) { return (e as Error).message; } };
/** Quiet from 22:00 to 06:00, ×3 from noon to 14:00, ×1 otherwise. */
const CURVE = Array.from({ length: 24 }, (_, h) => (h < 6 || h >= 22 ? 0 : h === 12 || h === 13 ? 3 : 1));
const hourOf = (ms: number) => Math.floor((ms % 86_400_000) / 3_600_000);

/** Arrivals per hour of the day. */
function perHour(at: ArrayLike<number>): number[] {
  const n = Array(24).fill(0);
  for (let i = 0; i < at.length; i++) n[hourOf(at[i])]++;
  return n;
}

test('arrivals follow the daily curve: none in the hours it is zero, three times as many at its peak, over two simulated days', () => {
  const w = parseWorkload({ duration: '2d', jobs: [{ name: 'vod', rate: '300/h', daily: CURVE, job }] });
  for (const seed of [1, 2]) {
    const n = perHour(arrivals(w, seededRandom(seed)).at);
    const night = [0, 1, 2, 3, 4, 5, 22, 23];
    assert.equal(night.map((h) => n[h]), [0, 0, 0, 0, 0, 0, 0, 0], `seed ${seed}: nothing arrives at night`);
    // 600 expected in each ×1 hour (300/h over two days), 1,800 in each peak hour.
    const day = n.filter((_, h) => !night.includes(h) && h !== 12 && h !== 13);
    for (const x of day) assert.ok(Math.abs(x - 600) < 6 * Math.sqrt(600), `seed ${seed}: ${x} in a ×1 hour, 600 expected`);
    for (const h of [12, 13]) assert.ok(Math.abs(n[h] - 1800) < 6 * Math.sqrt(1800), `seed ${seed}: ${n[h]} at ${h}:00, 1,800 expected`);
    assert.ok(Math.min(n[12], n[13]) > Math.max(...day), `seed ${seed}: the peak hours have the most arrivals`);
  }
});

test('the simulation submits each job at the curve\'s arrivals, and a flat curve of ones is the plain rate', () => {
  const model = loadModelFile();
  const fleet = parseFleet({ nodes: [{ type: 'c16', count: 2, cores: 16, memory_gb: 64 }] });
  const w = parseWorkload({ duration: '1d', jobs: [{ name: 'vod', rate: '12/h', daily: CURVE, job }] });
  const sim = simulate(w, fleet, model, { policy: 'predictive', seed: 4 });
  assert.equal(sim.jobs.map((j) => j.arrival_ms), Array.from(arrivals(w, seededRandom(4)).at), 'the same arrivals as the curve gives for its seed');
  assert.ok(sim.jobs.length > 100, `${sim.jobs.length} jobs`);
  assert.not.ok(sim.jobs.some((j) => CURVE[hourOf(j.arrival_ms)] === 0), 'no job arrives in a quiet hour');
  assert.ok(sim.jobs.every((j) => j.state === 'succeeded'));
  // A curve of ones thins nothing: on average the rate's own count (12/h over 10 days = 2,880).
  const flat = parseWorkload({ duration: '10d', jobs: [{ name: 'vod', rate: '12/h', daily: Array(24).fill(1), job }] });
  const count = arrivals(flat, seededRandom(9)).at.length;
  assert.ok(Math.abs(count - 2880) < 6 * Math.sqrt(2880), `${count} arrivals, 2,880 expected`);
});

test('a malformed daily curve is refused naming the field: the wrong length, a negative or a non-number hour, all zeros, or on a count template', () => {
  const refused = (daily: unknown, extra: Record<string, unknown> = { rate: '10/h' }) =>
    thrown(() => parseWorkload({ duration: '1d', jobs: [{ name: 'vod', ...extra, daily, job }] }));
  assert.match(refused(Array(23).fill(1)), /jobs\.0\.daily \[.*\] is not a list of 24 multipliers, one per hour of the day \(it has 23\)/);
  assert.match(refused(Array(25).fill(1)), /jobs\.0\.daily .* \(it has 25\)/);
  assert.match(refused(CURVE.map((x, h) => (h === 7 ? -1 : x))), /jobs\.0\.daily\.7 -1 is not at least 0/);
  assert.match(refused(CURVE.map((x, h) => (h === 9 ? 'busy' : x))), /jobs\.0\.daily\.9 "busy" is not a number/);
  assert.match(refused('flat'), /jobs\.0\.daily "flat" is not a list/);
  assert.match(refused(Array(24).fill(0)), /jobs\.0\.daily \(vod\) is 0 at every hour: no job would arrive/);
  assert.match(refused(CURVE, { count: 5 }), /jobs\.0\.daily \(vod\) shapes a rate, but this template is a count/);
  assert.match(refused(Array(23).fill(1)), /^--workload: /, 'the flag that named the file');
});

test.run();
