/**
 * Mapping files: how the columns of somebody's own CSV/TSV log become `LabelledRow`s
 * (models/record.ts), so that a log written by any tool can train Prescient.
 *
 * ```yaml
 * delimiter: "\t"            # optional: default tab for .tsv/.tab, else sniffed from the header
 * key: id                    # optional: a column with a stable row identity (default: hash of the line)
 * time: ts                   # optional: when it ran (ISO-8601, UTC when no zone; or epoch s / ms)
 * group: video               # optional: the source video of each row (LabelledRow.group; default: rows
 *                            #   with the same input codec, size, rate, length, bitrate and file size)
 * columns:                   # data column -> destination, or a list of destinations
 *   o_codec: output.codec                          # a field path
 *   resolution: output.resolution                  # "1920x1080" -> output.width and output.height
 *   o_bitrate: { field: output.bitrate_kbps, unit: bps }
 *   umem: { target: memory_gb, unit: KB }          # one of TARGETS
 *   size: { feature: input_size }                  # an extra numeric feature (EncodeRecord.extra)
 *   cpu_pct: { target: cpu_cores, scale: 0.01 }    # scale multiplies after the unit conversion
 *   instance:                                      # one column, several destinations
 *     - node.hw_class
 *     - { field: node.cores, table: { c5.large: 2, c5.xlarge: 4 } }
 *     - { field: node.memory_gb, table: { c5.large: 4, c5.xlarge: 8 }, unit: GiB }
 * values:                    # optional renames of cell values, per field path (before parsing)
 *   output.codec: { x264: h264 }
 * defaults:                  # optional constants where a row has no value for a field
 *   node.cores: 8
 * ```
 *
 * A `table` sets its destination from the cell through the table: the cell (trimmed, renamed by
 * `values`) is looked up as written, and the table's value goes through the destination's `unit`
 * and `scale` like a cell would. A cell the table lacks leaves the destination empty, with a
 * warning. Two destinations, in one column's list or in two columns, must not fill one slot.
 *
 * Every mistake in a mapping is reported at once, each naming its setting (`MappingError.issues`);
 * `mappingJsonSchema()` describes the format for editors (the rules across settings are the
 * parser's alone). Keys JavaScript reserves (`__proto__`, `constructor`, `prototype`) are refused.
 *
 * Units. Each numeric destination has a canonical unit; a column's `unit` converts into it and
 * must be of the same kind. Destinations not listed take no unit (`scale` still applies).
 *
 * | destination                             | canonical     | kind    | units accepted                              |
 * |-----------------------------------------|---------------|---------|---------------------------------------------|
 * | input.duration_s, target duration_s     | s             | time    | s, ms, us, min, h                           |
 * | output.bitrate_kbps, input.bitrate_kbps | kbit/s        | bitrate | bps, kbps, Mbps (powers of 1000)            |
 * | target bandwidth_mbps                   | Mbit/s        | bitrate | bps, kbps, Mbps                             |
 * | input.size_bytes                        | bytes         | size    | B, KB, MB, GB (1000ⁿ), KiB, MiB, GiB (1024ⁿ) |
 * | target memory_gb, node.memory_gb        | GB of 1024³ B | size    | B, KB, MB, GB, KiB, MiB, GiB                |
 * | target gpu_percent                      | percent       | share   | percent, fraction (× 100)                   |
 *
 * Cells: surrounding blanks are trimmed; empty, NA, N/A, NaN, null and `-` are missing. A cell
 * that does not parse (not a number, a negative field or target, not WIDTHxHEIGHT, not a time,
 * missing from its table) leaves its field, target or feature empty with a warning counted by
 * column and reason; the row is kept. A row is skipped only when it has no usable target value
 * or its field count differs from the header's.
 *
 * One side of a resolution (`output.height` without `output.width`, or the reverse; the same for
 * `input.*`) gets the other from the other side's aspect ratio when that side has both, rounded
 * to an even number, else from 16:9 with a warning: features read pixels, and a lone height
 * would otherwise make them fall back to the input's.
 *
 * Bytes become text by `decodeText` (delimited.ts): the encoding given, else a byte order mark,
 * else UTF-8 when valid, else windows-1252 with a note in the report.
 */
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { MAX_ISSUES, describeValue, fieldPath as keyPath, type FieldIssue } from '../../shared/errors.js';
import * as kit from '../../shared/schema/kit.js';
import { v } from '../../shared/schema/kit.js';
import {
  TARGETS, emptyRecord, type ContentRecord, type EncodeRecord, type InputRecord, type LabelledRow, type NodeRecord,
  type OutputRecord, type Target,
} from '../record.js';
import { decodeText, parseDelimited, type DecodedText, type DelimitedRecord } from './delimited.js';

/**
 * A mapping file is wrong. `issues` names every setting that is wrong (`columns.umem.unit`,
 * `defaults.node.cores`, `(file)` for the file as a whole), each with its reason, and the
 * message has a line per issue; `setting` is the first issue's setting.
 */
export class MappingError extends Error {
  readonly issues: FieldIssue[];
  constructor(readonly setting: string, reason: string, readonly file?: string, issues: FieldIssue[] = [{ field: setting, reason }]) {
    super(issues.map((i) => `${file ? `${file}: ` : ''}${i.field}: ${i.reason}`).join('\n'));
    this.name = 'MappingError';
    this.issues = issues;
  }

