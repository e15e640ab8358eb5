/**
 * Mapping files: how the columns of somebody's own CSV/TSV log become `LabelledRow`s
 * (models/record.ts), so that a log written by any tool can train Prescient.
 *
 * ```yaml
 * delimiter: "\t"            # optional: default tab for .tsv/.tab, else sniffed from the header
 * key: id                    # optional: a column with a stable row identity (default: hash of the line)
 * time: ts                   # optional: when it ran (ISO-8601, UTC when no zone; or epoch s / ms)
 * columns:                   # data column -> destination
 *   o_codec: output.codec                          # a field path
 *   resolution: output.resolution                  # "1920x1080" -> output.width and output.height
 *   o_bitrate: { field: output.bitrate_kbps, unit: bps }
 *   umem: { target: memory_gb, unit: KB }          # one of TARGETS
 *   size: { feature: input_size }                  # an extra numeric feature (EncodeRecord.extra)
 *   cpu_pct: { target: cpu_cores, scale: 0.01 }    # scale multiplies after the unit conversion
 * values:                    # optional renames of cell values, per field path (before parsing)
 *   output.codec: { x264: h264 }
 * defaults:                  # optional constants where a row has no value for a field
 *   node.cores: 8
 * ```
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
 * | target memory_gb                        | GB of 1024³ B | size    | B, KB, MB, GB, KiB, MiB, GiB                |
 * | target gpu_percent                      | percent       | share   | percent, fraction (× 100)                   |
 *
 * Cells: surrounding blanks are trimmed; empty, NA, N/A, NaN, null and `-` are missing. A row
 * is skipped (and reported with its line and column) when a numeric cell is not a number, a
 * numeric field or target is negative, a resolution is not WIDTHxHEIGHT, a time is not a time,
 * its field count differs from the header's, or it has no target value at all.
 */
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import {
  TARGETS, emptyRecord, type ContentRecord, type EncodeRecord, type InputRecord, type LabelledRow, type NodeRecord,
  type OutputRecord, type Target,
} from '../record.js';
import { parseDelimited, type DelimitedRecord } from './delimited.js';

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
  to: Destination;
  /** Unit conversion times `scale`: what a numeric cell is multiplied by. */
  factor: number;
}

/** A validated mapping file. */
export interface Mapping {
  /** Where it was read from, for messages. */
  file: string;
  delimiter?: string;
  key?: string;
  time?: string;
  columns: ColumnRule[];
  /** Cell renames per field path, applied to the trimmed cell before it is parsed. */
  values: Partial<Record<FieldPath, Map<string, string>>>;
  /** Values for fields a row has none for, already parsed. */
  defaults: Partial<Record<FieldPath, FieldValue>>;
}

/** A row that was skipped: its line in the data file (header = 1), the column, and why. */
export interface RowProblem { line: number; column: string; reason: string }

export interface MappedRows {
  rows: LabelledRow[];
  /** Data records read (the header and blank lines not counted). */
  read: number;
  skipped: number;
  /** The first MAX_PROBLEMS of the skipped rows' problems, one per row. */
  problems: RowProblem[];
}

const MAX_PROBLEMS = 20;
const MISSING = new Set(['', 'na', 'n/a', 'nan', 'null', '-']);
const DELIMITER_NAMES: Record<string, string> = { tab: '\t', comma: ',', semicolon: ';', pipe: '|' };

type Fail = (setting: string, reason: string) => never;
/** A parsed cell: a category, a number in its canonical unit, or a resolution. */
export type FieldValue = string | number | { width: number; height: number };

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
    if (!['delimiter', 'key', 'time', 'columns', 'values', 'defaults'].includes(k)) fail(k, 'is not a mapping setting (expected delimiter, key, time, columns, values, defaults)');
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
    const rule = compileColumn(column, spec, fail);
    for (const slot of slots(rule.to)) {
      const other = claimed.get(slot);
      if (other !== undefined) fail(`columns.${column}`, `maps to ${slot}, which column ${JSON.stringify(other)} already fills`);
      claimed.set(slot, column);
    }
    columns.push(rule);
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
    const type = FIELDS[fieldPath(path, setting, fail)];
    const parsed = typeof v === 'string' || typeof v === 'number' ? parseCell(String(v).trim(), type, 1, false) : undefined;
    if (parsed === undefined || typeof parsed === 'object' && 'problem' in parsed) fail(setting, `${JSON.stringify(v)} is not a valid ${type === 'category' ? 'string' : type === 'resolution' ? 'WIDTHxHEIGHT' : 'number'}${parsed ? ` (${parsed.problem})` : ''}`);
    else defaults[path as FieldPath] = parsed;
  }
  return { file, delimiter, key: name('key'), time: name('time'), columns, values, defaults };
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

