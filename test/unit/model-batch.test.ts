/**
 * Batch prediction (models/model.ts `predictBatch`, `predictRecords`; network.ts `runBlock`;
 * features.ts `numericsInto`): exactly the figures, bounds and flags of one record at a time.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateEncodingSchema, type EncodingSchema } from '../../shared/index.js';
import {
  Model, NUMERICS, NUMERIC_NAMES, PredictionBatch, TARGETS, loadModelFile, modelChecksum, numericsInto, priorRows, seededRandom, trainModel,
  type EncodeRecord, type LabelledRow, type ModelFile, type PredictContext, type Target,
} from '../../models/index.js';
import { BLOCK_ROWS, CompiledNetwork, NetworkBank, SparseBlock, SparseVector, trainNetwork, DEFAULT_NETWORK_OPTIONS } from '../../models/network.js';

const SHIPPED = loadModelFile();
const HW = ['xeon-6338', 'epyc-7763'];

/** Varied valid schemas: every prior encoder (NVENC too), synthetic and file inputs, CRF and bitrate, GOPs, two passes. */
function schemas(n: number, seed: number): EncodingSchema[] {
  return priorRows(n, { seed, gpus: true }).map(({ record: r }, i) => validateEncodingSchema({
    input: i % 3 === 0
      ? { path: '/srv/media/in.mp4', codec: i % 2 ? 'h264' : 'prores', resolution: `${r.input.width ?? r.output.width}x${r.input.height ?? r.output.height}`, fps: r.input.fps ?? 30, bitrate_kbps: 2000 + (i % 7) * 3000, duration_s: r.input.duration_s }
      : { synthetic: { source: i % 2 ? 'testsrc2' : 'mandelbrot', noise: r.content.noise }, resolution: `${r.output.width}x${r.output.height}`, fps: r.output.fps, duration_s: r.input.duration_s },
    output: {
      codec: r.output.codec, encoder: r.output.encoder, preset: r.output.preset, passes: r.output.passes, ...(i % 5 === 0 ? { gop: 12 * (1 + (i % 20)) } : {}),
      rate_control: r.output.rc_mode === 'crf' ? { mode: 'crf', crf: r.output.crf } : { mode: 'bitrate', bitrate_kbps: r.output.bitrate_kbps },
    },
  }, { allowedInputRoots: ['/srv/media'] }));
}

/** Records with fields knocked out, unseen, absurd or not numbers: what a third-party log can hold. */
function oddRecords(rows: LabelledRow[], seed: number): EncodeRecord[] {
  const rand = seededRandom(seed);
  const odd = [NaN, Infinity, -Infinity, 0, -1, 1e300, undefined, 1e-300, 7];
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
  return rows.map(({ record }, i) => {
    const r: EncodeRecord = structuredClone(record);
    if (i % 3 === 1) { delete r.content.si_mean; delete r.content.ti_mean; } // a bare schema: no probe
    if (i % 5 === 2) r.output.fps = pick(odd);
    if (i % 7 === 3) r.input.width = pick(odd);
    if (i % 11 === 4) r.output.codec = 'prores'; // unseen categories
    if (i % 13 === 5) r.output.encoder = undefined;
    if (i % 17 === 6) r.node.hw_class = 'm7g-unseen';
    if (i % 19 === 7) r.input.duration_s = pick([...odd, 1e308]); // 1e308 s: an infinite frame count and duration
    if (i % 23 === 8) { r.input.i_frames = 10; r.input.p_frames = 50; r.input.b_frames = i % 2 ? 100 : undefined; }
    if (i % 29 === 9) r.input.size_bytes = pick([1e9, NaN, 0]);
    if (i % 31 === 10) r.node.cores = pick([undefined, 0, 64, 1.5]);
    if (i % 37 === 11) r.output.crf = pick([NaN, 80, -3]);
    if (i % 41 === 12) r.output.bitrate_kbps = pick([1e12, 5, NaN]);
    if (i % 43 === 13) r.extra = { foo: pick(odd) as number };
    if (i % 47 === 14) { r.input.duration_s = undefined; r.input.frames = undefined; } // frame count unknown
    if (i % 53 === 15) r.output.preset = undefined;
    if (i % 59 === 16) (r.output as Record<string, unknown>).width = '1920'; // not a number
    return r;
  });
}