  /** Every issue of a mapping file at once: MAX_ISSUES of them listed, the rest (and `omitted`) counted. */
  static of(issues: FieldIssue[], file?: string, omitted = 0): MappingError {
    const listed = issues.slice(0, MAX_ISSUES);
    const more = omitted + issues.length - listed.length;
    if (more > 0) listed.push({ field: '(file)', reason: `${more} more issue(s) not listed` });
    if (!listed.length) listed.push({ field: '(file)', reason: 'is invalid' });
    return new MappingError(listed[0].field, listed[0].reason, file, listed);
  }
}

type PathsOf<G extends string, R> = `${G}.${Extract<keyof R, string>}`;
/** Every field of EncodeRecord a column can fill, plus `output.resolution` / `input.resolution`. */
export type FieldPath =
  | PathsOf<'output', OutputRecord> | PathsOf<'input', InputRecord> | PathsOf<'content', ContentRecord> | PathsOf<'node', NodeRecord>
  | 'output.resolution' | 'input.resolution';

/** Unit kinds, each unit as a multiple of the kind's base (seconds, bit/s, bytes, percent). */
const UNITS = {
  time: { s: 1, ms: 1e-3, us: 1e-6, min: 60, h: 3600 },
  bitrate: { bps: 1, kbps: 1e3, Mbps: 1e6 },
  size: { B: 1, KB: 1e3, KiB: 1024, MB: 1e6, MiB: 1024 ** 2, GB: 1e9, GiB: 1024 ** 3 },
  share: { percent: 1, fraction: 100 },
} as const satisfies Record<string, Record<string, number>>;
type UnitKind = keyof typeof UNITS;

/** Canonical units of the numeric destinations that take one: its kind and size in the base. */
const CANONICAL = {
  s: { kind: 'time', base: 1 },
  'kbit/s': { kind: 'bitrate', base: 1e3 },
  'Mbit/s': { kind: 'bitrate', base: 1e6 },
  bytes: { kind: 'size', base: 1 },
  GB: { kind: 'size', base: 1024 ** 3 },
  percent: { kind: 'share', base: 1 },
} as const satisfies Record<string, { kind: UnitKind; base: number }>;
type Canonical = keyof typeof CANONICAL;

/** What a destination holds: a category string, WIDTHxHEIGHT, a unitless number, or a number in a canonical unit. */
type ValueType = 'category' | 'resolution' | 'number' | Canonical;

const FIELDS: Record<FieldPath, ValueType> = {
  'output.codec': 'category', 'output.encoder': 'category', 'output.preset': 'category', 'output.rc_mode': 'category',
  'output.width': 'number', 'output.height': 'number', 'output.resolution': 'resolution', 'output.fps': 'number',
  'output.crf': 'number', 'output.bitrate_kbps': 'kbit/s', 'output.passes': 'number', 'output.gop': 'number',
  'input.codec': 'category', 'input.width': 'number', 'input.height': 'number', 'input.resolution': 'resolution',
  'input.fps': 'number', 'input.bitrate_kbps': 'kbit/s', 'input.duration_s': 's', 'input.frames': 'number',
  'input.i_frames': 'number', 'input.p_frames': 'number', 'input.b_frames': 'number', 'input.size_bytes': 'bytes',
  'content.si_mean': 'number', 'content.ti_mean': 'number', 'content.noise': 'number',
  'content.pilot_cpu_per_frame': 'number', 'content.pilot_bits_per_frame': 'number', 'content.pilot_memory_mb': 'number',
  'node.cores': 'number', 'node.hw_class': 'category', 'node.gpus': 'number', 'node.memory_gb': 'GB',
};
export const FIELD_PATHS = Object.keys(FIELDS) as FieldPath[];

const TARGET_TYPES: Record<Target, 'number' | Canonical> = {
  cpu_cores: 'number', gpu_percent: 'percent', memory_gb: 'GB', bandwidth_mbps: 'Mbit/s', duration_s: 's',
};

/** Where a column's value goes. */
export type Destination = { field: FieldPath } | { target: Target } | { feature: string };

export interface ColumnRule {
  column: string;
  /** Where it was written, for messages: `columns.X`, or `columns.X[i]` in a column's list. */
  setting: string;
  to: Destination;
  /** Unit conversion times `scale`: what a numeric cell (or table value) is multiplied by. */
  factor: number;
  /** Cell -> value, already parsed and scaled: the destination comes from here, not from the cell. */
  table?: Map<string, FieldValue>;
}

/** A validated mapping file. */
export interface Mapping {
  /** Where it was read from, for messages. */
  file: string;
  delimiter?: string;
  key?: string;
  time?: string;
  /** The column naming each row's source video (LabelledRow.group). */
  group?: string;
  columns: ColumnRule[];
  /** Cell renames per field path, applied to the trimmed cell before it is parsed. */
  values: Partial<Record<FieldPath, Map<string, string>>>;
  /** Values for fields a row has none for, already parsed. */
  defaults: Partial<Record<FieldPath, FieldValue>>;
}

/** A row that was skipped or a cell left empty: its line in the data file (header = 1), the column, and why. */
export interface RowProblem { line: number; column: string; reason: string }

/**
 * What an import report counts by column: why a cell was left empty (a warning) or a row skipped.
 * - `not a number`, `negative`, `not WIDTHxHEIGHT`, `not a time`: the cell does not parse;
 * - `not in its table`: the destination's value table has no entry for the cell;
 * - `aspect assumed 16:9`: one side of a resolution came from 16:9, as nothing told its aspect;
 * - `no target value`: (skips) no target column of the row has a value;
 * - `field count`: (skips) the row has more or fewer fields than the header.
 * A caller's own check of each row (`ReadOptions.check`) adds kinds of its own.
 */
