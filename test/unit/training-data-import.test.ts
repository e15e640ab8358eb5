/** Training data from users' own CSV/TSV logs (through a mapping file) and from QuestDB run rows. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  DelimitedParseError, MappingError, TRAINING_COLUMNS, TextEncodingError, decodeText, parseDelimited, parseMapping, readMappedFile, readMappedRows,
  runsToRows, sniffDelimiter, type TrainingRun,
} from '../../models/data/index.js';

const dir = mkdtempSync(path.join(tmpdir(), 'prescient-import-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a fixture file and returns its path. */
const write = (name: string, text: string) => {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
};
const close = (got: number | undefined, want: number, what: string) =>
  assert.ok(got !== undefined && Math.abs(got - want) <= 1e-9 * Math.max(1, Math.abs(want)), `${what}: got ${got}, want ${want}`);
const mapping = (yaml: string) => parseMapping(yaml, 'test.yaml');
/** The MappingError `fn` throws, or a failure when it throws none. */
const mappingError = (fn: () => unknown): MappingError => {
  try { fn(); } catch (e) { if (e instanceof MappingError) return e; throw e; }
  return assert.unreachable('expected a MappingError') as never;
};
const rejectsWith = async (fn: () => Promise<unknown>): Promise<MappingError> => {
  try { await fn(); } catch (e) { if (e instanceof MappingError) return e; throw e; }
  return assert.unreachable('expected a MappingError') as never;
};

const EXAMPLE_MAPPING = new URL('../../../models/mappings/transcoding-measurements.yaml', import.meta.url);
const MEASUREMENTS_HEADER = 'id\tduration\tcodec\twidth\theight\tbitrate\tframerate\ti\tp\tb\tframes\ti_size\tp_size\tb_size\tsize\to_codec\to_bitrate\to_framerate\to_width\to_height\tumem\tutime';

test('a TSV log with its own column names trains through a mapping file', async () => {
  const file = write('transcoding_measurement.tsv', [
    MEASUREMENTS_HEADER,
    '04t6-jw9czg\t130.35667\tmpeg4\t176\t144\t54590\t12\t27\t1537\t0\t1564\t64483\t825054\t0\t889537\tmpeg4\t56000\t12\t176\t144\t22508\t0.612',
    '04t6-jw9czg\t130.35667\tmpeg4\t176\t144\t54590\t12\t27\t1537\t0\t1564\t64483\t825054\t0\t889537\th264\t3000000\t29.97\t1920\t1080\t219480\t16.26',
  ].join('\n') + '\n');
  const m = parseMapping(readFileSync(EXAMPLE_MAPPING, 'utf8'), EXAMPLE_MAPPING.pathname);
  const { rows, read, skipped, problems } = await readMappedFile(file, m);
  assert.equal([read, skipped, problems], [2, 0, []]);
  const [first, second] = rows;
  const { bitrate_kbps: inKbps, ...input } = first.record.input;
  assert.equal(input, { duration_s: 130.35667, codec: 'mpeg4', width: 176, height: 144, fps: 12, i_frames: 27, p_frames: 1537, b_frames: 0, frames: 1564, size_bytes: 889537 });
  close(inKbps, 54.59, 'input bit/s -> kbit/s');
  const { bitrate_kbps: outKbps, ...output } = first.record.output;
  assert.equal(output, { codec: 'mpeg4', fps: 12, width: 176, height: 144, rc_mode: 'bitrate' });
  close(outKbps, 56, 'output bit/s -> kbit/s');
  close(second.record.output.bitrate_kbps, 3000, 'output bit/s -> kbit/s');
  assert.equal(first.record.extra, { i_size_bytes: 64483, p_size_bytes: 825054, b_size_bytes: 0 });
  assert.equal(Object.keys(first.targets).sort(), ['duration_s', 'memory_gb']);
  close(first.targets.memory_gb, 22508e3 / 1024 ** 3, 'KB -> GB of 1024³ bytes');
  close(first.targets.duration_s, 0.612, 'seconds');
  close(second.targets.memory_gb, 219480e3 / 1024 ** 3, 'KB -> GB of 1024³ bytes');
  assert.equal([first.group, second.group], ['04t6-jw9czg', '04t6-jw9czg'], 'the video id groups its transcodes');
  assert.match(first.key, /^[0-9a-f]{12}$/);
  assert.is.not(first.key, second.key, 'rows of one video are still told apart');
  assert.is(first.ts, undefined);
});

