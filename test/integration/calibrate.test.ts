/**
 * `prescient calibrate` on the real parts: a matrix of short real encodes, each recorded like
 * any job (samples and a run row in QuestDB), with a report of how many runs it made.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { questdbQuery } from '../../node-agent/index.js';
import type { EncodingSchema } from '../../shared/index.js';
import { cliRun, startStack, waitFor, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
test.before(async () => { s = await startStack('calibrate'); });
test.after(async () => { await s?.down(); });

interface Report { runs: number; succeeded: number; failed: number; unsent_rows: number; outcomes: { job_id: string; ok: boolean }[] }
const rowsFor = (sql: string, want: number) => waitFor(`${want} rows for: ${sql}`, async () => {
  const r = await questdbQuery(s.endpoints.questdb_http, sql);
  return r.length >= want ? r : undefined;
}, 20_000);

test('calibrate runs the requested number of real encodes and records a run row and samples for each', async () => {
  const r = await cliRun(s, ['calibrate', '--node-id', 'cal-node', '--limit', '3', '--resolutions', '640x360', '--duration', '3', '--sample-ms', '100', '--json']);
  assert.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Report;
  assert.equal([report.runs, report.succeeded, report.failed, report.unsent_rows], [3, 3, 0, 0]);
  // A run row is written at encode end and again once the quality pass is done (QuestDB's dedup
  // replaces the first): wait for the final ones, which carry the complexity measured before it.
  const runs = await rowsFor(`SELECT * FROM encode_runs WHERE node = 'cal-node' AND psnr_db IS NOT NULL`, 3);
  assert.equal(runs.map((x) => x.job_id).sort(), report.outcomes.map((o) => o.job_id).sort());
  for (const row of runs) {
    assert.is(row.status, 'succeeded');
    assert.is(row.model_version, 'calibration');
    assert.ok((row.si_mean as number) > 0 && (row.ti_mean as number) >= 0, 'content complexity was probed');
    // An encode can finish before its first sample (100 ms in); the longer ones must have some.
    if ((row.duration_s as number) > 0.5) assert.ok((row.samples as number) >= 1, `${row.samples} samples in ${row.duration_s} s`);
    if ((row.samples as number) > 0) assert.ok((row.cpu_cores_peak as number) >= (row.cpu_cores_mean as number));
    assert.ok((row.psnr_db as number) > 20);
    assert.is(row.hw_cores, row.cores_granted);
    const recorded = JSON.parse(row.schema_json as string) as EncodingSchema;
    assert.is(recorded.output.codec, row.codec);
    // Each run was test-encoded first, as a submission is, so the row trains what prediction reads.
    const pilot = recorded.input.probe?.pilot;
    assert.ok(pilot && pilot.frames === 12 && pilot.cpu_s > 0 && pilot.memory_mb! > 0, `pilot ${JSON.stringify(pilot)}`);
  }
  const ids = report.outcomes.map((o) => `'${o.job_id}'`).join(',');
  const sampled = runs.filter((x) => (x.samples as number) > 0);
  assert.ok(sampled.length >= 1, 'at least one calibration encode was sampled');
  const counts = await rowsFor(`SELECT job_id, count() n FROM encode_samples WHERE job_id IN (${ids}) GROUP BY job_id`, sampled.length);
  for (const row of sampled) assert.is(counts.find((c) => c.job_id === row.job_id)?.n, row.samples, 'every sample counted in the run row is stored');
});

test('calibrate takes user files as content and refuses one outside the allowed roots', async () => {
  const media = path.join(s.dir, 'media');
  mkdirSync(media, { recursive: true });
  const clip = path.join(media, 'clip.mp4');
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-t', '1', '-c:v', 'libx264', '-preset', 'ultrafast', clip]);
  const r = await cliRun(s, ['calibrate', '--node-id', 'file-node', '--files', clip, '--no-synthetic', '--codecs', 'h264', '--resolutions', '320x240', '--limit', '2', '--json']);
  assert.is(r.code, 0, r.stderr);
  assert.is((JSON.parse(r.stdout) as Report).succeeded, 2);
  const rows = await rowsFor(`SELECT source FROM encode_runs WHERE node = 'file-node'`, 2);
  assert.ok(rows.every((x) => x.source === 'file'));
  const bad = await cliRun(s, ['calibrate', '--files', '/etc/hostname', '--dry-run']);
  assert.is.not(bad.code, 0);
  assert.match(bad.stderr, /input\.path: .*outside the allowed input roots/);
});

test('calibrate writes its encodes under --output-dir and takes the node\'s settings from the agent\'s --config file', async () => {
  const config = path.join(s.dir, 'agent.yaml');
  writeFileSync(config, 'node_id: config-node\nsample_ms: 100\naccounted_only: [memory]\n');
  const out = path.join(s.dir, 'scratch', 'cal');
  const args = ['calibrate', '--config', config, '--codecs', 'h264', '--resolutions', '320x240', '--duration', '1', '--limit', '1', '--no-quality', '--json'];
  const r = await cliRun(s, [...args, '--output-dir', out]);
  assert.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Report & { node_id: string };
  assert.equal([report.node_id, report.succeeded], ['config-node', 1]);
  assert.ok(existsSync(out), `${out} was made for the encodes`);
  // A directory that cannot be made (under a file) fails the run, naming it: the flag is used.
  const blocked = path.join(s.dir, 'agent.yaml', 'cal');
  const refused = await cliRun(s, [...args, '--output-dir', blocked]);
  assert.is.not(refused.code, 0);
  assert.match(JSON.parse(refused.stdout).error.message, /agent\.yaml\/cal|ENOTDIR/);
});

test.run();
