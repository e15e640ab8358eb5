/** Training on labelled rows: accuracy against the baselines, calibrated bounds, inheritance, splits (models/training). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  TARGETS, TEST_SHARE, TrainingError, evaluatePredictor, fitBaseline, priorRows, priorTargets, seededRandom, splitRows, trainModel,
  type EncodeRecord, type LabelledRow, type Model, type Target, type TrainResult,
} from '../../models/index.js';

const HW = ['xeon-6338', 'epyc-7763', 'graviton3'];
const ROWS = priorRows(2000, { seed: 7, noise: 0.06, gpus: true, hwClasses: HW });
/** The model most tests look at: trained once, with a short epoch budget (accuracy still matters here). */
let MAIN: TrainResult;
const main = async () => (MAIN ??= await trainModel(ROWS, { version: 'main-1', source: 'prior rows', seed: 3, network: { hidden: [12, 6], maxEpochs: 100 } }));

/** A 720p x264 encode on 16 cores: no target is capped or clamped. */
const BASE: EncodeRecord = {
  output: { codec: 'h264', encoder: 'libx264', preset: 'medium', width: 1280, height: 720, fps: 30, rc_mode: 'crf', crf: 23, passes: 1 },
  input: { codec: 'rawvideo', width: 1280, height: 720, fps: 30, duration_s: 60, frames: 1800 },
  content: { noise: 25 },
  node: { cores: 16, gpus: 0, hw_class: HW[0] },
  extra: {},
};
const NVENC = (width: number, height: number, preset: string): EncodeRecord => ({
  ...BASE,
  output: { ...BASE.output, encoder: 'h264_nvenc', preset, width, height },
  input: { ...BASE.input, width, height },
  node: { ...BASE.node, gpus: 1 },
});
const LOG_TARGETS = ['cpu_cores', 'memory_gb', 'bandwidth_mbps', 'duration_s'] as const;
const ratios = (m: Model, r: EncodeRecord) => {
  const p = m.predictRecord(r);
  return { flags: p.flags, ratio: Object.fromEntries(LOG_TARGETS.map((t) => [t, p.upper[t] / p.expected[t]])) as Record<(typeof LOG_TARGETS)[number], number> };
};
/** Rows that measure only `keep` (a log with wall time and memory, say). */
const only = (rows: LabelledRow[], keep: Target[]): LabelledRow[] =>
  rows.map((r) => ({ ...r, targets: Object.fromEntries(keep.map((t) => [t, r.targets[t]])) }));

test('the trained model beats both baselines on CPU cores, memory and duration', async () => {
  const { metrics, split, model } = await main();
  for (const kind of ['mean_per_codec', 'linear_regression'] as const) {
    const baseline = evaluatePredictor(fitBaseline(kind, split, model.coverage), split.test);
    for (const t of ['cpu_cores', 'memory_gb', 'duration_s'] as const) {
      assert.ok(metrics[t]!.n > 100 && baseline[t]!.n === metrics[t]!.n, `${t}: ${metrics[t]?.n} vs ${baseline[t]?.n} rows`);
      assert.ok(metrics[t]!.scale_mae < baseline[t]!.scale_mae, `${t}: model ${metrics[t]!.scale_mae.toFixed(4)} vs ${kind} ${baseline[t]!.scale_mae.toFixed(4)}`);
    }
  }
});

test('its bounds cover at least 90 % of held-out rows at the default 95 % for every target', async () => {
  const { metrics, model, split } = await main();
  assert.is(model.coverage, 0.95);
  assert.ok(split.test.length > 300);
  for (const t of TARGETS) {
    const m = metrics[t];
    assert.ok(m && m.n > 50, `${t} evaluated on ${m?.n} rows`);
    assert.ok(m!.coverage >= 0.9, `${t}: held-out coverage ${m!.coverage.toFixed(3)}`);
  }
  // The figures stored in the file are the ones returned.
  assert.equal(model.file.metrics, metrics);
});

/** Checks that `patch` (an unseen value of `category`) never narrows a bound, widens one, and is flagged. */
async function unseenWidens(category: string, patch: (r: EncodeRecord) => void) {
  const { model } = await main();
  const known = ratios(model, BASE);
  assert.equal(known.flags, [], 'the known record is not flagged');
  const rec = structuredClone(BASE);
  patch(rec);
  const novel = ratios(model, rec);
  assert.ok(novel.flags.some((f) => f.startsWith(`${category}: value not seen in training`)), `flags: ${novel.flags.join('; ')}`);
  const wider = LOG_TARGETS.filter((t) => novel.ratio[t] > known.ratio[t] * (1 + 1e-9));
  for (const t of LOG_TARGETS) assert.ok(novel.ratio[t] >= known.ratio[t] * (1 - 1e-9), `${t}: unseen ${category} narrows the bound ratio ${known.ratio[t]} to ${novel.ratio[t]}`);
  assert.ok(wider.length > 0, `no bound ratio is wider with an unseen ${category}: known ${JSON.stringify(known.ratio)}, unseen ${JSON.stringify(novel.ratio)}`);
}

