/**
 * `prescient model …` run as a real process against a stack whose QuestDB holds recorded runs:
 * training from QuestDB, from a mapped TSV log and from an export; evaluation beside the
 * baselines and on every row of a separate file; promotion, rollback and history; and the clear
 * refusals of bad input.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_MODEL_PATH, type RegistryEntry, type RegistryEvent, type Target, type TargetMetrics } from '../../models/index.js';
import { cliRun, startStack, type TestStack } from '../helpers/cluster.js';
import { TRANSCODING_MAPPING, priorRuns, recordRuns, transcodingTsv, writeTranscodingTsv } from '../helpers/models.js';

let s: TestStack;
/** Runs recorded in QuestDB: SUCCEEDED of them succeeded, FAILED failed. */
const SUCCEEDED = 200, FAILED = 12;
/** The four targets a CPU encode measures (GPU share only counts for GPU encodes). */
const CPU_TARGETS: Target[] = ['cpu_cores', 'memory_gb', 'bandwidth_mbps', 'duration_s'];
const shipped = (JSON.parse(readFileSync(DEFAULT_MODEL_PATH, 'utf8')) as { version: string }).version;

/** What reading a file gave (`import` in --json). */
interface ImportOutput {
  file: string; encoding: string; encoding_from: string; notes: string[]; read: number; used: number; skipped: number;
  skipped_by_column: Record<string, Record<string, number>>; warnings_by_column: Record<string, Record<string, number>>;
  skipped_examples: { line: number; column: string; reason: string }[]; warning_examples: { line: number; column: string; reason: string }[];
}
interface TrainOutput {
  version: string; promoted: boolean; reason: string; previous: string; import?: ImportOutput;
  targets: Partial<Record<Target, { rows: number; inherited_from?: string; skipped?: string }>>;
  split: { fit: number; calibration: number; test: number };
  metrics: Partial<Record<Target, TargetMetrics>>;
  previous_metrics?: Partial<Record<Target, TargetMetrics>>;
  baselines?: Record<string, Partial<Record<Target, TargetMetrics>>>;
}
interface EvaluateOutput {
  model: string; coverage: number; source: string; held_out?: number; rows?: number; test?: string; import?: ImportOutput;
  metrics: Partial<Record<Target, TargetMetrics>>;
  baselines?: Record<string, Partial<Record<Target, TargetMetrics>>>;
}

