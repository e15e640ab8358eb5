/**
 * Actors on a real cluster: a live channel (ffmpeg paced at real time, a rolling HLS window)
 * holds its reservation until `prescient stop`, work behind it waits with no estimated start,
 * a channel whose ffmpeg dies is restarted, and stopping closes its playlist and frees the core.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import type { AgentHandle } from '../../node-agent/index.js';
import { JetStreamTaskStore } from '../../coordinator/index.js';
import { LIVE_WINDOW_SEGMENTS } from '../../node-agent/ffmpeg/index.js';
import type { EncodingTask, TaskEvent } from '../../shared/index.js';
import { cliRun, events, oneNodeCluster, smallJob, submit, waitFor, type OneNodeCluster, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c: CoordinatorHandle;
let a: AgentHandle;
let chan = '';
let behind = '';

const channel = () => ({
  kind: 'actor',
  input: { synthetic: { source: 'testsrc2' }, resolution: '320x240', fps: 25 },
  output: { codec: 'h264', preset: 'ultrafast', rate_control: { mode: 'crf', crf: 30 } },
  submitter: 'live-ops',
});

let cluster: OneNodeCluster | undefined;
test.before(async () => {
  cluster = await oneNodeCluster('live-actor');
  ({ s, c, a } = cluster);
});
test.after(async () => { await cluster?.down(); });

const task = async (id: string): Promise<EncodingTask | undefined> => (await JetStreamTaskStore.open(s.nc.jetstream())).get(id);
const liveDir = (id: string) => path.join(s.dir, 'output', 'node-a', `${id}.live`);
const segments = (id: string, since = 0) => (existsSync(liveDir(id)) ? readdirSync(liveDir(id)).filter((f) => /^seg-\d+\.m4s$/.test(f)) : [])
  .filter((f) => since === 0 || (statSync(path.join(liveDir(id), f), { throwIfNoEntry: false })?.mtimeMs ?? 0) > since);
let restartedAt = 0;
const playlist = (id: string) => readFileSync(path.join(liveDir(id), 'index.m3u8'), 'utf8');
/** Media sequence number of the first segment in the playlist: how many have rolled out of the window. */
const firstSequence = (id: string) => Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(playlist(id))?.[1] ?? NaN);

test('a live channel is placed with a steady-state prediction and runs with no end', async () => {
  chan = await submit(s, channel());
  const t = await waitFor('the channel to run', async () => { const x = await task(chan); return x?.state === 'running' ? x : undefined; }, 60_000);
  assert.is(t.schema.kind, 'actor');
  assert.is(t.predicted!.expected.duration_s, 0, 'it has no predicted end');
  assert.ok(t.predicted!.flags!.some((f) => /live: steady state/.test(f)), t.predicted!.flags!.join(' | '));
  assert.ok(c.leader()!.ledger.reservation(chan), 'it holds a reservation');
});

test('it publishes a rolling HLS window at real time, deleting old segments', async () => {
  // Segments are 2 s of content at real time: after LIVE_WINDOW_SEGMENTS + 2 of them the first has rolled out.
  await waitFor('the window to roll', () => existsSync(path.join(liveDir(chan), 'index.m3u8')) && firstSequence(chan) >= 2, 60_000, 500);
  const text = playlist(chan);
  assert.not.match(text, /#EXT-X-ENDLIST/, 'a running channel\'s playlist is open');
  assert.ok(segments(chan).length <= LIVE_WINDOW_SEGMENTS + 1, `at most the window is kept on disk: ${segments(chan).join(', ')}`);
  assert.ok(existsSync(path.join(liveDir(chan), 'init.mp4')));
});

test('work behind it queues with no estimated start: a channel never ends by itself', async () => {
  behind = await submit(s, smallJob());
  await waitFor('the job to queue', () => c.leader()!.queue().some((t) => t.id === behind), 30_000);
  const r = await cliRun(s, ['queue', '--json']);
  assert.is(r.code, 0, r.stderr);
  const row = (JSON.parse(r.stdout) as { queue: Array<{ job_id: string; estimated_start: string | null; estimate: string }> }).queue.find((x) => x.job_id === behind);
  assert.ok(row, r.stdout);
  assert.is(row!.estimated_start, null);
  assert.is(await (await task(chan))!.state, 'running');
});

test('a channel whose ffmpeg dies is restarted and publishes again', async () => {
  const before = (await task(chan))!.attempts;
  // ffmpeg writes the window through the directory the agent handed it (descriptor 4: node-agent/ffmpeg/sandbox.ts).
  const pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readlinkSync(`/proc/${p}/fd/4`) === liveDir(chan) && readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'ffmpeg';
    } catch { return false; }
  });
  assert.is(pids.length, 1, 'one ffmpeg runs the channel');
  restartedAt = Date.now();
  process.kill(Number(pids[0]), 'SIGKILL');
  const again = await waitFor('the channel to run again', async () => { const x = await task(chan); return x && x.attempts > before && x.state === 'running' ? x : undefined; }, 60_000);
  assert.is(again.attempts, before + 1);
  // The restarted channel starts a fresh window (the old one is removed first).
  await waitFor('a fresh window', () => segments(chan, restartedAt).length >= 1, 30_000, 500);
  assert.ok(s.logs.some((l) => l.includes(chan) && /live channel stopped unexpectedly/.test(l)), 'the leader says why it restarted');
});

test('prescient stop closes the playlist, keeps the window and ends the channel as succeeded', async () => {
  await waitFor('two segments of the restarted channel', () => segments(chan, restartedAt).length >= 2, 30_000, 500);
  const r = await cliRun(s, ['stop', chan, '--json', '--timeout', '60']);
  assert.is(r.code, 0, r.stderr + r.stdout);
  const ev = JSON.parse(r.stdout) as TaskEvent;
  assert.is(ev.state, 'succeeded');
  assert.match(ev.reason!, /live channel stopped on request after \d+\.\d s/);
  assert.match(playlist(chan), /#EXT-X-ENDLIST\s*$/);
  assert.ok(segments(chan).length >= 2, 'the window is kept');
  assert.is(ev.result!.output_path, path.join(liveDir(chan), 'index.m3u8'));
  assert.ok(ev.result!.actual.duration_s > 4 && ev.result!.actual.cpu_cores > 0, JSON.stringify(ev.result!.actual));
  assert.is(c.leader()!.ledger.reservation(chan), undefined);
});

test('the freed core then runs the job that waited', async () => {
  const evs = await events(s, behind);
  assert.is(evs.at(-1)!.state, 'succeeded');
  assert.equal(c.leader()!.ledger.allReservations(), []);
});

test.run();