export type IssueKind = 'not a number' | 'negative' | 'not WIDTHxHEIGHT' | 'not a time' | 'not in its table' | 'aspect assumed 16:9' | 'no target value' | 'field count';

/** Rows by column, then by reason (an IssueKind, or a kind a caller's check gave). */
export type IssueCounts = Record<string, Record<string, number>>;

/** A cell left empty or a row skipped, before it is given its line: the column, a kind to count it by, and why. */
export interface RowIssue { column: string; kind: IssueKind | (string & {}); reason: string }
/** What a caller's check says of a mapped row: skip it, or keep it with warnings of its own. */
export type RowVerdict = { skip: RowIssue } | { warnings: RowIssue[] };

export interface MappedRows {
  rows: LabelledRow[];
  /** Data records read (the header and blank lines not counted). */
  read: number;
  skipped: number;
  /** The first MAX_PROBLEMS of the skipped rows' problems, one per row. */
  problems: RowProblem[];
  /**
   * Skipped rows by column and reason. A row whose target cells are all empty counts under its
   * target columns together; one with target cells that all fail to parse, under the first of them.
   */
  skippedBy: IssueCounts;
  /** Rows kept with a cell left empty (or a side derived from 16:9), by column and reason. */
  warningsBy: IssueCounts;
  /** The first MAX_PROBLEMS of those warnings, at most one per row, column and reason. */
  warnings: RowProblem[];
  /** What the bytes were read as, and how that was chosen. */
  encoding: Omit<DecodedText, 'text'>;
  /** Warnings about the file as a whole, such as one that is not UTF-8 and was read as windows-1252. */
  notes: string[];
}

const MAX_PROBLEMS = 20;
const MISSING = new Set(['', 'na', 'n/a', 'nan', 'null', '-']);
const DELIMITER_NAMES: Record<string, string> = { tab: '\t', comma: ',', semicolon: ';', pipe: '|' };

/** A parsed cell: a category, a number in its canonical unit, or a resolution. */
export type FieldValue = string | number | { width: number; height: number };
/** A cell that is no value of its destination, and why. */
type Bad = { kind: IssueKind; problem: string };
const isBad = (v: FieldValue | Bad): v is Bad => typeof v === 'object' && 'kind' in v;

/*
 * The mapping file as one valibot schema (shared/schema/kit.ts): it checks every setting at once,
 * compiles the mapping `readMappedRows` reads, and gives the JSON Schema (`mappingJsonSchema`).
 */

/** Keys written bare in a setting's name (`values.output.codec`, `columns.i_size`); others are quoted. */
const BARE_KEY = /^[A-Za-z0-9_$.-]{1,64}$/;
/** A setting's name: `parent.key`, or `parent["a key"]`, as issues name it. */
const settingOf = (parent: string, key: string) => (BARE_KEY.test(key) ? `${parent}.${key}` : keyPath(parent, key));

type Unit = { [K in UnitKind]: keyof (typeof UNITS)[K] }[UnitKind];
const ALL_UNITS = Object.values(UNITS).flatMap((u) => Object.keys(u)) as Unit[];
const UNITS_BY_KIND = (Object.keys(UNITS) as UnitKind[]).map((k) => `${k} ${Object.keys(UNITS[k]).join(', ')}`).join('; ');

/** What a column's mapping says, checked but not yet compiled. */
interface Spec {
  field?: FieldPath; target?: Target; feature?: string; unit?: Unit; scale?: number;
  table?: Record<string, string | number>;
}
/** One destination of a column, compiled: a ColumnRule without its column. */
type Compiled = Omit<ColumnRule, 'column' | 'setting'>;

const targetHint = (x: unknown) => (typeof x === 'string' && (TARGETS as readonly string[]).includes(x) ? ` (${x} is a target: write { target: ${x} })` : '');
const unknownPath = (i: v.BaseIssue<unknown>) => `unknown field path ${describeValue(i.input)}${targetHint(i.input)}; valid: ${FIELD_PATHS.join(', ')}`;
const unknownTarget = (i: v.BaseIssue<unknown>) => `unknown target ${describeValue(i.input)}; valid: ${TARGETS.join(', ')}`;
const unknownUnit = (x: unknown) => `unknown unit ${describeValue(x)}; units by kind: ${UNITS_BY_KIND}`;
const notPositive = (i: v.BaseIssue<unknown>) => `must be a positive number, got ${describeValue(i.input)}`;
const notColumn = (i: v.BaseIssue<unknown>) => `must be a column name, got ${describeValue(i.input)}`;
const notDelimiter = (i: v.BaseIssue<unknown>) => `must be one character other than a quote or line break (or tab, comma, semicolon, pipe), got ${describeValue(i.input)}`;

const targetSchema = kit.first(v.pipe(v.string(unknownTarget), v.picklist(TARGETS, unknownTarget)));
/** A unit: the JSON Schema lists them all, but which fit is the destination's to say (`unitProblem`). */
const unitSchema = kit.advertised(v.string((i) => unknownUnit(i.input)), () => kit.fragment(v.picklist(ALL_UNITS)));
const columnName = (what: string) => kit.optional(v.pipe(kit.first(v.pipe(v.string(notColumn), v.nonEmpty(notColumn))), v.description(what)));
/** A value written in the mapping itself: a table's value, a default, a rename. */
const written = (reason: string) => kit.either({ text: v.string(), number: v.number() }, reason);