test('units convert into the canonical ones, and scale multiplies after the unit', async () => {
  const m = mapping(`
columns:
  res: output.resolution
  len: { field: input.duration_s, unit: min }
  br: { field: input.bitrate_kbps, unit: Mbps }
  bytes: { field: input.size_bytes, unit: KiB }
  wall: { target: duration_s, unit: ms }
  rss: { target: memory_gb, unit: MiB }
  io: { target: bandwidth_mbps, unit: kbps }
  gpu: { target: gpu_percent, unit: fraction }
  cpu_pct: { target: cpu_cores, scale: 0.01 }
  cpu_us: { feature: cpu_ms, scale: 0.001 }
`);
  const file = write('units.csv', 'res,len,br,bytes,wall,rss,io,gpu,cpu_pct,cpu_us\n1280x720,2,2.5,3,1500,512,8000,0.35,350,-2000\n');
  const { rows: [row], problems } = await readMappedFile(file, m);
  assert.equal(problems, []);
  assert.equal([row.record.output.width, row.record.output.height], [1280, 720]);
  close(row.record.input.duration_s, 120, 'min -> s');
  close(row.record.input.bitrate_kbps, 2500, 'Mbps -> kbit/s');
  close(row.record.input.size_bytes, 3072, 'KiB -> bytes');
  close(row.record.extra.cpu_ms, -2, 'a feature may be negative, scaled');
  close(row.targets.duration_s, 1.5, 'ms -> s');
  close(row.targets.memory_gb, 0.5, 'MiB -> GB of 1024³ bytes');
  close(row.targets.bandwidth_mbps, 8, 'kbps -> Mbit/s');
  close(row.targets.gpu_percent, 35, 'fraction -> percent');
  close(row.targets.cpu_cores, 3.5, 'percent of a core -> cores');
});

test('CSV with quotes, embedded delimiters and line breaks, CRLF line ends and a BOM parses per RFC 4180', () => {
  const text = '\uFEFF"name","note, with comma",n\r\n"a ""quoted"" word","two\r\nlines",1\r\nplain,,2\r\n\r\n"x,y","",3\r\n';
  const t = parseDelimited(text);
  assert.is(t.delimiter, ',');
  assert.equal(t.header, ['name', 'note, with comma', 'n']);
  assert.equal(t.records.map((r) => r.fields), [['a "quoted" word', 'two\r\nlines', '1'], ['plain', '', '2'], ['x,y', '', '3']]);
  assert.equal(t.records.map((r) => r.line), [2, 4, 6], 'a record starts on its line in the file; blank lines are not records');
  assert.is(t.records[1].raw, 'plain,,2');
  // LF only and no trailing newline read the same.
  assert.equal(parseDelimited('a,b\n1,"2\n3"').records.map((r) => r.fields), [['1', '2\n3']]);
  assert.equal(parseDelimited('a,b\n1,\n').records[0].fields, ['1', '']);
});

test('an unclosed quote or text after a closing quote is refused with the line it starts on', () => {
  const refused = (text: string, line: number) =>
    assert.throws(() => parseDelimited(text, { source: 'log.csv' }), (e: Error) => e instanceof DelimitedParseError && e.line === line && e.message.startsWith(`log.csv:${line}:`));
  refused('a,b\n1,2\n3,"open\n4,5\n', 3);
  refused('a,b\n1,"2"x\n', 2);
});

test('the delimiter is sniffed from the header line unless the mapping or a .tsv name says otherwise', async () => {
  assert.is(sniffDelimiter('a\tb\tc\n1,2\t3'), '\t');
  assert.is(sniffDelimiter('a,b,c\n'), ',');
  assert.is(sniffDelimiter('"a;b",c;d;e\n'), ';', 'delimiters inside quotes do not count');
  assert.is(sniffDelimiter('a|b|c'), '|');
  assert.is(sniffDelimiter('only'), ',');
  const m = mapping('columns: { t: { target: duration_s }, c: output.codec }');
  const sniffed = await readMappedFile(write('semi.csv', 't;c\n1,5;h264\n'), m);
  assert.equal(sniffed.problems, [{ line: 2, column: 't', reason: '"1,5" is not a finite number, and no other target has a value' }]);
  // A .tsv file is read as tab-separated even when its header has more commas than tabs.
  const tsv = await readMappedFile(write('commas.tsv', 't\tc\n2\th,264,x\n'), m);
  assert.equal(tsv.rows.map((r) => r.record.output.codec), ['h,264,x']);
  const piped = await readMappedFile(write('piped.tsv', 't|c,x\n3|vp9,1\n'), mapping('delimiter: pipe\ncolumns: { t: { target: duration_s }, "c,x": output.codec }'));
  assert.equal(piped.rows.map((r) => r.record.output.codec), ['vp9,1']);
});

