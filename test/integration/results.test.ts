/**
 * Where results go, on the real stack with real ffmpeg: an input's audio is kept, `output.path`
 * puts the file where the job says and `status` shows it, and an HLS ladder spread over two nodes
 * gets a master playlist listing both renditions.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { AgentHandle } from '../../node-agent/index.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import type { EncodingTask } from '../../shared/index.js';
import { agent, cliRun, coordinator, events, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c: CoordinatorHandle | undefined;
let agents: AgentHandle[] = [];
/** 320x240 at 25 fps, 1 s, with a stereo AAC tone. */
let withAudio: string;

test.before(async () => {
  s = await startStack('results');
  const media = path.join(s.dir, 'media');
  mkdirSync(media, { recursive: true });
  withAudio = path.join(media, 'tone.mp4');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', '1', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '96k', '-ac', '2', withAudio]);
  c = await coordinator(s, 'results-c');
  agents = [await agent(s, 'node-a', '0'), await agent(s, 'node-b', '1')];
  await waitFor('the coordinator to lead and both agents to register', () => c!.leader()?.ledger.nodeIds().length === 2);
});
test.after(async () => {
  for (const a of agents) await a.stop();
  await c?.stop();
  await s?.down();
});

const h264 = { codec: 'h264', preset: 'ultrafast', rate_control: { mode: 'crf', crf: 30 } };
const tone = { synthetic: { source: 'testsrc2', audio: true }, resolution: '320x240', fps: 25, duration_s: 1 };

/** ffprobe's streams of a file: codec type and name. */
function streams(file: string): { codec_type: string; codec_name: string; width?: number; height?: number }[] {
  return JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_streams', file], { encoding: 'utf8' })).streams;
}
async function status(id: string): Promise<EncodingTask> {
  const r = await cliRun(s, ['status', id, '--json']);
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as EncodingTask;
}
async function finished(id: string): Promise<EncodingTask> {
  const last = (await events(s, id, 60_000)).at(-1)!;
  assert.is(last.state, 'succeeded', last.reason);
  return status(id);
}

test('a job whose input has audio keeps it: the output has an AAC stream beside the video', async () => {
  const t = await finished(await submit(s, { input: { path: withAudio }, output: h264, submitter: 'test' }));
  const got = streams(t.result!.output_path);
  assert.equal(got.map((x) => x.codec_type).sort(), ['audio', 'video']);
  assert.is(got.find((x) => x.codec_type === 'audio')!.codec_name, 'aac', 'copied: MP4 carries AAC as it is');
});

test('audio: none drops it, and a synthetic source has audio only when asked for', async () => {
  const dropped = await finished(await submit(s, { input: { path: withAudio }, output: { ...h264, audio: 'none' }, submitter: 'test' }));
  assert.equal(streams(dropped.result!.output_path).map((x) => x.codec_type), ['video']);
  const asked = await finished(await submit(s, { input: tone, output: h264, submitter: 'test' }));
  assert.equal(streams(asked.result!.output_path).map((x) => x.codec_type).sort(), ['audio', 'video']);
});

test('a job with output.path lands there, and status (--json and for people) shows that path', async () => {
  const file = path.join(s.dir, 'job.yaml');
  writeFileSync(file, YAML.stringify({ input: tone, output: { ...h264, path: path.join(s.dir, 'output', 'delivered', '{job_id}-{height}.mp4') }, submitter: 'test' }));
  const r = await cliRun(s, ['submit', file, '--wait', '--json', '--timeout', '60']);
  const id = (JSON.parse(r.stdout) as { jobs?: { job_id: string }[] }).jobs?.[0]?.job_id;
  assert.ok(id, `${r.stdout} ${r.stderr}`);
  const want = path.join(s.dir, 'output', 'delivered', `${id}-240.mp4`);
  const t = await status(id!);
  assert.is(t.result?.output_path, want);
  assert.ok(existsSync(want));
  assert.not.ok(existsSync(path.join(s.dir, 'output', 'delivered', `${id}.work`)), 'the work dir is gone');
  const human = await cliRun(s, ['status', id!]);
  assert.match(human.stdout, `output (file, audio auto): ${want}`);
});

test('an output path outside the output roots is refused at submit, naming output.path', async () => {
  const file = path.join(s.dir, 'escape.yaml');
  writeFileSync(file, YAML.stringify({ input: tone, output: { ...h264, path: path.join(s.dir, 'output', '..', 'media', '{job_id}.mp4') }, submitter: 'test' }));
  const r = await cliRun(s, ['submit', file, '--json']);
  assert.is.not(r.code, 0);
  assert.match(r.stdout + r.stderr, /output\.path/);
  assert.match(r.stdout + r.stderr, /outside the allowed output roots/);
});

test('a two-rendition HLS ladder spread over two nodes gets a master playlist listing both, shown by status', async () => {
  const group = { id: 'ladder-1', size: 2, placement: 'spread' };
  const out = (resolution: string, kbps: number) => ({
    ...h264, rate_control: { mode: 'bitrate', bitrate_kbps: kbps }, resolution, path: path.join(s.dir, 'output', 'ladders', '{group}', '{rendition}.m3u8'),
  });
  const ids = [
    await submit(s, { input: tone, output: out('320x240', 400), group, submitter: 'test' }),
    await submit(s, { input: tone, output: out('160x120', 150), group, submitter: 'test' }),
  ];
  const done = await Promise.all(ids.map(finished));
  assert.equal(new Set(done.map((t) => t.allocation?.node_id)).size, 2, 'spread: one rendition per node');
  const t = await waitFor('the master playlist to be written', async () => {
    const x = await status(ids[0]);
    return x.result?.group_outputs?.master === 'written' ? x : undefined;
  }, 20_000);
  const dir = path.join(s.dir, 'output', 'ladders', 'ladder-1');
  const master = path.join(dir, 'ladder-1.m3u8');
  assert.is(t.result!.group_outputs!.master_playlist, master);
  assert.equal(t.result!.group_outputs!.renditions.map((r) => r.output_path), [path.join(dir, '240p.m3u8'), path.join(dir, '120p.m3u8')]);
  const text = readFileSync(master, 'utf8');
  const inf = text.split('\n').filter((l) => l.startsWith('#EXT-X-STREAM-INF:'));
  assert.is(inf.length, 2, text);
  assert.match(inf[0], /RESOLUTION=320x240/);
  assert.match(inf[1], /RESOLUTION=160x120/);
  for (const l of inf) {
    assert.match(l, /BANDWIDTH=\d+/);
    assert.match(l, /CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"/);
  }
  assert.match(text, /\n240p\.m3u8\n[\s\S]*\n120p\.m3u8\n/);
  // Each rendition is a complete VOD playlist whose segments are beside it, with the audio kept.
  const media = readFileSync(path.join(dir, '240p.m3u8'), 'utf8');
  assert.match(media, /#EXT-X-ENDLIST/);
  assert.match(media, /#EXT-X-MAP:URI="240p-init.mp4"/);
  assert.ok(existsSync(path.join(dir, '240p-00000.m4s')));
  assert.equal(streams(path.join(dir, '240p.m3u8')).map((x) => x.codec_type).sort(), ['audio', 'video']);
  const other = await status(ids[1]);
  assert.is(other.result?.group_outputs?.master, 'written', 'every member\'s record says where the ladder is');
  const human = await cliRun(s, ['status', ids[1]]);
  assert.match(human.stdout, `master playlist: ${master}`);
  assert.match(human.stdout, path.join(dir, '120p.m3u8'));
});

test.run();