const describe = (to: Destination) => ('field' in to ? to.field : 'target' in to ? `target ${to.target}` : `feature ${to.feature}`);
const valueType = (to: Destination): ValueType => ('field' in to ? FIELDS[to.field] : 'target' in to ? TARGET_TYPES[to.target] : 'number');
const isNumeric = (type: ValueType) => type !== 'category' && type !== 'resolution';

/** The one destination a spec names, or undefined when it names none or several. */
function destinationOf(s: Spec): Destination | undefined {
  const named = (['field', 'target', 'feature'] as const).filter((k) => s[k] !== undefined);
  if (named.length !== 1) return undefined;
  return named[0] === 'field' ? { field: s.field! } : named[0] === 'target' ? { target: s.target! } : { feature: s.feature! };
}

/** Why a unit does not fit its destination (or, where that is not known yet, is no unit at all), if it does not. */
function unitProblem(unit: string, to: Destination | undefined): string | undefined {
  const unitKind = (Object.keys(UNITS) as UnitKind[]).find((k) => Object.hasOwn(UNITS[k], unit));
  if (!to) return unitKind ? undefined : unknownUnit(unit);
  const type = valueType(to);
  if (!(type in CANONICAL)) return `${describe(to)} takes no unit${isNumeric(type) ? ' (use scale to multiply it)' : ''}`;
  const { kind } = CANONICAL[type as Canonical];
  const units = Object.keys(UNITS[kind]).join(', ');
  if (!unitKind) return `unknown unit ${describeValue(unit)}; ${describe(to)} takes a ${kind} unit: ${units}`;
  return unitKind === kind ? undefined : `${unit} is a ${unitKind} unit, but ${describe(to)} takes a ${kind} unit: ${units}`;
}

/** What a numeric cell (or table value) of a spec is multiplied by: its unit's conversion times its scale. */
function factorOf(s: Spec, to: Destination): number {
  const type = valueType(to);
  let factor = 1;
  if (s.unit !== undefined) {
    const { kind, base } = CANONICAL[type as Canonical];
    factor = (UNITS[kind] as Record<string, number>)[s.unit] / base;
  }
  return factor * (s.scale ?? 1);
}

/** A value written in the mapping itself (a default, a table entry), parsed like a cell, or why it is none. */
function constant(x: string | number, type: ValueType, factor: number, signed: boolean): { value: FieldValue } | { wrong: string } {
  const parsed = parseCell(String(x).trim(), type, factor, signed);
  if (!isBad(parsed)) return { value: parsed };
  const what = type === 'category' ? 'string' : type === 'resolution' ? 'WIDTHxHEIGHT' : 'number';
  return { wrong: `${describeValue(x)} is not a valid ${what}${parsed.kind === 'negative' ? ' (it is negative)' : ''}` };
}
/** The value of a constant already checked. */
const valueOf = (c: ReturnType<typeof constant>) => (c as { value: FieldValue }).value;

/** No issue yet at one of `keys`, nor about the value as a whole: what a check of those keys needs. */
const typedAt = (dataset: { issues?: readonly v.BaseIssue<unknown>[] }, keys: readonly string[]) =>
  !dataset.issues?.some((i) => !i.path?.length || keys.includes(String(i.path[0].key)));
/**
 * A dictionary's value, even where some of its entries are wrong: it keeps the right ones, so
 * that a check across them reports what else is wrong at once (the wrong ones are reported).
 */
const entriesOf = <T>(x: unknown): Record<string, T> | undefined =>
  (x !== null && typeof x === 'object' && !Array.isArray(x) ? x as Record<string, T> : undefined);
/** A path step into `input[key]`, for an issue a check adds below the value it checks. */
const step = (input: object, key: string): v.IssuePathItem =>
  ({ type: 'object', origin: 'value', input: input as Record<string, unknown>, key, value: (input as Record<string, unknown>)[key] });

/** A field path; the JSON Schema lists them once, under `$defs`. */
const fieldPathSchema = v.pipe(
  kit.first(v.pipe(v.string(unknownPath), v.picklist(FIELD_PATHS, unknownPath))),
  v.description('A field of the encode record: output.* (how it was encoded), input.* (the source video), content.* (its complexity), '
    + 'node.* (the machine). output.resolution and input.resolution read WIDTHxHEIGHT and fill width and height.'),
);
const canonicalText = (c: Canonical) => (c === 'GB' ? 'GB of 1024³ bytes' : c);
const targetText = `A training target: ${TARGETS.map((t) => `${t} (${TARGET_TYPES[t] === 'number' ? 'cores' : canonicalText(TARGET_TYPES[t] as Canonical)})`).join(', ')}.`;
const kinds = (Object.keys(UNITS) as UnitKind[]).map((kind) => {
  const into = (Object.keys(CANONICAL) as Canonical[]).filter((c) => CANONICAL[c].kind === kind).map((c) => {
    const to = [...FIELD_PATHS.filter((f) => FIELDS[f] === c), ...TARGETS.filter((t) => TARGET_TYPES[t] === c).map((t) => `target ${t}`)];
    return `${to.join(', ')} (in ${canonicalText(c)})`;
  });
  return `${kind} units (${Object.keys(UNITS[kind]).join(', ')}) for ${into.join('; ')}`;
});
const unitText = `The unit the column is written in, converted into its destination's unit; it must be of the destination's kind: ${kinds.join('. ')}. `
  + 'KB, MB, GB are powers of 1000 bytes, KiB, MiB, GiB of 1024; bps, kbps, Mbps of 1000 bit/s; fraction is 100 percent. Other destinations take no unit.';

