/** Model files: what loading refuses, what the shipped model predicts, and how predictions are kept sane (models/model.ts). */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { validateEncodingSchema, type EncodingSchema } from '../../shared/index.js';
import {
  DEFAULT_MODEL_PATH, Model, ModelFileError, TARGETS, TARGET_SCALES, clampTarget, describeSchema, loadModelFile, modelChecksum,
  type ModelFile, type Target, type TargetModel,
} from '../../models/index.js';

const dir = mkdtempSync(path.join(tmpdir(), 'prescient-model-file-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const SHIPPED_TEXT = readFileSync(DEFAULT_MODEL_PATH, 'utf8');
/** A fresh, editable copy of the shipped model file. */
const shipped = (): ModelFile => JSON.parse(SHIPPED_TEXT);
/** Raises a target's estimates by `by` on the learning scale: its linear part with and without the probed numbers. */
const raise = (t: TargetModel, by: number) => {
  t.linear.intercept += by;
  if (t.linear_unprobed) t.linear_unprobed.intercept += by;
};
/** `f` with its checksum recomputed, so only the edit itself can be wrong. */
const resealed = (f: ModelFile): ModelFile => ({ ...f, checksum: modelChecksum(f) });
const write = (name: string, text: string) => {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
};
/** The ModelFileError `fn` throws, or a failure when it throws none. */
function refusal(fn: () => unknown): ModelFileError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ModelFileError) return e;
    throw e;
  }
  return assert.unreachable('the model file was accepted') as never;
}
const refused = (f: unknown, o: { coverage?: number } = {}) => refusal(() => Model.fromFile(f, { source: 'edited.json', ...o }));

const ctx = { allowedInputRoots: ['/srv/media'] };
const SCHEMAS: Record<string, EncodingSchema> = {
  'x264 synthetic 720p': validateEncodingSchema({
    input: { synthetic: { source: 'testsrc2', noise: 30 }, resolution: '1280x720', fps: 30, duration_s: 4 },
    output: { codec: 'h264', preset: 'veryfast', rate_control: { mode: 'crf', crf: 23 } },
  }, ctx),
  'x265 file 1080p at a bitrate': validateEncodingSchema({
    input: { path: '/srv/media/in.mp4', codec: 'h264', resolution: '1920x1080', fps: 25, bitrate_kbps: 8000, duration_s: 30 },
    output: { codec: 'hevc', preset: 'slow', rate_control: { mode: 'bitrate', bitrate_kbps: 3000 } },
  }, ctx),
  'vp9 synthetic 480p': validateEncodingSchema({
    input: { synthetic: { source: 'mandelbrot' }, resolution: '854x480', fps: 24, duration_s: 2 },
    output: { codec: 'vp9', rate_control: { mode: 'crf', crf: 32 } },
  }, ctx),
  'nvenc synthetic 1080p': validateEncodingSchema({
    input: { synthetic: { source: 'testsrc2', noise: 10 }, resolution: '1920x1080', fps: 60, duration_s: 10 },
    output: { codec: 'h264', encoder: 'h264_nvenc', preset: 'p4', rate_control: { mode: 'bitrate', bitrate_kbps: 6000 } },
  }, ctx),
};

test('a truncated file is refused with the parse error and the file it is about', () => {
  const file = write('truncated.json', SHIPPED_TEXT.slice(0, Math.floor(SHIPPED_TEXT.length / 2)));
  const e = refusal(() => loadModelFile(file));
  assert.is(e.source, file);
  assert.match(e.message, `cannot load model ${file}`);
  assert.match(e.reason, /JSON/);
  assert.match(refusal(() => loadModelFile(path.join(dir, 'absent.json'))).reason, /ENOENT/);
});

test('a file of another format, or another format version, is refused', () => {
  assert.match(refused({ ...shipped(), format: 'brain.js' }).reason, /not a Prescient model file/);
  assert.match(refused([1, 2, 3]).reason, /not a Prescient model file/);
  assert.match(refused(null).reason, /not a Prescient model file/);
  assert.match(refused(resealed({ ...shipped(), format_version: 1 as never })).reason, /model format 1 is not one this build reads \(3 or 4; retrain it\)/);
  assert.match(refused(resealed({ ...shipped(), version: '../etc/passwd' })).reason, /is not a model version name/);
});

