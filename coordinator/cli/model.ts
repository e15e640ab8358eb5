/**
 * `prescient model …`: train, evaluate, list, promote, roll back and export. Training data comes
 * from the stack's QuestDB (`encode_runs`) or from a CSV/TSV log with a mapping file. The
 * commands and their options are defined in main.ts, which loads this module (and with it the
 * models and brain.js) only when one of them runs.
 */
import { cliBus } from './member.js';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { ConfigError, loadEndpoints } from '../../shared/index.js';
import {
  BASELINES, ModelRegistry, TARGETS, TARGET_UNITS, decodeText, evaluatePredictor, exportTrainingRuns, fitBaseline, loadModelFile, parseMapping,
  readMappedRows, retrain, runsToRows, trainingRunsFromCsv, splitRows, trainingRunsCsv, type EvaluationReport, type LabelledRow, type Model,
  type RetrainResult, type SplitMode, type TrainingQuery,
} from '../../models/index.js';
import { parseWindow } from '../retrain/index.js';
import { connectBus } from '../bus/index.js';
import { readFeedback } from '../feedback/index.js';
import { table } from './format.js';
import { checkEncoding, describeImport, importReportOf, type ImportReport } from './imported.js';

interface SourceOptions { csv?: string; mapping?: string; encoding?: string; from?: string; to?: string; window?: string; node?: string; codec?: string }

function checkSplit(v: string): SplitMode {
  if (v !== 'hash' && v !== 'time' && v !== 'none') throw new ConfigError('--split', `must be hash, time or none, got ${JSON.stringify(v)}`);
  return v;
}

function checkCoverage(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const c = Number(v);
  if (!(c >= 0.5 && c <= 0.999)) throw new ConfigError('--coverage', `must be between 0.5 and 0.999, got ${JSON.stringify(v)}`);
  return c;
}

/** Rows from the CSV log or from QuestDB, a description of where they came from, and for a file what reading it gave. */
async function loadRows(o: SourceOptions, stateDir: string, say: (m: string) => void, fileOption = '--csv'): Promise<{ rows: LabelledRow[]; source: string; imported?: ImportReport }> {
  if (o.csv && !existsSync(o.csv)) throw new ConfigError(fileOption, `${o.csv} does not exist`);
  if (o.csv && !o.mapping) {
    // A file `prescient model export` wrote needs no mapping: its columns are the QuestDB runs'.
    const { text, ...decoded } = decodeText(readFileSync(o.csv), { encoding: o.encoding, source: o.csv });
    const runs = trainingRunsFromCsv(text);
    if (!runs) throw new ConfigError('--mapping', `${o.csv} is not a Prescient export, so it needs a mapping file (models/README.md)`);
    const rows = runsToRows(runs);
    // Only succeeded runs say what an encode needs: the others are skipped by their status.
    const byStatus: Record<string, number> = {};
    for (const r of runs) if (r.status !== 'succeeded') byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    const imported: ImportReport = {
      file: o.csv, encoding: decoded.encoding, encoding_from: decoded.how, notes: [], read: runs.length, used: rows.length, skipped: runs.length - rows.length,
      skipped_by_column: rows.length < runs.length ? { status: byStatus } : {}, warnings_by_column: {}, skipped_examples: [], warning_examples: [],
    };
    for (const line of describeImport(imported)) say(line);
    return { rows, source: path.basename(o.csv), imported };
  }
  if (o.mapping) {
    if (!o.csv) throw new ConfigError(fileOption, `a mapping file needs the log it maps (${fileOption})`);
    if (!existsSync(o.mapping)) throw new ConfigError('--mapping', `${o.mapping} does not exist`);
    const mapped = readMappedRows(readFileSync(o.csv), parseMapping(readFileSync(o.mapping, 'utf8'), o.mapping), { source: o.csv, encoding: o.encoding });
    const imported = importReportOf(o.csv, mapped, mapped.rows.length);
    for (const line of describeImport(imported)) say(line);
    return { rows: mapped.rows, source: `${path.basename(o.csv)} via ${path.basename(o.mapping)}`, imported };
  }
  const q: TrainingQuery = { httpBase: loadEndpoints(stateDir).questdb_http, status: 'succeeded', node: o.node, codec: o.codec, to: o.to };
  q.from = o.window ? Date.now() - parseWindow(o.window, '--window') : o.from;
  const rows = runsToRows(await exportTrainingRuns(q));
  say(`read ${rows.length} succeeded runs from QuestDB`);
  return { rows, source: `QuestDB encode_runs${q.from !== undefined ? ` from ${new Date(q.from).toISOString()}` : ''}${o.to ? ` to ${o.to}` : ''}${o.node ? ` node ${o.node}` : ''}${o.codec ? ` codec ${o.codec}` : ''}` };
}

