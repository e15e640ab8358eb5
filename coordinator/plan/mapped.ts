/**
 * A third party's CSV/TSV log replayed (issue 19: "a CSV/TSV log with a mapping, the model
 * import's format"). The log is read by the model import's own reader through the same mapping
 * file (models/data/mapping.ts: units, renames, defaults, encodings, skip and warning counts);
 * each row it keeps becomes a recorded run, and `traceWorkload` replays those as it replays
 * Prescient's own exports.
 *
 * What a replayed row needs beyond what training needs, checked per row and counted with the
 * reader's own reasons:
 * - a job Prescient can submit: an output codec it encodes (h264, hevc, vp9, av1; the mapping's
 *   `values` rename others) and a rate control (output.crf or output.bitrate_kbps, or one under
 *   `defaults`). A setting the job schema refuses (a preset of another encoder, an odd output
 *   size, a probe figure out of range) is left out with a warning; the row is kept.
 * - how long it ran (target duration_s). Other targets it lacks are drawn from the model's spread.
 * - when it arrived, where the mapping maps a `time` column. Without one, every row arrives at
 *   once, or (`rate`) one after another in the log's order at that rate.
 *
 * The model predicts from the job alone: extra features and frame-type counts are not part of a
 * job, so a replay's predictions do not read them (training from the same log does).
 */
import { ConfigError, OUTPUT_CODECS, SchemaValidationError, validateEncodingSchema } from '../../shared/index.js';
import { TARGETS, readMappedRows, type EncodeRecord, type FieldPath, type LabelledRow, type MappedRows, type Mapping, type RowIssue, type RowVerdict, type Target } from '../../models/index.js';
import { ratePerMs, traceWorkload, type RecordedRun, type WorkloadSpec } from './inputs.js';

/** Where a replayed row's input is said to be: nothing is read, and the model does not read the path. */
const REPLAY_INPUT = '/replay/input';
const ANY_ROOT = { allowedInputRoots: ['/'], allowedOutputRoots: ['/'] };
/** Settings a job can go without: a refused one is left out (a warning), not the row. */
const DROPPABLE = /^(output\.(encoder|preset|resolution|fps|gop|passes)|input\.probe\.[a-z_]+)(\.|$)/;
/** A log's rate-control names that mean a target bitrate. */
const BITRATE_MODES = /^(bitrate|abr|cbr|vbr)$/i;

export interface MappedReplayOptions {
  /** Names the log in messages; a .tsv or .tab name makes tab its delimiter unless the mapping sets one. */
  source?: string;
  /** The log's text encoding; by default it is detected, as the import does. */
  encoding?: string;
  /** For a log without a time column: one row arrives per 1/rate (`120/h`), in the log's order. */
  rate?: string;
}

/** The replayed workload with the import's counts: rows read, used, skipped and warned of by column and reason. */
export interface MappedReplay extends Omit<MappedRows, 'rows'> {
  workload: WorkloadSpec;
  used: number;
  /** How the arrivals were set, in words. */
  arrivals: string;
  /** The targets the log measures; the others are drawn per job from the model's spread. */
  measured: Target[];
}

/** The log's column a record field (or one of several) comes from, else its default, else the field itself. */
function columnOf(mapping: Mapping, fields: readonly FieldPath[]): string {
  const rule = mapping.columns.find((c) => 'field' in c.to && fields.includes(c.to.field));
  if (rule) return rule.column;
  const d = fields.find((f) => mapping.defaults[f] !== undefined);
  return d ? `defaults.${d}` : fields[0];
}
const targetColumn = (mapping: Mapping, t: Target) => mapping.columns.find((c) => 'target' in c.to && c.to.target === t)?.column ?? t;

/** The record fields a job setting is made from, to name their column in a warning. */
function fieldsOf(setting: string): FieldPath[] {
  const [group, name, leaf] = setting.split('.');
  if (group === 'output' && name === 'rate_control') return leaf === 'bitrate_kbps' ? ['output.bitrate_kbps'] : ['output.crf', 'output.bitrate_kbps'];
  if (name === 'resolution') return [`${group}.resolution`, `${group}.width`, `${group}.height`] as FieldPath[];
  if (group === 'input' && name === 'probe') {
    if (leaf === 'width' || leaf === 'height') return ['input.resolution', `input.${leaf}`];
    if (leaf === 'si_mean' || leaf === 'ti_mean') return [`content.${leaf}`];
    return [`input.${leaf}` as FieldPath];
  }
  return [`${group}.${name}` as FieldPath];
}