/** One destination written as a mapping: `{ target: memory_gb, unit: KB }`. */
const destinationSchema = v.pipe(
  kit.mapping({
    field: kit.optional(fieldPathSchema),
    target: kit.optional(kit.described(targetSchema, targetText)),
    feature: kit.optional(v.pipe(
      kit.text(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a name of letters, digits and _'),
      v.description('An extra numeric feature of this name (EncodeRecord.extra).'),
    )),
    unit: kit.optional(kit.described(unitSchema, unitText)),
    scale: kit.optional(v.pipe(
      kit.first(v.pipe(v.number(notPositive), v.finite(notPositive), v.gtValue(0, notPositive))),
      v.description('Multiplies a numeric destination\'s value, after the unit conversion (0.01 makes a CPU percentage cores).'),
    )),
    table: kit.optional(v.pipe(
      kit.dictionary(v.string(), written('must be a number or text'), { notMapping: 'must be a mapping of cell value -> value' }),
      v.minEntries(1, 'is empty; map at least one cell value'),
      v.description('Sets the destination from the cell through this table (cell value -> value); the value goes through unit and scale like a cell. A cell the table lacks leaves the destination empty, with a warning.'),
    )),
  }, { unknown: () => 'is not a column setting (expected one of field, target, feature, plus unit, scale and table)' }),
  v.description('One destination of a column: exactly one of field, target or feature; a unit of the destination\'s kind; a scale for a numeric destination; a table of cell values.'),
  v.rawCheck(({ dataset, addIssue }) => {
    const s = dataset.value as Spec;
    if (s && typeof s === 'object' && !destinationOf(s)) addIssue({ message: 'must name exactly one of field, target or feature' });
  }),
  // A unit of the destination's kind: the unit is checked here, where its destination is known.
  v.rawCheck(({ dataset, addIssue }) => {
    const s = dataset.value as Spec;
    if (s?.unit === undefined || !typedAt(dataset, ['unit'])) return;
    const why = unitProblem(s.unit, typedAt(dataset, ['field', 'target', 'feature']) ? destinationOf(s) : undefined);
    if (why) addIssue({ message: why, path: [step(s, 'unit')] });
  }),
  v.forward(v.partialCheck(
    [['field'], ['target'], ['feature'], ['scale']],
    (s) => { const to = destinationOf(s as Spec); return s.scale === undefined || !to || isNumeric(valueType(to)); },
    (i) => `${describe(destinationOf(i.input as Spec)!)} is not numeric`,
  ), ['scale']),
  // Table values parse as the destination's type, each one reported.
  v.rawCheck(({ dataset, addIssue }) => {
    const s = dataset.value as Spec;
    const to = typedAt(dataset, ['field', 'target', 'feature', 'unit', 'scale']) ? destinationOf(s) : undefined;
    const table = to && entriesOf<string | number>(s.table);
    if (!to || !table) return;
    const type = valueType(to), factor = factorOf(s, to);
    for (const cell of Object.keys(table)) {
      const c = constant(table[cell], type, factor, 'feature' in to);
      if ('wrong' in c) addIssue({ message: c.wrong, path: [step(s, 'table'), step(table, cell)] });
    }
  }),
  v.transform((s): Compiled => {
    const to = destinationOf(s as Spec)!, factor = factorOf(s as Spec, to);
    if (!s.table) return { to, factor };
    const type = valueType(to);
    // Table values are converted here, once, as a cell of the column would be.
    return { to, factor, table: new Map(Object.entries(s.table).map(([cell, x]) => [cell.trim(), valueOf(constant(x, type, factor, 'feature' in to))])) };
  }),
);

/** A destination written as a field path (`output.codec`) compiled as one written as a mapping is. */
const compiled = (d: FieldPath | Compiled): Compiled => (typeof d === 'string' ? { to: { field: d }, factor: 1 } : d);

/** What a column maps to: a field path, a destination, or a list of them. */
const columnSchema = v.pipe(
  kit.either({
    text: fieldPathSchema,
    mapping: destinationSchema,
    list: kit.list(kit.either({ text: fieldPathSchema, mapping: destinationSchema }, 'must be a field path or a destination mapping'), {
      min: 1, max: 64, what: 'a list of destinations', minReason: 'is an empty list; give it at least one destination',
    }),
  }, 'must be a field path, a destination ({ field | target | feature, unit, scale, table }) or a list of them'),
  v.transform((c) => (Array.isArray(c) ? c.map(compiled) : compiled(c))),
);

/** The record slots a destination fills: what two columns must not share. */
function slots(to: Destination): string[] {
  if ('target' in to) return [`target ${to.target}`];
  if ('feature' in to) return [`feature ${to.feature}`];
  const [group, name] = to.field.split('.');
  return name === 'resolution' ? [`${group}.width`, `${group}.height`] : [to.field];
}

const mappingSchema = v.pipe(
  kit.mapping({
    delimiter: kit.optional(v.pipe(
      kit.first(v.pipe(
        v.string(notDelimiter),
        v.transform((d) => (Object.hasOwn(DELIMITER_NAMES, d) ? DELIMITER_NAMES[d] : d)),
        v.check((d) => d.length === 1 && !'"\r\n'.includes(d), notDelimiter),
      )),
      v.description('The data file\'s delimiter: one character, or tab, comma, semicolon, pipe. By default tab for .tsv and .tab files, else sniffed from the header.'),
    )),
    key: columnName('A column with a stable identity for each row (by default a hash of its line).'),
    time: columnName('A column saying when each row ran: ISO-8601 (UTC when it has no zone), or epoch seconds or milliseconds.'),
    group: columnName('A column naming each row\'s source video (by default rows with the same input codec, size, rate, length, bitrate and file size are one video).'),
    columns: v.pipe(
      kit.dictionary(v.string(), columnSchema, { notMapping: 'must be a mapping of data column -> destination' }),
      v.description('Data column -> destination: a field path, { field | target | feature, unit, scale, table }, or a list of them. Map at least one column to a target; two destinations must not fill one slot.'),
    ),
    values: kit.optional(v.pipe(
      kit.dictionary(fieldPathSchema, v.pipe(
        kit.dictionary(v.string(), written('must be a string or number'), { notMapping: 'must be a mapping of cell value -> new value' }),
        v.transform((renames) => new Map(Object.entries(renames).map(([from, to]) => [from.trim(), String(to).trim()]))),
      ), { notMapping: 'must be a mapping of field path -> renames' }),
      v.description('Renames of cell values per field path ({ x264: h264 }), applied to the trimmed cell before it is parsed.'),
    )),
    defaults: kit.optional(v.pipe(
      kit.dictionary(fieldPathSchema, written('must be a string or number'), { notMapping: 'must be a mapping of field path -> value' }),
      v.rawCheck(({ dataset, addIssue }) => {
        const defaults = entriesOf<string | number>(dataset.value);
        for (const [path, x] of Object.entries(defaults ?? {})) {
          const c = constant(x, FIELDS[path as FieldPath], 1, false);
          if ('wrong' in c) addIssue({ message: c.wrong, path: [step(defaults!, path)] });
        }
      }),
      v.transform((d) => Object.fromEntries(Object.entries(d).map(([path, x]) => [path, valueOf(constant(x, FIELDS[path as FieldPath], 1, false))])) as Mapping['defaults']),
      v.description('Values for fields a row has none for, per field path.'),
    )),
  }, {
    unknown: (allowed) => `is not a mapping setting (expected ${allowed.join(', ')})`,
    notMapping: 'must be a mapping of settings (columns, and optionally delimiter, key, time, group, values, defaults)',
  }),
  // Two destinations, in one column's list or in two columns, must not fill one slot.
  v.rawCheck(({ dataset, addIssue }) => {
    const columns = entriesOf<Compiled | Compiled[]>(entriesOf(dataset.value)?.columns);
    if (!columns) return;
    const claimed = new Map<string, string>(); // record slot -> column that fills it
    for (const [column, c] of Object.entries(columns)) {
      const list = Array.isArray(c);
      (list ? c : [c]).forEach((d, i) => {
        for (const slot of slots(d.to)) {
          const other = claimed.get(slot);
          if (other === undefined) { claimed.set(slot, column); continue; }
          addIssue({
            message: `maps to ${slot}, which ${other === column ? 'another destination of this column' : `column ${describeValue(other)}`} already fills`,
            path: [step(dataset.value as object, 'columns'), step(columns, column), ...(list ? [{ ...step(c, String(i)), type: 'array' as const, key: i }] : [])] as [v.IssuePathItem, ...v.IssuePathItem[]],
          });
          break;
        }
      });
    }
  }),
  v.forward(v.partialCheck(
    [['columns']],
    (m) => Object.values(m.columns).flat().some((d) => 'target' in d.to),
    `maps no column to a target; map at least one to { target: ${TARGETS.join(' | ')} }`,
  ), ['columns']),
  v.transform(({ delimiter, key, time, group, columns, values, defaults }): Omit<Mapping, 'file'> => ({
    delimiter, key, time, group,
    columns: Object.entries(columns).flatMap(([column, c]) => (Array.isArray(c)
      ? c.map((d, i) => ({ column, setting: `${settingOf('columns', column)}[${i}]`, ...d }))
      : [{ column, setting: settingOf('columns', column), ...c }])),
    values: (values ?? {}) as Mapping['values'],
    defaults: defaults ?? {},
  })),
);

/** Parses and checks a mapping file (YAML or JSON); `file` names it in errors, which list every wrong setting at once. */
export function parseMapping(text: string, file: string): Mapping {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new MappingError('(file)', `is not YAML or JSON: ${(e as Error).message.split('\n')[0]}`, file);
  }
  if (doc === null || doc === undefined) throw new MappingError('(file)', 'is empty: a mapping file maps columns (columns: { data column: destination })', file);
  const r = kit.parseDocument(mappingSchema, doc, { bareKey: BARE_KEY });
  if (!r.ok) {
    const issues = r.issues.map((i) => ({ ...i, field: i.field.replace(/^\(document\)/, '(file)') }));
    throw MappingError.of(issues, file, r.omitted);
  }
  return { file, ...r.value };
}