const f = (x: number | undefined, d = 3) => (x === undefined || !Number.isFinite(x) ? '-' : Math.abs(x) >= 1000 ? x.toFixed(0) : x.toPrecision(d));

/** One table row per target of a report. */
export function formatReport(title: string, r: EvaluationReport): string {
  const rows = TARGETS.filter((t) => r[t]).map((t) => {
    const m = r[t]!;
    return [t, TARGET_UNITS[t], String(m.n), f(m.mae), `${f(m.mape)}%`, `${f(m.median_ape)}%`, f(m.r2), `${(100 * m.coverage).toFixed(1)}%`, `${(100 * m.slack).toFixed(1)}%`];
  });
  return `${title}\n${table(['target', 'unit', 'n', 'MAE', 'MAPE', 'median APE', 'R²', 'coverage', 'slack'], rows)}`;
}

function baselines(split: ReturnType<typeof splitRows>, coverage: number): Record<string, EvaluationReport> {
  return Object.fromEntries(BASELINES.map((b) => [b, evaluatePredictor(fitBaseline(b, split, coverage), split.test)]));
}

const registry = (stateDir: string) => new ModelRegistry(path.join(stateDir, 'models'));

/** The options of `model train`, as main.ts defines them. */
interface TrainOptions extends SourceOptions {
  split: string; coverage?: string; version?: string; promote?: boolean; force?: boolean; seed: string; baseline?: boolean; json?: boolean;
}

/** The options of `model evaluate`, as main.ts defines them. */
interface EvaluateOptions extends SourceOptions { split: string; model?: string; test?: string; coverage?: string; baseline?: boolean; json?: boolean }

export async function train(o: TrainOptions, stateDir: string): Promise<void> {
  const say = (m: string) => { if (!o.json) console.error(m); };
  // Every option is checked before any data is read.
  const [coverage, split, seed, encoding] = [checkCoverage(o.coverage), checkSplit(o.split), Number(o.seed), checkEncoding(o.encoding)];
  if (!Number.isInteger(seed)) throw new ConfigError('--seed', `must be a whole number, got ${JSON.stringify(o.seed)}`);
  const { rows, source, imported } = await loadRows({ ...o, encoding }, stateDir, say);
  const result: RetrainResult = await retrain({
    registry: registry(stateDir), rows, source, version: o.version, coverage, split, seed,
    promote: !o.promote ? 'never' : o.force ? 'always' : 'if-better', log: say,
  });
  const base = o.baseline ? baselines(result.train.split, result.train.model.coverage) : undefined;
  if (o.json) {
    console.log(JSON.stringify({
      version: result.version, promoted: result.promoted, reason: result.reason, previous: result.previous, targets: result.train.targets,
      split: { fit: result.train.split.fit.length, calibration: result.train.split.calibration.length, test: result.train.split.test.length },
      metrics: result.candidate_metrics, previous_metrics: result.previous_metrics, baselines: base, train_ms: result.train.ms, import: imported,
    }, null, 2));
    return;
  }
  console.log(`model ${result.version} trained in ${(result.train.ms / 1000).toFixed(1)} s; ${result.promoted ? 'now in service' : `not in service (${result.previous} stays)`}: ${result.reason}`);
  const judged = result.train.split.test.length
    ? `on ${result.train.split.test.length} held-out rows`
    : `cross-validated by source on ${result.train.split.fit.length} rows (${result.train.folds.length} folds)`;
  console.log(formatReport(`\n${result.version} ${judged} (bounds at ${(100 * result.train.model.coverage).toFixed(0)}% coverage):`, result.candidate_metrics));
  for (const w of result.train.model.warnings) console.log(`note: ${w}`);
  if (result.previous_metrics) console.log(formatReport(`\n${result.previous} (in service before) on the same rows:`, result.previous_metrics));
  for (const [b, r] of Object.entries(base ?? {})) console.log(formatReport(`\nbaseline ${b} on the same rows:`, r));
}