test('a record with a codec never seen in training gets a wider bound and a flag naming the codec', () => unseenWidens('codec', (r) => { r.output.codec = 'mpeg4'; }));
test('a record with an encoder never seen in training gets a wider bound and a flag naming the encoder', () => unseenWidens('encoder', (r) => { r.output.encoder = 'libopenh264'; }));
test('a record on a hardware class never seen in training gets a wider bound and a flag naming it', () => unseenWidens('hw_class', (r) => { r.node.hw_class = 'power10'; }));

test('a model trained on rows that always carry content complexity predicts schemas without it, with the bound drawn for that case', async () => {
  // A log that probed every input: SI follows the noise the schema also gives, TI is jitter.
  const rand = seededRandom(5);
  const probed = priorRows(1200, { seed: 11, noise: 0.06 }).map((r) => ({
    ...r, record: { ...r.record, content: { ...r.record.content, si_mean: 20 + 0.6 * (r.record.content.noise ?? 0) + 4 * rand(), ti_mean: 10 * rand() } },
  }));
  const { model, split } = await trainModel(probed, { version: 'probed-1', source: 'probed prior rows', seed: 2, network: { hidden: [12, 6], maxEpochs: 60 } });
  assert.ok(model.file.features[0].names.includes('si_known'), 'si gets a _known column');
  for (const t of LOG_TARGETS) assert.ok(model.file.targets[t]!.residuals.novel.unprobed?.n, `${t} has residuals without the probe`);
  const unprobed = split.test.map((r) => ({ ...r, record: { ...r.record, content: { noise: r.record.content.noise } } }));
  const asIs = evaluatePredictor((r) => model.predictRecord(r), split.test), without = evaluatePredictor((r) => model.predictRecord(r), unprobed);
  for (const t of LOG_TARGETS) {
    assert.ok(without[t]!.coverage >= 0.9, `${t}: coverage without the probe ${without[t]!.coverage.toFixed(3)}`);
    assert.ok(without[t]!.scale_mae <= 1.5 * asIs[t]!.scale_mae + 0.01, `${t}: error without the probe ${without[t]!.scale_mae.toFixed(4)} vs ${asIs[t]!.scale_mae.toFixed(4)} with it`);
  }
  const p = model.predictRecord({ ...BASE, node: { ...BASE.node, hw_class: undefined } });
  assert.not.ok(p.flags.some((f) => /^(si|ti):/.test(f)), `flags: ${p.flags.join('; ')}`);
});

test('a model trained on piloted rows leans on the pilot, and a job without one is predicted as well as by a model that never saw a pilot', async () => {
  // A pilot measures what the encode will need, give or take a tenth: CPU per frame and memory.
  const rand = seededRandom(9);
  const jitter = () => 10 ** (0.04 * (rand() - 0.5));
  const rows = priorRows(1200, { seed: 13, noise: 0.06 });
  const piloted = rows.map((r) => ({
    ...r, record: { ...r.record, content: { ...r.record.content, pilot_cpu_per_frame: (r.targets.cpu_cores! * r.targets.duration_s!) / r.record.input.frames! * jitter(), pilot_memory_mb: r.targets.memory_gb! * 1024 * jitter() } },
  }));
  const o = { source: 'prior rows', seed: 2, network: { hidden: [12, 6], maxEpochs: 60 } };
  const [withPilots, schemaOnly] = [await trainModel(piloted, { ...o, version: 'piloted-1' }), await trainModel(rows, { ...o, version: 'schema-1' })];
  const test = withPilots.split.test, bare = test.map((r) => ({ ...r, record: { ...r.record, content: { noise: r.record.content.noise } } }));
  const asIs = evaluatePredictor((r) => withPilots.model.predictRecord(r), test);
  const without = evaluatePredictor((r) => withPilots.model.predictRecord(r), bare);
  const never = evaluatePredictor((r) => schemaOnly.model.predictRecord(r), bare);
  // These rows' CPU share varies beside the work, so the work alone tells duration less than memory.
  for (const [t, gain] of [['memory_gb', 0.5], ['duration_s', 0.95]] as const) {
    assert.ok(asIs[t]!.scale_mae < gain * never[t]!.scale_mae, `${t}: with the pilot ${asIs[t]!.scale_mae.toFixed(4)}, never piloted ${never[t]!.scale_mae.toFixed(4)}`);
    assert.ok(without[t]!.scale_mae <= 1.2 * never[t]!.scale_mae + 0.005, `${t}: a job without its pilot ${without[t]!.scale_mae.toFixed(4)}, a model that never saw one ${never[t]!.scale_mae.toFixed(4)}`);
    assert.ok(without[t]!.coverage >= 0.9, `${t}: coverage without the pilot ${without[t]!.coverage.toFixed(3)}`);
  }
});