test('an ensemble averages its members, a floor holds memory up, and a format-3 file (neither) still loads', () => {
  const f = shipped();
  const mem = f.targets.memory_gb!;
  assert.ok((mem.ensemble?.length ?? 0) >= 1, 'the shipped model averages an ensemble');
  assert.ok(mem.floor_by_hw && Object.keys(mem.floor_by_hw).length >= 1, 'the shipped model holds memory to a floor per hardware class');
  const rec = describeSchema(SCHEMAS['x264 synthetic 720p'], { cores: 2, hw_class: Object.keys(mem.floor_by_hw!)[0] });
  const model = Model.fromFile(f);
  // One member alone, and the floor lifted: a format-3 file of the same parts.
  const one: ModelFile = structuredClone(f);
  for (const t of TARGETS) if (one.targets[t]) { delete one.targets[t]!.ensemble; delete one.targets[t]!.floor_by_hw; }
  const v3 = Model.fromFile(resealed({ ...one, format_version: 3 }));
  assert.ok(Number.isFinite(v3.predictRecord(rec).expected.memory_gb));
  // Where the networks' residual is added at all (alpha above 0), the ensemble's mean is not its first member's.
  const netted = TARGETS.find((t) => (f.targets[t]?.alpha ?? 0) > 0 && (f.targets[t]?.ensemble?.length ?? 0) >= 1);
  assert.ok(netted, 'a target of the shipped model adds its ensemble\'s residual');
  assert.not.equal(v3.predictRecord(rec).expected[netted!], model.predictRecord(rec).expected[netted!], 'the ensemble is not its first member');
  // A floor above every estimate: the estimate is the floor, the bound never under it.
  const high: ModelFile = structuredClone(f);
  high.targets.memory_gb!.floor_by_hw = Object.fromEntries(Object.keys(mem.floor_by_hw!).map((k) => [k, Math.log10(3)]));
  const held = Model.fromFile(resealed(high)).predictRecord(rec);
  assert.ok(Math.abs(held.expected.memory_gb - 3) < 1e-9, `memory ${held.expected.memory_gb} held to its floor of 3 GB`);
  assert.ok(held.upper.memory_gb >= held.expected.memory_gb);
  // What format 3 did not have, it may not carry; an ensemble member must predict the target from the same features.
  assert.match(refused(resealed({ ...f, format_version: 3 })).reason, /is not part of model format 3/);
  const wrong: ModelFile = structuredClone(f);
  wrong.targets.memory_gb!.ensemble = [{ network: mem.network, output: mem.output }];
  assert.match(refused(resealed(wrong)).reason, /targets\.memory_gb\.ensemble\[0\] names network \d+ twice/);
  wrong.targets.memory_gb!.ensemble = [{ network: mem.ensemble![0].network, output: (mem.output + 1) % 4 }];
  assert.match(refused(resealed(wrong)).reason, /targets\.memory_gb\.ensemble\[0\] does not name a network output predicting it/);
});

test('a file with one weight edited fails its checksum', () => {
  const f = shipped();
  f.networks[f.targets.cpu_cores!.network].json.layers[1].weights[0][0] += 1e-3;
  const file = write('edited.json', JSON.stringify(f));
  const e = refusal(() => loadModelFile(file));
  assert.match(e.reason, /checksum does not match its contents/);
  assert.match(refused({ ...shipped(), checksum: undefined }).reason, /checksum does not match/);
});

test('a model built for another feature spec is refused even with a valid checksum', () => {
  const f = shipped();
  f.features[0].spec = 'features-v1' as never;
  assert.match(refused(resealed(f)).reason, /features\[0\] was built for feature spec "features-v1", this build reads features-v4/);
});

test('a network whose input size does not match the feature names is refused', () => {
  const f = shipped();
  const n = f.features[0].names.length;
  const net = f.networks[f.targets.memory_gb!.network].json;
  net.sizes[0] = n - 1;
  for (const row of net.layers[1].weights) row.pop();
  assert.match(refused(resealed(f)).reason, new RegExp(`networks\\[\\d\\] \\([a-z_, ]+\\) takes ${n - 1} inputs, the feature spec gives ${n}`));
  // Names that no longer match the state are caught before the networks are.
  const g = shipped();
  g.features[0].names.push('noise');
  assert.match(refused(resealed(g)).reason, /features\[0\] features\.names does not match/);
});

test('a NaN or null weight is refused even with a valid checksum', () => {
  const f = shipped();
  f.networks[f.targets.duration_s!.network].json.layers[2].weights[1][3] = NaN;
  assert.match(refused(resealed(f)).reason, /networks\[\d\] \([a-z_, ]+\) layer 2 node 1 has a non-finite weight/);
  // The same edit as it reaches the loader from a file: JSON writes NaN as null.
  const file = write('null-weight.json', JSON.stringify(resealed(f)));
  assert.match(readFileSync(file, 'utf8'), /null/);
  assert.match(refusal(() => loadModelFile(file)).reason, /non-finite weight/);
  const bias = shipped();
  (bias.networks[bias.targets.cpu_cores!.network].json.layers[1].biases as unknown as (number | null)[])[0] = null;
  assert.match(refused(resealed(bias)).reason, /networks\[\d\] \([a-z_, ]+\) layer 1 has a non-finite bias/);
});