export async function evaluate(o: EvaluateOptions, cmd: Command, stateDir: string): Promise<void> {
  const say = (m: string) => { if (!o.json) console.error(m); };
  const [coverage, mode, encoding] = [checkCoverage(o.coverage), checkSplit(o.split), checkEncoding(o.encoding)];
  if (o.test !== undefined) {
    // A --test file is scored whole: a split, the baselines fitted on one, or another source would contradict that.
    if (o.baseline) throw new ConfigError('--baseline', 'does not go with --test: the baselines are fitted on the rows a split leaves for training, and --test holds nothing back');
    if (cmd.getOptionValueSource('split') === 'cli') throw new ConfigError('--split', 'does not go with --test: every row of the --test file is scored');
    for (const k of ['csv', 'from', 'to', 'window', 'node', 'codec'] as const) {
      if (o[k] !== undefined) throw new ConfigError(`--${k}`, 'does not go with --test: the rows scored are those of the --test file');
    }
    if (!existsSync(o.test)) throw new ConfigError('--test', `${o.test} does not exist`);
  }
  const m: Model = o.model && (o.model.includes('/') || o.model.endsWith('.json')) ? loadModelFile(o.model, { coverage }) : registry(stateDir).load(o.model, { coverage });
  const { rows, source, imported } = o.test !== undefined
    ? await loadRows({ csv: o.test, mapping: o.mapping, encoding }, stateDir, say, '--test')
    : await loadRows({ ...o, encoding }, stateDir, say);
  const split = o.test === undefined ? splitRows(rows, mode) : undefined;
  const scored = split ? split.test : rows;
  if (!scored.length) throw split ? new ConfigError('data', `no held-out rows among the ${rows.length} read from ${source}`) : new ConfigError('--test', `no usable rows among the ${imported?.read ?? 0} read from ${o.test}`);
  const report = evaluatePredictor((r) => m.predictRecord(r), scored);
  const base = split && o.baseline ? baselines(split, m.coverage) : undefined;
  if (o.json) {
    const which = split ? { split: o.split, held_out: split.test.length } : { test: o.test, rows: rows.length };
    console.log(JSON.stringify({ model: m.version, coverage: m.coverage, warnings: m.warnings, source, ...which, metrics: report, baselines: base, import: imported }, null, 2));
    return;
  }
  const which = split ? `${split.test.length} held-out rows of ${source}` : `every row of ${source}, ${rows.length} rows`;
  console.log(formatReport(`${m.version} on ${which} (bounds at ${(100 * m.coverage).toFixed(0)}% coverage):`, report));
  for (const w of m.warnings) console.log(`note: ${w}`);
  if (split) for (const [b, r] of Object.entries(base ?? {})) console.log(formatReport(`\nbaseline ${b} (fitted on the other ${split.fit.length + split.calibration.length} rows):`, r));
}

export function list(o: { json?: boolean }, stateDir: string): void {
  const entries = registry(stateDir).list();
  if (o.json) { console.log(JSON.stringify(entries, null, 2)); return; }
  console.log(table(['', 'version', 'created', 'rows', 'source', 'parent'], entries.map((e) => [
    e.current ? '*' : '', e.version, e.created_at.slice(0, 19), String(e.trained_on?.rows ?? '-'),
    e.error ? `unreadable: ${e.error}` : `${e.shipped ? '(shipped) ' : ''}${e.trained_on?.source ?? ''}`, e.parent ?? '',
  ])));
}