/** The JSON Schema (draft-07) of a mapping file, for editors; cross-field rules are `parseMapping`'s alone. */
export function mappingJsonSchema(): ReturnType<typeof kit.jsonSchemaOf> {
  return kit.jsonSchemaOf(mappingSchema, {
    title: 'Prescient training-log mapping',
    definitions: { fieldPath: fieldPathSchema, destination: destinationSchema },
    description: 'How the columns of a CSV/TSV log become training rows: each data column goes to a field of the encode record, a training target or an extra feature (models/data/mapping.ts).',
  });
}

/** A trimmed, non-missing cell as its destination's value, or why it cannot be one. */
function parseCell(cell: string, type: ValueType, factor: number, signed: boolean): FieldValue | Bad {
  if (type === 'category') return cell;
  if (type === 'resolution') {
    const m = /^(\d+)\s*[xX×*]\s*(\d+)$/.exec(cell);
    return m ? { width: Number(m[1]), height: Number(m[2]) } : { kind: 'not WIDTHxHEIGHT', problem: `${JSON.stringify(cell)} is not WIDTHxHEIGHT` };
  }
  const n = Number(cell) * factor;
  if (!Number.isFinite(n)) return { kind: 'not a number', problem: `${JSON.stringify(cell)} is not a finite number` };
  if (n < 0 && !signed) return { kind: 'negative', problem: `${JSON.stringify(cell)} is negative` };
  return n;
}

