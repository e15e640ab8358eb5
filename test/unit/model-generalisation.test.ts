/**
 * What the model promises on work unlike what it trained on (models/training, models/model.ts):
 * bounds that hold on sources it never saw, and a record far outside the training range predicted
 * within what was measured, with a wider bound, not extrapolated.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { evaluatePredictor, keyBucket, outputFrames, priorRows, seededRandom, trainModel, type EncodeRecord, type LabelledRow, type TrainResult } from '../../models/index.js';

/**
 * Encodes of 48 source videos, 25 each. Every source has its own difficulty (log-normal, σ 0.25
 * in log10) that scales its duration and bandwidth, and a little its memory; the probe's SI
 * shows part of it, the rest no feature can see. Each source also has its own bitrate and size,
 * as a real log's source videos do, which a model could learn to recognise it by.
 */
function sourcedRows(seed: number): LabelledRow[] {
  const r = seededRandom(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const rows = priorRows(48 * 25, { seed, noise: 0.04 });
  const difficulty = Array.from({ length: 48 }, () => 0.25 * gauss());
  const fingerprint = Array.from({ length: 48 }, () => [Math.round(500 * 30 ** r()), Math.round(1e6 * 100 ** r())]);
  return rows.map((row, i) => {
    const s = i % 48, d = difficulty[s];
    const record = {
      ...row.record, input: { ...row.record.input, bitrate_kbps: fingerprint[s][0], size_bytes: fingerprint[s][1] },
      content: { ...row.record.content, si_mean: 40 + 60 * d + 10 * gauss(), ti_mean: 10 + 5 * r() },
    };
    const k = 10 ** d;
    return {
      ...row, record, group: `source-${s}`,
      targets: { ...row.targets, duration_s: row.targets.duration_s! * k, bandwidth_mbps: row.targets.bandwidth_mbps! * k, memory_gb: row.targets.memory_gb! * 10 ** (d / 4) },
    };
  });
}

let trained: TrainResult;
let heldOut: LabelledRow[];

test.before(async () => {
  const rows = sourcedRows(17);
  // A third of the sources are never trained on: the bounds are judged on them alone.
  const unseen = (g: string) => keyBucket(`held:${g}`) < 1 / 3;
  heldOut = rows.filter((x) => unseen(x.group!));
  trained = await trainModel(rows.filter((x) => !unseen(x.group!)), { version: 'sources', source: 'sourced prior rows', seed: 5, split: 'none', network: { maxEpochs: 60 } });
});

test('the 95 % bounds cover within 5 points of 95 % of the rows of sources held out of training', () => {
  assert.ok(new Set(heldOut.map((x) => x.group)).size >= 10, 'at least ten unseen sources');
  const report = evaluatePredictor((rec) => trained.model.predictRecord(rec), heldOut);
  for (const t of ['cpu_cores', 'memory_gb', 'bandwidth_mbps', 'duration_s'] as const) {
    const m = report[t]!;
    assert.ok(m.n >= 300, `${t} judged on ${m.n} rows`);
    assert.ok(Math.abs(m.coverage - 0.95) <= 0.05, `${t}: the bound covers ${(100 * m.coverage).toFixed(1)} % of unseen sources' rows`);
  }
  // The cross-validation it was calibrated by held out whole sources too.
  assert.ok(trained.folds.filter((f) => f.kind === 'source').every((f) => f.held_groups >= 5), JSON.stringify(trained.folds));
});

/** A 720p x264 encode within every training range. */
const INSIDE: EncodeRecord = {
  output: { codec: 'h264', encoder: 'libx264', preset: 'medium', width: 1280, height: 720, fps: 30, rc_mode: 'crf', crf: 23, passes: 1 },
  input: { codec: 'rawvideo', width: 1280, height: 720, fps: 30, duration_s: 10, frames: 300 },
  content: { noise: 25, si_mean: 40, ti_mean: 12 },
  node: { cores: 4, gpus: 0, hw_class: 'prior-cpu' },
  extra: {},
};

test('a record far outside the training range is predicted within what was measured, flagged, with a wider bound', () => {
  const { model } = trained;
  // 16K at 240 fps with extreme content: every number beyond what training saw.
  const far: EncodeRecord = {
    ...INSIDE,
    output: { ...INSIDE.output, width: 15360, height: 8640, fps: 240 },
    input: { ...INSIDE.input, width: 15360, height: 8640, fps: 240, duration_s: 10, frames: 2400 },
    content: { noise: 100, si_mean: 400, ti_mean: 300 },
  };
  const inside = model.predictRecord(INSIDE), outside = model.predictRecord(far);
  assert.ok(outside.flags.some((f) => /beyond the training range/.test(f)), `flags: ${outside.flags.join('; ')}`);
  // Per output frame, no estimate beyond the slowest encode measured: the networks never saw 16K, so they are not asked about it.
  const perFrame = (x: LabelledRow) => x.targets.duration_s! / outputFrames(x.record)!;
  const slowest = Math.max(...trained.split.fit.map(perFrame));
  assert.ok(outside.expected.duration_s / outputFrames(far)! <= slowest, `${outside.expected.duration_s / outputFrames(far)!} s per frame, slowest measured ${slowest}`);
  const largest = Math.max(...trained.split.fit.map((x) => x.targets.memory_gb!));
  assert.ok(outside.expected.memory_gb <= largest, `memory ${outside.expected.memory_gb} GB, largest measured ${largest}`);
  for (const t of ['memory_gb', 'bandwidth_mbps', 'duration_s'] as const) {
    const wide = outside.upper[t] / outside.expected[t], usual = inside.upper[t] / inside.expected[t];
    assert.ok(Number.isFinite(outside.upper[t]) && wide > usual, `${t}: bound ÷ estimate ${wide} far outside vs ${usual} inside`);
  }
});

test.run();