test('a coverage outside 0.5–0.999, in the file or asked of the loader, is refused', () => {
  assert.match(refused(resealed({ ...shipped(), coverage: 0.3 })).reason, /coverage 0\.3 is outside 0\.5–0\.999/);
  assert.match(refused(resealed({ ...shipped(), coverage: 1 })).reason, /coverage 1 is outside/);
  assert.match(refused(shipped(), { coverage: 1 }).reason, /coverage 1 is outside/);
  assert.match(refused(shipped(), { coverage: 0.49 }).reason, /coverage 0\.49 is outside/);
  assert.match(refused(shipped(), { coverage: NaN }).reason, /coverage NaN is outside/);
  assert.is(Model.fromFile(shipped(), { coverage: 0.5 }).coverage, 0.5);
  assert.is(Model.fromFile(shipped(), { coverage: 0.999 }).coverage, 0.999);
});

test('unsorted residuals, an unknown target, another transform or a bad range are refused', () => {
  const unsorted = shipped();
  unsorted.targets.cpu_cores!.residuals.known.q.reverse();
  assert.match(refused(resealed(unsorted)).reason, /targets\.cpu_cores\.residuals\.known is not sorted/);
  const unknown = shipped();
  (unknown.targets as Record<string, unknown>).fps = unknown.targets.cpu_cores;
  assert.match(refused(resealed(unknown)).reason, /unknown target "fps"/);
  const linear = shipped();
  linear.targets.memory_gb!.transform = 'linear';
  assert.match(refused(resealed(linear)).reason, /targets\.memory_gb uses transform linear, this build expects log10/);
  const range = shipped();
  range.targets.duration_s!.hi = range.targets.duration_s!.lo - 1;
  assert.match(refused(resealed(range)).reason, /targets\.duration_s has an invalid range/);
});

test('a lookup, linear part, residual share or spread that cannot be read is refused, naming it', () => {
  const cell = shipped();
  const [path] = Object.keys(cell.targets.duration_s!.base.cells);
  cell.targets.duration_s!.base.cells[path] = null as never;
  assert.match(refused(resealed(cell)).reason, /targets\.duration_s\.base\.cells\[.*\] is not a finite number/);
  const weights = shipped();
  weights.targets.memory_gb!.linear.weights.pop();
  assert.match(refused(resealed(weights)).reason, /targets\.memory_gb\.linear has \d+ weights for \d+ features/);
  const alpha = shipped();
  alpha.targets.cpu_cores!.alpha = 1.5;
  assert.match(refused(resealed(alpha)).reason, /targets\.cpu_cores\.alpha 1\.5 is outside 0–1/);
  const floor = shipped();
  floor.targets.bandwidth_mbps!.spread_floor = 0;
  assert.match(refused(resealed(floor)).reason, /targets\.bandwidth_mbps\.spread_floor 0 is not a positive number/);
  const novelty = shipped();
  (novelty.targets.duration_s!.residuals.novel as Record<string, unknown>).codec = { n: 1, q: [0] };
  assert.match(refused(resealed(novelty)).reason, /targets\.duration_s\.residuals\.novel names an unknown class "codec"/);
});

test('the shipped model loads and predicts finite, positive figures with upper at or above expected', () => {
  const model = loadModelFile();
  assert.is(model.version, shipped().version);
  for (const [name, s] of Object.entries(SCHEMAS)) {
    const p = model.predict(s, { cores: 8 });
    assert.is(p.model_version, model.version);
    assert.is(p.coverage, 0.95);
    const gpu = name.startsWith('nvenc');
    for (const t of TARGETS) {
      const e = p.expected[t], u = p.upper[t];
      assert.ok(Number.isFinite(e) && Number.isFinite(u), `${name} ${t}: ${e}, ${u}`);
      assert.ok(u >= e, `${name} ${t}: upper ${u} below expected ${e}`);
      if (t === 'gpu_percent' && !gpu) assert.equal([e, u], [0, 0], `${name}: a CPU encode needs no GPU`);
      else assert.ok(e > 0, `${name} ${t}: expected ${e}`);
    }
    assert.ok(p.expected.cpu_cores <= 8 && p.upper.cpu_cores <= 8);
  }
});

test('a lower coverage gives bounds no higher than a higher one', () => {
  const low = loadModelFile(DEFAULT_MODEL_PATH, { coverage: 0.6 }), high = loadModelFile(DEFAULT_MODEL_PATH, { coverage: 0.99 });
  for (const s of Object.values(SCHEMAS)) {
    const a = low.predict(s, { cores: 8 }), b = high.predict(s, { cores: 8 });
    assert.equal(a.expected, b.expected);
    for (const t of TARGETS) assert.ok(a.upper[t] <= b.upper[t], `${t}: ${a.upper[t]} at 0.6, ${b.upper[t]} at 0.99`);
  }
});