/** Every record of the batch equals what one call gives (figures to the bit, flags in order). */
function sameAsOneByOne(batch: PredictionBatch, one: (i: number) => unknown, n: number, what: string, records = false): void {
  assert.is(batch.n, n);
  let flagged = 0;
  for (let i = 0; i < n; i++) {
    const want = one(i) as { flags?: string[] }, got = (records ? batch.recordPrediction(i) : batch.prediction(i)) as { flags?: string[] };
    if (want.flags?.length) flagged++;
    // Object.is figure by figure (NaN and -0 included), then the whole shape, flags in order.
    for (const side of ['expected', 'upper'] as const) {
      for (const t of TARGETS) {
        const a = (got as Record<typeof side, Record<Target, number>>)[side][t], b = (want as Record<typeof side, Record<Target, number>>)[side][t];
        assert.ok(Object.is(a, b), `${what}: record ${i} ${side} ${t}: ${a} vs ${b}`);
      }
    }
    assert.equal(JSON.stringify(got), JSON.stringify(want), `${what}: record ${i}`);
  }
  assert.ok(flagged > 0, `${what}: some records are flagged`);
}

test('predictBatch gives what predict gives, schema by schema, with one context and with one per schema', () => {
  const pool = schemas(3000, 5);
  const batch = SHIPPED.predictBatch(pool);
  sameAsOneByOne(batch, (i) => SHIPPED.predict(pool[i]), pool.length, 'default context');
  const one: PredictContext = { cores: 4, hw_class: 'AMD EPYC' };
  sameAsOneByOne(SHIPPED.predictBatch(pool, one), (i) => SHIPPED.predict(pool[i], one), pool.length, 'one context');
  const each: Array<PredictContext | undefined> = pool.map((_, i) => (i % 4 === 0 ? undefined : { cores: i % 3 ? 1 + (i % 16) : undefined, hw_class: i % 5 ? 'AMD EPYC' : 'xeon-unseen' }));
  sameAsOneByOne(SHIPPED.predictBatch(pool, each), (i) => SHIPPED.predict(pool[i], each[i]), pool.length, 'a context each');
  // The batch's own record view is predictRecord's.
  const p = SHIPPED.predictBatch(pool.slice(0, 3)).recordPrediction(2);
  assert.equal(p.expected, SHIPPED.predict(pool[2]).expected);
  assert.throws(() => SHIPPED.predictBatch(pool, each.slice(1)), /contexts for/);
});

test('predictRecords gives what predictRecord gives on odd records: unseen categories, missing probes, non-finite figures clamped and flagged', async () => {
  const rows = priorRows(1500, { seed: 9, gpus: true, hwClasses: HW });
  const records = oddRecords(rows, 3);
  const check = (m: Model, what: string) => {
    for (const o of [{}, { capCores: false }]) {
      const batch = m.predictRecords(records, o);
      sameAsOneByOne(batch, (i) => m.predictRecord(records[i], o), records.length, `${what} ${JSON.stringify(o)}`, true);
    }
  };
  check(SHIPPED, 'shipped');
  const all = SHIPPED.predictRecords(records);
  const flags = all.flags.join('\n');
  for (const kind of [/value not seen in training/, /not known, the training mean was used/, /beyond the training range/, /duration_s: (estimate|bound) was Infinity, replaced by/, /frame count unknown/]) {
    assert.match(flags, kind, `some record is flagged ${kind}`);
  }
  for (let k = 0; k < all.n * TARGETS.length; k++) assert.ok(Number.isFinite(all.expected[k]) && Number.isFinite(all.upper[k]) && all.upper[k] >= all.expected[k]);

  // A model whose figures all leave the physical range (clamped, flagged).
  const f = structuredClone(SHIPPED.file) as ModelFile;
  f.targets.memory_gb!.lo += 6;
  f.targets.memory_gb!.hi += 6;
  check(Model.fromFile({ ...f, checksum: modelChecksum(f) }), 'memory out of range');

  // Two feature states (a child inheriting CPU, GPU and bandwidth from its parent), banks of
  // two networks of widths that do not divide by four, and rule-estimated targets.
  const parent = (await trainModel(priorRows(600, { seed: 7, gpus: true, hwClasses: HW }), { version: 'p1', source: 'prior', seed: 3, network: { hidden: [10, 5], maxEpochs: 8 } })).model;
  const only = (rs: LabelledRow[], keep: Target[]) => rs.map((r) => ({ ...r, targets: Object.fromEntries(keep.map((t) => [t, r.targets[t]])) }));
  const childRows = only(priorRows(300, { seed: 22, gpus: true, hwClasses: HW }), ['duration_s', 'memory_gb']);
  const child = (await trainModel(childRows, { version: 'c1', source: 'two targets', seed: 4, network: { hidden: [7, 3], maxEpochs: 4 }, parent })).model;
  assert.is(child.file.features.length, 2);
  check(parent, 'parent');
  check(child, 'child');
  check((await trainModel(childRows, { version: 'orphan', source: 'two targets', seed: 4, network: { maxEpochs: 3 } })).model, 'orphan');
});

