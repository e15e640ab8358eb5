/**
 * The feedback loop's pure parts (coordinator/feedback): rolling window and MAPE, the
 * Page-Hinkley drift test, alert de-duplication, the memory margin rule, the bounded online
 * correction and its reset with a new model version, and the agent's reports (node-agent/feedback).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  applyMemoryRatio, applyReport, correctPrediction, emptyFeedbackState, errorEntry, feedbackSettings, freshPageHinkley, invalidFeedbackRecord, judgeError,
  pageHinkley, pushWindow, rollingFigures, updateCorrection, CorrectedPredictor, DEFAULT_CORRECTION,
  type CorrectionSource, type WindowEntry,
} from '../../coordinator/feedback/index.js';
import { completionReport, OverrunWatch } from '../../node-agent/feedback.js';
import { seededRandom, type ResourcePredictor } from '../../models/index.js';
import type { EncodeSample, EncodingSchema, FeedbackReport, ModelAlert, Prediction, ResourceAllocation, ResourceUsage } from '../../shared/index.js';

const near = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) <= eps, `${a} is not ${b}`);

/** Gaussian noise from a seeded uniform source (Box-Muller). */
function gauss(rand: () => number, sd: number): () => number {
  return () => sd * Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

const usage = (o: Partial<ResourceUsage> = {}): ResourceUsage => ({ cpu_cores: 1, gpu_percent: 0, memory_gb: 0.1, bandwidth_mbps: 5, duration_s: 1, ...o });

function report(o: { duration?: [number, number]; memory?: [number, number, number]; node?: string; version?: string; job?: string; codec?: string } = {}): FeedbackReport {
  const targets: FeedbackReport['targets'] = {};
  if (o.duration) targets.duration_s = { predicted: o.duration[0], actual: o.duration[1] };
  if (o.memory) targets.memory_gb = { predicted: o.memory[0], actual: o.memory[1], reserved: o.memory[2] };
  return {
    kind: 'completion', job_id: o.job ?? `j${Math.random()}`, attempt: 1, node: o.node ?? 'n1', model_version: o.version ?? 'v1',
    codec: o.codec ?? 'h264', encoder: 'libx264', work: 'task', targets, at: 0,
  };
}

// ── window ───────────────────────────────────────────────────────────────────────────────

test('a run\'s error is its absolute share of the actual, its signed log ratio, and whether its bound held it', () => {
  const e = errorEntry(1, 2, 1.5)!;
  near(e.ape, 0.5);
  near(e.log, Math.log(2));
  assert.is(e.covered, false);
  assert.is(errorEntry(2, 1, 3)!.covered, true);
  assert.is(errorEntry(0, 1), undefined, 'a zero prediction says nothing about a ratio');
  assert.is(errorEntry(1, NaN), undefined);
  assert.is(errorEntry(1, 1)!.covered, undefined, 'no bound, no coverage');
});

test('the rolling window keeps the latest N runs, and its MAPE, bias and coverage are theirs alone', () => {
  let w: WindowEntry[] = [];
  for (const [p, a] of [[1, 10], [1, 1], [1, 2], [2, 1]]) w = pushWindow(w, errorEntry(p, a, 1.5)!, 3);
  assert.is(w.length, 3, 'the first run (90% error) has left the window');
  const f = rollingFigures(w);
  near(f.mape, (100 * (0 + 0.5 + 1)) / 3);
  near(f.bias, (0 + Math.log(2) + Math.log(0.5)) / 3);
  near(f.coverage, 2 / 3);
  assert.ok(Number.isNaN(rollingFigures([]).mape));
});

// ── Page-Hinkley ─────────────────────────────────────────────────────────────────────────

const PH = { delta: 0.1, lambda: 1.5, minRuns: 4 };

test('Page-Hinkley stays silent on 2,000 stationary noisy residuals (seeded)', () => {
  for (const seed of [1, 2, 3]) {
    const noise = gauss(seededRandom(seed), 0.15);
    let s = freshPageHinkley();
    for (let i = 0; i < 2000; i++) {
      const step = pageHinkley(s, 0.3 + noise(), PH);
      assert.not.ok(step.fired, `seed ${seed}: fired at residual ${i}`);
      s = step.state;
    }
  }
});

test('Page-Hinkley fires "up" within a few runs of the residuals doubling, and "down" when they halve', () => {
  for (const [shift, direction] of [[Math.log(2), 'up'], [-Math.log(2), 'down']] as const) {
    const noise = gauss(seededRandom(7), 0.15);
    let s = freshPageHinkley();
    for (let i = 0; i < 200; i++) s = pageHinkley(s, noise(), PH).state;
    let firedAfter = -1;
    for (let i = 1; i <= 20 && firedAfter < 0; i++) {
      const step = pageHinkley(s, shift + noise(), PH);
      s = step.state;
      if (step.fired) { firedAfter = i; assert.is(step.fired.direction, direction); assert.ok(step.fired.statistic > PH.lambda); }
    }
    assert.ok(firedAfter > 0 && firedAfter <= 5, `${direction}: fired after ${firedAfter} runs`);
    assert.is(s.n, 0, 'it starts again after firing');
  }
});

// ── alerts ───────────────────────────────────────────────────────────────────────────────

test('an error alert fires once when the rolling MAPE passes its threshold, stays quiet while open, and recovers once', () => {
  const st = emptyFeedbackState();
  const s = feedbackSettings({ window: 4, alerts: { mape: { duration_s: 30 }, minRuns: 3 }, correction: { enabled: false }, drift: { lambda: 1e9 } });
  const kinds: string[] = [];
  const run = (p: number, a: number) => kinds.push(...applyReport(st, report({ duration: [p, a] }), {}, s, 0).alerts.map((x: ModelAlert) => x.kind));
  run(1, 1); run(1, 1.05);
  assert.equal(kinds, [], 'two runs are too few to judge');
  run(1, 3);                      // MAPE (0 + 4.8 + 66.7) / 3 = 23.8%
  assert.equal(kinds, []);
  run(1, 3); run(1, 3); run(1, 3); // well over 30%, and stays over
  assert.equal(kinds, ['error'], 'one alert for the whole episode');
  run(1, 1); run(1, 1); run(1, 1);
  assert.equal(kinds, ['error', 'recovered']);
  const g = [...st.groups.values()][0];
  assert.is(g.alert_open, false);
  assert.is(g.count, 9);
});

test('alerts name the model version, target, node, codec and magnitude; drift alerts keep a cooldown', () => {
  const st = emptyFeedbackState();
  const s = feedbackSettings({ alerts: { mape: { duration_s: 1e9 }, driftCooldownMs: 60_000 }, correction: { enabled: false }, drift: PH });
  const drifts: ModelAlert[] = [];
  let t = 0;
  const run = (a: number) => drifts.push(...applyReport(st, report({ duration: [1, a], node: 'enc-7', codec: 'vp9', version: 'm-3' }), {}, s, (t += 1000)).alerts);
  for (let i = 0; i < 10; i++) run(1);
  for (let i = 0; i < 10; i++) run(2);
  for (let i = 0; i < 10; i++) run(1);
  assert.is(drifts.length, 1, `the shift back within the cooldown is not announced again: ${drifts.map((d) => d.message).join(' | ')}`);
  const d = drifts[0];
  assert.equal([d.kind, d.model_version, d.target, d.node, d.codec, d.direction], ['drift', 'm-3', 'duration_s', 'enc-7', 'vp9', 'up']);
  assert.ok(d.magnitude > PH.lambda);
  assert.match(d.message, /duration_s of vp9 on node enc-7 \(model m-3\)/);
  t += 60_000;
  for (let i = 0; i < 10; i++) run(2);
  assert.is(drifts.length, 2, 'after the cooldown a new shift is announced');
});

test('judgeError needs enough runs before it fires, and an open alert only recovers', () => {
  assert.is(judgeError(false, { n: 2, mape: 90, bias: 0, coverage: NaN }, 50, 3), undefined);
  assert.is(judgeError(false, { n: 3, mape: 90, bias: 0, coverage: NaN }, 50, 3), 'fire');
  assert.is(judgeError(true, { n: 3, mape: 90, bias: 0, coverage: NaN }, 50, 3), undefined);
  assert.is(judgeError(true, { n: 3, mape: 50, bias: 0, coverage: NaN }, 50, 3), 'recover');
});

// ── memory margin ────────────────────────────────────────────────────────────────────────

test('one memory overrun does not move the margin; a second within five runs raises it at once by the worst ratio plus headroom', () => {
  let s = { margin: 1, recent: [] as number[] };
  for (const r of [0.8, 1.3, 0.9]) { const step = applyMemoryRatio(s, r); assert.not.ok(step.raised); s = step.state; }
  const step = applyMemoryRatio(s, 1.1);
  assert.ok(step.raised);
  near(step.state.margin, 1.3 * 1.1);
  assert.equal(step.state.recent, [], 'the next raise needs new evidence at the new margin');
  assert.is(applyMemoryRatio({ margin: 3.9, recent: [2] }, 2).state.margin, 4, 'capped');
  assert.not.ok(applyMemoryRatio({ margin: 1, recent: [1.5, 0.5, 0.5, 0.5, 0.5] }, 1.2).raised, 'the first overrun has left the last five');
});

test('sustained memory under-reservation of a codec raises its margin, and the next admission prediction reserves more', () => {
  const st = emptyFeedbackState();
  const s = feedbackSettings();
  const alerts = [
    ...applyReport(st, report({ memory: [0.1, 0.15, 0.12], codec: 'hevc' }), {}, s, 0).alerts,
    ...applyReport(st, report({ memory: [0.1, 0.14, 0.12], codec: 'hevc' }), {}, s, 0).alerts,
  ];
  assert.equal(alerts.map((a) => a.kind), ['margin']);
  const margin = [...st.margins.values()][0];
  near(margin.margin, (0.15 / 0.12) * 1.1);
  // An overrun report during a run and the same job's completion count once.
  const st2 = emptyFeedbackState();
  const over: FeedbackReport = { ...report({ job: 'x', codec: 'hevc' }), kind: 'overrun', overrun: { target: 'memory_gb', reserved: 0.1, observed: 0.2, after_s: 1 } };
  applyReport(st2, over, {}, s, 0);
  const again = applyReport(st2, report({ job: 'x', memory: [0.1, 0.2, 0.1], codec: 'hevc' }), {}, s, 0);
  assert.equal(again.alerts.filter((a) => a.kind === 'margin'), [], 'one job is one piece of evidence');
  // Applied in prediction: the upper memory bound (what is reserved) grows; expected does not.
  const src: CorrectionSource = { correction: () => 0, memoryMargin: (v, c) => (v === 'v1' && c === 'hevc' ? margin.margin : 1) };
  const p: Prediction = { model_version: 'v1', expected: usage(), upper: usage({ memory_gb: 0.2 }) };
  const q = correctPrediction(p, 'hevc', undefined, src);
  near(q.upper.memory_gb, 0.2 * margin.margin);
  assert.is(q.expected.memory_gb, 0.1);
  assert.is(q.feedback?.memory_margin, margin.margin);
  assert.is(correctPrediction(p, 'h264', undefined, src), p, 'another class is untouched');
});

test('records the loop saves read back as valid; a record written around the loop (a margin past its cap, a correction out of bounds, a wrong key, a broken field) is named and refused', () => {
  const st = emptyFeedbackState();
  const s = feedbackSettings();
  for (let i = 0; i < 4; i++) applyReport(st, report({ duration: [1, 3 + i], memory: [0.1, 0.15, 0.12], codec: 'hevc' }), {}, s, i);
  // As the bucket holds them: JSON, NaN figures as null.
  const saved = (x: unknown) => JSON.parse(JSON.stringify(x));
  const [[gk, g]] = [...st.groups.entries()];
  const [[mk, m]] = [...st.margins.entries()];
  assert.is(invalidFeedbackRecord(gk, saved(g), s), undefined);
  assert.is(invalidFeedbackRecord(mk, saved(m), s), undefined);
  assert.match(invalidFeedbackRecord(mk, { ...saved(m), margin: 100 }, s)!, 'margin 100 is outside the loop\'s bounds [1, 4]');
  assert.match(invalidFeedbackRecord(mk, { ...saved(m), margin: 'x4' }, s)!, 'margin "x4" is not a number');
  assert.match(invalidFeedbackRecord(gk, { ...saved(g), correction: 9 }, s)!, 'correction 9 is outside');
  assert.match(invalidFeedbackRecord(gk, { ...saved(g), node: 'elsewhere' }, s)!, 'its key is not the one');
  assert.match(invalidFeedbackRecord(gk, { ...saved(g), window: [{ ape: 'big', log: 0 }] }, s)!, 'window.0.ape "big" is not a number');
  assert.match(invalidFeedbackRecord(gk, { ...saved(g), target: 'everything' }, s)!, 'target "everything" is not one of');
  assert.match(invalidFeedbackRecord('x.1', saved(g), s)!, 'neither');
  assert.match(invalidFeedbackRecord(gk, undefined, s)!, 'undefined is not a mapping');
});

test('a node\'s correction added to a prediction made with no node equals the prediction made for that node', () => {
  const src: CorrectionSource = {
    correction: (_v, node, codec, t) => (node === 'slow' && codec === 'hevc' && t === 'duration_s' ? Math.log(3) : node === 'slow' && t === 'memory_gb' ? Math.log(1.5) : 0),
    memoryMargin: (_v, codec) => (codec === 'hevc' ? 1.2 : 1),
  };
  const inner: ResourcePredictor = { version: 'v1', predict: () => ({ model_version: 'v1', expected: usage({ duration_s: 2 }), upper: usage({ duration_s: 4, memory_gb: 0.2 }) }) };
  const predictor = new CorrectedPredictor(inner, () => src);
  const schema = { output: { codec: 'hevc' } } as EncodingSchema;
  const direct = predictor.predict(schema, { node: 'slow' });
  const split = predictor.forNode(predictor.predict(schema), 'hevc', 'slow');
  near(split.expected.duration_s, direct.expected.duration_s);
  near(split.upper.duration_s, direct.upper.duration_s);
  near(split.upper.memory_gb, direct.upper.memory_gb, 1e-12);
  assert.equal(split.feedback, direct.feedback);
  assert.is(predictor.forNode(predictor.predict(schema), 'hevc', 'fast').upper.memory_gb, predictor.predict(schema).upper.memory_gb, 'no correction for another node');
});

// ── online correction ────────────────────────────────────────────────────────────────────

test('the correction moves toward the model residual by α, clips a wild run and never leaves ×[0.2, 5]', () => {
  near(updateCorrection(0, Math.log(2)), 0.5 * Math.log(2));
  near(updateCorrection(0, Math.log(1000)), 0.5 * Math.log(5), 1e-12);
  let c = 0;
  for (let i = 0; i < 100; i++) c = updateCorrection(c, Math.log(1e6));
  near(Math.exp(c), DEFAULT_CORRECTION.max, 1e-9);
  for (let i = 0; i < 100; i++) c = updateCorrection(c, -Infinity);
  near(Math.exp(c), DEFAULT_CORRECTION.max, 1e-9);
  for (let i = 0; i < 100; i++) c = updateCorrection(c, Math.log(1e-6));
  near(Math.exp(c), DEFAULT_CORRECTION.min, 1e-9);
});

test('a node whose encodes take three times the prediction is corrected within a few runs, on that node only, and a new model version starts uncorrected', () => {
  const st = emptyFeedbackState();
  const s = feedbackSettings();
  const src: CorrectionSource = {
    correction: (v, node, codec, t) => [...st.groups.values()].find((g) => g.model_version === v && g.node === node && g.codec === codec && g.target === t)?.correction ?? 0,
    memoryMargin: () => 1,
  };
  let version = 'v1';
  const inner: ResourcePredictor = { get version() { return version; }, predict: () => ({ model_version: version, expected: usage({ duration_s: 1 }), upper: usage({ duration_s: 2 }) }) };
  const predictor = new CorrectedPredictor(inner, () => src);
  const schema = { output: { codec: 'h264' } } as EncodingSchema;
  const errors: number[] = [];
  for (let i = 0; i < 8; i++) {
    const p = predictor.predict(schema, { node: 'slow' });
    const actual = 3;
    errors.push(Math.abs(actual - p.expected.duration_s) / actual);
    applyReport(st, report({ duration: [p.expected.duration_s, actual], node: 'slow' }), { applied: p.feedback?.log_factors ?? {}, upper: p.upper }, s, 0);
  }
  assert.ok(errors[0] > 0.6, `first error ${errors[0]}`);
  assert.ok(errors[4] < 0.1, `errors ${errors.map((e) => e.toFixed(2)).join(' ')}`);
  const fast = predictor.predict(schema, { node: 'fast' });
  assert.is(fast.expected.duration_s, 1, 'another node keeps the model figure');
  assert.is(predictor.predict(schema).expected.duration_s, 1, 'a prediction with no node (admission) is not corrected per node');
  const corrected = predictor.predict(schema, { node: 'slow' });
  near(corrected.upper.duration_s / corrected.expected.duration_s, 2, 1e-9);
  assert.match(corrected.flags!.join(' '), /feedback correction on slow: duration_s ×2\.\d\d/);
  version = 'v2';
  assert.is(predictor.predict(schema, { node: 'slow' }).expected.duration_s, 1, 'reset: the new version has no correction');
});

// ── the agent's reports ──────────────────────────────────────────────────────────────────

const alloc: ResourceAllocation = { node_id: 'n1', core_ids: [0, 1], gpu_ids: [], memory_gb: 0.5, bandwidth_mbps: 20, lease_expires_at: 0, term: 1 };
const basis = (kind?: 'actor') => ({ job_id: 'j', attempt: 1, node: 'n1', model_version: 'v1', allocation: alloc, schema: { kind, output: { codec: 'h264', encoder: 'libx264' } } as EncodingSchema });

test('a finished task reports every measured target with what was reserved; a live channel reports none', () => {
  const r = completionReport(basis(), usage({ duration_s: 2 }), usage({ duration_s: 3, memory_gb: 0.3 }))!;
  assert.equal(Object.keys(r.targets).sort(), ['bandwidth_mbps', 'cpu_cores', 'duration_s', 'memory_gb']);
  assert.equal(r.targets.duration_s, { predicted: 2, actual: 3 });
  assert.equal(r.targets.memory_gb, { predicted: 0.1, actual: 0.3, reserved: 0.5 });
  assert.is(r.targets.cpu_cores!.reserved, 2);
  assert.is(completionReport(basis('actor'), usage(), usage()), undefined);
});

test('memory above the reservation during a run is reported once, as soon as a sample shows it', () => {
  const seen: Array<[string, number, number]> = [];
  const w = new OverrunWatch(alloc, 1000, (t, observed, held) => seen.push([t, observed, held]));
  const sample = (rss: number, cpu = 1) => ({ ts_ms: 3000, rss_gb: rss, peak_rss_gb: rss, cpu_cores: cpu } as EncodeSample);
  w.sample(sample(0.4));
  assert.equal(seen, []);
  w.sample(sample(0.6));
  w.sample(sample(0.7, 3));
  assert.equal(seen, [['memory_gb', 0.6, 0.5], ['cpu_cores', 3, 2]]);
  assert.is(w.peakMemoryGb, 0.7);
});

test.run();
