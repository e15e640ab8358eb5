/**
 * What reading a log gave, as `prescient model train/evaluate --csv` and `prescient plan --log
 * --mapping` report it: rows read, used and skipped; skipped rows and cells left empty by column
 * and reason; the first examples of each. Light on purpose: main.ts loads it for `plan`.
 */
import { ConfigError } from '../../shared/index.js';
import { encodingName, type DecodedText } from '../../models/data/delimited.js';
import type { MappedRows, RowProblem } from '../../models/data/mapping.js';

export function checkEncoding(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const name = encodingName(v);
  if (!name) throw new ConfigError('--encoding', `${JSON.stringify(v)} is not an encoding (utf-8, windows-1252, utf-16le, utf-16be, iso-8859-15, shift_jis, gbk, …)`);
  return name;
}

/** The import report, as --json prints it. */
export interface ImportReport {
  file: string;
  encoding: string;
  encoding_from: DecodedText['how'];
  notes: string[];
  read: number;
  used: number;
  skipped: number;
  skipped_by_column: Record<string, Record<string, number>>;
  warnings_by_column: Record<string, Record<string, number>>;
  skipped_examples: RowProblem[];
  warning_examples: RowProblem[];
}

/** The report of a log read through a mapping; `used` where a later step used fewer rows than the reader kept. */
export function importReportOf(file: string, mapped: Omit<MappedRows, 'rows'>, used: number): ImportReport {
  return {
    file, encoding: mapped.encoding.encoding, encoding_from: mapped.encoding.how, notes: mapped.notes,
    read: mapped.read, used, skipped: mapped.skipped,
    skipped_by_column: mapped.skippedBy, warnings_by_column: mapped.warningsBy, skipped_examples: mapped.problems, warning_examples: mapped.warnings,
  };
}

/** The import report in a few lines: the counts, skips and warnings by column, and the first examples. */
export function describeImport(r: ImportReport): string[] {
  const counts = (by: Record<string, Record<string, number>>) =>
    Object.entries(by).map(([column, reasons]) => `${column}: ${Object.entries(reasons).map(([why, n]) => `${why} ×${n}`).join(', ')}`).join('; ');
  const lines = [`read ${r.read} rows from ${r.file}${r.encoding === 'utf-8' ? '' : ` (${r.encoding})`}: ${r.used} usable, ${r.skipped} skipped`];
  for (const n of r.notes) lines.push(`  note: ${n} (--encoding)`);
  if (r.skipped) lines.push(`  skipped, by column: ${counts(r.skipped_by_column)}`);
  if (Object.keys(r.warnings_by_column).length) lines.push(`  cells left empty in rows kept, by column: ${counts(r.warnings_by_column)}`);
  for (const p of r.skipped_examples.slice(0, 5)) lines.push(`  line ${p.line}, column ${p.column}: ${p.reason}`);
  for (const p of r.warning_examples.slice(0, 5)) lines.push(`  line ${p.line}, column ${p.column} (kept): ${p.reason}`);
  return lines;
}