/** Epoch ms from ISO-8601 (UTC when it has no zone) or epoch seconds / milliseconds. */
function parseTime(cell: string): number | undefined {
  if (/^-?\d+(\.\d+)?$/.test(cell)) {
    const n = Number(cell);
    // 1e11 s is the year 5138 while 1e11 ms is 1973: the magnitude tells the unit apart.
    return Math.abs(n) >= 1e11 ? n : n * 1000;
  }
  const zoneless = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(cell);
  const t = Date.parse(zoneless ? `${cell.replace(' ', 'T')}Z` : cell);
  return Number.isNaN(t) ? undefined : t;
}

export interface ReadOptions {
  /** Names the data in messages; a .tsv or .tab name makes tab the delimiter unless the mapping sets one. */
  source?: string;
  /** An encoding TextDecoder knows (utf-8, windows-1252, utf-16le, …); by default it is detected (`decodeText`). */
  encoding?: string;
  /**
   * A further check of each row the reader kept, given the row and its warnings (a replay needs
   * an encodable job and a time, training does not). Its skips and warnings are counted with the
   * reader's own; a row it skips has its warnings dropped, as any skipped row's are.
   */
  check?: (row: LabelledRow, warnings: readonly RowIssue[]) => RowVerdict | undefined;
}

/**
 * Reads the bytes of a CSV/TSV data file through a mapping. A mapped column missing from the
 * header is a MappingError and bytes not in the encoding named a TextEncodingError; a cell that
 * does not parse is left empty with a warning, and a row without a usable target is skipped.
 */
export function readMappedRows(data: Uint8Array, mapping: Mapping, opts: ReadOptions = {}): MappedRows {
  const source = opts.source ?? '(data)';
  const { text, ...encoding } = decodeText(data, { encoding: opts.encoding, source });
  const delimiter = mapping.delimiter ?? (/\.(tsv|tab)$/i.test(source) ? '\t' : undefined);
  const table = parseDelimited(text, { delimiter, source });
  const index = (column: string | undefined, setting: string): number => {
    if (column === undefined) return -1;
    const i = table.header.indexOf(column);
    if (i < 0) throw new MappingError(setting, `column ${JSON.stringify(column)} is not in ${source}'s header (${table.header.join(', ')})`, mapping.file);
    return i;
  };
  const cols = mapping.columns.map((rule) => ({ rule, at: index(rule.column, rule.setting) }));
  const at: Located = { key: index(mapping.key, 'key'), time: index(mapping.time, 'time'), group: index(mapping.group, 'group') };
  const targetColumns = [...new Set(mapping.columns.filter((c) => 'target' in c.to).map((c) => c.column))].join(', ');

  const out: MappedRows = {
    rows: [], read: table.records.length, skipped: 0, problems: [], skippedBy: {}, warningsBy: {}, warnings: [], encoding,
    notes: encoding.how === 'fallback' ? [`${source} is not UTF-8 (line ${encoding.badLine} is not): read as windows-1252; name its encoding to read it as another`] : [],
  };
  const count = (counts: IssueCounts, i: Issue) => { const c = (counts[i.column] ??= {}); c[i.kind] = (c[i.kind] ?? 0) + 1; };
  for (const rec of table.records) {
    const r = mapRecord(rec, table.header.length, cols, at, mapping, targetColumns);
    if ('skip' in r) {
      out.skipped++;
      count(out.skippedBy, r.skip);
      if (out.problems.length < MAX_PROBLEMS) out.problems.push({ line: rec.line, column: r.skip.column, reason: r.skip.reason });
      continue;
    }
    const verdict = opts.check?.(r.row, r.warnings);
    if (verdict && 'skip' in verdict) {
      out.skipped++;
      count(out.skippedBy, verdict.skip);
      if (out.problems.length < MAX_PROBLEMS) out.problems.push({ line: rec.line, column: verdict.skip.column, reason: verdict.skip.reason });
      continue;
    }
    out.rows.push(r.row);
    for (const w of verdict ? [...r.warnings, ...verdict.warnings] : r.warnings) {
      count(out.warningsBy, w);
      if (out.warnings.length < MAX_PROBLEMS) out.warnings.push({ line: rec.line, column: w.column, reason: w.reason });
    }
  }
  return out;
}

/** `readMappedRows` of a file, named by its path. */
export async function readMappedFile(file: string, mapping: Mapping, encoding?: string): Promise<MappedRows> {
  return readMappedRows(await readFile(file), mapping, { source: file, encoding });
}

/** Where the key, time and group columns are in a record (-1: not mapped). */
type Located = { key: number; time: number; group: number };
type Issue = RowIssue;

