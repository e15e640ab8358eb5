/**
 * Pilot encodes for runs recorded before submissions carried one (shared PilotEncode): each
 * succeeded run's schema is test-encoded on this machine as `prescient submit` would have
 * (measurePilot), and the pilot is written into the run's schema_json probe. The run's own
 * measurements stay as recorded; only what prediction would have read is added.
 */
import path from 'node:path';
import { existsSync } from 'node:fs';
import { validateEncodingSchema } from '../../shared/index.js';
import type { TrainingRun } from '../../models/index.js';
import { measurePilot } from '../ffmpeg/probe.js';

export interface PilotRunsOptions {
  /** Where the runs' file inputs are now: a file input is looked up by its name here (absent: its recorded path). */
  media_dir?: string;
  core_ids: readonly number[];
  /** Measure runs that have a pilot again, replacing it (one taken by an earlier build that measured less). */
  again?: boolean;
  log?: (m: string) => void;
}

export interface PilotRunsReport { added: number; had: number; unreadable: number; failed: number }

/** Adds a pilot to each succeeded run that has none (`again`: to every one); `runs` is changed in place. */
export async function addPilots(runs: TrainingRun[], o: PilotRunsOptions): Promise<PilotRunsReport> {
  const report: PilotRunsReport = { added: 0, had: 0, unreadable: 0, failed: 0 };
  for (const run of runs) {
    if (run.status !== 'succeeded' || !run.schema_json) continue;
    const raw = JSON.parse(run.schema_json) as { input: { kind?: string; path?: string; probe?: { by?: string; pilot?: unknown } } };
    if (raw.input.probe?.pilot && !o.again) { report.had++; continue; }
    const local = structuredClone(raw);
    if (local.input.kind === 'file' && o.media_dir) local.input.path = path.join(o.media_dir, path.basename(local.input.path ?? ''));
    if (local.input.kind === 'file' && !existsSync(local.input.path ?? '')) { report.unreadable++; o.log?.(`${run.job_id}: ${local.input.path} is not here`); continue; }
    let schema;
    try {
      schema = validateEncodingSchema(local, { allowedInputRoots: ['/'], allowedOutputRoots: ['/'] });
    } catch (e) {
      report.failed++;
      o.log?.(`${run.job_id}: its schema is no longer valid: ${(e as Error).message}`);
      continue;
    }
    const pilot = await measurePilot(schema, { core_ids: o.core_ids, gpu_ids: [] });
    if (!pilot) { report.failed++; o.log?.(`${run.job_id}: the pilot encode failed`); continue; }
    raw.input.probe = { ...(raw.input.probe ?? { by: 'node' }), pilot };
    run.schema_json = JSON.stringify(raw);
    report.added++;
  }
  return report;
}