test('gpu share is 0 for CPU encoders and learned for NVENC ones', async () => {
  const { model, metrics, split } = await main();
  assert.ok(model.file.targets.gpu_percent?.gpu_only);
  const cpu = split.test.filter((r) => r.record.node.gpus === 0);
  assert.ok(cpu.length > 100);
  for (const r of cpu) {
    const p = model.predictRecord(r.record);
    assert.is(p.expected.gpu_percent, 0);
    assert.is(p.upper.gpu_percent, 0);
  }
  const g = metrics.gpu_percent!;
  assert.ok(g.n > 50 && g.r2 > 0.8, `gpu_percent on ${g.n} NVENC rows: R² ${g.r2}`);
  // 240p at the fastest preset against 2160p at the slowest: the prior says about 13 % and 100 %.
  const small = model.predictRecord(NVENC(320, 240, 'p1')).expected.gpu_percent, large = model.predictRecord(NVENC(3840, 2160, 'p7')).expected.gpu_percent;
  assert.ok(large > small + 40, `gpu share 240p ${small}, 2160p ${large}`);
  assert.ok(Math.abs(small - priorTargets(NVENC(320, 240, 'p1')).gpu_percent) < 10, `240p gpu share ${small}`);
});

test('training is deterministic for a fixed seed', async () => {
  const rows = priorRows(400, { seed: 21, noise: 0.05, gpus: true });
  const o = { version: 'det', source: 'prior', seed: 9, network: { maxEpochs: 6 } };
  const [a, b] = [await trainModel(rows, o), await trainModel(rows, o)];
  assert.equal(a.model.file.targets, b.model.file.targets);
  for (const r of a.split.test) assert.equal(a.model.predictRecord(r.record), b.model.predictRecord(r.record));
  const c = await trainModel(rows, { ...o, seed: 10 });
  assert.not.equal(c.model.file.networks, a.model.file.networks, 'another seed trains other weights');
  assert.equal(a.model.file.networks, b.model.file.networks);
});

test('a target no row measures is inherited from the parent model, and predicts as the parent does', async () => {
  const parent = (await main()).model;
  const rows = only(priorRows(400, { seed: 22, noise: 0.05, gpus: true, hwClasses: HW }), ['duration_s', 'memory_gb']);
  const child = await trainModel(rows, { version: 'child-1', source: 'time and memory only', seed: 4, network: { maxEpochs: 10 }, parent });
  const f = child.model.file;
  assert.is(f.parent, 'main-1');
  for (const t of ['cpu_cores', 'gpu_percent', 'bandwidth_mbps'] as const) {
    assert.is(f.targets[t]?.inherited_from, 'main-1', `${t} inherited`);
    assert.is(child.targets[t]?.inherited_from, 'main-1');
    assert.equal(f.networks[f.targets[t]!.network].json, parent.file.networks[parent.file.targets[t]!.network].json);
  }
  for (const t of ['duration_s', 'memory_gb'] as const) assert.is(f.targets[t]?.inherited_from, undefined, `${t} is trained afresh`);
  for (const r of [BASE, NVENC(1920, 1080, 'p4'), ...rows.slice(0, 20).map((x) => x.record)]) {
    const mine = child.model.predictRecord(r), theirs = parent.predictRecord(r);
    for (const t of ['cpu_cores', 'gpu_percent', 'bandwidth_mbps'] as const) {
      assert.is(mine.expected[t], theirs.expected[t], `${t} expected`);
      assert.is(mine.upper[t], theirs.upper[t], `${t} upper`);
    }
  }
  // A grandchild still names the model the target was learned in.
  const grandchild = await trainModel(rows, { version: 'child-2', source: 'again', seed: 5, network: { maxEpochs: 3 }, parent: child.model });
  assert.is(grandchild.model.file.targets.cpu_cores?.inherited_from, 'main-1');
  assert.is(grandchild.model.file.parent, 'child-1');
});