test('a 100,000-line, 25-column log parses completely, quoted fields included (its speed is in npm run bench)', () => {
  const cols = Array.from({ length: 25 }, (_, i) => `c${i}`);
  const line = (n: number) => cols.map((_, i) => (i % 5 === 0 ? `"text, ${n}"` : String(n * 25 + i))).join(',');
  const text = [cols.join(','), ...Array.from({ length: 100_000 }, (_, n) => line(n))].join('\r\n') + '\r\n';
  const t = parseDelimited(text);
  assert.is(t.records.length, 100_000);
  assert.equal(t.records[99_999].fields.slice(0, 2), ['text, 99999', String(99_999 * 25 + 1)]);
  assert.is(t.records[99_999].line, 100_001);
});

test('each mistake in a mapping file is a MappingError that names its setting', () => {
  const setting = (yaml: string, want: string, reason?: RegExp) => {
    const e = mappingError(() => mapping(yaml));
    assert.is(e.setting, want, e.message);
    assert.ok(e.message.startsWith(`test.yaml: ${want}: `), e.message);
    if (reason) assert.match(e.message, reason);
  };
  setting('columns: [unclosed', '(file)', /is not YAML or JSON/);
  setting('- a\n- b\n', '(file)', /must be a mapping/);
  setting('{ "columns": 3 }', 'columns', /must be a mapping/);
  setting('columns: { t: { target: duration_s } }\ncolums: {}', 'colums', /not a mapping setting/);
  setting('columns: { t: { target: duration_s }, w: output.widht }', 'columns.w', /unknown field path "output.widht"; valid: .*output\.width.*node\.hw_class/);
  setting('columns: { t: duration_s }', 'columns.t', /is a target: write \{ target: duration_s \}/);
  setting('columns: { t: { target: runtime } }', 'columns.t.target', /unknown target "runtime"; valid: cpu_cores, gpu_percent, memory_gb, bandwidth_mbps, duration_s/);
  setting('columns: { umem: { target: memory_gb, unit: kilobytes } }', 'columns.umem.unit', /unknown unit "kilobytes".*B, KB, KiB/);
  setting('columns: { umem: { target: memory_gb, unit: ms } }', 'columns.umem.unit', /ms is a time unit, but target memory_gb takes a size unit/);
  setting('columns: { t: { target: duration_s }, br: { field: output.bitrate_kbps, unit: KB } }', 'columns.br.unit', /KB is a size unit.*bitrate unit: bps, kbps, Mbps/);
  setting('columns: { t: { target: duration_s }, w: { field: output.width, unit: px } }', 'columns.w.unit', /output.width takes no unit/);
  setting('columns: { t: { target: duration_s, scale: -1 } }', 'columns.t.scale', /positive number/);
  setting('columns: { t: { target: duration_s, field: input.fps } }', 'columns.t', /exactly one of field, target or feature/);
  setting('columns: { w: output.width }', 'columns', /maps no column to a target/);
  setting('columns: { t: { target: duration_s }, a: output.codec, b: output.codec }', 'columns.b', /output.codec, which column "a" already fills/);
  setting('columns: { t: { target: duration_s }, w: output.width, r: output.resolution }', 'columns.r', /output.width, which column "w" already fills/);
  setting('columns: { t: { target: duration_s }, u: { target: duration_s, unit: ms } }', 'columns.u', /target duration_s/);
  setting('columns: { t: { target: duration_s } }\nvalues: { output.codek: { a: b } }', 'values.output.codek', /unknown field path/);
  setting('columns: { t: { target: duration_s } }\ndefaults: { node.cores: eight }', 'defaults.node.cores', /"eight" is not a valid number/);
  setting('columns: { t: { target: duration_s } }\ndelimiter: "::"', 'delimiter', /one character/);
});

test('a mapped column missing from the data file is refused, naming the file and listing its header', async () => {
  const file = write('short.csv', 'ts,wall,codec\n1,2,h264\n');
  const e = await rejectsWith(() => readMappedFile(file, mapping('columns: { wall: { target: duration_s }, encoder: output.encoder }')));
  assert.is(e.setting, 'columns.encoder');
  assert.ok(e.message.includes(`column "encoder" is not in ${file}'s header (ts, wall, codec)`), e.message);
  const k = await rejectsWith(() => readMappedFile(file, mapping('key: job\ncolumns: { wall: { target: duration_s } }')));
  assert.is(k.setting, 'key');
  const g = await rejectsWith(() => readMappedFile(file, mapping('group: video\ncolumns: { wall: { target: duration_s } }')));
  assert.is(g.setting, 'group');
  const listed = await rejectsWith(() => readMappedFile(file, mapping('columns: { wall: { target: duration_s }, box: [node.hw_class, { field: node.cores, table: { a: 1 } }] }')));
  assert.is(listed.setting, 'columns.box[0]');
});

