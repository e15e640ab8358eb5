/**
 * `prescient calibrate`: runs the calibration matrix on this node, one encode at a time on the
 * granted cores, recording each exactly as the agent records a job (samples and a run row in
 * QuestDB), and reports how many runs it made. This is how a new hardware class gets its first
 * training data.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { GPU_ENCODERS, type StackEndpoints, type ValidationContext } from '../../shared/index.js';
import { detectHardware, type GrantOptions, type Hardware } from '../hardware.js';
import { createEncodeRunner } from '../runner/index.js';
import { QuestDbTelemetrySink } from '../telemetry/index.js';
import { RunRecorder } from '../recorder.js';
import { calibrationMatrix, type CalibrationRun, type MatrixOptions } from './matrix.js';
import { ProbeCache, measurePilot, probeInput } from '../ffmpeg/probe.js';
import type { Log } from '../../shared/log.js';

export { parseCalibrationPlan } from './plan.js';
export { designCalibration, type DesignOptions } from './design.js';
export { calibrationMatrix, DEFAULT_CONTENTS, DEFAULT_PRESETS, type CalibrationRun, type CalibrationContent, type MatrixOptions } from './matrix.js';

export interface CalibrateOptions {
  node_id: string;
  /** Needed unless `dry_run`. */
  endpoints?: StackEndpoints;
  grant?: GrantOptions;
  validation: ValidationContext;
  matrix: MatrixOptions;
  /** Runs to make instead of the matrix (a plan file: `parseCalibrationPlan`). */
  plan?: CalibrationRun[];
  /** False: no PSNR/SSIM pass after each encode (half the time of a slow-preset run; default true). */
  quality?: boolean;
  /** A run still encoding after this many seconds is stopped and recorded as cancelled (never trained on). */
  run_timeout_s?: number;
  output_dir: string;
  spool_dir: string;
  sample_interval_ms?: number;
  /** Only list the runs. */
  dry_run?: boolean;
  log?: Log;
  onRun?: (r: CalibrationOutcome, index: number, total: number) => void;
}

export interface CalibrationOutcome {
  job_id: string;
  label: string;
  cores: number;
  ok: boolean;
  duration_s?: number;
  cpu_cores?: number;
  memory_gb?: number;
  error?: string;
}

export interface CalibrationReport {
  node_id: string;
  hardware: Hardware;
  planned: number;
  runs: number;
  succeeded: number;
  failed: number;
  /** Rows still waiting in the spool when calibration finished (0 once QuestDB took them all). */
  unsent_rows: number;
  wall_s: number;
  outcomes: CalibrationOutcome[];
}

export async function runCalibration(o: CalibrateOptions): Promise<CalibrationReport> {
  const hardware = await detectHardware(o.grant);
  const plan: CalibrationRun[] = o.plan ?? calibrationMatrix(o.matrix, o.validation, hardware.core_ids.length, hardware.gpus.length > 0);
  const tooBig = plan.find((r) => r.cores > hardware.core_ids.length);
  if (tooBig) throw new Error(`${tooBig.label} asks for ${tooBig.cores} cores; this node has ${hardware.core_ids.length}`);
  const report: CalibrationReport = { node_id: o.node_id, hardware, planned: plan.length, runs: 0, succeeded: 0, failed: 0, unsent_rows: 0, wall_s: 0, outcomes: [] };
  if (o.dry_run) {
    report.outcomes = plan.map((r, i) => ({ job_id: `planned-${i + 1}`, label: r.label, cores: r.cores, ok: false }));
    return report;
  }
  if (!o.endpoints) throw new Error('calibration needs the stack endpoints (run `prescient stack up`)');
  mkdirSync(o.output_dir, { recursive: true });
  const started = Date.now();
  const runner = createEncodeRunner({ maxThreads: 1 });
  const telemetry = new QuestDbTelemetrySink(o.endpoints.questdb_http, o.spool_dir, o.log);
  const recorder = new RunRecorder({
    node_id: o.node_id, hardware, runner, telemetry, output_dir: o.output_dir, input_roots: o.validation.allowedInputRoots, sample_interval_ms: o.sample_interval_ms, log: o.log,
  });
  const batch = `cal${started.toString(36)}`;
  // Each file is probed as a submission would be, so a run row's schema carries what the model
  // reads at prediction (its geometry, codec, bitrate and size). A lavfi source's complexity is
  // what the recorder measures for the row anyway.
  const probes = new ProbeCache();
  try {
    for (const [i, run] of plan.entries()) {
      const job_id = `${batch}-${String(i + 1).padStart(4, '0')}`;
      if (run.schema.input.kind === 'file' && !run.schema.input.probe) {
        const probe = await probeInput(run.schema.input, { by: 'node', cache: probes, core_ids: hardware.core_ids, roots: o.validation.allowedInputRoots });
        if (probe) run.schema.input.probe = probe;
      }
      // The pilot encode a submission carries (measurePilot), so the row trains what prediction reads.
      if (!run.schema.input.probe?.pilot && (run.schema.input.kind === 'synthetic' || run.schema.input.probe)) {
        const pilot = await measurePilot(run.schema, { core_ids: hardware.core_ids, gpu_ids: [] }, { roots: o.validation.allowedInputRoots });
        if (pilot) run.schema.input.probe = { ...(run.schema.input.probe ?? { by: 'node' }), pilot };
      }
      const rec = await recorder.record({
        task_id: job_id, schema: run.schema, core_ids: hardware.core_ids.slice(0, run.cores),
        gpu_ids: GPU_ENCODERS.has(run.schema.output.encoder) ? hardware.gpus.slice(0, 1).map((g) => g.id) : [],
        memory_gb: hardware.memory_gb, attempt: 1, model_version: 'calibration', quality: o.quality,
      }, o.run_timeout_s ? { signal: AbortSignal.timeout(o.run_timeout_s * 1000) } : {});
      // The encoded files are not needed, only their measurements.
      if (rec.result) rmSync(rec.result.output_path, { force: true });
      const outcome: CalibrationOutcome = {
        job_id, label: run.label, cores: run.cores, ok: !!rec.result, error: rec.error,
        duration_s: rec.result?.actual.duration_s, cpu_cores: rec.result?.actual.cpu_cores, memory_gb: rec.result?.actual.memory_gb,
      };
      report.outcomes.push(outcome);
      report.runs++;
      if (outcome.ok) report.succeeded++; else report.failed++;
      o.onRun?.(outcome, i, plan.length);
    }
  } finally {
    await runner.close();
    await telemetry.flush().catch((e) => o.log?.(`telemetry: ${e}`, 'warn'));
    report.unsent_rows = telemetry.pending();
    await telemetry.close();
  }
  report.wall_s = (Date.now() - started) / 1000;
  return report;
}
