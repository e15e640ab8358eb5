/** The base every estimate starts from: the lookup with back-off (models/lookup.ts) and the ridge regression (models/linear.ts). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CompiledLinear, CompiledLookup, LOOKUP_KEYS, checkLinear, checkLookup, emptyRecord, fitLinear, fitLinears, fitLookup, lookupValues,
  seededRandom, type EncodeRecord,
} from '../../models/index.js';
import { SparseVector } from '../../models/sparse.js';

const close = (a: number, b: number, what: string, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

/** Key values as lookupValues gives them: encoder, hardware, preset, resolution, cores, rate control. */
const keys = (encoder: string, hw = 'xeon', preset = 'medium', res = '20', cores = '2', rc = 'crf') => [encoder, hw, preset, res, cores, rc];

test('a group leans on its parent by its shrinkage, and a group never seen falls back to its deepest known ancestor', () => {
  // x264: 4 rows at 1.0 on xeon, 1 row at 3.0 on epyc; x265: 2 rows at 5.0.
  const rows = [...Array(4).fill(keys('libx264')), keys('libx264', 'epyc'), keys('libx265'), keys('libx265')];
  const y = [1, 1, 1, 1, 3, 5, 5];
  const l = new CompiledLookup(fitLookup(rows, y, 2));
  const all = 17 / 7, x264 = (7 + 2 * all) / (5 + 2), epyc = (3 + 2 * x264) / (1 + 2);
  close(l.value(keys('libx264', 'arm')), x264, 'an unseen hardware class gets its encoder\'s figure');
  close(l.value(keys('libaom-av1')), all, 'an unseen encoder gets all rows\' mean');
  // The deepest group of the epyc row: each level shrunk towards the one above with one row.
  let v = epyc;
  for (let d = 2; d < LOOKUP_KEYS.length; d++) v = (3 + 2 * v) / (1 + 2);
  close(l.value(keys('libx264', 'epyc')), v, 'a one-row group is mostly its parent\'s figure');
  // Shrinkage far above the row counts: every group is all rows' mean.
  close(new CompiledLookup(fitLookup(rows, y, 1e9)).value(keys('libx264', 'epyc')), all, 'the lookup all but off');
});

test('a lookup reads the keys in its own order, and refuses an order that is not one of the keys', () => {
  const rows = [keys('libx264', 'xeon', 'fast', '18'), keys('libx264', 'xeon', 'fast', '18'), keys('libx264', 'epyc', 'slow', '22')];
  const y = [1, 1, 9];
  // Resolution first: a record with an unseen hardware class but a known resolution is found by its resolution.
  const order = [3, 0, 1, 2, 4, 5];
  const byRes = new CompiledLookup(fitLookup(rows, y, 0, LOOKUP_KEYS.length, order));
  close(byRes.value(keys('libvpx-vp9', 'arm', 'fast', '22')), 9, 'the resolution group, whatever the encoder');
  const byEncoder = new CompiledLookup(fitLookup(rows, y, 0));
  close(byEncoder.value(keys('libvpx-vp9', 'arm', 'fast', '22')), 11 / 3, 'by encoder first, an unseen encoder is all rows\' mean');
  const stored = fitLookup(rows, y, 1, LOOKUP_KEYS.length, order);
  assert.equal(stored.order, order);
  assert.is(checkLookup(stored, 'l'), undefined);
  assert.match(checkLookup({ ...stored, order: [0, 0, 1, 2, 3, 4] }, 'targets.x.base') ?? '', /targets\.x\.base\.order is not an order of the 6 keys/);
});

test('a key value such as __proto__ or constructor is a group like any other, in fitting, storing and reading', () => {
  const rows = [keys('__proto__'), keys('__proto__'), keys('constructor'), keys('toString')];
  const stored = JSON.parse(JSON.stringify(fitLookup(rows, [2, 2, 4, 6], 0)));
  assert.is(checkLookup(stored, 'l'), undefined);
  const l = new CompiledLookup(stored);
  close(l.value(keys('__proto__')), 2, '__proto__');
  close(l.value(keys('constructor')), 4, 'constructor');
  close(l.value(keys('hasOwnProperty')), 3.5, 'an unseen name is all rows\' mean, not an inherited function');
});

test('lookupValues reads a record\'s keys, the codec where a log names no encoder, the pixels to the nearest power of two', () => {
  const r: EncodeRecord = { ...emptyRecord(), output: { codec: 'h264', width: 1280, height: 720, rc_mode: 'bitrate' }, node: { hw_class: 'xeon', cores: 8 } };
  assert.equal(lookupValues(r), ['h264', 'xeon', '', '20', '8', 'bitrate']);
  const sd: EncodeRecord = { ...emptyRecord(), output: { encoder: 'libx264', preset: 'fast' }, input: { width: 426, height: 240 } };
  assert.equal(lookupValues(sd), ['libx264', '', 'fast', '17', '', '']);
});

test('ridge regression recovers a linear rule, and several penalties from one pass equal fitting each alone', () => {
  const r = seededRandom(4), n = 400, d = 5;
  const x = new Float64Array(n * d), y = new Float64Array(n), truth = [0.5, -1.2, 0, 2, 0.3];
  for (let i = 0; i < n; i++) {
    let s = 0.7;
    for (let j = 0; j < d; j++) { x[i * d + j] = r() * 2 - 1; s += truth[j] * x[i * d + j]; }
    y[i] = s + 0.01 * (r() - 0.5);
  }
  const l = fitLinear(x, y, d, 1e-6 * n);
  truth.forEach((w, j) => close(l.weights[j], w, `weight ${j}`, 0.01));
  close(l.intercept, 0.7, 'intercept', 0.01);
  const many = fitLinears(x, y, d, [0.001 * n, 0.1 * n, 10 * n]);
  [0.001, 0.1, 10].forEach((k, i) => {
    const one = fitLinear(x, y, d, k * n);
    one.weights.forEach((w, j) => close(many[i].weights[j], w, `penalty ${k} weight ${j}`));
  });
  // A heavier penalty pulls the weights towards 0.
  assert.ok(Math.abs(many[2].weights[3]) < Math.abs(many[0].weights[3]));
  // Read on a sparse vector, as prediction does.
  const c = new CompiledLinear(l), v = SparseVector.of([1, 0, 0, 1, 0]);
  close(c.value(v), l.intercept + l.weights[0] + l.weights[3], 'sparse read');
  assert.is(checkLinear(l, d, 'l'), undefined);
  assert.match(checkLinear(l, d + 1, 'targets.x.linear') ?? '', /targets\.x\.linear has 5 weights for 6 features/);
  assert.match(checkLinear({ ...l, weights: [...l.weights.slice(0, 4), NaN] }, d, 'l') ?? '', /non-finite/);
});

test('a column left free of the penalty keeps its weight under a penalty that shrinks the others', () => {
  const r = seededRandom(5), n = 300, d = 3;
  const x = new Float64Array(n * d), y = new Float64Array(n), truth = [1, 0.5, -0.5];
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) { x[i * d + j] = r() * 2 - 1; s += truth[j] * x[i * d + j]; }
    y[i] = s;
  }
  const [shrunk] = fitLinears(x, y, d, [n]);
  const [free] = fitLinears(x, y, d, [n], [true, false, false]);
  assert.ok(shrunk.weights[0] < 0.8, `penalised: ${shrunk.weights[0]}`);
  close(free.weights[0], 1, 'the free column\'s weight', 0.06);
  close(free.weights[1], shrunk.weights[1], 'a penalised column as before', 0.05);
});

test.run();