export function promote(version: string, o: { reason: string }, stateDir: string): void {
  registry(stateDir).promote(version, o.reason);
  console.log(`${version} is in service`);
}

export function rollback(o: { reason: string }, stateDir: string): void {
  console.log(`${registry(stateDir).rollback(o.reason)} is in service`);
}

export function history(o: { json?: boolean }, stateDir: string): void {
  const h = registry(stateDir).history();
  if (o.json) { console.log(JSON.stringify(h, null, 2)); return; }
  console.log(table(['at', 'action', 'version', 'reason'], h.map((e) => [e.at.slice(0, 19), e.action, e.version, e.reason])));
}

export async function status(o: { version?: string; node?: string; json?: boolean }, stateDir: string): Promise<void> {
  const { nc } = await cliBus(stateDir);
  try {
    const { groups, margins } = await readFeedback(nc.jetstream());
    let inService: string | undefined;
    try { inService = registry(stateDir).currentVersion(); } catch { inService = undefined; }
    const rows = groups
      .filter((g) => (!o.version || g.model_version === o.version) && (!o.node || g.node === o.node))
      .sort((a, b) => a.model_version.localeCompare(b.model_version) || a.node.localeCompare(b.node) || a.codec.localeCompare(b.codec) || TARGETS.indexOf(a.target) - TARGETS.indexOf(b.target))
      .map((g) => ({
        model_version: g.model_version, in_service: g.model_version === inService, target: g.target, codec: g.codec, node: g.node, hw_class: g.hw_class,
        runs: g.count, window: g.figures.n, mape: g.figures.mape, bias: g.figures.bias, bias_ratio: Math.exp(g.figures.bias), coverage: g.figures.coverage,
        correction: Math.exp(g.correction), alert_open: g.alert_open, updated_at: new Date(g.updated_at).toISOString(),
      }));
    const ms = margins.filter((m) => !o.version || m.model_version === o.version)
      .map((m) => ({ model_version: m.model_version, codec: m.codec, memory_margin: m.margin, raised_at: m.raised_at ? new Date(m.raised_at).toISOString() : null }));
    if (o.json) { console.log(JSON.stringify({ in_service: inService ?? null, groups: rows, margins: ms }, null, 2)); return; }
    if (!rows.length) { console.log('no feedback reported yet'); return; }
    console.log(table(['version', 'target', 'codec', 'node', 'runs', 'MAPE', 'bias', 'coverage', 'correction', 'alert'], rows.map((r) => [
      `${r.in_service ? '*' : ''}${r.model_version}`, r.target, r.codec, r.node, `${r.runs} (${r.window})`, `${f(r.mape)}%`, `×${f(r.bias_ratio)}`,
      Number.isFinite(r.coverage) ? `${(100 * r.coverage).toFixed(0)}%` : '-', `×${f(r.correction)}`, r.alert_open ? 'OPEN' : '',
    ])));
    for (const m of ms.filter((x) => x.memory_margin !== 1)) console.log(`memory margin ×${m.memory_margin.toFixed(2)} for ${m.codec} under ${m.model_version}${m.raised_at ? ` (raised ${m.raised_at.slice(0, 19)})` : ''}`);
  } finally {
    await nc.drain();
  }
}

export async function exportRuns(o: SourceOptions & { out: string }, stateDir: string): Promise<void> {
  const q: TrainingQuery = { httpBase: loadEndpoints(stateDir).questdb_http, node: o.node, codec: o.codec, to: o.to };
  q.from = o.window ? Date.now() - parseWindow(o.window, '--window') : o.from;
  const runs = await exportTrainingRuns(q);
  writeFileSync(o.out, trainingRunsCsv(runs));
  console.log(`wrote ${runs.length} runs to ${o.out}`);
}