/** A copy without the undefined fields. */
const defined = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined));
const whole = (x: number | undefined) => (x === undefined ? undefined : Math.round(x));

/**
 * The job a mapped row describes, as `prescient submit` would take it (checked by the job
 * schema itself), or why there is none. A setting the schema refuses is left out with a warning.
 */
export function jobOfRecord(r: EncodeRecord, mapping: Mapping): { job: { input: unknown; output: unknown }; warnings: RowIssue[] } | { skip: RowIssue } {
  const o = r.output, i = r.input;
  const column = (setting: string) => columnOf(mapping, fieldsOf(setting));
  const codec = o.codec?.toLowerCase();
  if (codec === undefined) {
    return { skip: { column: column('output.codec'), kind: 'no output codec', reason: 'has no output codec (map a column to output.codec, or set one under defaults): a replayed encode is submitted as a job' } };
  }
  if (!(OUTPUT_CODECS as readonly string[]).includes(codec)) {
    return { skip: { column: column('output.codec'), kind: 'not an output codec', reason: `${JSON.stringify(o.codec)} is not a codec Prescient encodes (${OUTPUT_CODECS.join(', ')}); the mapping's values can rename it (output.codec: { x264: h264 })` } };
  }
  const crf = o.crf === undefined ? undefined : { mode: 'crf', crf: Math.round(o.crf) };
  const bitrate = o.bitrate_kbps === undefined ? undefined : { mode: 'bitrate', bitrate_kbps: o.bitrate_kbps };
  // Where the log has both, its rate-control mode says which the encode used.
  const rates = (o.rc_mode !== undefined && BITRATE_MODES.test(o.rc_mode) ? [bitrate, crf] : [crf, bitrate]).filter((x) => x !== undefined);
  if (!rates.length) {
    return { skip: { column: column('output.rate_control'), kind: 'no rate control', reason: 'has neither output.crf nor output.bitrate_kbps (map one, or set one under defaults): a job needs its rate control' } };
  }
  const output: Record<string, unknown> = defined({
    codec, encoder: o.encoder, preset: o.preset, fps: o.fps, gop: whole(o.gop), passes: whole(o.passes),
    resolution: o.width !== undefined && o.height !== undefined ? { width: o.width, height: o.height } : undefined,
  });
  // A log's length may be given in frames only.
  const duration = i.duration_s ?? (i.frames !== undefined && i.fps ? i.frames / i.fps : undefined);
  const probe: Record<string, unknown> = defined({
    by: 'submitter', width: i.width, height: i.height, fps: i.fps, codec: i.codec?.toLowerCase(), duration_s: duration, frames: whole(i.frames),
    bitrate_kbps: i.bitrate_kbps, size_bytes: whole(i.size_bytes), si_mean: r.content.si_mean, ti_mean: r.content.ti_mean,
  });
  const input = { kind: 'file', path: REPLAY_INPUT, probe };
  const warnings: RowIssue[] = [];
  const leftOut = (setting: string, reason: string) => warnings.push({ column: column(setting), kind: 'not a job setting', reason: `${setting}: ${reason}; left out of the replayed job` });
  // Each pass leaves out what the schema refused; a setting is never put back, so this ends.
  let last = { field: 'output.codec', reason: 'is not a job the schema takes' };
  for (let changed = true; changed;) {
    changed = false;
    try {
      const s = validateEncodingSchema({ input, output: { ...output, rate_control: rates[0] } }, ANY_ROOT);
      return { job: { input: s.input, output: s.output }, warnings };
    } catch (e) {
      if (!(e instanceof SchemaValidationError)) throw e;
      let rateRefused = false;
      last = e.issues[0] ?? last;
      for (const issue of e.issues) {
        const setting = issue.field;
        if (setting.startsWith('output.rate_control')) {
          if (rateRefused) continue;
          rateRefused = true;
          if (rates.length > 1) { leftOut(setting, issue.reason); rates.shift(); changed = true; continue; }
          return { skip: { column: column(setting), kind: 'not a job setting', reason: `${setting}: ${issue.reason}, and the job has no other rate control` } };
        }
        const m = DROPPABLE.exec(setting);
        if (!m) return { skip: { column: column(setting), kind: 'not a job setting', reason: `${setting}: ${issue.reason}` } };
        const [group, name, leaf] = m[1].split('.');
        const from = group === 'output' ? output : probe;
        const key = group === 'output' ? name : leaf;
        if (from[key] === undefined) continue; // two issues of one setting
        delete from[key];
        leftOut(m[1], issue.reason);
        changed = true;
      }
    }
  }
  // Refused again for a setting already left out: not a job this replay can make.
  return { skip: { column: column(last.field), kind: 'not a job setting', reason: `${last.field}: ${last.reason}` } };
}

