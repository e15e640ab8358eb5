/**
 * Capacity planning (issue 19): the simulator drives the leader's real core with the shipped
 * model predicting, so what it reports follows from real sizing, placement and re-queue rules.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModelFile } from '../../models/index.js';
import { findFleet, missedTargets, parseFleet, parseTargets, parseWorkload, plan, simulate, summarize, traceWorkload, type FleetSpec, type RecordedRun, type WorkloadSpec } from '../../coordinator/plan/index.js';

import { TemplateValidator } from '../../coordinator/plan/simulate.js';
import { validateEncodingSchema, type EncodingSchema } from '../../shared/index.js';

const model = loadModelFile();
const thrown = (fn: () => unknown) => { try { fn(); return ''; } catch (e) { return `${(e as Error).name}: ${(e as Error).message}`; } };

const job = (resolution: string, codec: string, preset: string, duration_s = 20) => ({
  input: { resolution, fps: 30, duration_s }, output: { codec, preset, rate_control: { mode: 'crf', crf: 26 } },
});
const workload: WorkloadSpec = parseWorkload({
  duration: '10m',
  jobs: [
    { name: 'std-720p', rate: '240/h', priority: 'standard', deadline: '15m', job: job('1280x720', 'h264', 'medium') },
    { name: 'prem-1080p', rate: '60/h', priority: 'premium', deadline: '5m', job: job('1920x1080', 'h264', 'fast') },
    { name: 'batch', count: 30, priority: 'batch', job: job('640x360', 'h264', 'slow', 40) },
  ],
});
const fleet: FleetSpec = parseFleet({ nodes: [{ type: 'c8', count: 3, cores: 8, memory_gb: 16, price_per_hour: 0.4 }, { type: 'c4', count: 2, cores: 4, memory_gb: 8, price_per_hour: 0.2 }] });

test('the same seed gives the same report, and another seed another one', () => {
  const a = plan({ workload, fleet, model, seed: 7, policies: ['predictive', 'fixed-slots:2'] }).report;
  const b = plan({ workload, fleet, model, seed: 7, policies: ['predictive', 'fixed-slots:2'] }).report;
  assert.equal(a, b);
  const c = plan({ workload, fleet, model, seed: 8, policies: ['predictive', 'fixed-slots:2'] }).report;
  assert.not.equal(a.policies[0].makespan_s, c.policies[0].makespan_s);
});

test('every job of the workload arrives and ends, placed by the real core under each policy', () => {
  const { report } = plan({ workload, fleet, model, seed: 1 });
  assert.equal(report.policies.map((p) => p.policy), ['predictive', 'fixed-slots:2', 'one-core', 'oracle']);
  for (const p of report.policies) {
    assert.ok(p.jobs > 60, `${p.policy}: ${p.jobs} jobs`);
    assert.is(p.never_started, 0, p.policy);
    assert.is(p.succeeded + p.failed + p.rejected, p.jobs, p.policy);
    assert.ok(p.reserved_vs_used.core_hours_used <= p.reserved_vs_used.core_hours_reserved + 1e-6, `${p.policy} uses no more cores than it reserves (encodes are pinned)`);
    assert.ok(p.cost > 0 && p.node_hours > 0);
  }
  assert.match(report.recommendation.sentence, /^Run (predictive|fixed-slots:2|one-core): it finishes/);
});

test('the oracle, reserving each job\'s actual use, never has an encode killed for memory', () => {
  const oracle = simulate(workload, fleet, model, { policy: 'oracle', seed: 3 });
  assert.is(oracle.totals.memory_kills, 0);
  const predictive = simulate(workload, fleet, model, { policy: 'predictive', seed: 3 });
  assert.equal(predictive.jobs.map((j) => j.arrival_ms), oracle.jobs.map((j) => j.arrival_ms), 'the same arrivals under every policy');
});

test('under-predicted jobs (actual use spread three times what the model claims) are killed by their memory limit and re-queued with more', () => {
  const calm = simulate(workload, fleet, model, { policy: 'predictive', seed: 5, errorScale: 0.2 });
  const wild = simulate(workload, fleet, model, { policy: 'predictive', seed: 5, errorScale: 3 });
  assert.is(calm.totals.memory_kills, 0, 'within its bounds nothing is killed');
  assert.ok(wild.totals.memory_kills > 5, `${wild.totals.memory_kills} kills`);
  assert.ok(wild.totals.requeues >= wild.totals.memory_kills - wild.jobs.filter((j) => j.state === 'failed').length, 'each kill short of the last attempt is re-queued');
  const killed = wild.jobs.filter((j) => j.memory_kills > 0);
  assert.ok(killed.some((j) => j.state === 'succeeded'), 'a killed job runs again with more memory and succeeds');
});

test('a fleet too small for a job leaves it refused with the core\'s reason, named by its template', () => {
  const tiny = parseFleet({ nodes: [{ type: 'tiny', count: 1, cores: 1, memory_gb: 0.05 }] });
  const w = parseWorkload({ jobs: [{ name: 'big', count: 2, job: job('3840x2160', 'hevc', 'slow') }] });
  const { report } = plan({ workload: w, fleet: tiny, model, policies: ['predictive'] });
  const p = report.policies[0];
  assert.is(p.succeeded, 0);
  assert.is(p.never_started, 2);
  assert.equal(p.refused.map((x) => [x.template, x.jobs, x.state]), [['big', 2, 'never started']]);
  assert.match(p.refused[0].reason, /fits no node|no node/, p.refused[0].reason);
});

test('--find returns a fleet that meets its targets, and one node fewer of any type does not', () => {
  const targets = parseTargets('premium.p95_wait<=5s,standard.p95_wait<=60s');
  const found = findFleet({ workload, fleet, model, seed: 2, targets });
  assert.equal(missedTargets(found.report, targets), [], 'the fleet found meets the targets');
  found.fleet.nodes.forEach((n, i) => {
    if (n.count === 0) return;
    const fewer = { nodes: found.fleet.nodes.map((m, k) => (k === i ? { ...m, count: m.count - 1 } : m)) };
    if (!fewer.nodes.some((m) => m.count > 0)) return;
    const r = summarize(simulate(workload, fewer, model, { policy: 'predictive', seed: 2 }), fewer);
    assert.ok(missedTargets(r, targets).length > 0, `one ${n.type} fewer (${fewer.nodes.map((m) => m.count).join(', ')}) still meets them`);
  });
  assert.ok(found.cost_per_hour > 0 && found.runs <= 60);
  assert.match((() => { try { parseTargets('vip.p95_wait<=3s'); return ''; } catch (e) { return (e as Error).message; } })(), /"vip\.p95_wait<=3s" is not a target/);
});

test('a recorded log replays each encode when it arrived, for as long as it really ran, and the oracle reserves what it really used', () => {
  const schema = (w: number) => JSON.stringify({ ...job(`${w}x${(w * 9) / 16}`, 'h264', 'medium'), priority: 'batch', submitter: 'log' });
  const run = (ts: string, w: number, duration_s: number, memory_gb: number): RecordedRun => ({
    ts, status: 'succeeded', schema_json: schema(w), cores_granted: 1, cpu_cores: 0.9, memory_gb, bandwidth_mbps: 1, duration_s, gpu_percent: 0,
  });
  const runs = [run('2026-12-01T00:00:00Z', 640, 5, 0.2), run('2026-12-01T00:00:10Z', 1280, 7, 0.4), run('2026-12-01T00:00:11Z', 640, 3, 6), { ...run('2026-12-01T00:00:12Z', 640, 3, 0.1), status: 'failed' }];
  const { workload: w, used, skipped } = traceWorkload(runs);
  assert.equal([used, skipped, w.jobs.length], [3, 1, 2], 'two templates: the two 640-wide runs share one');
  const oneCore = parseFleet({ nodes: [{ type: 'one', count: 3, cores: 1, memory_gb: 8 }] });
  const oracle = simulate(w, oneCore, model, { policy: 'oracle', seed: 1 });
  assert.equal(oracle.jobs.map((j) => j.arrival_ms), [0, 10_000, 11_000]);
  const took = oracle.jobs.map((j) => (j.ended_ms! - j.arrival_ms) / 1000);
  [5, 7, 3].forEach((d, i) => assert.ok(Math.abs(took[i] - d) <= 0.2, `job ${i} took ${took[i]} s, recorded ${d} s`));
  assert.is(oracle.totals.memory_kills, 0);
  // 6 GB used where the model expects a fraction of that: a reservation at the model's bound is exceeded.
  const predictive = simulate(w, oneCore, model, { policy: 'predictive', seed: 1 });
  assert.ok(predictive.jobs[2].memory_kills >= 1, 'the run that used 6 GB is killed by its memory limit and re-queued');
});

test('recorded encodes whose inputs are in the validated form (kind: synthetic or file, as exports store them) replay; none is refused', () => {
  const synthetic = { input: { kind: 'synthetic', source: 'smptebars', resolution: { width: 640, height: 360 }, fps: 30, duration_s: 4, noise: 20 }, output: { codec: 'h264', encoder: 'libx264', preset: 'fast', rate_control: { mode: 'crf', crf: 23 }, passes: 1, options: {} } };
  const file = {
    input: { kind: 'file', path: '/media/clip.mkv', probe: { by: 'node', width: 1280, height: 720, fps: 25, codec: 'hevc', pix_fmt: 'yuv420p', duration_s: 8, frames: 200, bitrate_kbps: 900, audio_streams: 0, size_bytes: 900_000, mtime_ms: 1_796_525_265_250 } },
    output: { codec: 'av1', encoder: 'libsvtav1', preset: '10', rate_control: { mode: 'crf', crf: 31 }, passes: 1, options: {} },
  };
  const w = parseWorkload({ jobs: [{ name: 'synthetic', count: 3, job: synthetic }, { name: 'file', count: 3, job: file }] });
  const sim = simulate(w, fleet, model, { policy: 'predictive', seed: 1 });
  assert.equal(sim.jobs.map((j) => j.state), Array(6).fill('succeeded'));
});

test('a template is checked once, and each of its jobs gets the schema that checking it alone gives (keys in the same order)', () => {
  const roots = { allowedInputRoots: ['/'], allowedOutputRoots: ['/'] };
  const synthetic = (j: ReturnType<typeof job>) => ({ ...j, input: { ...j.input, synthetic: { source: 'testsrc2' } } });
  const templates = [
    { ...synthetic(job('1280x720', 'h264', 'medium')), priority: 'premium' },
    { ...synthetic(job('640x360', 'vp9', '4')), priority: 'batch' },
  ];
  const templateOf = (id: string) => (/^p\d+$/.test(id) ? Number(id.slice(1)) % 2 : undefined);
  const v = new TemplateValidator(templateOf);
  let calls = 0;
  const counted = new TemplateValidator(templateOf, (raw, ctx) => { calls++; return validateEncodingSchema(raw, ctx); });
  for (let i = 0; i < 40; i++) {
    const raw = { ...templates[i % 2], submitter: `p${i}`, ...(i % 2 === 0 && { deadline: new Date(Date.UTC(2030, 0, 1) + i * 1000).toISOString() }) };
    const alone: EncodingSchema = validateEncodingSchema(raw, roots);
    assert.is(JSON.stringify(v.validate(raw, roots)), JSON.stringify(alone), `job ${i}`);
    assert.equal(counted.validate(raw, roots), alone);
  }
  assert.is(calls, 2, 'one check per template');
  // A refused template is refused for each of its jobs, with the check's own reason.
  const actor = { kind: 'actor', input: { resolution: '1280x720', fps: 30, synthetic: { source: 'testsrc2' } }, output: { codec: 'h264', preset: 'fast', rate_control: { mode: 'crf', crf: 23 } } };
  const actors = new TemplateValidator(templateOf);
  for (const i of [0, 2]) assert.match(thrown(() => actors.validate({ ...actor, submitter: `p${i}`, deadline: '2030-01-01T00:10:00.000Z' }, roots)), /no deadline/);
});

test('sustained throughput is the rate a backlog is worked off at: two one-core encodes of 10 s at a time on a two-core node end about 720 jobs an hour', () => {
  const schema = JSON.stringify({ ...job('640x360', 'h264', 'medium'), priority: 'batch', submitter: 'log' });
  const runs: RecordedRun[] = Array.from({ length: 40 }, () => ({
    ts: '2026-12-01T00:00:00Z', status: 'succeeded', schema_json: schema, cores_granted: 1, cpu_cores: 0.95, memory_gb: 0.2, bandwidth_mbps: 1, duration_s: 10, gpu_percent: 0,
  }));
  const { workload: w } = traceWorkload(runs);
  const node = parseFleet({ nodes: [{ type: 'two', count: 1, cores: 2, memory_gb: 8 }] });
  const oneCore = summarize(simulate(w, node, model, { policy: 'one-core', seed: 1 }), node);
  assert.ok(Math.abs(oneCore.sustained_per_hour / 720 - 1) <= 0.1, `one-core sustains ${oneCore.sustained_per_hour} jobs/h`);
  // The same backlog of encodes twice as long: half the rate.
  const { workload: slow } = traceWorkload(runs.map((r) => ({ ...r, duration_s: 20 })));
  const half = summarize(simulate(slow, node, model, { policy: 'one-core', seed: 1 }), node);
  assert.ok(Math.abs(half.sustained_per_hour / 360 - 1) <= 0.1, `20 s encodes: ${half.sustained_per_hour} jobs/h`);
});

test('a ladder template arrives as one group per arrival, its rungs placed together, and a spread ladder wider than the fleet is never started, with the core\'s reason', () => {
  const ladder = (count: number) => parseWorkload({
    jobs: [{ name: 'abr', count, ladder: [{ resolution: '1920x1080' }, { resolution: '1280x720' }, { resolution: '640x360' }], job: job('1920x1080', 'h264', 'fast') }],
  });
  const three = parseFleet({ nodes: [{ type: 'c4', count: 3, cores: 4, memory_gb: 16 }] });
  const sim = simulate(ladder(4), three, model, { policy: 'predictive', seed: 1 });
  assert.equal(sim.templates, ['abr rung 1', 'abr rung 2', 'abr rung 3']);
  assert.equal(sim.jobs.map((j) => j.template), [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]);
  assert.ok(sim.jobs.every((j) => j.state === 'succeeded'), sim.jobs.map((j) => j.reason).join('; '));
  // Each arrival's three rungs are placed in one pass (a group is placed whole or not at all).
  for (let g = 0; g < 12; g += 3) assert.is(new Set(sim.jobs.slice(g, g + 3).map((j) => j.placed_ms)).size, 1, `ladder ${g / 3}`);
  const two = parseFleet({ nodes: [{ type: 'c4', count: 2, cores: 4, memory_gb: 16 }] });
  const narrow = summarize(simulate(ladder(1), two, model, { policy: 'predictive', seed: 1 }), two);
  assert.is(narrow.never_started, 3);
  assert.match(narrow.refused[0]?.reason ?? '', /group infeasible \(spread\): 3 renditions need a node each, but the fleet has 2/);
  assert.match(thrown(() => parseWorkload({ jobs: [{ name: 'x', count: 1, placement: 'together', job: job('640x360', 'h264', 'fast') }] })), /jobs\.0\.placement \(x\) is a ladder's group placement, but this template has no ladder/);
  assert.match(thrown(() => parseWorkload({ jobs: [{ name: 'x', count: 1, ladder: [{}], job: job('640x360', 'h264', 'fast') }] })), /ladder/);
});

test('workload and fleet files are checked whole: every wrong key is named at once', () => {
  assert.match(thrown(() => parseWorkload({ jobs: [{ name: 'x', rate: 'fast', job: {} }] })), /--workload: workload: \d problems?: .*jobs\.0\.rate "fast" is not a rate such as 120\/h/);
  assert.match(thrown(() => parseWorkload({ jobs: [{ name: 'x', rate: '1/h', job: job('640x360', 'h264', 'fast') }] })), /duration is missing/);
  assert.match(thrown(() => parseWorkload({ duration: '1h', jobs: [{ name: 'x', rate: '1/h', count: 3, job: job('640x360', 'h264', 'fast') }] })), /needs exactly one of rate and count/);
  assert.match(thrown(() => parseFleet({ nodes: [{ type: 'a', count: 1, cores: 0, memory_gb: 1, colour: 'red' }] })), /nodes\.0\.cores 0 is not at least 1; .*colour is not a setting here/);
  assert.match(thrown(() => parseFleet({ nodes: [{ type: 'a', count: 0, cores: 2, memory_gb: 1 }] })), /no node: every count is 0/);
});

test.run();
