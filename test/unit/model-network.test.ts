/** The per-target brain.js networks: seeded training and the compiled forward pass (models/network.ts). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import brain from 'brain.js';
import { trainNetwork, CompiledNetwork, DEFAULT_NETWORK_OPTIONS, seededRandom, sigmoid, type NetworkJson, type NetworkTrainOptions } from '../../models/network.js';

const D = 14;
/** Rows like the model's: a one-hot block of 6, then 8 numbers of which some are 0 (unknown). */
function sparseRow(rand: () => number): number[] {
  const x = new Array<number>(D).fill(0);
  x[Math.floor(rand() * 6)] = 1;
  for (let k = 6; k < D; k++) if (rand() < 0.6) x[k] = (rand() * 2 - 1) * 2.5;
  return x;
}
/** A smooth function of the row, inside the (0.1, 0.9) unit scale the model trains on. */
const truth = (x: number[]) => 0.5 + 0.25 * Math.tanh(0.6 * x[6] - 0.4 * x[7] + (x[0] ? 0.5 : x[1] ? -0.5 : 0));

function dataset(n: number, seed: number) {
  const rand = seededRandom(seed);
  const x = new Float64Array(n * D), y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const row = sparseRow(rand);
    x.set(row, i * D);
    y[i] = truth(row);
  }
  return { x, y };
}
const options = (o: Partial<NetworkTrainOptions> = {}): NetworkTrainOptions => ({ ...DEFAULT_NETWORK_OPTIONS, hidden: [10, 6], maxEpochs: 60, seed: 5, ...o });
const DATA = dataset(600, 11);
const TRAINED = trainNetwork(DATA.x, DATA.y, D, options());

/** The message `json` is refused with, or a failure when it is accepted. */
function refusal(json: unknown, inputs = D): string {
  try {
    new CompiledNetwork(json as NetworkJson, inputs);
  } catch (e) {
    return (e as Error).message;
  }
  return assert.unreachable('the network was accepted') as never;
}
const copy = (): NetworkJson => JSON.parse(JSON.stringify(TRAINED.json));

test('the compiled network gives what brain.js itself runs, to a Float32 rounding step, on many sparse inputs', () => {
  const net = new brain.NeuralNetwork().fromJSON(TRAINED.json as never);
  const compiled = new CompiledNetwork(TRAINED.json, D);
  const rand = seededRandom(99);
  let exact = 0;
  for (let i = 0; i < 3000; i++) {
    const x = sparseRow(rand);
    if (i % 10 === 0) x.fill(0); // no input at all: biases only
    const want = (net.run(x) as ArrayLike<number>)[0];
    const got = compiled.run(x);
    if (got === want) exact++;
    assert.ok(Math.abs(got - want) <= 1e-6, `input ${JSON.stringify(x)}: ${got} vs brain.js ${want}`);
  }
  // The table sigmoid is within 1e-9 of the exact one: nearly every output is the same Float32.
  assert.ok(exact >= 2700, `${exact} of 3000 outputs identical`);
  // Also through a JSON round trip, which is how a model file reaches it.
  const reread = new CompiledNetwork(JSON.parse(JSON.stringify(TRAINED.json)), D);
  const x = sparseRow(rand);
  assert.is(reread.run(x), compiled.run(x));
});

test('the table sigmoid is within 1e-9 of the logistic function everywhere, and exact beyond ±20', () => {
  let worst = 0;
  for (let x = -25; x <= 25; x += 0.0007) worst = Math.max(worst, Math.abs(sigmoid(x) - 1 / (1 + Math.exp(-x))));
  assert.ok(worst < 1e-9, `largest error ${worst}`);
  for (const x of [-40, -20.5, 20, 35, 800, -800]) assert.is(sigmoid(x), 1 / (1 + Math.exp(-x)), `sigmoid(${x})`);
  assert.ok(Number.isNaN(sigmoid(NaN)));
});

test('a network with a non-finite weight or bias is refused, naming where', () => {
  const weight = copy();
  (weight.layers[1].weights[2] as unknown as (number | null)[])[3] = null; // what JSON makes of NaN
  assert.match(refusal(weight), /layer 1 node 2 has a non-finite weight/);
  const inf = copy();
  inf.layers[2].weights[0][1] = Infinity;
  assert.match(refusal(inf), /layer 2 node 0 has a non-finite weight/);
  const bias = copy();
  (bias.layers[3].biases as unknown as (number | null)[])[0] = null;
  assert.match(refusal(bias), /layer 3 has a non-finite bias/);
});

test('a network for another input size is refused, naming both sizes', () => {
  assert.match(refusal(copy(), D + 1), new RegExp(`takes ${D} inputs, the feature spec gives ${D + 1}`));
});