test('a cell that does not parse is left empty with a warning and keeps its row; the report counts skips and warnings by column', async () => {
  const m = mapping('columns: { wall: { target: duration_s }, rss: { target: memory_gb }, fps: input.fps, res: input.resolution }');
  const file = write('bad.csv', [
    'wall,rss,fps,res',
    '10,1,25,640x360', // line 2: good
    'ten,1,25,640x360', // 3: a target that is not a number: absent, the other kept
    '10,-1,25,640x360', // 4: a negative target: absent
    '"10\n",1,25,640x360', // 5-6: the record starts on 5; trims to a good row
    '10,1,fast,640x360', // 7: not a number in a field: left empty
    '10,1,25,wide', // 8: not a resolution: left empty
    'NA,,25,640x360', // 9: no target at all: skipped
    '10,1,Infinity,640x360', // 10: not finite: left empty
    '10,1,25', // 11: short row: skipped
    '-,1,null,-', // 12: good: missing cells are just missing
    'ten,-1,fast,640x360', // 13: no target usable: skipped, under the first bad target
  ].join('\n'));
  const r = await readMappedFile(file, m);
  assert.equal([r.read, r.rows.length, r.skipped], [11, 8, 3]);
  assert.equal(r.problems, [
    { line: 9, column: 'wall, rss', reason: 'has no target value (every target column is empty)' },
    { line: 11, column: '(row)', reason: 'has 3 fields, the header has 4' },
    { line: 13, column: 'wall', reason: '"ten" is not a finite number, and no other target has a value' },
  ]);
  assert.equal(r.skippedBy, { 'wall, rss': { 'no target value': 1 }, '(row)': { 'field count': 1 }, wall: { 'not a number': 1 } });
  assert.equal(r.warnings, [
    { line: 3, column: 'wall', reason: '"ten" is not a finite number' },
    { line: 4, column: 'rss', reason: '"-1" is negative' },
    { line: 7, column: 'fps', reason: '"fast" is not a finite number' },
    { line: 8, column: 'res', reason: '"wide" is not WIDTHxHEIGHT' },
    { line: 10, column: 'fps', reason: '"Infinity" is not a finite number' },
  ], 'the skipped line 13 adds no warnings');
  assert.equal(r.warningsBy, { wall: { 'not a number': 1 }, rss: { negative: 1 }, fps: { 'not a number': 2 }, res: { 'not WIDTHxHEIGHT': 1 } });
  const [, ten, minus, , fast, wide] = r.rows;
  assert.equal([ten.targets, minus.targets], [{ memory_gb: 1 }, { duration_s: 10 }]);
  assert.equal(fast.record.input, { width: 640, height: 360 }, 'the fps is empty, the rest of the row kept');
  assert.equal(wide.record.input, { fps: 25 });
  assert.equal(r.rows[7].targets, { memory_gb: 1 });
  assert.equal(r.rows[7].record.input, {});

  const many = await readMappedFile(write('many.csv', 'wall\n' + 'x\n'.repeat(30) + '5\n'), mapping('columns: { wall: { target: duration_s } }'));
  assert.equal([many.read, many.skipped, many.rows.length, many.problems.length], [31, 30, 1, 20]);
  assert.equal(many.problems[19].line, 21);
  assert.equal(many.skippedBy, { wall: { 'not a number': 30 } }, 'every skip is counted, beyond the 20 examples');
});

test('defaults fill fields a row lacks, values renames apply before parsing, and frames come from fps × duration', async () => {
  const m = mapping(`
columns:
  enc: output.codec
  preset: output.preset
  cores: node.cores
  fps: input.fps
  len: input.duration_s
  passes: output.passes
  wall: { target: duration_s }
values:
  output.codec: { x264: h264, "H.264": h264 }
  output.passes: { single: 1, double: 2 }
defaults:
  node.cores: 8
  node.hw_class: Xeon Gold
  input.resolution: 1920x1080
`);
  const file = write('renames.csv', 'enc,preset,cores,fps,len,passes,wall\n x264 , VerySlow ,4,25,10,double,1\n"H.264",fast,,30,,single,2\nconstructor,fast,,,,,3\n');
  const rows = (await readMappedFile(file, m)).rows.map((r) => r.record);
  assert.equal(rows.map((r) => r.output), [
    { codec: 'h264', preset: 'VerySlow', passes: 2 },
    { codec: 'h264', preset: 'fast', passes: 1 },
    { codec: 'constructor', preset: 'fast' }, // a name Object.prototype has is no rename
  ], 'renamed, trimmed, case kept');
  assert.equal(rows.map((r) => r.node), [{ cores: 4, hw_class: 'Xeon Gold' }, { cores: 8, hw_class: 'Xeon Gold' }, { cores: 8, hw_class: 'Xeon Gold' }]);
  assert.equal(rows[0].input, { fps: 25, duration_s: 10, width: 1920, height: 1080, frames: 250 });
  assert.equal(rows[1].input.frames, undefined, 'no duration, no frames');
});

