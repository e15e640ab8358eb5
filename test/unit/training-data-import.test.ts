/** Training data from users' own CSV/TSV logs (through a mapping file) and from QuestDB run rows. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  DelimitedParseError, MappingError, TRAINING_COLUMNS, parseDelimited, parseMapping, readMappedRows, runsToRows, sniffDelimiter,
  type TrainingRun,
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
  const { rows, read, skipped, problems } = await readMappedRows(file, m);
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
  const { rows: [row], problems } = await readMappedRows(file, m);
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
  const sniffed = await readMappedRows(write('semi.csv', 't;c\n1,5;h264\n'), m);
  assert.equal(sniffed.problems, [{ line: 2, column: 't', reason: '"1,5" is not a finite number' }]);
  // A .tsv file is read as tab-separated even when its header has more commas than tabs.
  const tsv = await readMappedRows(write('commas.tsv', 't\tc\n2\th,264,x\n'), m);
  assert.equal(tsv.rows.map((r) => r.record.output.codec), ['h,264,x']);
  const piped = await readMappedRows(write('piped.tsv', 't|c,x\n3|vp9,1\n'), mapping('delimiter: pipe\ncolumns: { t: { target: duration_s }, "c,x": output.codec }'));
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
  setting('colums: {}', 'colums', /not a mapping setting/);
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
  const e = await rejectsWith(() => readMappedRows(file, mapping('columns: { wall: { target: duration_s }, encoder: output.encoder }')));
  assert.is(e.setting, 'columns.encoder');
  assert.ok(e.message.includes(`column "encoder" is not in ${file}'s header (ts, wall, codec)`), e.message);
  const k = await rejectsWith(() => readMappedRows(file, mapping('key: job\ncolumns: { wall: { target: duration_s } }')));
  assert.is(k.setting, 'key');
});

test('a bad cell skips only its row, and the report names its line and column', async () => {
  const m = mapping('columns: { wall: { target: duration_s }, rss: { target: memory_gb }, fps: input.fps, res: input.resolution }');
  const file = write('bad.csv', [
    'wall,rss,fps,res',
    '10,1,25,640x360', // line 2: good
    'ten,1,25,640x360', // 3: not a number
    '10,-1,25,640x360', // 4: negative target
    '"10\n",1,25,640x360', // 5-6: the record starts on 5; trims to a good row
    '10,1,fast,640x360', // 7: not a number in a field
    '10,1,25,wide', // 8: not a resolution
    'NA,,25,640x360', // 9: no target at all
    '10,1,Infinity,640x360', // 10: not finite
    '10,1,25', // 11: short row
    '-,1,null,-', // 12: good: missing cells are just missing
  ].join('\n'));
  const r = await readMappedRows(file, m);
  assert.equal([r.read, r.rows.length, r.skipped], [10, 3, 7]);
  assert.equal(r.problems, [
    { line: 3, column: 'wall', reason: '"ten" is not a finite number' },
    { line: 4, column: 'rss', reason: '"-1" is negative' },
    { line: 7, column: 'fps', reason: '"fast" is not a finite number' },
    { line: 8, column: 'res', reason: '"wide" is not WIDTHxHEIGHT' },
    { line: 9, column: 'wall, rss', reason: 'has no target value (every target column is empty)' },
    { line: 10, column: 'fps', reason: '"Infinity" is not a finite number' },
    { line: 11, column: '(row)', reason: 'has 3 fields, the header has 4' },
  ]);
  assert.equal(r.rows[2].targets, { memory_gb: 1 });
  assert.equal(r.rows[2].record.input, {});

  const many = await readMappedRows(write('many.csv', 'wall\n' + 'x\n'.repeat(30) + '5\n'), mapping('columns: { wall: { target: duration_s } }'));
  assert.equal([many.read, many.skipped, many.rows.length, many.problems.length], [31, 30, 1, 20]);
  assert.equal(many.problems[19].line, 21);
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
  const rows = (await readMappedRows(file, m)).rows.map((r) => r.record);
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
  const r = await readMappedRows(file, m);
  const t = Date.UTC(2026, 0, 2, 3, 4, 5);
  assert.equal(r.rows.slice(0, 4).map((x) => [x.key, x.ts]), [['j1', t], ['j2', t], ['j3', t], ['j4', t]]);
  assert.match(r.rows[4].key, /^[0-9a-f]{12}$/, 'a missing key falls back to the line hash');
  assert.is(r.rows[4].ts, undefined);
  assert.equal(r.problems, [{ line: 7, column: 'at', reason: '"yesterday" is not an ISO-8601 time or epoch seconds / milliseconds' }]);

  const hashed = await readMappedRows(write('dupes.csv', 'wall\n1\n2\n1\n'), mapping('columns: { wall: { target: duration_s } }'));
  const [a, b, c] = hashed.rows.map((x) => x.key);
  assert.is(a, c);
  assert.is.not(a, b);
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
  assert.equal(a.record.content, { noise: undefined, si_mean: 40, ti_mean: 12 });
  assert.equal(a.record.node, { cores: 6, gpus: 0, hw_class: 'EPYC 7543' });
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
