/**
 * RFC 4180 delimited text (CSV, TSV and kin): quoted fields with `""` escapes and embedded line
 * breaks, CRLF or LF line ends, an optional trailing line break and UTF-8 BOM. Fields are sliced
 * out of the text rather than built a character at a time, so a 100,000-line log parses in tens
 * of milliseconds.
 */

/** Delimiters that sniffing tells apart, in the order it prefers them on a tie. */
export const SNIFFED_DELIMITERS = ['\t', ',', ';', '|'] as const;

/** One record of the file; `line` is where it starts (1-based, the header is line 1). */
export interface DelimitedRecord {
  fields: string[];
  line: number;
  /** The record's text as written, without its line break (a source-line identity). */
  raw: string;
}

export interface DelimitedTable {
  delimiter: string;
  /** The first record's fields, trimmed. */
  header: string[];
  /** Every later record; blank lines are left out. */
  records: DelimitedRecord[];
}

/** The text breaks the quoting rules; `line` is where the offending field starts. */
export class DelimitedParseError extends Error {
  constructor(readonly source: string, readonly line: number, reason: string) {
    super(`${source}:${line}: ${reason}`);
    this.name = 'DelimitedParseError';
  }
}

const QUOTE = 34, LF = 10, CR = 13;

/**
 * The delimiter the header line uses most outside quotes (tab, comma, semicolon, pipe; the
 * earlier one on a tie). A header with none of them is a single column: comma.
 */
export function sniffDelimiter(text: string): string {
  const start = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const counts = new Map<string, number>(SNIFFED_DELIMITERS.map((d) => [d, 0]));
  let quoted = false;
  for (let i = start; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') quoted = !quoted;
    else if (!quoted && (ch === '\n' || ch === '\r')) break;
    else if (!quoted && counts.has(ch)) counts.set(ch, counts.get(ch)! + 1);
  }
  let best: string = ',', most = 0;
  for (const [d, n] of counts) if (n > most) [best, most] = [d, n];
  return best;
}

/** Splits `text` into header and records; `source` names it in errors. */
export function parseDelimited(text: string, opts: { delimiter?: string; source?: string } = {}): DelimitedTable {
  const delimiter = opts.delimiter ?? sniffDelimiter(text);
  const source = opts.source ?? '(text)';
  const d = delimiter.charCodeAt(0), n = text.length;
  const all: DelimitedRecord[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0, line = 1;
  while (i < n) {
    const start = i, startLine = line, fields: string[] = [];
    for (;;) {
      if (text.charCodeAt(i) === QUOTE) {
        const fieldLine = line;
        let value = '', seg = i + 1;
        for (;;) {
          const q = text.indexOf('"', seg);
          if (q < 0) throw new DelimitedParseError(source, fieldLine, 'a quoted field is never closed');
          for (let nl = text.indexOf('\n', seg); nl >= 0 && nl < q; nl = text.indexOf('\n', nl + 1)) line++;
          if (text.charCodeAt(q + 1) === QUOTE) { value += text.slice(seg, q + 1); seg = q + 2; continue; }
          value += text.slice(seg, q);
          i = q + 1;
          break;
        }
        const c = text.charCodeAt(i);
        if (i < n && c !== d && c !== LF && c !== CR) throw new DelimitedParseError(source, fieldLine, 'text follows a closing quote (a quote inside a quoted field is written "")');
        fields.push(value);
      } else {
        let j = i;
        for (let c = text.charCodeAt(j); j < n && c !== d && c !== LF && c !== CR; c = text.charCodeAt(++j));
        fields.push(text.slice(i, j));
        i = j;
      }
      if (i < n && text.charCodeAt(i) === d) i++;
      else break;
    }
    const end = i;
    if (text.charCodeAt(i) === CR) i++;
    if (text.charCodeAt(i) === LF) i++;
    line++;
    if (fields.length > 1 || fields[0] !== '') all.push({ fields, line: startLine, raw: text.slice(start, end) });
  }
  const [head, ...records] = all;
  return { delimiter, header: head ? head.fields.map((h) => h.trim()) : [], records };
}