test('key and time columns give each row its identity and when it ran; without a key, identical lines share a hash', async () => {
  const m = mapping('key: job\ntime: at\ncolumns: { wall: { target: duration_s } }');
  const file = write('times.csv', 'job,at,wall\nj1,2026-01-02T03:04:05Z,1\nj2,2026-01-02 03:04:05,1\nj3,1767323045,1\nj4,1767323045000,1\n,,1\nj6,yesterday,1\n');
  const r = await readMappedFile(file, m);
  const t = Date.UTC(2026, 0, 2, 3, 4, 5);
  assert.equal(r.rows.slice(0, 4).map((x) => [x.key, x.ts]), [['j1', t], ['j2', t], ['j3', t], ['j4', t]]);
  assert.match(r.rows[4].key, /^[0-9a-f]{12}$/, 'a missing key falls back to the line hash');
  assert.is(r.rows[4].ts, undefined);
  assert.equal([r.rows[5].key, 'ts' in r.rows[5]], ['j6', false], 'a time that is no time leaves the row without one');
  assert.equal(r.problems, []);
  assert.equal(r.warnings, [{ line: 7, column: 'at', reason: '"yesterday" is not an ISO-8601 time or epoch seconds / milliseconds' }]);
  assert.equal(r.warningsBy, { at: { 'not a time': 1 } });

  const hashed = await readMappedFile(write('dupes.csv', 'wall\n1\n2\n1\n'), mapping('columns: { wall: { target: duration_s } }'));
  const [a, b, c] = hashed.rows.map((x) => x.key);
  assert.is(a, c);
  assert.is.not(a, b);
});

/** A log a European spreadsheet might write: semicolons, and names outside ASCII in several columns. */
const ACCENTED_LOG = [
  'Quelle;Maschine;Kodierer;Größe (KiB);Dauer (µs)',
  'Brücke;Xeon® Gold – 2 GHz;libx264;1024;1500000',
  'Brücke;Xeon® Gold – 2 GHz;libx265;2048;4250000',
  'Café;EPYC “Milan”;libx264;512;;',
  'Café;EPYC “Milan”;libsvtav1;256;9000000',
].join('\r\n') + '\r\n';
const ACCENTED_MAPPING = `
group: Quelle
columns:
  Maschine: node.hw_class
  Kodierer: output.encoder
  Größe (KiB): { field: input.size_bytes, unit: KiB }
  Dauer (µs): { target: duration_s, unit: us }
`;
/** windows-1252 bytes of a text: Latin-1 is the same byte, and the few characters 0x80–0x9F hold in windows-1252. */
const windows1252 = (text: string): Buffer => {
  const high: Record<string, number> = { '–': 0x96, '“': 0x93, '”': 0x94, '€': 0x80 };
  return Buffer.from([...text].map((ch) => high[ch] ?? (ch.charCodeAt(0) < 256 ? ch.charCodeAt(0) : assert.unreachable(`no windows-1252 byte for ${ch}`) as never)));
};
const utf16le = (text: string) => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
const utf16be = (text: string) => Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text, 'utf16le').swap16()]);

