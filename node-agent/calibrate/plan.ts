/**
 * A calibration plan file: the exact runs to make, for data sets a matrix cannot describe (real
 * clips of several lengths, sizes and codecs beside synthetic sources, each encode sized to a
 * time budget). YAML or JSON, a list of runs:
 *
 * ```yaml
 * - cores: 1
 *   job: { input: { path: /media/bbb~720p.mp4 }, output: { codec: hevc, preset: fast, rate_control: { mode: crf, crf: 28 } } }
 * ```
 *
 * Each job is checked as a submission is (`validateEncodingSchema`); every problem is reported at once.
 */
import { parse as parseYaml } from 'yaml';
import { SchemaValidationError, validateEncodingSchema, type FieldIssue, type ValidationContext } from '../../shared/index.js';
import type { CalibrationRun } from './matrix.js';

export class CalibrationPlanError extends Error {
  constructor(readonly file: string, readonly problems: string[]) {
    super(`${file}: ${problems.length} problem(s):\n  ${problems.slice(0, 20).join('\n  ')}${problems.length > 20 ? `\n  … and ${problems.length - 20} more` : ''}`);
    this.name = 'CalibrationPlanError';
  }
}

export function parseCalibrationPlan(text: string, file: string, ctx: ValidationContext, maxCores: number): CalibrationRun[] {
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 0 });
  } catch (e) {
    throw new CalibrationPlanError(file, [`not YAML or JSON: ${(e as Error).message.split('\n')[0]}`]);
  }
  if (!Array.isArray(doc)) throw new CalibrationPlanError(file, ['must be a list of runs ({ cores, job })']);
  const problems: string[] = [];
  const runs: CalibrationRun[] = [];
  doc.forEach((entry, i) => {
    const at = `[${i}]`;
    if (!entry || typeof entry !== 'object' || Array.isArray(entry)) return void problems.push(`${at}: must be a mapping with cores and job`);
    const { cores, job, ...rest } = entry as Record<string, unknown>;
    for (const k of Object.keys(rest)) problems.push(`${at}.${k}: is not a plan setting (expected cores, job)`);
    if (!Number.isInteger(cores) || (cores as number) < 1 || (cores as number) > maxCores) problems.push(`${at}.cores: must be a whole number from 1 to ${maxCores}, got ${JSON.stringify(cores)}`);
    try {
      const schema = validateEncodingSchema(job, ctx);
      const inp = schema.input, out = schema.output;
      const what = inp.kind === 'file' ? inp.path.split('/').pop() : `${inp.source}${inp.noise ? `+${inp.noise}` : ''} ${inp.resolution.width}x${inp.resolution.height} ${inp.duration_s}s`;
      const rc = out.rate_control.mode === 'crf' ? `crf${out.rate_control.crf}` : `${out.rate_control.bitrate_kbps}k`;
      const size = out.resolution ? ` ->${out.resolution.width}x${out.resolution.height}` : '';
      runs.push({ schema, cores: cores as number, label: `${out.encoder} ${out.preset} ${rc}${out.passes === 2 ? ' 2-pass' : ''} ${what}${size} ${cores}c` });
    } catch (e) {
      if (!(e instanceof SchemaValidationError)) throw e;
      problems.push(...e.issues.map((x: FieldIssue) => `${at}.job.${x.field}: ${x.reason}`));
    }
  });
  if (problems.length) throw new CalibrationPlanError(file, problems);
  return runs;
}
