/**
 * Federated learning on weights (models/federated): two nodes with different data fine-tune the
 * same global model and send deltas; the sample-weighted merge beats either local model on the
 * union of their held-out runs; and a delta that is corrupt, stale or poisoned is refused with
 * its reason while the global model file stays byte for byte the same.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ModelRegistry, deltaNorm, evaluatePredictor, fineTune, judgeMerge, keyBucket, meanScaleError, mergeDeltas, priorRows, screenByHeldOut, screenRound, trainModel,
  validateDelta, weightDelta, weightsNorm, type LabelledRow, type Model, type WeightDelta,
} from '../../models/index.js';

const root = mkdtempSync(path.join(tmpdir(), 'prescient-federated-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

/**
 * The fleet's nodes differ from what the global model learned: node A encodes H.264/HEVC and
 * its encodes take twice as long (slower cores), node B encodes VP9/AV1 and takes 0.6 times as
 * long with 1.3 times the memory (another ffmpeg build).
 */
function nodeRows(node: 'A' | 'B', n: number, seed: number): LabelledRow[] {
  const codecs = node === 'A' ? ['h264', 'hevc'] : ['vp9', 'av1'];
  return priorRows(n * 3, { seed }).filter((r) => codecs.includes(r.record.output.codec!)).slice(0, n).map((r) => ({
    ...r, key: `${node}-${r.key}`,
    targets: node === 'A'
      ? { ...r.targets, duration_s: r.targets.duration_s! * 2, bandwidth_mbps: r.targets.bandwidth_mbps! / 2 }
      : { ...r.targets, duration_s: r.targets.duration_s! * 0.6, bandwidth_mbps: r.targets.bandwidth_mbps! / 0.6, memory_gb: r.targets.memory_gb! * 1.3 },
  }));
}
const heldOf = (rows: LabelledRow[]) => rows.filter((r) => keyBucket(r.key) < 0.25);
const ownOf = (rows: LabelledRow[]) => rows.filter((r) => keyBucket(r.key) >= 0.25);
const mape = (m: Model, rows: readonly LabelledRow[]) => {
  const rep = evaluatePredictor((r) => m.predictRecord(r), rows);
  return { mean: meanScaleError(rep), duration: rep.duration_s!.mape, memory: rep.memory_gb!.mape, bandwidth: rep.bandwidth_mbps!.mape, cpu: rep.cpu_cores!.mape };
};

let base: Model;
let deltaA: WeightDelta, deltaB: WeightDelta;
let baseFile: string, registry: ModelRegistry;

test.before(async () => {
  ({ model: base } = await trainModel(priorRows(360, { seed: 7 }), { version: 'fed-base', source: 'prior rows, seed 7', seed: 7, threads: 1, network: { maxEpochs: 120 } }));
  registry = new ModelRegistry(path.join(root, 'registry'));
  registry.register(base, 'the global model of these tests');
  registry.promote('fed-base', 'test');
  baseFile = registry.pathOf('fed-base');
});

test('two nodes with different data each send a delta, and the merge is better on the union of their held-out runs than either local model', () => {
  const a = nodeRows('A', 220, 101), b = nodeRows('B', 220, 202);
  const tunedA = fineTune(base, ownOf(a), { seed: 1 }), tunedB = fineTune(base, ownOf(b), { seed: 2 });
  assert.ok(tunedA.validation.tuned < tunedA.validation.base, `node A learned nothing locally: ${JSON.stringify(tunedA.validation)}`);
  assert.ok(tunedB.validation.tuned < tunedB.validation.base, `node B learned nothing locally: ${JSON.stringify(tunedB.validation)}`);
  deltaA = weightDelta(base, tunedA, { node: 'A', id: 'delta-A' });
  deltaB = weightDelta(base, tunedB, { node: 'B', id: 'delta-B' });
  for (const d of [deltaA, deltaB]) assert.ok(validateDelta(d, base).ok, JSON.stringify(validateDelta(d, base)));
  assert.is(deltaA.samples, tunedA.samples);
  assert.is(deltaA.base_version, 'fed-base');

  const union = [...heldOf(a), ...heldOf(b)];
  // Calibration rows come from the same nodes but were never fine-tuned on (as the leader's window).
  const calibration = [...nodeRows('A', 60, 303), ...nodeRows('B', 60, 404)];
  const merged = mergeDeltas(base, [deltaA, deltaB], { version: 'fed-merged', calibration });
  const figures = { base: mape(base, union), localA: mape(tunedA.model, union), localB: mape(tunedB.model, union), merged: mape(merged, union) };
  console.log(`union held-out (${union.length} runs), mean scale error and MAPE %: ${JSON.stringify(figures, (_, v) => (typeof v === 'number' ? +v.toFixed(4) : v))}`);
  assert.ok(figures.merged.mean < figures.localA.mean, `merged ${figures.merged.mean} not better than local A ${figures.localA.mean}`);
  assert.ok(figures.merged.mean < figures.localB.mean, `merged ${figures.merged.mean} not better than local B ${figures.localB.mean}`);
  assert.ok(figures.merged.mean < figures.base.mean, `merged ${figures.merged.mean} not better than the base ${figures.base.mean}`);
  const verdict = judgeMerge(merged, base, union);
  assert.ok(verdict.accept, verdict.reason);

  // The merged file says what went into it, and its bounds were recomputed on the calibration rows.
  assert.equal(merged.file.federated?.deltas.map((d) => [d.id, d.node, d.samples]), [['delta-A', 'A', deltaA.samples], ['delta-B', 'B', deltaB.samples]]);
  assert.is(merged.file.federated?.samples, deltaA.samples + deltaB.samples);
  assert.is(merged.file.parent, 'fed-base');
  assert.ok(merged.file.federated!.calibration_rows >= 100);
  assert.is.not(merged.file.targets.duration_s!.residuals.known.q.join(), base.file.targets.duration_s!.residuals.known.q.join());
  const coverage = evaluatePredictor((r) => merged.predictRecord(r), union).duration_s!.coverage;
  assert.ok(coverage >= 0.85, `the recalibrated duration bound covers ${coverage} of the union's runs`);

  // Sample-weighted: one delta alone gives exactly base + Δ.
  const alone = mergeDeltas(base, [deltaA], { version: 'fed-alone' });
  const w0 = base.file.networks[0].json.layers[1].weights[0][0], w1 = alone.file.networks[0].json.layers[1].weights[0][0];
  assert.ok(Math.abs(w1 - (w0 + deltaA.networks[0].layers[0].weights[0])) < 1e-12);
});