test('a prediction beyond the physical range is clamped to it and flagged', () => {
  const f = shipped();
  raise(f.targets.memory_gb!, 6); // a million times the shipped memory figures
  const model = Model.fromFile(resealed(f));
  for (const s of Object.values(SCHEMAS)) {
    const p = model.predict(s, { cores: 8 });
    assert.is(p.expected.memory_gb, 4096);
    assert.is(p.upper.memory_gb, 4096);
    assert.ok(p.flags?.some((x) => /^memory_gb: estimate .* outside 0\.001–4096, clamped to 4096$/.test(x)), `flags: ${p.flags?.join('; ')}`);
  }
});

test('clampTarget replaces NaN and Infinity with a finite value, flags it, and never puts upper below expected', () => {
  const flags: string[] = [];
  assert.equal(clampTarget('memory_gb', NaN, NaN, flags, 12), [12, 12]);
  assert.is(flags.length, 2);
  assert.match(flags[0], /^memory_gb: estimate was NaN, replaced by 12$/);
  assert.equal(clampTarget('duration_s', 30, Infinity, [], undefined), [30, 3e6]);
  assert.equal(clampTarget('cpu_cores', 4, 2, []), [4, 4]);
  const none: string[] = [];
  assert.equal(clampTarget('gpu_percent', 40, 55, none), [40, 55]);
  assert.equal(none, []);
  const value = fc.oneof(fc.double(), fc.constantFrom(NaN, Infinity, -Infinity, 0, -1, 1e300));
  fc.assert(fc.property(fc.constantFrom(...TARGETS), value, value, fc.option(value, { nil: undefined }), (t: Target, e, u, largest) => {
    const got: string[] = [];
    const [ee, uu] = clampTarget(t, e, u, got, largest);
    const [lo, hi] = TARGET_SCALES[t].range;
    assert.ok(Number.isFinite(ee) && Number.isFinite(uu), `${t} ${e} ${u} ${largest}: ${ee} ${uu}`);
    assert.ok(ee >= lo && ee <= hi && uu >= lo && uu <= hi, `${t}: ${ee} ${uu} outside ${lo}–${hi}`);
    assert.ok(uu >= ee, `${t}: upper ${uu} below expected ${ee}`);
    const odd = (v: number) => !Number.isFinite(v) || v < lo || v > hi;
    assert.is(got.length, (odd(e) ? 1 : 0) + (odd(u) ? 1 : 0), `flags for ${e}, ${u}: ${got.join('; ')}`);
    if (Number.isFinite(e) && !odd(e)) assert.is(ee, e, 'a sane estimate is kept');
    return true;
  }), { numRuns: 500 });
});

test('predict caps CPU cores at the cores granted', () => {
  const f = shipped();
  raise(f.targets.cpu_cores!, 1.5); // about thirty times the shipped figures
  const model = Model.fromFile(resealed(f));
  for (const [name, s] of Object.entries(SCHEMAS)) {
    const uncapped = model.predictRecord(describeSchema(s, { hw_class: 'AMD EPYC' }));
    assert.ok(uncapped.expected.cpu_cores > 4, `${name}: the edited model wants ${uncapped.expected.cpu_cores} cores`);
    const p = model.predict(s, { cores: 4 });
    assert.is(p.expected.cpu_cores, 4, name);
    assert.is(p.upper.cpu_cores, 4, name);
    const one = model.predict(s, { cores: 1 });
    assert.ok(one.expected.cpu_cores <= 1 && one.upper.cpu_cores <= 1, `${name}: ${one.expected.cpu_cores}, ${one.upper.cpu_cores} on one core`);
  }
});

test('predict without granted cores does not cap CPU cores at the training default', () => {
  // The default fills in the feature the network reads; nothing was granted yet (the leader sizes
  // its placement request from exactly this prediction).
  const f = shipped();
  f.defaults = { ...f.defaults, cores: 2 };
  raise(f.targets.cpu_cores!, 1.5);
  const model = Model.fromFile(resealed(f));
  const s = SCHEMAS['x265 file 1080p at a bitrate'];
  const uncapped = model.predictRecord(describeSchema(s, { hw_class: f.defaults.hw_class }));
  assert.ok(uncapped.expected.cpu_cores > 2, `precondition: the edited model wants ${uncapped.expected.cpu_cores} cores`);
  const p = model.predict(s);
  assert.ok(p.expected.cpu_cores > 2 && p.upper.cpu_cores > 2, `expected ${p.expected.cpu_cores}, upper ${p.upper.cpu_cores}: capped at defaults.cores = 2`);
});

test.run();
