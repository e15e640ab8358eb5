/**
 * `prescient plan --log FILE --mapping M.yaml` (issue 19): a third party's CSV/TSV log, with its
 * own column names and units, replayed through the model import's mapping format. Real files in
 * a temporary directory, read by the import's own reader; the CLI run as a process at the end.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModelFile, parseMapping } from '../../models/index.js';
import { mappedWorkload, parseFleet, simulate } from '../../coordinator/plan/index.js';

const CLI = fileURLToPath(new URL('../../coordinator/cli/main.js', import.meta.url));
const model = loadModelFile();
const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-plan-log-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const thrown = (fn: () => unknown) => { try { fn(); return ''; } catch (e) { return `${(e as Error).name}: ${(e as Error).message}`; } };

/** Writes a file in the temporary directory and gives its path. */
function file(name: string, content: string | Uint8Array): string {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
}
const mappingOf = (name: string, yaml: string) => parseMapping(readFileSync(file(name, yaml), 'utf8'), name);

// Somebody's encoder farm: epoch seconds, its own codec names, wall time in ms, RSS in MiB, CPU in percent.
const MAPPING = `
delimiter: semicolon
time: when
columns:
  fmt: output.codec
  speed: output.preset
  q: output.crf
  size: output.resolution
  len: input.duration_s
  took_ms: { target: duration_s, unit: ms }
  rss: { target: memory_gb, unit: MiB }
  cpu: { target: cpu_cores, scale: 0.01 }
values:
  output.codec: { x264: h264, x265: hevc }
`;
const LOG = [
  'when;fmt;speed;q;size;len;took_ms;rss;cpu',
  '1767225600;x264;medium;23;1280x720;60;12000;300;350',
  '1767225630;x265;medium;28;1920x1080;30;25000;800;700',
  '1767225700;x264;fast;26;640x360;60;4500;150;200',
  '1767225900;x264;slow;21;1920x1080;20;8000;6144;380',
].join('\n');
const fleet = parseFleet({ nodes: [{ type: 'c8', count: 4, cores: 8, memory_gb: 16 }] });

test('a third-party CSV with its own column names and units replays each row when its time says, for as long as it took, and the oracle reserves what it used', () => {
  const r = mappedWorkload(readFileSync(file('farm.csv', LOG)), mappingOf('farm.yaml', MAPPING), { source: 'farm.csv' });
  assert.equal([r.read, r.used, r.skipped], [4, 4, 0]);
  assert.equal(r.measured, ['cpu_cores', 'memory_gb', 'duration_s']);
  assert.match(r.arrivals, /when its when column says/);
  assert.equal(r.workload.trace!.map((e) => e.at_ms), [0, 30_000, 100_000, 300_000], 'epoch seconds, relative to the first row');
  assert.equal(r.workload.trace!.map((e) => e.actual.memory_gb), [300 / 1024, 800 / 1024, 150 / 1024, 6], 'MiB read as GB');
  assert.equal(r.workload.trace!.map((e) => Number(e.actual.cpu_cores!.toFixed(6))), [3.5, 7, 2, 3.8], 'percent scaled to cores');
  assert.equal(r.workload.trace!.map((e) => e.cores), [undefined, undefined, undefined, undefined], 'the log does not say what cores it had');
  assert.equal(r.workload.jobs.map((j) => (j.job.output as { codec: string }).codec), ['h264', 'hevc', 'h264', 'h264'], 'codec names renamed by the mapping\'s values');

  const oracle = simulate(r.workload, fleet, model, { policy: 'oracle', seed: 1 });
  assert.equal(oracle.jobs.map((j) => j.arrival_ms), [0, 30_000, 100_000, 300_000]);
  const took = oracle.jobs.map((j) => (j.ended_ms! - j.arrival_ms) / 1000);
  [12, 25, 4.5, 8].forEach((d, i) => assert.ok(Math.abs(took[i] - d) <= 0.2, `row ${i + 1} took ${took[i]} s, its log says ${d} s`));
  assert.is(oracle.totals.memory_kills, 0, 'reserving the logged use, nothing is killed');
  // 6 GB where the model expects a fraction of that: a reservation at the model's bound is passed.
  const predictive = simulate(r.workload, fleet, model, { policy: 'predictive', seed: 1 });
  assert.ok(predictive.jobs[3].memory_kills >= 1, 'the row that used 6 GB is killed by its memory limit and re-queued');
  assert.is(predictive.jobs.filter((j) => j.memory_kills > 0).length, 1, 'the others fit their reservations');
});