function compileColumn(column: string, spec: unknown, fail: Fail): ColumnRule {
  const setting = `columns.${column}`;
  if (typeof spec === 'string') return { column, to: { field: fieldPath(spec, setting, fail) }, factor: 1 };
  const o = asMapping(spec, setting, fail);
  for (const k of Object.keys(o)) if (!['field', 'target', 'feature', 'unit', 'scale'].includes(k)) fail(`${setting}.${k}`, 'is not a column setting (expected one of field, target, feature, plus unit and scale)');
  const kinds = (['field', 'target', 'feature'] as const).filter((k) => o[k] !== undefined);
  if (kinds.length !== 1) fail(setting, 'must name exactly one of field, target or feature');
  let to: Destination, type: ValueType;
  if (kinds[0] === 'field') {
    const field = fieldPath(o.field, `${setting}.field`, fail);
    [to, type] = [{ field }, FIELDS[field]];
  } else if (kinds[0] === 'target') {
    if (!(TARGETS as readonly unknown[]).includes(o.target)) fail(`${setting}.target`, `unknown target ${JSON.stringify(o.target)}; valid: ${TARGETS.join(', ')}`);
    const target = o.target as Target;
    [to, type] = [{ target }, TARGET_TYPES[target]];
  } else {
    if (typeof o.feature !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(o.feature)) fail(`${setting}.feature`, 'must be a name of letters, digits and _');
    [to, type] = [{ feature: o.feature as string }, 'number'];
  }
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
  return { column, to, factor };
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
function parseCell(cell: string, type: ValueType, factor: number, signed: boolean): FieldValue | { problem: string } {
  if (type === 'category') return cell;
  if (type === 'resolution') {
    const m = /^(\d+)\s*[xX×*]\s*(\d+)$/.exec(cell);
    return m ? { width: Number(m[1]), height: Number(m[2]) } : { problem: `${JSON.stringify(cell)} is not WIDTHxHEIGHT` };
  }
  const n = Number(cell) * factor;
  if (!Number.isFinite(n)) return { problem: `${JSON.stringify(cell)} is not a finite number` };
  if (n < 0 && !signed) return { problem: `${JSON.stringify(cell)} is negative` };
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

/**
 * Reads a CSV/TSV data file through a mapping. A mapped column missing from the header is a
 * MappingError; a bad row is skipped and reported.
 */
export async function readMappedRows(dataFile: string, mapping: Mapping): Promise<MappedRows> {
  const delimiter = mapping.delimiter ?? (/\.(tsv|tab)$/i.test(dataFile) ? '\t' : undefined);
  const table = parseDelimited(await readFile(dataFile, 'utf8'), { delimiter, source: dataFile });
  const index = (column: string, setting: string): number => {
    const i = table.header.indexOf(column);
    if (i < 0) throw new MappingError(setting, `column ${JSON.stringify(column)} is not in ${dataFile}'s header (${table.header.join(', ')})`, mapping.file);
    return i;
  };
  const cols = mapping.columns.map((rule) => ({ rule, at: index(rule.column, `columns.${rule.column}`) }));
  const keyAt = mapping.key === undefined ? -1 : index(mapping.key, 'key');
  const timeAt = mapping.time === undefined ? -1 : index(mapping.time, 'time');
  const targetColumns = mapping.columns.filter((c) => 'target' in c.to).map((c) => c.column).join(', ');

  const out: MappedRows = { rows: [], read: table.records.length, skipped: 0, problems: [] };
  for (const rec of table.records) {
    const row = mapRecord(rec, table.header.length, cols, keyAt, timeAt, mapping);
    if ('problem' in row) {
      out.skipped++;
      if (out.problems.length < MAX_PROBLEMS) out.problems.push({ line: rec.line, column: row.column ?? targetColumns, reason: row.problem });
    } else out.rows.push(row);
  }
  return out;
}

type Located = { problem: string; column?: string };

function mapRecord(rec: DelimitedRecord, width: number, cols: { rule: ColumnRule; at: number }[], keyAt: number, timeAt: number, mapping: Mapping): LabelledRow | Located {
  if (rec.fields.length !== width) return { problem: `has ${rec.fields.length} fields, the header has ${width}`, column: '(row)' };
  const record = emptyRecord(), targets: LabelledRow['targets'] = {};
  for (const { rule, at } of cols) {
    const to = rule.to;
    let cell = rec.fields[at].trim();
    if ('field' in to) cell = mapping.values[to.field]?.get(cell) ?? cell;
    if (MISSING.has(cell.toLowerCase())) continue;
    const type = 'field' in to ? FIELDS[to.field] : 'target' in to ? TARGET_TYPES[to.target] : 'number';
    const v = parseCell(cell, type, rule.factor, 'feature' in to);
    if (typeof v === 'object' && 'problem' in v) return { problem: v.problem, column: rule.column };
    if ('target' in to) targets[to.target] = v as number;
    else if ('feature' in to) record.extra[to.feature] = v as number;
    else put(record, to.field, v, true);
  }
  if (Object.keys(targets).length === 0) return { problem: 'has no target value (every target column is empty)' };
  for (const [path, v] of Object.entries(mapping.defaults)) put(record, path as FieldPath, v, false);
  const inp = record.input;
  if (inp.frames === undefined && inp.fps !== undefined && inp.duration_s !== undefined) inp.frames = Math.round(inp.fps * inp.duration_s);

  let ts: number | undefined;
  if (timeAt >= 0 && !MISSING.has(rec.fields[timeAt].trim().toLowerCase())) {
    ts = parseTime(rec.fields[timeAt].trim());
    if (ts === undefined) return { problem: `${JSON.stringify(rec.fields[timeAt])} is not an ISO-8601 time or epoch seconds / milliseconds`, column: mapping.time };
  }
  const key = keyAt >= 0 && !MISSING.has(rec.fields[keyAt].trim().toLowerCase()) ? rec.fields[keyAt].trim() : createHash('sha1').update(rec.raw).digest('hex').slice(0, 12);
  return ts === undefined ? { record, targets, key } : { record, targets, key, ts };
}

/** Sets a field path's value; a default (`overwrite` false) only fills what is still unset. */
function put(record: EncodeRecord, path: FieldPath, v: FieldValue, overwrite: boolean): void {
  const [group, name] = path.split('.') as [keyof Omit<EncodeRecord, 'extra'>, string];
  const slot = record[group] as Record<string, unknown>;
  const pairs: [string, unknown][] = typeof v === 'object' ? [['width', v.width], ['height', v.height]] : [[name, v]];
  for (const [k, value] of pairs) if (overwrite || slot[k] === undefined) slot[k] = value;
}
