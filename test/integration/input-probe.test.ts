/**
 * Inputs are probed before they are predicted (node-agent/ffmpeg/probe.ts): by `prescient
 * submit` where it can read the file, by a node where it cannot, and a job nobody can probe is
 * still admitted, flagged, with the wider bound measured for that case. Real ffmpeg, ffprobe,
 * NATS, Consul and QuestDB; the media are made here with ffmpeg.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { EncodingTask } from '../../shared/index.js';
import { describeSchema, loadModelFile } from '../../models/index.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import { ProbeCache, probeInput, type AgentHandle } from '../../node-agent/index.js';
import { agent, cliRun, coordinator, startStack, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c: CoordinatorHandle | undefined;
let a: AgentHandle | undefined;
let media: string;
/** 640x360 HEVC at 24 fps, 2.5 s: 60 frames, none of which the job below spells out. */
let clip: string;

test.before(async () => {
  s = await startStack('input-probe');
  media = path.join(s.dir, 'media');
  mkdirSync(media, { recursive: true });
  clip = path.join(media, 'clip~360p.mkv');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=24', '-t', '2.5',
    '-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'log-level=error', '-pix_fmt', 'yuv420p', clip]);
  c = await coordinator(s, 'probe-c');
  a = await agent(s, 'probe-node', '0');
});
test.after(async () => {
  await a?.stop();
  await c?.stop();
  await s?.down();
});

const job = (input: Record<string, unknown>) => ({ input, output: { codec: 'h264', preset: 'ultrafast', rate_control: { mode: 'crf', crf: 30 } }, submitter: 'probe-test' });

async function submitFile(name: string, doc: unknown, extra: string[] = []): Promise<EncodingTask> {
  const file = path.join(s.dir, `${name}.yaml`);
  writeFileSync(file, YAML.stringify(doc));
  const r = await cliRun(s, ['submit', file, '--wait', '--json', '--timeout', '120', ...extra]);
  const id = (JSON.parse(r.stdout) as { jobs?: Array<{ job_id: string }> }).jobs?.[0]?.job_id;
  assert.ok(id, `submit printed ${r.stdout} ${r.stderr}`);
  const st = await cliRun(s, ['status', id, '--json']);
  assert.is(st.code, 0, st.stderr);
  return JSON.parse(st.stdout) as EncodingTask;
}

const boundRatio = (t: EncodingTask) => t.predicted!.upper.duration_s / t.predicted!.expected.duration_s;
let probed: EncodingTask;

test('a job that gives only input.path is predicted from the file\'s real size, rate and frame count, shown by status', async () => {
  probed = await submitFile('path-only', job({ path: clip }));
  assert.is(probed.state, 'succeeded', probed.reason);
  const p = probed.schema.input.probe!;
  assert.equal([p.by, p.width, p.height, p.fps, p.frames, p.codec], ['submitter', 640, 360, 24, 60, 'hevc']);
  assert.ok(Math.abs(p.duration_s! - 2.5) < 0.05, `duration ${p.duration_s}`);
  assert.ok(p.size_bytes! > 0 && p.si_mean! > 0 && p.ti_mean! >= 0, JSON.stringify(p));
  assert.is(p.pilot?.frames, 12, 'the submitter test-encoded its first frames with its settings');
  assert.ok(p.pilot!.cpu_s > 0, JSON.stringify(p.pilot));
  const flags = probed.predicted!.flags ?? [];
  assert.not.ok(flags.some((f) => /not probed|frame count unknown|log_out_pixels|log_frames/.test(f)), `flags: ${flags.join('; ')}`);
  const human = await cliRun(s, ['status', probed.id]);
  assert.match(human.stdout.replace(/\n/g, ' '), /input .*clip~360p\.mkv: 640x360 at 24 fps, 2\.5 s \(60 frames out\), hevc, \d+ kbit\/s, SI \d+ TI \d+, pilot 12 frames in [\d.]+ s CPU, \d+ kB \(probed by the submitter\)/);
});

test('a job that spells every field out is predicted the same as one that gives only the path', async () => {
  const spelled = await submitFile('spelled', job({ path: clip, resolution: '640x360', fps: 24, duration_s: 2.5, codec: 'hevc' }));
  assert.is(spelled.state, 'succeeded', spelled.reason);
  // The model reads the very same record from both (the leader's predictions differ only by the
  // node's online correction, which the first job's outcome moved).
  assert.equal(describeSchema(probed.schema, { cores: 1 }), describeSchema(spelled.schema, { cores: 1 }));
  const model = loadModelFile();
  assert.equal(model.predict(probed.schema, { cores: 1 }), model.predict(spelled.schema, { cores: 1 }));
});

test('--no-pilot submits a probed job without its test encode', async () => {
  const t = await submitFile('no-pilot', job({ path: clip, duration_s: 1 }), ['--no-pilot']);
  assert.is(t.state, 'succeeded', t.reason);
  assert.is(t.schema.input.probe?.by, 'submitter');
  assert.is(t.schema.input.probe?.pilot, undefined);
});

test('a file the submitter does not probe is probed by a node before the job is predicted', async () => {
  const t = await submitFile('node-probed', job({ path: clip }), ['--no-probe']);
  assert.is(t.state, 'succeeded', t.reason);
  const p = t.schema.input.probe!;
  assert.equal([p.by, p.width, p.height, p.fps, p.frames], ['node', 640, 360, 24, 60]);
});

test('a file nobody can probe is admitted, flagged, and predicted with a wider bound than a probed one', async () => {
  // A file that is there but is not video: ffprobe finds no stream, on the submitter and on the node.
  const junk = path.join(media, 'junk.mkv');
  writeFileSync(junk, Buffer.alloc(4096, 7));
  const t = await submitFile('unprobed', job({ path: junk }), ['--no-probe']);
  assert.is(t.state, 'failed', 'the encode cannot read it either');
  assert.is(t.schema.input.probe, undefined);
  const flags = t.predicted!.flags ?? [];
  assert.ok(flags.some((f) => f.startsWith('input not probed')), `flags: ${flags.join('; ')}`);
  assert.ok(boundRatio(t) > boundRatio(probed), `bound ÷ estimate ${boundRatio(t)} unprobed vs ${boundRatio(probed)} probed`);
});

test('probes are cached by path, size and modification time: a changed file is probed again', async () => {
  const cache = new ProbeCache(path.join(s.dir, 'probe-cache-test.json'));
  const input = { kind: 'file' as const, path: clip };
  const first = await probeInput(input, { by: 'submitter', cache });
  assert.is(cache.size, 1);
  const t0 = Date.now();
  const again = await probeInput(input, { by: 'submitter', cache });
  assert.equal(again, first);
  assert.ok(Date.now() - t0 < 50, 'the second probe came from the cache');
  utimesSync(clip, new Date(), new Date(Date.now() + 5000));
  const changed = await probeInput(input, { by: 'submitter', cache });
  assert.is(cache.size, 2, 'a new modification time is a new entry');
  assert.is.not(changed!.mtime_ms, first!.mtime_ms);
  cache.save();
  assert.is(new ProbeCache(path.join(s.dir, 'probe-cache-test.json')).size, 2, 'the cache file keeps both');
});

test.run();