test('a batch passed back in is reused: a smaller batch after a larger one leaves nothing of it behind', () => {
  const pool = schemas(700, 6);
  const out = new PredictionBatch();
  SHIPPED.predictBatch(pool, {}, out);
  const expected = out.expected;
  assert.is(SHIPPED.predictBatch(pool.slice(100, 103), {}, out), out);
  assert.is(out.expected, expected, 'the same arrays');
  assert.is(out.n, 3);
  assert.is(out.flags.length, out.flagStart[3]);
  for (let i = 0; i < 3; i++) assert.equal(out.prediction(i), SHIPPED.predict(pool[100 + i]));
  assert.throws(() => out.prediction(3), /not in this batch of 3/);
  assert.is(SHIPPED.predictBatch([], {}, out).n, 0);
  assert.equal(out.flags, []);
  assert.is(out.model_version, SHIPPED.version);
  assert.is(out.coverage, SHIPPED.coverage);
});

test('NetworkBank.runBlock gives each row exactly what run gives it, for any block size', () => {
  const D = 23, rand = seededRandom(41);
  const row = () => {
    const x = new Array<number>(D).fill(0);
    x[Math.floor(rand() * 6)] = 1;
    for (let k = 6; k < D; k++) if (rand() < 0.5) x[k] = (rand() * 2 - 1) * 3;
    return x;
  };
  const xs = Float64Array.from({ length: 200 * D }, () => rand() * 2 - 1), ys = Float64Array.from({ length: 200 }, () => 0.2 + 0.6 * rand());
  const train = (hidden: number[], k = 1) => trainNetwork(xs, k === 1 ? ys : Float64Array.from({ length: 200 * k }, () => 0.2 + 0.6 * rand()), D, { ...DEFAULT_NETWORK_OPTIONS, hidden, maxEpochs: 3, seed: hidden[0] }, k).json;
  // Widths 7 + 9 (first layer 16, and 7 and 9 in the networks' own), then 3, 5, 1 nodes: remainders of every kind.
  const bank = new NetworkBank([new CompiledNetwork(train([7, 3], 2), D, 2), new CompiledNetwork(train([9, 5, 4]), D, 1), new CompiledNetwork(train([5]), D, 1)]);
  const out = new Float64Array(BLOCK_ROWS * bank.outputWidth);
  for (const rows of [1, 2, 3, 4, 5, 63, BLOCK_ROWS]) {
    const block = new SparseBlock(BLOCK_ROWS, D).clear(), dense: number[][] = [];
    for (let r = 0; r < rows; r++) { const x = row(); if (r % 9 === 0) x.fill(0); dense.push(x); block.push(x); }
    bank.runBlock(block, out);
    dense.forEach((x, r) => {
      const want = bank.run(SparseVector.of(x));
      for (let j = 0; j < bank.outputWidth; j++) assert.ok(Object.is(out[r * bank.outputWidth + j], want[j]), `${rows} rows, row ${r}, output ${j}: ${out[r * bank.outputWidth + j]} vs ${want[j]}`);
    });
  }
  assert.throws(() => new SparseBlock(2, D).push(row()).push(row()).push(row()), /holds 2 rows/);
});

test('numericsInto gives every NUMERICS column as its own function does (NaN where that gives nothing finite)', () => {
  const records = [...oddRecords(priorRows(2000, { seed: 12, gpus: true, hwClasses: HW }), 8), ...oddRecords(priorRows(500, { seed: 13 }), 9)];
  const out = new Float64Array(NUMERIC_NAMES.length);
  assert.equal([...NUMERIC_NAMES], Object.keys(NUMERICS));
  let known = 0;
  for (const r of records) {
    numericsInto(r, out);
    NUMERIC_NAMES.forEach((name, k) => {
      const v = NUMERICS[name](r), want = v !== undefined && Number.isFinite(v) ? v : NaN;
      if (want === want) known++;
      assert.ok(Object.is(out[k], want), `${name}: ${out[k]} vs ${want} for ${JSON.stringify(r)}`);
    });
  }
  assert.ok(known > records.length * 10, 'most columns are known');
});

test.run();