test('a network with more than one output is refused', () => {
  const two = copy();
  two.sizes[two.sizes.length - 1] = 2;
  two.layers[3].weights.push([...two.layers[3].weights[0]]);
  two.layers[3].biases.push(0);
  assert.match(refusal(two), /has 2 outputs, expected 1/);
});

test('a network whose layers do not match its sizes is refused, naming the layer', () => {
  const fewerNodes = copy();
  fewerNodes.layers[1].weights.pop();
  assert.match(refusal(fewerNodes), /layer 1 does not have 10 nodes/);
  const shortRow = copy();
  shortRow.layers[2].weights[4].pop();
  assert.match(refusal(shortRow), /layer 2 node 4 does not have 10 weights/);
  const fewerBiases = copy();
  fewerBiases.layers[2].biases.pop();
  assert.match(refusal(fewerBiases), /layer 2 does not have 6 nodes/);
  const missingLayer = copy();
  missingLayer.layers.pop();
  assert.match(refusal(missingLayer), /layer count that does not match its sizes/);
  assert.match(refusal({ ...copy(), type: 'RNN' }), /not a brain\.js NeuralNetwork/);
  assert.match(refusal({ ...copy(), sizes: [D, 0, 1] }), /not a brain\.js NeuralNetwork/);
});

test('a network that does not use the sigmoid activation is refused', () => {
  const both = copy() as NetworkJson & { options: Record<string, unknown>; trainOpts: Record<string, unknown> };
  both.options.activation = 'relu';
  both.trainOpts.activation = 'relu';
  assert.match(refusal(both), /uses activation relu, expected sigmoid/);
  const tanh = copy() as NetworkJson & { options: Record<string, unknown>; trainOpts: Record<string, unknown> };
  delete tanh.options.activation;
  tanh.trainOpts.activation = 'tanh';
  assert.match(refusal(tanh), /uses activation tanh, expected sigmoid/);
});

test('a network brain.js would run with relu is refused even when its constructor options said sigmoid', () => {
  // `new NeuralNetwork({ activation: 'sigmoid' })` then `train(data, { activation: 'relu' })`: brain.js runs
  // (and serialises) trainOpts.activation; options.activation keeps the constructor's word.
  const json = copy() as NetworkJson & { options: Record<string, unknown>; trainOpts: Record<string, unknown> };
  assert.is(json.options.activation, 'sigmoid');
  json.trainOpts.activation = 'relu';
  const net = new brain.NeuralNetwork().fromJSON(json as never);
  assert.is((net as unknown as { trainOpts: { activation: string } }).trainOpts.activation, 'relu', 'brain.js runs this network with relu');
  assert.match(refusal(json), /uses activation relu, expected sigmoid/);
});

test('training with the same seed gives identical weights, another seed other weights', () => {
  const small = dataset(200, 3);
  const o = options({ maxEpochs: 15 });
  const a = trainNetwork(small.x, small.y, D, o), b = trainNetwork(small.x, small.y, D, o);
  assert.equal(a.json.layers, b.json.layers);
  assert.is(a.epochs, b.epochs);
  assert.is(a.validation_mse, b.validation_mse);
  const c = trainNetwork(small.x, small.y, D, { ...o, seed: o.seed + 1 });
  assert.not.equal(c.json.layers, a.json.layers);
});

test('training learns a simple function: validation error well below the variance of the target', () => {
  const mean = DATA.y.reduce((s, v) => s + v, 0) / DATA.y.length;
  const variance = DATA.y.reduce((s, v) => s + (v - mean) ** 2, 0) / DATA.y.length;
  assert.ok(Number.isFinite(TRAINED.validation_mse), 'rows were held back for validation');
  assert.ok(TRAINED.validation_mse < 0.05 * variance, `validation mse ${TRAINED.validation_mse} vs variance ${variance}`);
  assert.ok(TRAINED.train_mse < 0.05 * variance, `train mse ${TRAINED.train_mse} vs variance ${variance}`);
  assert.ok(TRAINED.epochs >= 1 && TRAINED.epochs <= 60, `epochs ${TRAINED.epochs}`);
  // And on rows it never saw.
  const fresh = dataset(300, 12), net = new CompiledNetwork(TRAINED.json, D);
  let se = 0;
  for (let i = 0; i < 300; i++) se += (net.run(fresh.x.subarray(i * D, (i + 1) * D)) - fresh.y[i]) ** 2;
  assert.ok(se / 300 < 0.05 * variance, `fresh-row mse ${se / 300} vs variance ${variance}`);
});

test('with fewer than 20 rows nothing is held back and the epoch budget ends training', () => {
  const tiny = dataset(12, 4);
  const r = trainNetwork(tiny.x, tiny.y, D, options({ maxEpochs: 7 }));
  assert.ok(Number.isNaN(r.validation_mse));
  assert.is(r.epochs, 7);
  assert.ok(Number.isFinite(r.train_mse));
});

test.run();