/** Runs `prescient model …` expecting success, and parses its JSON output. */
async function json<T>(...args: string[]): Promise<T> {
  const r = await cliRun(s, ['model', ...args]);
  assert.is(r.code, 0, `prescient model ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`prescient model ${args.join(' ')} printed no JSON: ${r.stdout}`);
  }
}

/** Runs `prescient model …` expecting it to refuse, and returns what it said. */
async function refused(...args: string[]): Promise<string> {
  const r = await cliRun(s, ['model', ...args]);
  assert.is.not(r.code, 0, `prescient model ${args.join(' ')} should have failed, printed: ${r.stdout}`);
  assert.not.match(r.stderr, /\n\s+at /, 'a refusal is a message, not a stack trace');
  return r.stderr;
}

const list = () => json<RegistryEntry[]>('list', '--json');
const current = async () => (await list()).filter((e) => e.current).map((e) => e.version);

/** Every figure of a target's metrics is a finite number (R² and MAPE may be NaN only with no spread). */
function assertFigures(m: TargetMetrics | undefined, what: string): void {
  assert.ok(m, `${what}: no figures`);
  for (const k of ['mae', 'mape', 'median_ape', 'r2', 'coverage', 'slack', 'scale_mae'] as const) assert.ok(Number.isFinite(m![k]), `${what}: ${k} is ${m![k]}`);
  assert.ok(m!.coverage >= 0 && m!.coverage <= 1, `${what}: coverage ${m!.coverage}`);
}

/** The version the first test trains from QuestDB, and what `model train --json` printed for it. */
let firstVersion = '';
let firstTrain: TrainOutput;

test.before(async () => {
  s = await startStack('model-cli');
  const ok = priorRuns(SUCCEEDED, { seed: 11, prefix: 'ok' });
  const failed = priorRuns(FAILED, { seed: 12, prefix: 'failed', t0: Date.UTC(2026, 0, 6) })
    .map((r) => ({ ...r, status: 'failed' as const, error: 'ffmpeg exited 1', cpu_cores: 0.01, duration_s: 0.1 }));
  await recordRuns(s, [...ok, ...failed], 'model-cli');
});
test.after(async () => { await s?.down(); });

test('model train --json on the QuestDB runs registers a version with held-out figures for each target, not in service', async () => {
  const out = await json<TrainOutput>('train', '--json');
  firstTrain = out;
  firstVersion = out.version;
  assert.match(out.version, /^m-\d{8}-\d{6}(-\d+)?$/);
  assert.is(out.promoted, false);
  assert.is(out.previous, shipped);
  assert.is(out.split.fit + out.split.calibration + out.split.test, SUCCEEDED, 'failed runs do not train');
  assert.ok(out.split.test >= 20, `${out.split.test} held-out rows`);
  for (const t of CPU_TARGETS) {
    assert.ok(out.targets[t]!.rows > 0 && !out.targets[t]!.inherited_from && !out.targets[t]!.skipped, `${t}: ${JSON.stringify(out.targets[t])}`);
    assertFigures(out.metrics[t], t);
    assert.is(out.metrics[t]!.n, out.split.test, `${t} evaluated on every held-out row`);
  }
  assert.ok(out.targets.gpu_percent?.skipped, 'no run used a GPU, so GPU share is not learned');
  assert.is(out.metrics.gpu_percent, undefined);
});

test('model list --json shows the trained version and the shipped one, the shipped one in service', async () => {
  const entries = await list();
  assert.equal(entries.map((e) => [e.version, e.shipped, e.current]), [[firstVersion, false, false], [shipped, true, true]]);
  const mine = entries[0];
  assert.is(mine.trained_on?.rows, SUCCEEDED);
  assert.match(mine.trained_on?.source ?? '', /QuestDB encode_runs/);
  assert.is(mine.parent, shipped, 'a model trained while the shipped one served names it as parent');
});

test('model evaluate --json --baseline prints the figures of the model and of both baselines on the same held-out rows', async () => {
  const out = await json<EvaluateOutput>('evaluate', '--json', '--baseline', '--model', firstVersion);
  assert.is(out.model, firstVersion);
  assert.is(out.held_out, firstTrain.split.test, 'the hash split finds exactly the rows training held out');
  assert.equal(Object.keys(out.baselines ?? {}).sort(), ['linear_regression', 'mean_per_codec']);
  for (const t of CPU_TARGETS) {
    assertFigures(out.metrics[t], `${firstVersion} ${t}`);
    assert.is(out.metrics[t]!.n, out.held_out);
    assert.ok(Math.abs(out.metrics[t]!.mae - firstTrain.metrics[t]!.mae) <= 1e-9 * Math.max(1, firstTrain.metrics[t]!.mae), `${t}: evaluate and train agree on the same rows`);
    for (const [b, report] of Object.entries(out.baselines!)) {
      assertFigures(report[t], `baseline ${b} ${t}`);
      assert.is(report[t]!.n, out.metrics[t]!.n, `baseline ${b} ${t} on as many rows as the model`);
    }
  }
});

test('model evaluate without --json prints a table of MAE, MAPE, R², coverage and slack per target', async () => {
  const r = await cliRun(s, ['model', 'evaluate', '--model', firstVersion, '--baseline']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`${firstVersion} on ${firstTrain.split.test} held-out rows`));
  for (const h of ['MAE', 'MAPE', 'R²', 'coverage', 'slack']) assert.ok(r.stdout.includes(h), `no ${h} column`);
  for (const t of CPU_TARGETS) assert.ok(r.stdout.split('\n').filter((l) => l.trimStart().startsWith(t)).length === 3, `${t}: one line for the model, one per baseline`);
  assert.match(r.stdout, /baseline mean_per_codec/);
  assert.match(r.stdout, /baseline linear_regression/);
});

test('model rollback with nothing promoted exits non-zero and says there is nothing to roll back', async () => {
  const err = await refused('rollback');
  assert.match(err, /nothing to roll back/);
  assert.ok(err.includes(shipped), err);
  assert.equal(await current(), [shipped]);
});

test('model train --promote --json puts a candidate that is no worse in service', async () => {
  const out = await json<TrainOutput>('train', '--promote', '--json', '--version', 'cand-1', '--seed', '2');
  assert.is(out.version, 'cand-1');
  assert.is(out.previous, shipped);
  assert.ok(out.previous_metrics, 'the model in service was measured on the same rows');
  for (const t of CPU_TARGETS) assert.is(out.previous_metrics![t]!.n, out.metrics[t]!.n);
  // The shipped model learned from a handful of real encodes; on the prior's own runs a model
  // trained on 140 of them does better.
  assert.ok(out.promoted, `not promoted: ${out.reason}`);
  assert.match(out.reason, /^no worse than the current model/);
  assert.equal(await current(), ['cand-1']);
});

test('model train --promote --json keeps a worse candidate out of service and says why', async () => {
  // The first 40 runs only (--to): about 26 to fit on, judged on held-out rows cand-1 never saw either.
  const to = new Date(Date.UTC(2026, 0, 5) + 40 * 60_000).toISOString();
  const out = await json<TrainOutput>('train', '--promote', '--json', '--version', 'small-1', '--to', to);
  assert.is(out.split.fit + out.split.calibration + out.split.test, 40);
  assert.is(out.previous, 'cand-1');
  assert.is(out.promoted, false);
  assert.match(out.reason, /^worse than the current model: .*error/);
  assert.equal(await current(), ['cand-1']);
  const h = await json<RegistryEvent[]>('history', '--json');
  const reg = h.find((e) => e.action === 'register' && e.version === 'small-1')!;
  assert.ok(reg.reason.includes(`not promoted: ${out.reason}`), reg.reason);
});

test('model train --promote --force puts a version in service without comparing', async () => {
  const out = await json<TrainOutput>('train', '--promote', '--force', '--json', '--version', 'forced-1');
  assert.is(out.promoted, true);
  assert.match(out.reason, /without comparison/);
  assert.is(out.previous, 'cand-1');
  assert.equal(await current(), ['forced-1']);
});

test('model promote and model rollback move the version in service, and model history records each move with its reason', async () => {
  let r = await cliRun(s, ['model', 'promote', firstVersion, '--reason', 'hand-picked']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`${firstVersion} is in service`));
  assert.equal(await current(), [firstVersion]);

  r = await cliRun(s, ['model', 'rollback', '--reason', 'regret']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /forced-1 is in service/);
  assert.equal(await current(), ['forced-1']);

  r = await cliRun(s, ['model', 'rollback']);
  assert.is(r.code, 0, r.stderr);
  assert.equal(await current(), ['cand-1']);

  r = await cliRun(s, ['model', 'rollback']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`${shipped} is in service`));
  assert.equal(await current(), [shipped]);

  assert.match(await refused('rollback'), /nothing to roll back/);

  const h = await json<RegistryEvent[]>('history', '--json');
  assert.equal(h.filter((e) => e.action !== 'register').map((e) => `${e.action} ${e.version}`), [
    'promote cand-1', 'promote forced-1', `promote ${firstVersion}`, 'rollback forced-1', 'rollback cand-1', `rollback ${shipped}`,
  ]);
  assert.equal(h.filter((e) => e.action === 'register').map((e) => e.version), [firstVersion, 'cand-1', 'small-1', 'forced-1']);
  assert.is(h.find((e) => e.action === 'promote' && e.version === firstVersion)!.reason, 'hand-picked');
  assert.is(h.find((e) => e.action === 'rollback' && e.version === 'forced-1')!.reason, `regret (from ${firstVersion})`);
  assert.match(h.find((e) => e.action === 'promote' && e.version === 'cand-1')!.reason, /^no worse than the current model/);
  assert.ok(h.every((e) => !Number.isNaN(Date.parse(e.at))), 'every event has a time');
});

test('model train --csv with the transcoding-measurements mapping learns time and memory from the log and inherits CPU and bandwidth', async () => {
  const file = path.join(s.dir, 'transcodes.tsv');
  writeTranscodingTsv(file, 400, {
    seed: 5,
    // Two lines the mapping cannot use: targets that are not numbers, and no target at all.
    extraLines: [
      ['v1', 10, 'h264', 640, 480, 800000, 25, 9, 176, 65, 250, 180000, 704000, 97500, 1000000, 'h264', 539000, 25, 640, 480, 'lots', 'slow'].join('\t'),
      ['v2', 10, 'h264', 640, 480, 800000, 25, 9, 176, 65, 250, 180000, 704000, 97500, 1000000, 'h264', 539000, 25, 640, 480, 'NA', 'NA'].join('\t'),
    ],
  });
  const [parent] = await current();
  const out = await json<TrainOutput>('train', '--csv', file, '--mapping', TRANSCODING_MAPPING, '--json', '--baseline', '--version', 'tsv-1');
  assert.is(out.split.fit + out.split.calibration + out.split.test, 400, 'the two unusable lines are skipped');
  assert.equal([out.import?.read, out.import?.used, out.import?.skipped, out.import?.encoding], [402, 400, 2, 'utf-8']);
  assert.equal(out.import?.skipped_by_column, { umem: { 'not a number': 1 }, 'umem, utime': { 'no target value': 1 } });
  assert.equal(out.import?.skipped_examples.map((p) => p.line), [402, 403]);
  for (const t of ['memory_gb', 'duration_s'] as const) {
    assert.ok(out.targets[t]!.rows > 0 && !out.targets[t]!.inherited_from, `${t} is learned from the log: ${JSON.stringify(out.targets[t])}`);
    assertFigures(out.metrics[t], t);
  }
  for (const t of ['cpu_cores', 'bandwidth_mbps'] as const) {
    assert.is(out.targets[t]?.inherited_from, parent, `${t} comes from the model in service: ${JSON.stringify(out.targets[t])}`);
    assert.is(out.metrics[t], undefined, `${t} is not measured by the log, so not evaluated`);
  }
  // The log's targets follow a formula plus 7 % noise: the network must find most of it, and
  // beat the mean per codec on the same rows.
  assert.ok(out.metrics.duration_s!.r2 > 0.8, `duration R² ${out.metrics.duration_s!.r2}`);
  assert.ok(out.metrics.memory_gb!.mape < 25, `memory MAPE ${out.metrics.memory_gb!.mape}%`);
  for (const t of ['memory_gb', 'duration_s'] as const) {
    const mean = out.baselines!.mean_per_codec[t]!;
    assert.ok(out.metrics[t]!.scale_mae < mean.scale_mae, `${t}: model ${out.metrics[t]!.scale_mae} vs mean per codec ${mean.scale_mae}`);
  }
  const entry = (await list()).find((e) => e.version === 'tsv-1')!;
  assert.is(entry.trained_on?.source, 'transcodes.tsv via transcoding-measurements.yaml');
  assert.is(entry.parent, parent);
  assert.equal(await current(), [parent], 'training without --promote leaves the model in service');
});

test('reading a mapped log reports how many rows it skipped and the line and column of each', async () => {
  const file = path.join(s.dir, 'transcodes.tsv');
  const r = await cliRun(s, ['model', 'evaluate', '--model', 'tsv-1', '--csv', file, '--mapping', TRANSCODING_MAPPING]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /read 402 rows from .*transcodes\.tsv: 400 usable, 2 skipped/);
  assert.match(r.stderr, /skipped, by column: umem: not a number ×1; umem, utime: no target value ×1/);
  assert.match(r.stderr, /line 402, column umem: "lots" is not a finite number, and no other target has a value/);
  assert.match(r.stderr, /line 403, column umem, utime: has no target value/);
  assert.match(r.stdout, /tsv-1 on \d+ held-out rows of transcodes\.tsv via transcoding-measurements\.yaml/);
});

test('model export --out writes the runs as CSV, and model train --csv on it trains on the same runs without a mapping', async () => {
  const file = path.join(s.dir, 'runs.csv');
  const r = await cliRun(s, ['model', 'export', '--out', file]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`wrote ${SUCCEEDED + FAILED} runs to `));
  const out = await json<TrainOutput>('train', '--csv', file, '--json', '--version', 'exported-1');
  assert.equal(out.split, firstTrain.split, 'the same succeeded runs, split the same way');
  for (const t of CPU_TARGETS) assert.is(out.metrics[t]!.n, firstTrain.metrics[t]!.n);
  // The same model on either source sees the same held-out rows with the same values.
  const fromDb = await json<EvaluateOutput>('evaluate', '--json', '--model', firstVersion);
  const fromCsv = await json<EvaluateOutput>('evaluate', '--json', '--model', firstVersion, '--csv', file);
  assert.equal(fromCsv.metrics, fromDb.metrics);
  const entry = (await list()).find((e) => e.version === 'exported-1')!;
  assert.is(entry.trained_on?.rows, SUCCEEDED);
  assert.is(entry.trained_on?.source, 'runs.csv');
});

test('model evaluate --test scores every row of a separate log, whatever its encoding, and of an export, with nothing held back', async () => {
  // 60 transcodes of sources named in windows-1252 (as a spreadsheet on Windows saves them), one
  // with a frame rate that is no number (kept, the field left empty), one with no target (skipped).
  const file = path.join(s.dir, 'unseen.tsv');
  const extra = [
    ['vidéo-x', 10, 'h264', 640, 480, 800000, 'fast', 9, 176, 65, 250, 180000, 704000, 97500, 1000000, 'vp8', 539000, 25, 640, 480, 90000, 1.5].join('\t'),
    ['vidéo-y', 10, 'h264', 640, 480, 800000, 25, 9, 176, 65, 250, 180000, 704000, 97500, 1000000, 'vp8', 539000, 25, 640, 480, '', ''].join('\t'),
  ];
  writeFileSync(file, Buffer.from(transcodingTsv(60, { seed: 9 }).replace(/\bvid(\d)/g, 'vidéo$1') + extra.map((l) => `${l}\n`).join(''), 'latin1'));
  const out = await json<EvaluateOutput>('evaluate', '--test', file, '--mapping', TRANSCODING_MAPPING, '--model', 'tsv-1', '--json');
  assert.is(out.model, 'tsv-1');
  assert.is(out.rows, 61);
  assert.is(out.held_out, undefined, 'nothing is held out');
  for (const t of ['memory_gb', 'duration_s'] as const) {
    assertFigures(out.metrics[t], t);
    assert.is(out.metrics[t]!.n, 61, `${t} scored on every usable row`);
  }
  const imp = out.import!;
  assert.equal([imp.read, imp.used, imp.skipped, imp.encoding, imp.encoding_from], [62, 61, 1, 'windows-1252', 'fallback']);
  assert.match(imp.notes.join('\n'), /unseen\.tsv is not UTF-8 \(line 2 is not\): read as windows-1252/);
  assert.equal(imp.warnings_by_column, { framerate: { 'not a number': 1 } });
  assert.equal(imp.warning_examples, [{ line: 62, column: 'framerate', reason: '"fast" is not a finite number' }]);
  assert.equal(imp.skipped_by_column, { 'umem, utime': { 'no target value': 1 } });

  // Read as UTF-8 on purpose, the file is refused rather than read wrong.
  assert.match(await refused('evaluate', '--test', file, '--mapping', TRANSCODING_MAPPING, '--model', 'tsv-1', '--encoding', 'utf-8'), /unseen\.tsv: was to be read as utf-8, but is not valid utf-8/);
  assert.match(await refused('evaluate', '--test', file, '--mapping', TRANSCODING_MAPPING, '--encoding', 'klingon'), /--encoding: "klingon" is not an encoding/);

  const table = await cliRun(s, ['model', 'evaluate', '--test', file, '--mapping', TRANSCODING_MAPPING, '--model', 'tsv-1']);
  assert.is(table.code, 0, table.stderr);
  assert.match(table.stdout, /tsv-1 on every row of unseen\.tsv via transcoding-measurements\.yaml, 61 rows/);
  assert.match(table.stdout, /median APE/);
  assert.match(table.stderr, /read 62 rows from .*unseen\.tsv \(windows-1252\): 61 usable, 1 skipped/);
  assert.match(table.stderr, /cells left empty in rows kept, by column: framerate: not a number ×1/);

  // An export needs no mapping: every succeeded run is scored.
  const exported = await json<EvaluateOutput>('evaluate', '--test', path.join(s.dir, 'runs.csv'), '--model', firstVersion, '--json');
  assert.is(exported.rows, SUCCEEDED);
  for (const t of CPU_TARGETS) assert.is(exported.metrics[t]!.n, SUCCEEDED, `${t} on every succeeded run`);
  assert.equal([exported.import?.read, exported.import?.skipped, exported.import?.skipped_by_column], [SUCCEEDED + FAILED, FAILED, { status: { failed: FAILED } }]);
});

test('model evaluate --test refuses what would contradict scoring the whole file: --baseline, --split, another source', async () => {
  const file = path.join(s.dir, 'unseen.tsv');
  assert.match(await refused('evaluate', '--test', file, '--mapping', TRANSCODING_MAPPING, '--baseline'), /--baseline: does not go with --test/);
  assert.match(await refused('evaluate', '--test', file, '--mapping', TRANSCODING_MAPPING, '--split', 'time'), /--split: does not go with --test/);
  assert.match(await refused('evaluate', '--test', file, '--csv', file, '--mapping', TRANSCODING_MAPPING), /--csv: does not go with --test/);
  assert.match(await refused('evaluate', '--test', path.join(s.dir, 'nowhere.tsv')), /--test: .*nowhere\.tsv does not exist/);
});

test('a log without --mapping that is not a Prescient export is refused, asking for a mapping', async () => {
  const err = await refused('train', '--csv', path.join(s.dir, 'transcodes.tsv'));
  assert.match(err, /--mapping: .*transcodes\.tsv is not a Prescient export, so it needs a mapping file/);
});

test('a mapping naming a column the log lacks is refused, naming the column', async () => {
  const file = path.join(s.dir, 'no-umem.tsv');
  writeTranscodingTsv(file, 50, { drop: ['umem'] });
  const err = await refused('train', '--csv', file, '--mapping', TRANSCODING_MAPPING);
  assert.match(err, /columns\.umem: column "umem" is not in .*no-umem\.tsv's header/);
  assert.ok(err.includes('transcoding-measurements.yaml'), `the mapping file is named: ${err}`);
});

test('--coverage outside 0.5–0.999 and --split other than hash, time or none are refused, naming the option', async () => {
  const before = (await list()).length;
  assert.match(await refused('train', '--coverage', '2'), /--coverage: must be between 0\.5 and 0\.999, got "2"/);
  assert.match(await refused('evaluate', '--coverage', '2'), /--coverage: must be between 0\.5 and 0\.999, got "2"/);
  assert.match(await refused('train', '--split', 'sideways'), /--split: must be hash, time or none, got "sideways"/);
  assert.match(await refused('evaluate', '--split', 'sideways'), /--split: must be hash, time or none, got "sideways"/);
  assert.is((await list()).length, before, 'nothing was registered');
});

test('model promote of a version that does not exist is refused and leaves the model in service', async () => {
  const [before] = await current();
  const err = await refused('promote', 'no-such-version');
  assert.match(err, /no model version no-such-version/);
  assert.equal(await current(), [before]);
});

test('model evaluate --model with a file that is not a valid model is refused, saying why', async () => {
  const garbage = path.join(s.dir, 'garbage.json');
  writeFileSync(garbage, 'this is not a model {');
  let err = await refused('evaluate', '--model', garbage);
  assert.ok(err.includes(`cannot load model ${garbage}`), err);

  const notModel = path.join(s.dir, 'not-a-model.json');
  writeFileSync(notModel, JSON.stringify({ hello: 'world' }));
  err = await refused('evaluate', '--model', notModel);
  assert.match(err, /not a Prescient model file/);

  // A real model file with one number changed: its checksum gives it away.
  const edited = path.join(s.dir, 'edited.json');
  const f = JSON.parse(readFileSync(DEFAULT_MODEL_PATH, 'utf8')) as { targets: Record<string, { hi: number }> };
  f.targets.memory_gb.hi += 0.5;
  writeFileSync(edited, JSON.stringify(f));
  err = await refused('evaluate', '--model', edited);
  assert.match(err, /checksum does not match its contents/);
});

test.run();