test('a row with a bad optional cell or setting is still replayed with a warning, and one missing what a replay needs is skipped with its reason', () => {
  const log = [
    'when;fmt;speed;q;size;len;took_ms;rss;cpu',
    '1767225600;x264;medium;23;1280x720;60;12000;lots;350', // memory not a number: drawn from the model, warned
    '1767225610;x264;p4;23;1280x720;60;9000;300;350', // an NVENC preset for libx264: left out, warned
    '1767225620;x264;medium;23;1280x720;60;;300;350', // no duration: skipped
    '1767225630;mpeg4;medium;23;1280x720;60;7000;300;350', // a codec Prescient does not encode: skipped
    ';x264;medium;23;1280x720;60;7000;300;350', // no time: skipped
    '1767225650;x264;medium;;1280x720;60;7000;300;350', // no rate control: skipped
    '1767225660;x264;medium;23;1280x720;60;7000;300', // a field short: the reader's own skip
  ].join('\n');
  const r = mappedWorkload(readFileSync(file('messy.csv', log)), mappingOf('farm.yaml', MAPPING), { source: 'messy.csv' });
  assert.equal([r.read, r.used, r.skipped], [7, 2, 5]);
  assert.equal(r.warningsBy, { rss: { 'not a number': 1 }, speed: { 'not a job setting': 1 } });
  assert.equal(r.skippedBy, { took_ms: { 'no duration': 1 }, fmt: { 'not an output codec': 1 }, when: { 'no time': 1 }, q: { 'no rate control': 1 }, '(row)': { 'field count': 1 } });
  assert.equal(r.problems.map((p) => [p.line, p.column]), [[4, 'took_ms'], [5, 'fmt'], [6, 'when'], [7, 'q'], [8, '(row)']]);
  assert.match(r.problems[0].reason, /is empty; a replay needs how long each encode ran/);
  assert.match(r.problems[1].reason, /"mpeg4" is not a codec Prescient encodes \(h264, hevc, vp9, av1\); the mapping's values can rename it/);
  assert.match(r.problems[2].reason, /a replay needs when each encode arrived/);
  assert.equal(r.warnings.map((w) => [w.line, w.column]), [[2, 'rss'], [3, 'speed']]);
  assert.match(r.warnings[1].reason, /output\.preset: unknown value "p4" .*left out of the replayed job/);
  const [first, second] = r.workload.trace!;
  assert.is(first.actual.memory_gb, undefined, 'a memory the log lacks is the model\'s to draw');
  assert.is(first.actual.duration_s, 12);
  assert.is((r.workload.jobs[second.template].job.output as { preset: string }).preset, 'medium', 'libx264\'s default preset where the log\'s was refused');
  const sim = simulate(r.workload, fleet, model, { policy: 'predictive', seed: 1 });
  assert.equal(sim.jobs.map((j) => j.state), ['succeeded', 'succeeded']);
});

test('a log without a time column arrives all at once, or at --rate in the log\'s order, and says so; a replay the mapping cannot make is refused naming the flag', () => {
  const untimed = MAPPING.replace('time: when\n', '');
  const m = mappingOf('untimed.yaml', untimed);
  const data = readFileSync(file('farm.csv', LOG));
  const once = mappedWorkload(data, m, { source: 'farm.csv' });
  assert.equal(once.workload.trace!.map((e) => e.at_ms), [0, 0, 0, 0]);
  assert.match(once.arrivals, /maps no time column: every row arrives at the start, all at once \(--rate spreads them\)/);
  const paced = mappedWorkload(data, m, { source: 'farm.csv', rate: '120/h' });
  assert.equal(paced.workload.trace!.map((e) => e.at_ms), [0, 30_000, 60_000, 90_000]);
  assert.match(paced.arrivals, /one every 30\.0 s \(--rate 120\/h\)/);
  assert.match(thrown(() => mappedWorkload(data, m, { rate: 'often' })), /ConfigError: --rate: must be a rate above 0 such as 120\/h/);
  assert.match(thrown(() => mappedWorkload(data, mappingOf('farm.yaml', MAPPING), { rate: '120/h' })), /--rate: farm\.yaml maps a time column \(when\)/);
  const noDuration = mappingOf('nodur.yaml', MAPPING.replace(/ {2}took_ms: .*\n/, ''));
  assert.match(thrown(() => mappedWorkload(data, noDuration)), /--mapping: nodur\.yaml maps no column to \{ target: duration_s \}/);
  assert.match(thrown(() => mappedWorkload(readFileSync(file('other.csv', 'a;b\n1;2\n')), m, { source: 'other.csv' })), /MappingError: untimed\.yaml: columns\.\w+: column "\w+" is not in other\.csv's header/);
});

test('a TSV log in windows-1252 replays through the shipped transcoding-measurements mapping, its codecs renamed, with a note on the encoding', () => {
  const shipped = readFileSync(fileURLToPath(new URL('../../../models/mappings/transcoding-measurements.yaml', import.meta.url)), 'utf8')
    .replace('# values:\n#   output.codec: { flv: flv1 }', 'values:\n  output.codec: { vp8: vp9 }');
  const header = 'id\tduration\tcodec\twidth\theight\tbitrate\tframerate\ti\tp\tb\tframes\ti_size\tp_size\tb_size\tsize\to_codec\to_bitrate\to_framerate\to_width\to_height\tumem\tutime';
  const rows = [
    'v1\t30\th264\t1280\t720\t2000000\t25\t10\t300\t440\t750\t1\t1\t1\t7500000\th264\t1000000\t25\t640\t360\t50000\t3.5',
    'v1\t30\th264\t1280\t720\t2000000\t25\t10\t300\t440\t750\t1\t1\t1\t7500000\tvp8\t500000\t25\t320\t240\t40000\t2.5',
    'v2\t10\tmpeg4\t640\t480\t900000\t30\t5\t100\t195\t300\t1\t1\t1\t1125000\tflv\t300000\t30\t320\t240\t20000\t0.8',
  ];
  // The first row's id in windows-1252 (é = 0xE9): not UTF-8.
  const bytes = Buffer.concat([Buffer.from(`${header}\n`), Buffer.from(rows[0].replace('v1', 'v\u00e91'), 'latin1'), Buffer.from(`\n${rows.slice(1).join('\n')}\n`)]);
  const r = mappedWorkload(bytes, parseMapping(shipped, 'transcoding-measurements.yaml'), { source: file('measurements.tsv', bytes) });
  assert.equal([r.read, r.used, r.skipped], [3, 2, 1]);
  assert.equal(r.skippedBy, { o_codec: { 'not an output codec': 1 } }, 'flv is no codec Prescient encodes');
  assert.match(r.notes[0], /is not UTF-8 .*read as windows-1252/);
  assert.equal(r.workload.jobs.map((j) => (j.job.output as { codec: string }).codec), ['h264', 'vp9']);
  assert.equal(r.workload.trace!.map((e) => e.actual.duration_s), [3.5, 2.5]);
  assert.ok(Math.abs(r.workload.trace![0].actual.memory_gb! - 50_000_000 / 1024 ** 3) < 1e-9, 'kilobytes of the log as GB');
  const sim = simulate(r.workload, fleet, model, { policy: 'oracle', seed: 1 });
  assert.equal(sim.jobs.map((j) => j.state), ['succeeded', 'succeeded']);
});

/** Runs `prescient plan ARGS` as a process; no stack is needed. */
function plan(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, '--state-dir', dir, 'plan', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('prescient plan --log --mapping prints what it replayed, skipped and how rows arrive, in its text and in --json', () => {
  const log = file('cli.csv', [LOG, '1767226000;mpeg4;medium;23;1280x720;60;7000;300;350'].join('\n'));
  const mapping = file('cli.yaml', MAPPING);
  const fleetFile = file('fleet.yaml', 'nodes:\n  - { type: c8, count: 2, cores: 8, memory_gb: 16, price_per_hour: 0.4 }\n');
  const json = plan(['--log', log, '--mapping', mapping, '--fleet', fleetFile, '--policies', 'predictive,oracle', '--json']);
  assert.is(json.status, 0, json.stderr);
  const report = JSON.parse(json.stdout) as { policies: { policy: string; jobs: number }[]; log: { read: number; used: number; skipped_by_column: unknown; arrivals: string; measured: string[]; skipped_examples: { line: number }[] } };
  assert.equal(report.policies.map((p) => [p.policy, p.jobs]), [['predictive', 4], ['oracle', 4]]);
  assert.equal([report.log.read, report.log.used], [5, 4]);
  assert.equal(report.log.skipped_by_column, { fmt: { 'not an output codec': 1 } });
  assert.equal(report.log.skipped_examples.map((p) => p.line), [6]);
  assert.match(report.log.arrivals, /when column/);
  const text = plan(['--log', log, '--mapping', file('untimed.yaml', MAPPING.replace('time: when\n', '')), '--fleet', fleetFile, '--policies', 'predictive']);
  assert.is(text.status, 0, text.stderr);
  assert.match(text.stdout, /^read 5 rows from .*cli\.csv: 4 usable, 1 skipped\n {2}skipped, by column: fmt: not an output codec ×1\n/);
  assert.match(text.stdout, /arrivals: the mapping maps no time column: every row arrives at the start, all at once/);
  assert.match(text.stdout, /\npredictive +4\/4 /);
  const misplaced = plan(['--workload', fleetFile, '--rate', '120/h', '--fleet', fleetFile, '--json']);
  assert.is(misplaced.status, 1);
  assert.is(JSON.parse(misplaced.stdout).error.field, '--rate');
});

test.run();
