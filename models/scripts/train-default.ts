/**
 * Regenerates models/default/model.json: a brain.js network fitted to the prior cost model
 * (models/prior). Run: `npm run build && node dist/models/scripts/train-default.js`.
 */
import { writeFileSync } from 'node:fs';
import { BrainPredictor, TARGETS, type Sample } from '../predictor.js';
import { priorSamples } from '../prior/index.js';
import { DEFAULT_MODEL_PATH } from '../registry.js';

const all = priorSamples(3000, 42);
const train = all.slice(0, 2500), held = all.slice(2500);
const started = Date.now();
const model = BrainPredictor.train(train, {
  version: 'prior-1', source: 'prior cost model (models/prior), 2500 samples, seed 42',
  // Until calibrated on real residuals (model issue), reserve at 1.5× the estimate.
  margins: { cpu_cores: 1.25, memory_gb: 1.5, bandwidth_mbps: 1.5, cpu_s_per_frame: 1.5 },
  iterations: 4000,
});
const mape = (t: (typeof TARGETS)[number]) => held.reduce((a: number, s: Sample) => a + Math.abs(model.estimate(s.features)[t] - s.targets[t]) / s.targets[t], 0) / held.length;
console.log(`trained in ${((Date.now() - started) / 1000).toFixed(1)} s; held-out MAPE vs prior:`, Object.fromEntries(TARGETS.map((t) => [t, +(mape(t) * 100).toFixed(1)])));
writeFileSync(DEFAULT_MODEL_PATH, JSON.stringify(model.file));
console.log(`wrote ${DEFAULT_MODEL_PATH}`);