test('deterministic: the same rows and seed give the same delta', () => {
  const a = ownOf(nodeRows('A', 220, 101));
  const d1 = weightDelta(base, fineTune(base, a, { seed: 1 }), { node: 'A', id: 'x', now: new Date(0) });
  const d2 = weightDelta(base, fineTune(base, a, { seed: 1 }), { node: 'A', id: 'x', now: new Date(0) });
  assert.equal(d1, d2);
});

/** A copy of delta A with `change` applied. */
const tampered = (change: (d: WeightDelta) => void): WeightDelta => { const d = structuredClone(deltaA); change(d); return d; };

test('a corrupt, stale or poisoned delta is refused with its reason, and the global model file is byte for byte unchanged', () => {
  const before = readFileSync(baseFile);
  const older = new Set(['fed-base', 'fed-older']);
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['NaN weights', tampered((d) => { d.networks[0].layers[1].weights[3] = NaN; }), 'non-finite', /network 0 layer 2 weight 3 is not a finite number \(NaN\)/],
    ['an infinite bias', tampered((d) => { d.networks[0].layers[0].biases[0] = Infinity; }), 'non-finite', /bias 0 is not a finite number \(Infinity\)/],
    ['a missing weight (wrong shape)', tampered((d) => { d.networks[0].layers[0].weights.pop(); }), 'shape', /layer 1 has \d+ weights, the base has \d+/],
    ['a layer too many', tampered((d) => { d.networks[0].layers.push({ weights: [0], biases: [0] }); }), 'shape', /layers, the base has/],
    ['a base version that does not exist', tampered((d) => { d.base_version = 'm-19990101-000000'; }), 'unknown-base', /no known model version/],
    ['a stale base version', tampered((d) => { d.base_version = 'fed-older'; }), 'stale-base', /made from fed-older, the global model is now fed-base/],
    ['the right name with other weights', tampered((d) => { d.base_checksum = '0'.repeat(64); }), 'unknown-base', /checksum/],
    ['an oversized (poisoned) step', tampered((d) => { d.networks[0].layers[0].weights = d.networks[0].layers[0].weights.map((w) => w * 0 + 3); }), 'oversized', /norm .* is above 0\.5 × the base weights' norm/],
    ['no sample count', tampered((d) => { (d as { samples?: number }).samples = 0; }), 'malformed', /sample count/],
    ['not a delta', { hello: 'world' }, 'malformed', /not a Prescient weight delta/],
  ];
  for (const [what, d, code, reason] of cases) {
    const v = validateDelta(d, base, { known: (x) => older.has(x) });
    assert.ok(!v.ok, `${what} was accepted`);
    if (!v.ok) {
      assert.is(v.code, code, what);
      assert.match(v.reason, reason, what);
    }
  }
  // A delta inside the norm bound that still points the wrong way: the held-out window is worse
  // with it than without it, so it is refused, and the two honest deltas stay.
  const k = (0.45 * weightsNorm(base.file)) / deltaNorm(deltaA);
  // Every network turned (an ensemble's members are averaged: one turned alone is a third of the step).
  const wrong = tampered((d) => { d.id = 'wrong'; for (const n of d.networks) for (const l of n.layers) { l.weights = l.weights.map((w) => -k * w); l.biases = l.biases.map((b) => -k * b); } });
  assert.ok(validateDelta(wrong, base).ok, 'within the norm bound');
  const union = [...heldOf(nodeRows('A', 220, 101)), ...heldOf(nodeRows('B', 220, 202))];
  const screened = screenByHeldOut(base, [deltaA, wrong, deltaB], union);
  assert.equal(screened.refused.map((r) => r.delta.id), ['wrong']);
  assert.match(screened.refused[0].reason, /^the held-out window is worse with it: mean scale error \S+ with it vs \S+ without \(the merge of the other 2\) on \d+ runs$/);
  assert.equal(screened.kept.map((d) => d.id), ['delta-A', 'delta-B']);
  // Among honest deltas, a far larger one is an outlier of its round.
  const big = tampered((d) => { d.id = 'big'; for (const l of d.networks[0].layers) l.weights = l.weights.map((w) => 20 * w); });
  const round = [deltaA, deltaB, { ...deltaA, id: 'a2' }, big].map((delta) => ({ delta, norm: Math.hypot(...delta.networks[0].layers.flatMap((l) => [...l.weights, ...l.biases])) }));
  assert.equal([...screenRound(round).keys()], ['big']);
  assert.ok(readFileSync(baseFile).equals(before), 'the global model file is unchanged');
  assert.is(registry.currentVersion(), 'fed-base');
});

test.run();
