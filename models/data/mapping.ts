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
import {
  TARGETS, emptyRecord, type ContentRecord, type EncodeRecord, type InputRecord, type LabelledRow, type NodeRecord,
  type OutputRecord, type Target,
} from '../record.js';
import { decodeText, parseDelimited, type DecodedText, type DelimitedRecord } from './delimited.js';

/** A mapping file is wrong; `setting` is the key it is about, e.g. `columns.umem.unit`. */
export class MappingError extends Error {
  constructor(readonly setting: string, reason: string, readonly file?: string) {
    super(`${file ? `${file}: ` : ''}${setting}: ${reason}`);
    this.name = 'MappingError';
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
 */
export type IssueKind = 'not a number' | 'negative' | 'not WIDTHxHEIGHT' | 'not a time' | 'not in its table' | 'aspect assumed 16:9' | 'no target value' | 'field count';

/** Rows by column, then by reason. */
export type IssueCounts = Record<string, Partial<Record<IssueKind, number>>>;

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

type Fail = (setting: string, reason: string) => never;
/** A parsed cell: a category, a number in its canonical unit, or a resolution. */
export type FieldValue = string | number | { width: number; height: number };
/** A cell that is no value of its destination, and why. */
type Bad = { kind: IssueKind; problem: string };
const isBad = (v: FieldValue | Bad): v is Bad => typeof v === 'object' && 'kind' in v;

/** Parses and checks a mapping file (YAML or JSON); `file` names it in errors. */
export function parseMapping(text: string, file: string): Mapping {
  const fail: Fail = (setting, reason) => { throw new MappingError(setting, reason, file); };
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    fail('(file)', `is not YAML or JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  const top = asMapping(doc, '(file)', fail);
  for (const k of Object.keys(top)) {
    if (!['delimiter', 'key', 'time', 'group', 'columns', 'values', 'defaults'].includes(k)) fail(k, 'is not a mapping setting (expected delimiter, key, time, group, columns, values, defaults)');
  }
  const name = (setting: string): string | undefined => {
    const v = top[setting];
    if (v === undefined || v === null) return undefined;
    return typeof v === 'string' && v !== '' ? v : fail(setting, 'must be a column name');
  };
  let delimiter: string | undefined;
  if (top.delimiter !== undefined && top.delimiter !== null) {
    const d = typeof top.delimiter === 'string' ? (Object.hasOwn(DELIMITER_NAMES, top.delimiter) ? DELIMITER_NAMES[top.delimiter] : top.delimiter) : '';
    if (d.length !== 1 || '"\r\n'.includes(d)) fail('delimiter', `must be one character other than a quote or line break (or tab, comma, semicolon, pipe), got ${JSON.stringify(top.delimiter)}`);
    delimiter = d;
  }

  const columns: ColumnRule[] = [];
  const claimed = new Map<string, string>(); // record slot -> column that fills it
  for (const [column, spec] of Object.entries(asMapping(top.columns ?? fail('columns', 'is required: a mapping of data column -> destination'), 'columns', fail))) {
    if (Array.isArray(spec) && !spec.length) fail(`columns.${column}`, 'is an empty list; give it at least one destination');
    const specs: [unknown, string][] = Array.isArray(spec) ? spec.map((one, i) => [one, `columns.${column}[${i}]`]) : [[spec, `columns.${column}`]];
    for (const [one, setting] of specs) {
      const rule = compileColumn(column, one, setting, fail);
      for (const slot of slots(rule.to)) {
        const other = claimed.get(slot);
        if (other !== undefined) fail(setting, `maps to ${slot}, which ${other === column ? 'another destination of this column' : `column ${JSON.stringify(other)}`} already fills`);
        claimed.set(slot, column);
      }
      columns.push(rule);
    }
  }
  if (!columns.some((c) => 'target' in c.to)) fail('columns', `maps no column to a target; map at least one to { target: ${TARGETS.join(' | ')} }`);

  const values: Mapping['values'] = {};
  for (const [path, renames] of Object.entries(asMapping(top.values ?? {}, 'values', fail))) {
    const setting = `values.${path}`;
    fieldPath(path, setting, fail);
    values[path as FieldPath] = new Map(Object.entries(asMapping(renames, setting, fail)).map(([from, to]) => {
      if (typeof to !== 'string' && typeof to !== 'number') fail(`${setting}.${from}`, 'must be a string or number');
      return [from.trim(), String(to).trim()];
    }));
  }

  const defaults: Mapping['defaults'] = {};
  for (const [path, v] of Object.entries(asMapping(top.defaults ?? {}, 'defaults', fail))) {
    const setting = `defaults.${path}`;
    defaults[path as FieldPath] = constant(v, FIELDS[fieldPath(path, setting, fail)], 1, false, setting, fail);
  }
  return { file, delimiter, key: name('key'), time: name('time'), group: name('group'), columns, values, defaults };
}

function asMapping(v: unknown, setting: string, fail: Fail): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(setting, `must be a mapping of keys to values, got ${Array.isArray(v) ? 'a list' : JSON.stringify(v)}`);
  return v as Record<string, unknown>;
}

function fieldPath(path: unknown, setting: string, fail: Fail): FieldPath {
  if (typeof path === 'string' && Object.hasOwn(FIELDS, path)) return path as FieldPath;
  const hint = typeof path === 'string' && (TARGETS as readonly string[]).includes(path) ? ` (${path} is a target: write { target: ${path} })` : '';
  return fail(setting, `unknown field path ${JSON.stringify(path)}${hint}; valid: ${FIELD_PATHS.join(', ')}`);
}

/** A value written in the mapping itself (a default, a table entry), parsed like a cell. */
function constant(v: unknown, type: ValueType, factor: number, signed: boolean, setting: string, fail: Fail): FieldValue {
  const parsed = typeof v === 'string' || typeof v === 'number' ? parseCell(String(v).trim(), type, factor, signed) : undefined;
  if (parsed === undefined || isBad(parsed)) return fail(setting, `${JSON.stringify(v)} is not a valid ${type === 'category' ? 'string' : type === 'resolution' ? 'WIDTHxHEIGHT' : 'number'}${parsed ? ` (${parsed.problem})` : ''}`);
  return parsed;
}

const valueType = (to: Destination): ValueType => ('field' in to ? FIELDS[to.field] : 'target' in to ? TARGET_TYPES[to.target] : 'number');

function compileColumn(column: string, spec: unknown, setting: string, fail: Fail): ColumnRule {
  if (typeof spec === 'string') return { column, setting, to: { field: fieldPath(spec, setting, fail) }, factor: 1 };
  const o = asMapping(spec, setting, fail);
  for (const k of Object.keys(o)) if (!['field', 'target', 'feature', 'unit', 'scale', 'table'].includes(k)) fail(`${setting}.${k}`, 'is not a column setting (expected one of field, target, feature, plus unit, scale and table)');
  const kinds = (['field', 'target', 'feature'] as const).filter((k) => o[k] !== undefined);
  if (kinds.length !== 1) fail(setting, 'must name exactly one of field, target or feature');
  let to: Destination;
  if (kinds[0] === 'field') to = { field: fieldPath(o.field, `${setting}.field`, fail) };
  else if (kinds[0] === 'target') {
    if (!(TARGETS as readonly unknown[]).includes(o.target)) fail(`${setting}.target`, `unknown target ${JSON.stringify(o.target)}; valid: ${TARGETS.join(', ')}`);
    to = { target: o.target as Target };
  } else {
    if (typeof o.feature !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(o.feature)) fail(`${setting}.feature`, 'must be a name of letters, digits and _');
    to = { feature: o.feature as string };
  }
  const type = valueType(to);
  const numeric = type !== 'category' && type !== 'resolution';
  let factor = 1;
  if (o.unit !== undefined) {
    if (!(type in CANONICAL)) fail(`${setting}.unit`, `${describe(to)} takes no unit${numeric ? ' (use scale to multiply it)' : ''}`);
    const { kind, base } = CANONICAL[type as Canonical];
    const units: Record<string, number> = UNITS[kind];
    const unitKind = (Object.keys(UNITS) as UnitKind[]).find((k) => typeof o.unit === 'string' && Object.hasOwn(UNITS[k], o.unit));
    if (!unitKind) fail(`${setting}.unit`, `unknown unit ${JSON.stringify(o.unit)}; ${describe(to)} takes a ${kind} unit: ${Object.keys(units).join(', ')}`);
    if (unitKind !== kind) fail(`${setting}.unit`, `${o.unit} is a ${unitKind} unit, but ${describe(to)} takes a ${kind} unit: ${Object.keys(units).join(', ')}`);
    factor = units[o.unit as string] / base;
  }
  if (o.scale !== undefined) {
    if (!numeric) fail(`${setting}.scale`, `${describe(to)} is not numeric`);
    if (typeof o.scale !== 'number' || !(o.scale > 0) || !Number.isFinite(o.scale)) fail(`${setting}.scale`, `must be a positive number, got ${JSON.stringify(o.scale)}`);
    factor *= o.scale as number;
  }
  if (o.table === undefined) return { column, setting, to, factor };
  const entries = Object.entries(asMapping(o.table, `${setting}.table`, fail));
  if (!entries.length) fail(`${setting}.table`, 'is empty; map at least one cell value');
  // Table values are converted here, once, as a cell of the column would be.
  const table = new Map(entries.map(([cell, v]) => [cell.trim(), constant(v, type, factor, 'feature' in to, `${setting}.table.${cell}`, fail)]));
  return { column, setting, to, factor, table };
}

const describe = (to: Destination) => ('field' in to ? to.field : 'target' in to ? `target ${to.target}` : `feature ${to.feature}`);

/** The record slots a destination fills: what two columns must not share. */
function slots(to: Destination): string[] {
  if ('target' in to) return [`target ${to.target}`];
  if ('feature' in to) return [`feature ${to.feature}`];
  const [group, name] = to.field.split('.');
  return name === 'resolution' ? [`${group}.width`, `${group}.height`] : [to.field];
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
    out.rows.push(r.row);
    for (const w of r.warnings) {
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
/** A cell left empty or a row skipped, before it is given its line. */
interface Issue { column: string; kind: IssueKind; reason: string }

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