test('a windows-1252, a UTF-16LE and a UTF-16BE copy of a log import with the same rows and values as its UTF-8 copy', () => {
  const m = mapping(ACCENTED_MAPPING);
  const utf8 = readMappedRows(Buffer.from(ACCENTED_LOG, 'utf8'), m, { source: 'log.csv' });
  assert.equal([utf8.read, utf8.rows.length, utf8.skipped], [4, 3, 1], 'the line with an extra field is skipped in every copy');
  assert.equal(utf8.rows.map((r) => [r.group, r.record.node.hw_class, r.record.output.encoder]), [
    ['Brücke', 'Xeon® Gold – 2 GHz', 'libx264'], ['Brücke', 'Xeon® Gold – 2 GHz', 'libx265'], ['Café', 'EPYC “Milan”', 'libsvtav1'],
  ]);
  assert.equal(utf8.rows.map((r) => [r.record.input.size_bytes, r.targets.duration_s]), [[1024 * 1024, 1.5], [2048 * 1024, 4.25], [256 * 1024, 9]]);
  assert.equal([utf8.encoding, utf8.notes], [{ encoding: 'utf-8', how: 'utf-8' }, []]);
  for (const [bytes, encoding, how] of [[windows1252(ACCENTED_LOG), 'windows-1252', 'fallback'], [utf16le(ACCENTED_LOG), 'utf-16le', 'bom'], [utf16be(ACCENTED_LOG), 'utf-16be', 'bom']] as const) {
    const r = readMappedRows(bytes, m, { source: 'log.csv' });
    assert.is(r.encoding.encoding, encoding);
    assert.is(r.encoding.how, how);
    assert.equal(r.rows, utf8.rows, `${encoding}: the same rows, values, keys and groups`);
    assert.equal([r.read, r.skipped, r.problems], [utf8.read, utf8.skipped, utf8.problems]);
  }
  const fallback = readMappedRows(windows1252(ACCENTED_LOG), m, { source: 'log.csv' });
  assert.equal(fallback.notes, ['log.csv is not UTF-8 (line 1 is not): read as windows-1252; name its encoding to read it as another']);
});

test('an encoding given overrides detection, and bytes it cannot read or an unknown name are refused naming the file', () => {
  const m = mapping(ACCENTED_MAPPING);
  const given = readMappedRows(windows1252(ACCENTED_LOG), m, { source: 'log.csv', encoding: 'latin1' });
  assert.equal([given.encoding, given.notes], [{ encoding: 'windows-1252', how: 'given' }, []], 'latin1 is the WHATWG label of windows-1252');
  // UTF-8 bytes read as windows-1252: each accented letter is two characters, as asked.
  const forced = decodeText(Buffer.from('name\nBrücke\n', 'utf8'), { encoding: 'windows-1252' });
  assert.equal([forced.text, forced.how], ['name\nBrÃ¼cke\n', 'given']);
  const refused = (fn: () => unknown, pattern: RegExp) =>
    assert.throws(fn, (e: Error) => e instanceof TextEncodingError && pattern.test(e.message), String(pattern));
  refused(() => readMappedRows(windows1252(ACCENTED_LOG), m, { source: 'log.csv', encoding: 'utf-8' }), /^log\.csv: was to be read as utf-8, but is not valid utf-8$/);
  refused(() => readMappedRows(Buffer.from(ACCENTED_LOG), m, { source: 'log.csv', encoding: 'klingon' }), /^log\.csv: "klingon" is not an encoding/);
  refused(() => decodeText(Buffer.from([0xff, 0xfe, 0x41]), { source: 'odd.csv' }), /^odd\.csv: starts with a UTF-16LE byte order mark, but is not valid utf-16le$/);
  // Detection names where the bytes stopped being UTF-8.
  assert.equal(decodeText(windows1252('a,b\n1,2\n3,café\n')).badLine, 3);
});

test('a value table sets cores and memory from an instance-type column that also names the hardware; a type not in it is a warning', async () => {
  const m = mapping(`
columns:
  instance:
    - node.hw_class
    - { field: node.cores, table: { c5.large: 2, c5.xlarge: 4 } }
    - { field: node.memory_gb, table: { c5.large: 4096, c5.xlarge: 8192 }, unit: MiB }
  wall: { target: duration_s }
`);
  const r = await readMappedFile(write('instances.csv', 'instance,wall\nc5.large,1\n c5.xlarge ,2\nm5.large,3\n,4\n'), m);
  assert.equal(r.rows.map((x) => x.record.node), [
    { hw_class: 'c5.large', cores: 2, memory_gb: 4 },
    { hw_class: 'c5.xlarge', cores: 4, memory_gb: 8 },
    { hw_class: 'm5.large' },
    {},
  ], 'the unit converts the table values (MiB -> GB of 1024³ bytes)');
  assert.is(r.skipped, 0, 'a miss keeps its row');
  assert.equal(r.warnings, [{ line: 4, column: 'instance', reason: '"m5.large" is not in the table of node.cores' }]);
  assert.equal(r.warningsBy, { instance: { 'not in its table': 1 } }, 'one row, counted once though two tables missed it');

  // Tables work on any destination, after the values renames.
  const t = await readMappedFile(write('speeds.csv', 'speed,wall\nfast,1\nslow,2\n'), mapping(`
columns:
  speed: [{ field: output.preset, table: { fast: veryfast, slow: slower } }, { feature: effort, table: { fast: 1, slow: 3 } }]
  wall: { target: duration_s }
values:
  output.preset: { slow: fast }
`));
  assert.equal(t.rows.map((x) => [x.record.output.preset, x.record.extra.effort]), [['veryfast', 1], ['veryfast', 3]]);
});