/**
 * A workload replaying a third party's log through a mapping: the import's reader with the
 * replay's own check of each row, then `traceWorkload` as for Prescient's own exports. Throws a
 * ConfigError naming `--rate` or `--mapping` where the two cannot make a replay; a mapping
 * problem is the reader's MappingError, as for an import.
 */
export function mappedWorkload(data: Uint8Array, mapping: Mapping, o: MappedReplayOptions = {}): MappedReplay {
  if (!mapping.columns.some((c) => 'target' in c.to && c.to.target === 'duration_s')) {
    throw new ConfigError('--mapping', `${mapping.file} maps no column to { target: duration_s }: a replay needs how long each encode ran`);
  }
  const timed = mapping.time !== undefined;
  let gapMs = 0;
  if (o.rate !== undefined) {
    if (timed) throw new ConfigError('--rate', `${mapping.file} maps a time column (${mapping.time}), which gives each row's arrival; --rate is for a log without one`);
    const perMs = ratePerMs(o.rate);
    if (!(perMs > 0)) throw new ConfigError('--rate', `must be a rate above 0 such as 120/h, 2/m or 0.5/s, got ${JSON.stringify(o.rate)}`);
    gapMs = 1 / perMs;
  }
  const jobs = new Map<LabelledRow, string>();
  const check = (row: LabelledRow, warned: readonly RowIssue[]): RowVerdict => {
    // A figure the reader could not parse is already a warning on its column: the skip says so.
    const missing = (column: string, kind: string, need: string): RowVerdict => {
      const w = warned.find((x) => x.column === column);
      return { skip: w ? { column, kind: w.kind, reason: `${w.reason}; ${need}` } : { column, kind, reason: `is empty; ${need}` } };
    };
    if (row.targets.duration_s === undefined) return missing(targetColumn(mapping, 'duration_s'), 'no duration', 'a replay needs how long each encode ran');
    if (timed && !(row.ts !== undefined && Number.isFinite(new Date(row.ts).getTime()))) return missing(mapping.time!, 'no time', 'a replay needs when each encode arrived');
    const j = jobOfRecord(row.record, mapping);
    if ('skip' in j) return j;
    jobs.set(row, JSON.stringify(j.job));
    return { warnings: j.warnings };
  };
  const { rows, ...read } = readMappedRows(data, mapping, { source: o.source, encoding: o.encoding, check });
  const figure = (row: LabelledRow, t: Target) => row.targets[t] ?? null;
  const runs: RecordedRun[] = rows.map((row, n) => ({
    ts: new Date(timed ? row.ts! : n * gapMs).toISOString(), status: 'succeeded', schema_json: jobs.get(row)!,
    cores_granted: row.record.node.cores ?? null, cpu_model: row.record.node.hw_class ?? null,
    cpu_cores: figure(row, 'cpu_cores'), memory_gb: figure(row, 'memory_gb'), bandwidth_mbps: figure(row, 'bandwidth_mbps'),
    duration_s: figure(row, 'duration_s'), gpu_percent: figure(row, 'gpu_percent'),
  }));
  const t = traceWorkload(runs, { partial: true });
  const measured = TARGETS.filter((x) => mapping.columns.some((c) => 'target' in c.to && c.to.target === x));
  const arrivals = timed
    ? `each row when its ${mapping.time} column says, relative to the first`
    : o.rate !== undefined
      ? `the mapping maps no time column: rows arrive in the log's order, one every ${(gapMs / 1000).toPrecision(3)} s (--rate ${o.rate})`
      : 'the mapping maps no time column: every row arrives at the start, all at once (--rate spreads them)';
  return { ...read, workload: t.workload, used: t.used, arrivals, measured };
}
