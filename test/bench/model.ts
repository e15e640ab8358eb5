/**
 * The model's speed and accuracy, side by side (issue 4's targets: one prediction under 20 µs,
 * 10,000 under 50 ms, training on 100,000 rows under 2 minutes):
 * - the shipped model predicting from a validated schema, one at a time and in batches of
 *   10,000 varied schemas, with brain.js's own `run` on the same networks for the ratio;
 * - training on 100,000 synthetic rows (models/prior), and the held-out figures it reaches
 *   against the baselines on the same split;
 * - the shipped model's held-out figures on its calibration encodes, beside the baselines;
 * - parsing a 100,000-line CSV log.
 *
 *   node dist/test/bench/model.js      prints the figures as JSON
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import brain from 'brain.js';
import { validateEncodingSchema, type EncodingSchema } from '../../shared/index.js';
import { CompiledNetwork, NetworkBank, SparseVector } from '../../models/network.js';
import {
  BASELINES, DEFAULT_MODEL_PATH, describeSchema, encodeFeatures, evaluatePredictor, fitBaseline, loadModelFile, parseDelimited, priorRows,
  runsToRows, splitRows, trainModel, trainingRunsFromCsv, type EvaluationReport,
} from '../../models/index.js';

const ns = () => process.hrtime.bigint();
const ms = (from: bigint) => Number(ns() - from) / 1e6;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Varied valid schemas: every CPU encoder and its presets, sizes, rates and durations. */
function schemas(n: number): EncodingSchema[] {
  const rows = priorRows(n, { seed: 3 });
  return rows.map(({ record: r }) => validateEncodingSchema({
    input: { synthetic: { source: 'testsrc2', noise: r.content.noise }, resolution: `${r.output.width}x${r.output.height}`, fps: r.output.fps, duration_s: r.input.duration_s },
    output: {
      codec: r.output.codec, encoder: r.output.encoder, preset: r.output.preset, passes: r.output.passes,
      rate_control: r.output.rc_mode === 'crf' ? { mode: 'crf', crf: r.output.crf } : { mode: 'bitrate', bitrate_kbps: r.output.bitrate_kbps },
    },
  }, { allowedInputRoots: [] }));
}

/** scale_mae (log10 error) and coverage per target, compactly. */
function brief(r: EvaluationReport): string {
  return Object.entries(r).map(([t, m]) => `${t} mape ${m!.mape.toFixed(1)}% cov ${(100 * m!.coverage).toFixed(1)}%`).join('; ');
}

export async function benchModel(): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = {};
  const model = loadModelFile(DEFAULT_MODEL_PATH);
  out.model = model.version;

  // One at a time, after a warm-up; 10 rounds of 20,000 calls, the median round counts.
  const pool = schemas(10_000);
  for (let i = 0; i < 20_000; i++) model.predict(pool[i % pool.length]);
  const perCall: number[] = [];
  for (let round = 0; round < 10; round++) {
    const t = ns();
    for (let i = 0; i < 20_000; i++) model.predict(pool[(i * 7919) % pool.length], { cores: 1 + (i % 4) });
    perCall.push((ms(t) * 1000) / 20_000);
  }
  out['predict one (µs, median of 10 rounds)'] = median(perCall);
  out['predict one (µs, worst round)'] = Math.max(...perCall);

  const batches: number[] = [];
  for (let round = 0; round < 7; round++) {
    const t = ns();
    for (const s of pool) model.predict(s);
    batches.push(ms(t));
  }
  out['predict 10,000 (ms, median of 7)'] = median(batches);

  // The network pass alone: brain.js's own run() on the same networks and vectors, against the
  // compiled bank the model uses (same outputs to a Float32 rounding step; models/network.ts).
  const state = model.file.features[0];
  const vectors = pool.slice(0, 2000).map((s) => encodeFeatures(state, describeSchema(s, { cores: 2 })));
  const nets = model.file.networks.map((n) => new brain.NeuralNetwork().fromJSON(n.json as never));
  const bank = new NetworkBank(model.file.networks.map((n) => new CompiledNetwork(n.json, state.names.length, n.outputs.length)));
  const sparse = vectors.map((v) => SparseVector.of(v));
  const passes = (fn: () => void) => { fn(); const t0 = ns(); for (let k = 0; k < 5; k++) fn(); return (ms(t0) * 1000) / (5 * vectors.length); };
  const brainUs = passes(() => { for (const v of vectors) for (const net of nets) net.run(v as never); });
  const bankUs = passes(() => { for (const v of sparse) bank.run(v); });
  out['network pass, brain.js run (µs)'] = brainUs;
  out['network pass, compiled bank (µs)'] = bankUs;
  out['network pass speed-up (ratio)'] = brainUs / bankUs;
  let t: bigint;

  // Training on 100,000 rows.
  const rows = priorRows(100_000, { seed: 11, noise: 0.08, gpus: true, hwClasses: ['cpu-a', 'cpu-b', 'cpu-c'] });
  t = ns();
  const trained = await trainModel(rows, { version: 'bench-100k', source: 'prior rows', seed: 1 });
  out['train 100,000 rows (s)'] = ms(t) / 1000;
  out['train 100,000: epochs per target'] = Object.entries(trained.targets).map(([k, v]) => `${k} ${v!.epochs}`).join(', ');
  out['train 100,000: model on held-out'] = brief(trained.metrics);
  for (const b of BASELINES) out[`train 100,000: ${b}`] = brief(evaluatePredictor(fitBaseline(b, trained.split, 0.95), trained.split.test));

  // The shipped model on its own calibration encodes (the same split it was trained with).
  const csv = fileURLToPath(new URL('../../../models/default/calibration-runs.csv', import.meta.url));
  const split = splitRows(runsToRows(trainingRunsFromCsv(readFileSync(csv, 'utf8'))!));
  out['shipped model on its held-out encodes'] = brief(evaluatePredictor((r) => model.predictRecord(r), split.test));
  // The same encodes as a bare schema describes them (no SI/TI probe): what the leader predicts from.
  const bare = split.test.map((r) => ({ ...r, record: { ...r.record, content: { noise: r.record.content.noise } } }));
  out['shipped model, same encodes without SI/TI'] = brief(evaluatePredictor((r) => model.predictRecord(r), bare));
  for (const b of BASELINES) out[`shipped split: ${b}`] = brief(evaluatePredictor(fitBaseline(b, split, model.coverage), split.test));

  // Parsing a 100,000-line, 25-column log.
  const cols = Array.from({ length: 25 }, (_, i) => `c${i}`);
  const text = [cols.join(','), ...Array.from({ length: 100_000 }, (_, n) => cols.map((_, i) => (i % 5 ? String(n * 25 + i) : `"t, ${n}"`)).join(','))].join('\n');
  const parses: number[] = [];
  for (let k = 0; k < 3; k++) { t = ns(); parseDelimited(text); parses.push(ms(t)); }
  out['parse 100,000-line CSV (ms, median of 3)'] = median(parses);
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) console.log(JSON.stringify(await benchModel(), null, 2));
