/**
 * The model's speed and accuracy, side by side (issue 4's targets: one prediction under 20 µs,
 * 10,000 under 50 ms, training on 100,000 rows under 2 minutes):
 * - the shipped model predicting from a validated schema, one at a time, and 10,000 varied
 *   schemas end to end (schema → record → features → networks → bounds, clamps and flags) both
 *   through `predictBatch` and one `predict` call each, with the batch split by stage; brain.js's
 *   own `run` on the same networks for the ratio;
 * - training on 100,000 synthetic rows (models/prior), and the held-out figures it reaches
 *   against the baselines on the same split;
 * - the shipped model's held-out figures on its calibration encodes, beside the baselines;
 * - parsing a 100,000-line CSV log.
 *
 *   node dist/test/bench/model.js      prints the figures as JSON
 *   PRESCIENT_BENCH_MODEL=predict      only the prediction figures (skips the ~1 min of training)
 */
import { pathToFileURL } from 'node:url';
import brain from 'brain.js';
import { validateEncodingSchema, type EncodingSchema } from '../../shared/index.js';
import os from 'node:os';
import { BLOCK_ROWS, CompiledNetwork, NetworkBank, SparseBlock, SparseVector } from '../../models/network.js';
import {
  BASELINES, DEFAULT_MODEL_PATH, PredictionBatch, describeSchema, encodeFeatures, encodeSparseRow, evaluatePredictor, fitBaseline, loadModelFile, parseDelimited, priorRows,
  runsToRows, splitRows, trainModel, defaultCalibrationRuns, type EncodeMarks, type EvaluationReport,
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

  // 10,000 varied schemas to predictions with bounds and flags, end to end: as one batch
  // (predictBatch, its arrays reused from round to round as a caller would), and one predict()
  // call each. Rounds alternate so that both see the same machine.
  const batch = new PredictionBatch();
  model.predictBatch(pool, {}, batch);
  const batches: number[] = [], singles: number[] = [];
  for (let round = 0; round < 7; round++) {
    let t = ns();
    model.predictBatch(pool, {}, batch);
    batches.push(ms(t));
    t = ns();
    for (const s of pool) model.predict(s);
    singles.push(ms(t));
  }
  out['predict 10,000, batch (ms, median of 7)'] = median(batches);
  out['predict 10,000, batch (ms, best of 7)'] = Math.min(...batches);
  out['predict 10,000, one call each (ms, median of 7)'] = median(singles);
  let same = 0;
  for (let i = 0; i < pool.length; i++) if (JSON.stringify(batch.prediction(i)) === JSON.stringify(model.predict(pool[i]))) same++;
  out['predict 10,000: batch = one call each (records)'] = same;
  // Where a batch's time goes: each stage alone on the same 10,000 (best of 5; the bounds,
  // clamps and flags are what is left of the batch's best).
  {
    const state = model.file.features[0], d = model.file.defaults, node = { cores: d.cores, hw_class: d.hw_class };
    const bank = new NetworkBank(model.file.networks.filter((n) => n.features === 0).map((n) => new CompiledNetwork(n.json, state.names.length, n.outputs.length)));
    const recs = pool.map((s) => describeSchema(s, node));
    const marks: EncodeMarks = { unseen: 0, codes: new Uint8Array(BLOCK_ROWS * state.numeric.length), at: 0, missing: 0, outside: 0, unprobed: 0 };
    const blocks: SparseBlock[] = [];
    for (let from = 0; from < recs.length; from += BLOCK_ROWS) {
      const block = new SparseBlock(BLOCK_ROWS, state.names.length);
      for (let r = from; r < Math.min(recs.length, from + BLOCK_ROWS); r++) encodeSparseRow(state, recs[r], block, { marks });
      blocks.push(block);
    }
    const outputs = new Float64Array(BLOCK_ROWS * bank.outputWidth);
    const best = (fn: () => void) => { const xs: number[] = []; for (let k = 0; k < 5; k++) { const t0 = ns(); fn(); xs.push(ms(t0)); } return Math.min(...xs); };
    const describe = best(() => { for (const s of pool) describeSchema(s, node); });
    const encode = best(() => {
      for (let from = 0, b = 0; from < recs.length; from += BLOCK_ROWS, b++) {
        const block = blocks[b].clear(), o = { marks };
        for (let r = from; r < Math.min(recs.length, from + BLOCK_ROWS); r++) { marks.at = (r - from) * state.numeric.length; encodeSparseRow(state, recs[r], block, o); }
      }
    });
    const networks = best(() => { for (const block of blocks) bank.runBlock(block, outputs); });
    out['predict 10,000, batch split (ms)'] = `schema → record ${describe.toFixed(1)}, features ${encode.toFixed(1)}, networks ${networks.toFixed(1)}, `
      + `bounds, clamps and flags ${Math.max(0, Math.min(...batches) - describe - encode - networks).toFixed(1)}`;
  }
  out['load average (1, 5 min) after the prediction figures'] = os.loadavg().slice(0, 2).map((l) => l.toFixed(2)).join(', ');

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
  // The same vectors a block at a time, as predictBatch runs them.
  const blocks: SparseBlock[] = [];
  for (let i = 0; i < vectors.length; i += BLOCK_ROWS) {
    const block = new SparseBlock(BLOCK_ROWS, state.names.length);
    for (const v of vectors.slice(i, i + BLOCK_ROWS)) block.push(v);
    blocks.push(block);
  }
  const blockOut = new Float64Array(BLOCK_ROWS * bank.outputWidth);
  out['network pass, compiled bank in blocks (µs)'] = passes(() => { for (const b of blocks) bank.runBlock(b, blockOut); });
  if (process.env.PRESCIENT_BENCH_MODEL === 'predict') return out;
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
  const split = splitRows(runsToRows(defaultCalibrationRuns().runs));
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
