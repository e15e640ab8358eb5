/** The model registry, the live model a long-running process predicts with, and retraining (models/registry.ts, training/retrain.ts). */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateEncodingSchema } from '../../shared/index.js';
import {
  DEFAULT_MODEL_PATH, LiveModel, Model, ModelFileError, ModelRegistry, RegistryError, modelChecksum, priorRows, retrain, seededRandom,
  type LabelledRow, type ModelFile,
} from '../../models/index.js';

const root = mkdtempSync(path.join(tmpdir(), 'prescient-registry-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

const DEFAULT_FILE: ModelFile = JSON.parse(readFileSync(DEFAULT_MODEL_PATH, 'utf8'));
/** A valid model file under another version name (the shipped network, resealed). */
function fileAs(version: string, createdAt = '2026-01-01T00:00:00.000Z'): ModelFile {
  const f = { ...structuredClone(DEFAULT_FILE), version, created_at: createdAt };
  return { ...f, checksum: modelChecksum(f) };
}
const modelAs = (version: string, createdAt?: string) => Model.fromFile(fileAs(version, createdAt));
/** The registry's own shipped model, so nothing here depends on which model models/default holds. */
const SHIPPED = path.join(root, 'shipped.json');
writeFileSync(SHIPPED, JSON.stringify(fileAs('shipped-test')));

let count = 0;
/** An empty registry in a directory of its own. */
const fresh = () => new ModelRegistry(mkdtempSync(path.join(root, `r${count++}-`)), SHIPPED);
/** A registry with v1 and v2 registered (v1 older), nothing promoted. */
function withTwo(): ModelRegistry {
  const reg = fresh();
  reg.register(modelAs('v1', '2026-02-01T00:00:00.000Z'), 'first');
  reg.register(modelAs('v2', '2026-03-01T00:00:00.000Z'), 'second');
  return reg;
}
const corrupt = (file: string) => writeFileSync(file, readFileSync(file, 'utf8').slice(0, 200));
/** The error `fn` throws, which must be of class `cls`. */
function thrown<E extends Error>(cls: new (...a: never[]) => E, fn: () => unknown): E {
  try {
    fn();
  } catch (e) {
    assert.instance(e, cls);
    return e as E;
  }
  return assert.unreachable(`expected a ${cls.name}`) as never;
}
const SCHEMA = validateEncodingSchema({
  input: { synthetic: { source: 'testsrc2' }, resolution: '1280x720', fps: 30, duration_s: 4 },
  output: { codec: 'h264', preset: 'veryfast', rate_control: { mode: 'crf', crf: 23 } },
}, { allowedInputRoots: [] });

test('the shipped model is current until a version is promoted', () => {
  const reg = fresh();
  assert.is(reg.currentVersion(), 'shipped-test');
  assert.is(reg.load().version, 'shipped-test');
  assert.is(reg.pathOf('shipped-test'), SHIPPED);
  reg.register(modelAs('v1'));
  assert.is(reg.currentVersion(), 'shipped-test', 'registering does not promote');
  reg.promote('v1', 'test');
  assert.is(reg.currentVersion(), 'v1');
  assert.is(reg.load().version, 'v1');
  assert.is(new ModelRegistry(reg.dir, SHIPPED).currentVersion(), 'v1', 'another process sees the same');
});

test('register refuses a version that already exists, the shipped one included', () => {
  const reg = withTwo();
  const before = readFileSync(reg.pathOf('v1'), 'utf8');
  assert.match(thrown(RegistryError, () => reg.register(modelAs('v1', '2027-01-01T00:00:00.000Z'))).message, /model version v1 already exists/);
  assert.is(readFileSync(reg.pathOf('v1'), 'utf8'), before, 'the stored file is untouched');
  assert.match(thrown(RegistryError, () => reg.register(modelAs('shipped-test'))).message, /already exists/);
  assert.is(reg.history().filter((e) => e.action === 'register').length, 2);
});

test('promote refuses a version whose file does not load, and the current version stays', () => {
  const reg = withTwo();
  reg.promote('v1', 'good');
  corrupt(reg.pathOf('v2'));
  const e = thrown(ModelFileError, () => reg.promote('v2', 'broken'));
  assert.match(e.message, /v2\.json/);
  assert.is(reg.currentVersion(), 'v1');
  assert.not.ok(reg.history().some((h) => h.action === 'promote' && h.version === 'v2'));
  assert.match(thrown(RegistryError, () => reg.promote('v9', 'unknown')).message, /no model version v9/);
  assert.match(thrown(RegistryError, () => reg.promote('../v1', 'path')).message, /is not a model version name/);
});

test('rollback returns to the version promoted before, then to the shipped model, then refuses', () => {
  const reg = withTwo();
  assert.match(thrown(RegistryError, () => reg.rollback('nothing yet')).message, /nothing to roll back/);
  reg.promote('v1', 'one');
  reg.promote('v2', 'two');
  assert.is(reg.rollback('v2 misbehaves'), 'v1');
  assert.is(reg.currentVersion(), 'v1');
  assert.is(reg.rollback('v1 misbehaves'), 'shipped-test');
  assert.is(reg.currentVersion(), 'shipped-test');
  assert.match(thrown(RegistryError, () => reg.rollback('again')).message, /nothing to roll back/);
  assert.is(reg.currentVersion(), 'shipped-test');
});

test('rollback after a rollback and a new promotion goes back along what was in service', () => {
  const reg = withTwo();
  reg.register(modelAs('v3', '2026-04-01T00:00:00.000Z'));
  reg.promote('v1', 'one');
  reg.promote('v2', 'two');
  reg.rollback('v2 misbehaves'); // v1
  reg.promote('v3', 'three');
  assert.is(reg.rollback('v3 misbehaves'), 'v1');
  assert.is(reg.rollback('v1 misbehaves'), 'shipped-test');
});

test('list marks the current version, newest first with the shipped one last, and reports an unreadable file', () => {
  const reg = withTwo();
  reg.promote('v1', 'one');
  writeFileSync(path.join(reg.versionsDir, 'broken.json'), '{"format": "prescient-mod');
  const list = reg.list();
  assert.equal(list.map((e) => e.version), ['v2', 'v1', 'broken', 'shipped-test']);
  assert.equal(list.filter((e) => e.current).map((e) => e.version), ['v1']);
  const broken = list.find((e) => e.version === 'broken')!;
  assert.ok(broken.error && /JSON/.test(broken.error), `error: ${broken.error}`);
  assert.not.ok(broken.current);
  const last = list[list.length - 1];
  assert.ok(last.shipped && last.file === SHIPPED && !last.error);
  assert.ok(list.slice(0, -1).every((e) => !e.shipped));
  assert.is(list.find((e) => e.version === 'v1')!.trained_on?.source, DEFAULT_FILE.trained_on.source);
});

test('history records register, promote and rollback in order, with their reasons', () => {
  const reg = withTwo();
  reg.promote('v1', 'first promotion');
  reg.promote('v2', 'second promotion');
  reg.rollback('bad figures');
  const h = reg.history();
  assert.equal(h.map((e) => [e.action, e.version]), [['register', 'v1'], ['register', 'v2'], ['promote', 'v1'], ['promote', 'v2'], ['rollback', 'v1']]);
  assert.equal(h.map((e) => e.reason).slice(0, 4), ['first', 'second', 'first promotion', 'second promotion']);
  assert.is(h[4].reason, 'bad figures (from v2)');
  const times = h.map((e) => Date.parse(e.at));
  assert.ok(times.every((t, i) => Number.isFinite(t) && (i === 0 || t >= times[i - 1])), 'times are in order');
});

test('newVersion never repeats an existing version name', () => {
  const reg = fresh();
  const now = new Date('2026-01-02T03:04:05.678Z');
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const v = reg.newVersion(now);
    assert.not.ok(seen.has(v), `${v} repeated`);
    assert.not.ok(existsSync(path.join(reg.versionsDir, `${v}.json`)));
    seen.add(v);
    reg.register(modelAs(v));
  }
  assert.equal([...seen], ['m-20260102-030405', 'm-20260102-030405-1', 'm-20260102-030405-2', 'm-20260102-030405-3']);
  assert.is(reg.newVersion(new Date('2026-01-02T03:04:06Z')), 'm-20260102-030406');
});

test('a live model swaps in a newly promoted version on refresh, without a restart', () => {
  const reg = withTwo();
  const logs: string[] = [];
  const live = new LiveModel(reg, { log: (m) => logs.push(m) });
  assert.is(live.version, 'shipped-test');
  assert.is(live.predict(SCHEMA).model_version, 'shipped-test');
  assert.not.ok(live.refresh(), 'nothing changed');
  reg.promote('v1', 'one');
  assert.ok(live.refresh());
  assert.is(live.predict(SCHEMA).model_version, 'v1');
  assert.not.ok(live.refresh(), 'nothing changed since');
  reg.promote('v2', 'two');
  assert.ok(live.refresh());
  assert.is(live.predict(SCHEMA, { cores: 4 }).model_version, 'v2');
  reg.rollback('back');
  assert.ok(live.refresh());
  assert.is(live.version, 'v1');
  assert.ok(logs.some((m) => m.includes('model v2 in service')), logs.join('\n'));
});

test('a live model keeps its model in service when the promoted version no longer loads, and says which file', () => {
  const reg = withTwo();
  reg.promote('v1', 'one');
  const logs: string[] = [];
  const live = new LiveModel(reg, { log: (m) => logs.push(m) });
  assert.is(live.version, 'v1');
  // Promoted, then damaged before this process reloads.
  reg.promote('v2', 'two');
  corrupt(reg.pathOf('v2'));
  assert.not.ok(live.refresh());
  assert.is(live.version, 'v1');
  assert.is(live.predict(SCHEMA).model_version, 'v1');
  const file = reg.pathOf('v2');
  assert.ok(logs.some((m) => m.includes('v2') && m.includes(file) && m.includes('v1 stays in service')), logs.join('\n'));
});

test('a live model keeps its model in service when registry.json is edited to point at a damaged file', () => {
  const reg = withTwo();
  reg.register(modelAs('v3'));
  const logs: string[] = [];
  const live = new LiveModel(reg, { log: (m) => logs.push(m) });
  reg.promote('v1', 'one');
  assert.ok(live.refresh());
  const file = reg.pathOf('v3');
  writeFileSync(file, JSON.stringify({ ...fileAs('v3'), coverage: 0.7 })); // edited: the checksum no longer matches
  const stateFile = path.join(reg.dir, 'registry.json');
  writeFileSync(stateFile, JSON.stringify({ ...JSON.parse(readFileSync(stateFile, 'utf8')), current: 'v3' }));
  assert.not.ok(live.refresh());
  assert.is(live.version, 'v1');
  assert.is(live.predict(SCHEMA).model_version, 'v1');
  assert.ok(logs.some((m) => m.includes(file) && /checksum/.test(m)), logs.join('\n'));
});

test("a live model whose current version does not load at start serves the registry's shipped model", () => {
  const reg = withTwo();
  reg.promote('v1', 'one');
  corrupt(reg.pathOf('v1'));
  const logs: string[] = [];
  const live = new LiveModel(reg, { log: (m) => logs.push(m) });
  assert.ok(logs.some((m) => m.includes(reg.pathOf('v1'))), logs.join('\n'));
  assert.is(live.version, 'shipped-test', `served ${live.version}, not the registry's shipped model ${reg.shippedVersion()}`);
});

// ── retraining ──────────────────────────────────────────────────────────────────────────

const RETRAIN = { source: 'prior rows', seed: 2, threads: 2 };
/** A registry whose current model was trained on few, noisy rows, then retrained on good rows (if better). */
let LADDER: Promise<{ reg: ModelRegistry; noisy: Awaited<ReturnType<typeof retrain>>; good: Awaited<ReturnType<typeof retrain>> }> | undefined;
const ladder = () => (LADDER ??= (async () => {
  const reg = fresh();
  const noisy = await retrain({ ...RETRAIN, registry: reg, rows: priorRows(160, { seed: 50, noise: 0.35 }), version: 'noisy', promote: 'always', network: { maxEpochs: 5 } });
  const good = await retrain({ ...RETRAIN, registry: reg, rows: priorRows(1000, { seed: 51, noise: 0.05 }), version: 'good', promote: 'if-better', network: { hidden: [12, 6], maxEpochs: 30 } });
  return { reg, noisy, good };
})());

test('a candidate trained on good rows replaces a model trained on few noisy rows', async () => {
  const { reg, noisy, good } = await ladder();
  assert.ok(noisy.promoted);
  assert.match(noisy.reason, /promoted on request/);
  assert.is(good.previous, 'noisy');
  assert.ok(good.promoted, `not promoted: ${good.reason}`);
  assert.match(good.reason, /no worse than the current model/);
  assert.ok(good.comparison?.accept);
  for (const [t, c] of Object.entries(good.comparison!.targets)) assert.ok(c!.candidate < c!.current, `${t}: candidate ${c!.candidate} vs current ${c!.current}`);
  assert.is(reg.currentVersion(), 'good');
  assert.is(good.train.model.file.parent, 'noisy');
});

/** `rows` with the targets of those `which` picks moved among themselves (seeded). */
function shuffleTargets(rows: LabelledRow[], which: (i: number) => boolean = () => true): LabelledRow[] {
  const picked = rows.map((_, i) => i).filter(which), order = [...picked];
  const rand = seededRandom(8);
  for (let i = order.length - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [order[i], order[j]] = [order[j], order[i]]; }
  const out = [...rows];
  picked.forEach((at, k) => { out[at] = { ...rows[at], targets: rows[order[k]].targets }; });
  return out;
}

test('judged on clean recent rows, a candidate trained on shuffled older rows is registered but not promoted', async () => {
  const { reg } = await ladder();
  const rows = priorRows(600, { seed: 54, noise: 0.05 }).map((r, i) => ({ ...r, ts: 1_700_000_000_000 + i * 60_000 }));
  const r = await retrain({ ...RETRAIN, registry: reg, rows: shuffleTargets(rows, (i) => i < 450), split: 'time', version: 'shuffled-old', promote: 'if-better', network: { maxEpochs: 10 } });
  assert.ok(r.train.split.test.every((x) => x.ts! >= rows[480].ts!), 'the held-out rows are the latest, unshuffled ones');
  assert.is(r.previous, 'good');
  assert.not.ok(r.promoted, `promoted: ${r.reason}`);
  // Refused either as no better than the mean per codec, or as worse than 'good': both are true of it.
  assert.match(r.reason, /not good enough on its own|worse than the current model/);
  assert.is(reg.currentVersion(), 'good');
  assert.is(reg.load('shuffled-old').version, 'shuffled-old', 'the candidate is registered');
  const last = reg.history().at(-1)!;
  assert.equal([last.action, last.version], ['register', 'shuffled-old']);
  assert.match(last.reason, /not promoted: (not good enough on its own|worse)/);
});

test("promote 'never' only registers the candidate", async () => {
  const { reg } = await ladder();
  const [current, before] = [reg.currentVersion(), reg.history().length];
  const r = await retrain({ ...RETRAIN, registry: reg, rows: priorRows(300, { seed: 53, noise: 0.05 }), version: 'kept-aside', promote: 'never', network: { maxEpochs: 5 } });
  assert.not.ok(r.promoted);
  assert.match(r.reason, /registered only/);
  assert.is(r.comparison, undefined);
  assert.is(reg.currentVersion(), current);
  const added = reg.history().slice(before);
  assert.equal(added.map((e) => [e.action, e.version]), [['register', 'kept-aside']]);
  assert.ok(reg.list().some((e) => e.version === 'kept-aside' && !e.current));
});

test('a candidate trained on targets shuffled across rows is registered but not promoted', async () => {
  const { reg } = await ladder();
  const current = reg.currentVersion();
  const r = await retrain({ ...RETRAIN, registry: reg, rows: shuffleTargets(priorRows(600, { seed: 52, noise: 0.05 })), version: 'shuffled', promote: 'if-better', network: { maxEpochs: 10 } });
  assert.ok(existsSync(reg.pathOf('shuffled')), 'the candidate is registered');
  assert.is(reg.load('shuffled').version, 'shuffled');
  const figures = Object.entries(r.comparison?.targets ?? {}).map(([t, c]) => `${t} error ${c!.candidate.toFixed(3)} vs ${c!.current.toFixed(3)}, coverage ${c!.candidate_coverage.toFixed(2)} vs ${c!.current_coverage.toFixed(2)}`);
  assert.not.ok(r.promoted, `a model that learned nothing was promoted over ${current}: ${r.reason}; ${figures.join('; ')}`);
  assert.match(r.reason, /not good enough on its own: .*no better than the mean per codec/);
  assert.is(reg.currentVersion(), current);
});

test.run();
