/**
 * Leases with a time limit (issue 18), on a real leader and agent: an encode that runs past its
 * time limit is stopped (ffmpeg gone, its cores free) and run again, and fails after its attempts
 * saying why; a job whose deadline passes while it waits says so, in an event and in `prescient
 * queue`. The limit is shortened (1.5 s) so that a real encode of some seconds stands for a hung one.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import type { AgentHandle } from '../../node-agent/index.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import { agent, cliRun, coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c: CoordinatorHandle;
let a: AgentHandle;

test.before(async () => {
  s = await startStack('time-limit');
  c = await coordinator(s, 'c1', { timeLimit: { factor: 0.001, min_ms: 1500 }, maxAttempts: 2 });
  a = await agent(s, 'node-a', '0');
});
test.after(async () => {
  await a?.stop();
  await c?.stop();
  await s?.down();
});

/** ffmpeg processes writing this job's output. */
const ffmpegsOf = (id: string) => readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
  try { return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'ffmpeg' && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(id); } catch { return false; }
});

test('an encode past its time limit is stopped and run again; one that always overruns fails after its attempts, saying why, and holds nothing', async () => {
  const slow = smallJob({ input: { resolution: '1280x720', duration_s: 60 }, output: { codec: 'h264', encoder: 'libx264', preset: 'veryslow', rate_control: { mode: 'crf', crf: 18 } } });
  const id = await submit(s, slow);
  // Meanwhile a job whose deadline passes while the slow one holds the only core.
  await waitFor('the slow job placed', () => c.leader()!.ledger.reservation(id));
  const late = await submit(s, { ...smallJob(), deadline: new Date(Date.now() + 1000).toISOString() });
  const seen = await events(s, id, 120_000);
  const stops = seen.filter((e) => e.notice === 'time_limit');
  assert.is(stops.length, 2, 'stopped once per attempt');
  assert.match(stops[0].reason!, /its encode ran [\d.]+ s, past its time limit of 1.5 s/);
  assert.is(seen.filter((e) => e.state === 'placed').length, 2, 'run again after the first stop');
  const last = seen.at(-1)!;
  assert.is(last.state, 'failed');
  assert.match(last.reason!, /^gave up after 2 attempts; last: its encode ran [\d.]+ s, past its time limit/);
  assert.equal(ffmpegsOf(id), [], 'no ffmpeg of it left');
  await waitFor('its reservation released', () => !c.leader()!.ledger.reservation(id));
  // The late job said its deadline passed, and the queue said so while it waited.
  const lateEvents = await events(s, late, 60_000);
  assert.ok(lateEvents.some((e) => e.notice === 'deadline_missed'), 'a deadline_missed event');
  assert.ok(lateEvents.at(-1)!.deadline_missed_at, 'its last event carries it');
});

test('prescient queue marks a waiting job whose deadline has passed', async () => {
  const hold = await submit(s, smallJob({ input: { resolution: '1280x720', duration_s: 60 }, output: { codec: 'h264', encoder: 'libx264', preset: 'veryslow', rate_control: { mode: 'crf', crf: 18 } } }));
  await waitFor('the long job placed', () => c.leader()!.ledger.reservation(hold));
  const late = await submit(s, { ...smallJob(), deadline: new Date(Date.now() + 500).toISOString() });
  await waitFor('the deadline to pass', async () => {
    const r = await cliRun(s, ['queue', '--json']);
    return (JSON.parse(r.stdout) as { queue: { job_id: string; deadline_missed?: boolean }[] }).queue.find((q) => q.job_id === late)?.deadline_missed;
  }, 20_000, 500);
  const text = await cliRun(s, ['queue']);
  assert.match(text.stdout, /\(deadline missed\)/);
  await cliRun(s, ['cancel', hold]);
});

test.run();
