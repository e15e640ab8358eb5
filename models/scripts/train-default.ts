/**
 * Trains the shipped model, models/default/model.json, on every encode of
 * models/default/calibration-runs-*.csv (real encodes this project ran and recorded;
 * calibration-data.sh records more), and prints its figures cross-validated by source: each
 * encode predicted by a model that never saw its source. `npm run bench -- accuracy` compares
 * it with its peers on sources held out.
 *
 *   npm run build && node dist/models/scripts/train-default.js
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_MODEL_PATH, TARGETS, defaultCalibrationRuns, runsToRows, trainModel, type EvaluationReport } from '../index.js';

/** One line per target: MAE, MAPE, R², coverage and slack. */
const show = (title: string, r: EvaluationReport) => console.log(`\n${title}\n${TARGETS.filter((t) => r[t]).map((t) => {
  const m = r[t]!;
  return `  ${t.padEnd(15)} n ${m.n}  MAE ${m.mae.toPrecision(3)}  MAPE ${m.mape.toFixed(1)}%  R² ${m.r2.toFixed(3)}  coverage ${(100 * m.coverage).toFixed(1)}%  slack ${(100 * m.slack).toFixed(1)}%`;
}).join('\n')}`);

const { files, runs } = defaultCalibrationRuns();
const rows = runsToRows(runs);
const last = runs.map((r) => r.ts).sort().pop()!;
const version = `default-${last.slice(0, 10).replace(/-/g, '')}`;
const result = await trainModel(rows, {
  version, source: `${files.map((f) => `models/default/${path.basename(f)}`).join(', ')} (${runs.length} calibration encodes)`, seed: 1, split: 'none', log: console.log,
});
writeFileSync(DEFAULT_MODEL_PATH, JSON.stringify(result.model.file));
console.log(`wrote ${DEFAULT_MODEL_PATH} (${version}) in ${(result.ms / 1000).toFixed(1)} s`);
show(`${version}, cross-validated by source (${new Set(rows.map((r) => r.group ?? r.key)).size} sources, ${result.folds.length} folds):`, result.cv);