function mapRecord(
  rec: DelimitedRecord, width: number, cols: { rule: ColumnRule; at: number }[], at: Located, mapping: Mapping, targetColumns: string,
): { row: LabelledRow; warnings: Issue[] } | { skip: Issue } {
  if (rec.fields.length !== width) return { skip: { column: '(row)', kind: 'field count', reason: `has ${rec.fields.length} fields, the header has ${width}` } };
  const record = emptyRecord(), targets: LabelledRow['targets'] = {};
  const warnings: Issue[] = [];
  const warn = (column: string, bad: Bad) => {
    if (!warnings.some((w) => w.column === column && w.kind === bad.kind)) warnings.push({ column, kind: bad.kind, reason: bad.problem });
  };
  const cell = (i: number) => { const c = i < 0 ? '' : rec.fields[i].trim(); return MISSING.has(c.toLowerCase()) ? undefined : c; };
  const filledBy = new Map<string, string>(); // record slot -> column that set it, to name it in warnings
  let badTarget: Issue | undefined;
  for (const { rule, at: i } of cols) {
    const to = rule.to;
    let c = rec.fields[i].trim();
    if ('field' in to) c = mapping.values[to.field]?.get(c) ?? c;
    if (MISSING.has(c.toLowerCase())) continue;
    const v: FieldValue | Bad = rule.table
      ? rule.table.get(c) ?? { kind: 'not in its table', problem: `${JSON.stringify(c)} is not in the table of ${describe(to)}` }
      : parseCell(c, valueType(to), rule.factor, 'feature' in to);
    if (isBad(v)) {
      warn(rule.column, v);
      if ('target' in to) badTarget ??= { column: rule.column, kind: v.kind, reason: v.problem };
      continue;
    }
    if ('target' in to) targets[to.target] = v as number;
    else if ('feature' in to) record.extra[to.feature] = v as number;
    else {
      put(record, to.field, v, true);
      for (const slot of slots(to)) filledBy.set(slot, rule.column);
    }
  }
  if (Object.keys(targets).length === 0) {
    return {
      skip: badTarget
        ? { ...badTarget, reason: `${badTarget.reason}, and no other target has a value` }
        : { column: targetColumns, kind: 'no target value', reason: 'has no target value (every target column is empty)' },
    };
  }
  for (const [path, v] of Object.entries(mapping.defaults)) put(record, path as FieldPath, v, false);
  for (const w of completeResolutions(record, filledBy)) warnings.push(w);
  const inp = record.input;
  if (inp.frames === undefined && inp.fps !== undefined && inp.duration_s !== undefined) inp.frames = Math.round(inp.fps * inp.duration_s);

  let ts: number | undefined;
  const time = cell(at.time);
  if (time !== undefined) {
    ts = parseTime(time);
    if (ts === undefined) warn(mapping.time!, { kind: 'not a time', problem: `${JSON.stringify(time)} is not an ISO-8601 time or epoch seconds / milliseconds` });
  }
  const row: LabelledRow = { record, targets, key: cell(at.key) ?? createHash('sha1').update(rec.raw).digest('hex').slice(0, 12) };
  const group = at.group >= 0 ? cell(at.group) : inputFingerprint(record);
  if (group !== undefined) row.group = group;
  if (ts !== undefined) row.ts = ts;
  return { row, warnings };
}

/**
 * Without a group column, a row's source is told by its input as the log describes it: rows
 * whose input has the same codec, size, rate, length, frame count, bitrate and file size are
 * encodes of one source video (a log transcodes each video many times). Undefined when the log
 * describes no input at all: each row is then a source of its own.
 */
function inputFingerprint(r: EncodeRecord): string | undefined {
  const i = r.input;
  const parts = [i.codec, i.width, i.height, i.fps, i.duration_s, i.frames, i.bitrate_kbps, i.size_bytes];
  return parts.some((p) => p !== undefined) ? `input:${parts.map((p) => p ?? '').join('|')}` : undefined;
}

/** Sets a field path's value; a default (`overwrite` false) only fills what is still unset. */
function put(record: EncodeRecord, path: FieldPath, v: FieldValue, overwrite: boolean): void {
  const [group, name] = path.split('.') as [keyof Omit<EncodeRecord, 'extra'>, string];
  const slot = record[group] as Record<string, unknown>;
  const pairs: [string, unknown][] = typeof v === 'object' ? [['width', v.width], ['height', v.height]] : [[name, v]];
  for (const [k, value] of pairs) if (overwrite || slot[k] === undefined) slot[k] = value;
}

const even = (x: number) => 2 * Math.round(x / 2);

/**
 * Gives a lone width or height the other side: from the other side's aspect ratio (the input's
 * for the output, the output's for the input) when that side has both, else from 16:9 with a
 * warning on the column that gave the lone side.
 */
function completeResolutions(record: EncodeRecord, filledBy: Map<string, string>): Issue[] {
  const aspect = (s: OutputRecord | InputRecord) => (s.width! > 0 && s.height! > 0 ? s.width! / s.height! : undefined);
  const known = { output: aspect(record.output), input: aspect(record.input) };
  const issues: Issue[] = [];
  for (const [side, other] of [['output', 'input'], ['input', 'output']] as const) {
    const s = record[side];
    if ((s.width === undefined) === (s.height === undefined)) continue;
    const ratio = known[other] ?? 16 / 9;
    const [given, derived] = s.width === undefined ? ['height', 'width'] as const : ['width', 'height'] as const;
    if (s.width === undefined) s.width = even(s.height! * ratio);
    else s.height = even(s.width / ratio);
    if (known[other] === undefined) {
      issues.push({
        column: filledBy.get(`${side}.${given}`) ?? `defaults.${side}.${given}`, kind: 'aspect assumed 16:9',
        reason: `${side}.${derived} ${s[derived]} is taken from ${side}.${given} ${s[given]} at 16:9, as the ${other}'s width and height are not both known`,
      });
    }
  }
  return issues;
}