test('without a parent, a target no row measures is predicted by rule and flagged', async () => {
  const rows = only(priorRows(300, { seed: 23, noise: 0.05 }), ['duration_s', 'memory_gb']);
  const r = await trainModel(rows, { version: 'orphan', source: 'time and memory only', seed: 4, network: { maxEpochs: 5 } });
  assert.is(r.model.file.targets.cpu_cores, undefined);
  assert.match(r.targets.cpu_cores?.skipped ?? '', /0 rows measure it/);
  const p = r.model.predictRecord({ ...BASE, node: { ...BASE.node, cores: 6 } });
  assert.is(p.expected.cpu_cores, 6, 'the granted cores');
  assert.is(p.upper.cpu_cores, 6);
  assert.equal([p.expected.bandwidth_mbps, p.upper.bandwidth_mbps], [50, 200]);
  for (const t of ['cpu_cores', 'bandwidth_mbps'] as const) assert.ok(p.flags.some((f) => f.startsWith(`${t}: no training data, estimated by rule`)), `${t} flagged: ${p.flags.join('; ')}`);
  assert.not.ok(p.flags.some((f) => f.startsWith('duration_s: no training data') || f.startsWith('gpu_percent')), 'learned targets and a CPU encode\'s GPU share are not flagged');
  const gpu = r.model.predictRecord(NVENC(1280, 720, 'p4'));
  assert.equal([gpu.expected.gpu_percent, gpu.upper.gpu_percent], [50, 100]);
  assert.ok(gpu.flags.some((f) => f.startsWith('gpu_percent: no training data, estimated by rule')));
});

test('too few rows, or rows that measure nothing, throw TrainingError', async () => {
  const fail = async (rows: LabelledRow[], pattern: RegExp) => {
    try {
      await trainModel(rows, { version: 'few', source: 'test', network: { maxEpochs: 2 } });
    } catch (e) {
      assert.instance(e, TrainingError);
      assert.match((e as Error).message, pattern);
      return;
    }
    assert.unreachable('training succeeded');
  };
  await fail(priorRows(10), /rows are left to fit on; at least 12 are needed/);
  await fail(only(priorRows(200), []), /no target has 12 rows to learn from/);
});

test('splitRows puts a key in the same part whatever the row order', () => {
  const rows = priorRows(600, { seed: 30 });
  const partOf = (s: ReturnType<typeof splitRows>) => new Map(Object.entries(s).flatMap(([part, rs]) => (rs as LabelledRow[]).map((r) => [r.key, part] as const)));
  const a = partOf(splitRows(rows));
  const rand = seededRandom(2), shuffled = [...rows];
  for (let i = shuffled.length - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]]; }
  const b = partOf(splitRows(shuffled));
  assert.is(a.size, 600);
  for (const [k, part] of a) assert.is(b.get(k), part, k);
  // The same key with other content lands in the same part too.
  const relabelled = rows.slice(0, 50).map((r) => ({ ...r, targets: { duration_s: 1 } }));
  const c = partOf(splitRows(relabelled));
  for (const [k, part] of c) assert.is(part, a.get(k), k);
  for (const part of ['fit', 'test']) assert.ok([...a.values()].includes(part), `no row in ${part}`);
  assert.not.ok([...a.values()].includes('calibration'), 'nothing is set aside for the bounds');
});

test('splitRows holds out about the documented shares of sequential job ids', () => {
  const [row] = priorRows(1);
  const rows = Array.from({ length: 10_000 }, (_, i) => ({ ...row, key: `job-${i}` }));
  const s = splitRows(rows);
  const share = (xs: unknown[]) => xs.length / rows.length;
  // Binomial standard errors on 10,000 rows are 0.004 and 0.0036: 0.015 is four of them.
  assert.ok(Math.abs(share(s.test) - TEST_SHARE) < 0.015, `test share ${share(s.test)}, documented ${TEST_SHARE}`);
  assert.is(s.fit.length + s.test.length, rows.length, 'every other row trains');
  const none = splitRows(rows, 'none');
  assert.is(none.fit.length, rows.length, 'split none trains on every row');
  assert.is(none.test.length, 0);
});

test('the time split holds out the latest rows, and rows without a time train', () => {
  const rows = priorRows(500, { seed: 31 }).map((r, i) => ({ ...r, ts: i % 10 === 9 ? undefined : 1_700_000_000_000 + ((i * 7919) % 500) * 60_000 }));
  const s = splitRows(rows, 'time');
  const timed = rows.filter((r) => r.ts !== undefined);
  assert.is(s.test.length, Math.round(timed.length * TEST_SHARE));
  const earliestHeld = Math.min(...s.test.map((r) => r.ts!));
  const latestKept = Math.max(...s.fit.filter((r) => r.ts !== undefined).map((r) => r.ts!));
  assert.ok(earliestHeld > latestKept, `held out from ${earliestHeld}, but a row at ${latestKept} trains`);
  assert.ok(s.test.every((r) => r.ts !== undefined));
  assert.is(s.fit.length + s.test.length, rows.length);
  assert.is(s.calibration.length, 0);
});

test.run();
