/**
 * RFC 4180 delimited text (CSV, TSV and kin): quoted fields with `""` escapes and embedded line
 * breaks, CRLF or LF line ends, an optional trailing line break and UTF-8 BOM. Fields are sliced
 * out of the text rather than built a character at a time, so a 100,000-line log parses in tens
 * of milliseconds.
 *
 * Logs come in whatever encoding the tool that wrote them used: `decodeText` reads a file's bytes
 * by its byte order mark, as UTF-8 when they are valid UTF-8, and as windows-1252 otherwise
 * (what spreadsheets on Windows write; every byte is a character in it), unless told which.
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

/**
 * How a file's bytes were read. `how`: `given` by the caller; its byte order mark (`bom`);
 * `utf-8` because the bytes are valid UTF-8; or `fallback`: not valid UTF-8, read as windows-1252.
 */
export interface DecodedText {
  text: string;
  /** As TextDecoder names it: utf-8, utf-16le, utf-16be, windows-1252, shift_jis, … */
  encoding: string;
  how: 'given' | 'bom' | 'utf-8' | 'fallback';
  /** With `fallback`: the line of the first byte that is not UTF-8. */
  badLine?: number;
}

/** The bytes cannot be read in the encoding named or declared, or the name is no encoding. */
export class TextEncodingError extends Error {
  constructor(readonly source: string, readonly encoding: string, reason: string) {
    super(`${source}: ${reason}`);
    this.name = 'TextEncodingError';
  }
}

/** TextDecoder's name for an encoding label (`latin1` -> windows-1252), or undefined for no encoding. */
export function encodingName(label: string): string | undefined {
  try {
    return new TextDecoder(label).encoding;
  } catch {
    return undefined;
  }
}

/**
 * Node 20.18.3+ and 22.13+ decode windows-1252 in one call by a Latin-1 fast path that turns
 * bytes 0x80–0x9F (€, “, –, …) into control characters (nodejs/node#60888). Decoding it as a
 * stream goes through ICU, which maps them as the Encoding Standard says; other encodings keep
 * the one-call path, several times faster for UTF-8.
 */
function decode(bytes: Uint8Array, encoding: string, fatal: boolean): string {
  const d = new TextDecoder(encoding, { fatal });
  return encoding === 'windows-1252' ? d.decode(bytes, { stream: true }) + d.decode() : d.decode(bytes);
}

const BOMS = [
  { bytes: [0xef, 0xbb, 0xbf], encoding: 'utf-8' },
  { bytes: [0xff, 0xfe], encoding: 'utf-16le' },
  { bytes: [0xfe, 0xff], encoding: 'utf-16be' },
] as const;

/** Text of a file's bytes: in `encoding` when given, else by BOM, else UTF-8 if valid, else windows-1252. */
export function decodeText(bytes: Uint8Array, opts: { encoding?: string; source?: string } = {}): DecodedText {
  const source = opts.source ?? '(bytes)';
  const strict = (encoding: string, why: string): string => {
    try {
      return decode(bytes, encoding, true);
    } catch {
      throw new TextEncodingError(source, encoding, `${why}, but is not valid ${encoding}`);
    }
  };
  if (opts.encoding !== undefined) {
    const encoding = encodingName(opts.encoding);
    if (!encoding) throw new TextEncodingError(source, opts.encoding, `${JSON.stringify(opts.encoding)} is not an encoding (utf-8, windows-1252, utf-16le, utf-16be, iso-8859-15, shift_jis, gbk, …)`);
    return { text: strict(encoding, `was to be read as ${encoding}`), encoding, how: 'given' };
  }
  const bom = BOMS.find((b) => b.bytes.every((x, i) => bytes[i] === x));
  // TextDecoder drops the mark it was named for.
  if (bom) return { text: strict(bom.encoding, `starts with a ${bom.encoding.toUpperCase()} byte order mark`), encoding: bom.encoding, how: 'bom' };
  try {
    return { text: decode(bytes, 'utf-8', true), encoding: 'utf-8', how: 'utf-8' };
  } catch {
    // The first replacement character of a lenient decode is where the bytes stop being UTF-8.
    const lenient = decode(bytes, 'utf-8', false);
    const at = lenient.indexOf('\uFFFD');
    let badLine = 1;
    for (let nl = lenient.indexOf('\n'); nl >= 0 && nl < at; nl = lenient.indexOf('\n', nl + 1)) badLine++;
    return { text: decode(bytes, 'windows-1252', false), encoding: 'windows-1252', how: 'fallback', badLine };
  }
}