test('value tables and lists of destinations that are wrong are MappingErrors naming the setting', () => {
  const setting = (yaml: string, want: string, reason: RegExp) => {
    const e = mappingError(() => mapping(yaml));
    assert.is(e.setting, want, e.message);
    assert.match(e.message, reason);
  };
  setting('columns: { t: { target: duration_s }, i: [node.hw_class, { field: node.cores, table: { c5.large: two } }] }', 'columns.i[1].table.c5.large', /"two" is not a valid number/);
  setting('columns: { t: { target: duration_s }, i: { field: node.cores, table: { small: -2 } } }', 'columns.i.table.small', /is negative/);
  setting('columns: { t: { target: duration_s }, i: { field: node.cores, table: [2, 4] } }', 'columns.i.table', /must be a mapping/);
  setting('columns: { t: { target: duration_s }, i: { field: node.cores, table: {} } }', 'columns.i.table', /is empty/);
  setting('columns: { t: { target: duration_s }, i: [] }', 'columns.i', /empty list/);
  setting('columns: { t: { target: duration_s }, i: [node.cores, { field: node.cores, table: { a: 1 } }] }', 'columns.i[1]', /node\.cores, which another destination of this column already fills/);
  setting('columns: { t: { target: duration_s }, i: [node.hw_class, node.cores], c: node.cores }', 'columns.c', /node\.cores, which column "i" already fills/);
  setting('columns: { t: { target: duration_s }, i: [node.hw_class, { field: node.cores, tabel: { a: 1 } }] }', 'columns.i[1].tabel', /not a column setting/);
  setting('columns: { t: { target: duration_s } }\ngroup: 3', 'group', /must be a column name/);
});

test('output.height alone takes its width from the input\'s aspect ratio, rounded to an even number, else from 16:9 with a warning', async () => {
  const m = mapping('columns: { in_res: input.resolution, out_h: output.height, wall: { target: duration_s } }');
  const r = await readMappedFile(write('heights.csv', 'in_res,out_h,wall\n1920x1080,720,1\n640x480,360,1\n720x576,405,1\n,720,1\n1280x720,,1\n'), m);
  assert.equal(r.rows.map((x) => [x.record.output.width, x.record.output.height]), [[1280, 720], [480, 360], [506, 405], [1280, 720], [undefined, undefined]]);
  assert.equal(r.warnings, [{ line: 5, column: 'out_h', reason: 'output.width 1280 is taken from output.height 720 at 16:9, as the input\'s width and height are not both known' }]);
  assert.equal(r.warningsBy, { out_h: { 'aspect assumed 16:9': 1 } });

  // The same for the input's side, from the output's aspect.
  const inp = await readMappedFile(write('widths.csv', 'iw,out,wall\n1280,1920x800,1\n1280,,1\n'), mapping('columns: { iw: input.width, out: output.resolution, wall: { target: duration_s } }'));
  assert.equal(inp.rows.map((x) => [x.record.input.width, x.record.input.height]), [[1280, 534], [1280, 720]]);
  assert.equal(inp.warningsBy, { iw: { 'aspect assumed 16:9': 1 } });
});

test('group: names the column of each row\'s source video; a row with an empty group cell has none', async () => {
  const m = mapping('group: video\nkey: job\ncolumns: { wall: { target: duration_s } }');
  const r = await readMappedFile(write('groups.csv', 'job,video,wall\nj1,bbb,1\nj2, tears ,2\nj3,,3\nj4,NA,4\nj5,bbb,5\n'), m);
  assert.equal(r.rows.map((x) => [x.key, x.group]), [['j1', 'bbb'], ['j2', 'tears'], ['j3', undefined], ['j4', undefined], ['j5', 'bbb']]);
  assert.ok(!('group' in r.rows[2]), 'no group property at all, so the row is a source of its own');
});

test('without a group column, rows whose input the log describes alike are one source; a log that describes no input has none', async () => {
  const m = mapping('key: job\ncolumns: { res: input.resolution, fps: input.fps, len: input.duration_s, o: output.codec, wall: { target: duration_s } }');
  const r = await readMappedFile(write('fingerprint.csv', 'job,res,fps,len,o,wall\nj1,1280x720,25,10,h264,1\nj2,1280x720,25,10,vp9,2\nj3,1280x720,30,10,h264,3\n'), m);
  const [a, b, c] = r.rows.map((x) => x.group);
  assert.ok(a !== undefined && a === b, `one input encoded twice is one source: ${a}, ${b}`);
  assert.is.not(c, a, 'another frame rate is another source');
  const bare = await readMappedFile(write('bare.csv', 'job,o,wall\nj1,h264,1\nj2,h264,2\n'), mapping('key: job\ncolumns: { o: output.codec, wall: { target: duration_s } }'));
  assert.equal(bare.rows.map((x) => x.group), [undefined, undefined]);
});

/** A run row as exportTrainingRuns returns it: every column null but those given. */
const run = (over: Partial<TrainingRun>): TrainingRun => ({
  ...(Object.fromEntries(TRAINING_COLUMNS.map((c) => [c, null])) as unknown as TrainingRun),
  ts: '2026-03-01T10:00:00.000000Z', node: 'enc-1', job_id: 'j', codec: 'h264', status: 'succeeded', pinned: false, stayed_on_cores: true,
  ...over,
});

test('succeeded QuestDB runs become rows: from the schema when it is valid, from the columns otherwise', () => {
  const schema = {
    input: { kind: 'file', path: '/media/elsewhere/in.mp4', codec: 'h264', resolution: { width: 1920, height: 1080 }, fps: 25, duration_s: 8 },
    output: { codec: 'hevc', encoder: 'libx265', preset: 'slow', rate_control: { mode: 'crf', crf: 26 }, resolution: { width: 1280, height: 720 }, passes: 1, options: {} },
    priority: 'standard', submitter: 'ci',
  };
  const columns = { codec: 'vp9', encoder: 'libvpx-vp9', preset: '4', rc_mode: 'bitrate', width: 854, height: 480, fps: 30, bitrate_kbps: 900, passes: 2, input_duration_s: 12, total_frames: 360 };
  const rows = runsToRows([
    run({ job_id: 'a', attempt: 2, schema_json: JSON.stringify(schema), cores_granted: 6, gpus_granted: 0, cpu_model: 'EPYC 7543', si_mean: 40, ti_mean: 12, cpu_cores: 5.5, memory_gb: 1.25, bandwidth_mbps: 3, duration_s: 20, gpu_percent: 7 }),
    run({ job_id: 'b', status: 'failed', cpu_cores: 1 }),
    run({ job_id: 'c', schema_json: null, ...columns, cores_granted: 2, gpus_granted: 1, cpu_model: 'Xeon', gpu_model: 'L4', gpu_percent: 55, duration_s: 4 }),
    run({ job_id: 'd', status: 'cancelled' }),
    run({ job_id: 'e', schema_json: '{"input": {"path": "relative.mp4"}}', ...columns, duration_s: 1 }),
  ]);
  assert.equal(rows.map((r) => r.key), ['a#2', 'c#1', 'e#1'], 'failed and cancelled runs are dropped');
  const [a, c, e] = rows;
  assert.is(a.ts, Date.UTC(2026, 2, 1, 10));
  assert.equal(a.record.output, { codec: 'hevc', encoder: 'libx265', preset: 'slow', width: 1280, height: 720, fps: 25, rc_mode: 'crf', crf: 26, bitrate_kbps: undefined, passes: 1, gop: undefined });
  assert.is(a.record.input.frames, 200);
  assert.equal(a.record.content, { noise: undefined, si_mean: 40, ti_mean: 12, pilot_cpu_per_frame: undefined, pilot_bits_per_frame: undefined, pilot_memory_mb: undefined });
  assert.equal(a.record.node, { cores: 6, gpus: 0, hw_class: 'EPYC 7543', memory_gb: undefined }, 'every record\'s node has one shape');
  assert.equal(a.targets, { cpu_cores: 5.5, memory_gb: 1.25, bandwidth_mbps: 3, duration_s: 20, gpu_percent: 0 }, 'no GPU granted: 0 % whatever was sampled');

  assert.equal(c.record.output, { codec: 'vp9', encoder: 'libvpx-vp9', preset: '4', rc_mode: 'bitrate', width: 854, height: 480, fps: 30, crf: undefined, bitrate_kbps: 900, passes: 2 });
  assert.equal(c.record.input, { duration_s: 12, frames: 360 });
  assert.equal(c.record.node, { cores: 2, gpus: 1, hw_class: 'Xeon + L4' });
  assert.equal(c.targets, { duration_s: 4, gpu_percent: 55 });
  assert.is(e.record.output.encoder, 'libvpx-vp9', 'an invalid schema falls back to the columns');
});

test('negative, NaN or missing actuals of a run are not labels', () => {
  const [r] = runsToRows([run({ cpu_cores: -1, memory_gb: Number.NaN, bandwidth_mbps: 0, duration_s: null, gpus_granted: 1, gpu_percent: null })]);
  assert.equal(r.targets, { bandwidth_mbps: 0 });
});

test.run();
