/**
 * `prescient logs` (issue 20): an encode's ffmpeg log, sent by its agent over NATS and kept in
 * JetStream, read back by the CLI after the job ended, followed live with -f, as JSON, and
 * refused for a job nobody has.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AgentHandle } from '../../node-agent/index.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import { newJobId, type JobLogBatch } from '../../shared/index.js';
import { agent, cliRun, coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c: CoordinatorHandle;
let a: AgentHandle;

test.before(async () => {
  s = await startStack('logs');
  c = await coordinator(s, 'c1');
  a = await agent(s, 'node-l', '0', 2);
  await waitFor('the agent to register', () => c.leader()?.ledger.nodeIds().length === 1);
});

test.after(async () => {
  await a?.stop();
  await c?.stop();
  await s?.down();
});

test('an ended job\'s ffmpeg log is shown with where it ran, including the figures ffmpeg printed at its end', async () => {
  const id = await submit(s, smallJob());
  assert.is((await events(s, id)).at(-1)!.state, 'succeeded');
  const r = await waitFor('the log to be readable', async () => {
    const x = await cliRun(s, ['logs', id]);
    return x.code === 0 && /bench: utime=/.test(x.stdout) ? x : undefined;
  }, 20_000, 500);
  assert.match(r.stdout, /^── node-l, attempt 1, pass 1$/m);
  // ffmpeg's own lines: its -benchmark summary and the output it wrote.
  assert.match(r.stdout, /bench: maxrss=\d+kB/);
  assert.match(r.stdout, /Output #0/);
});

test('logs -f follows a running encode and ends by itself once the job has ended', async () => {
  const id = await submit(s, smallJob({ input: { resolution: '1280x720', duration_s: 6 }, output: { preset: 'medium' } }));
  await waitFor('the job to run', () => [...(c.leader()?.activeTasks() ?? [])].some((t) => t.id === id && t.state === 'running'), 30_000, 50);
  const started = Date.now();
  const r = await cliRun(s, ['logs', '-f', id]);
  assert.is(r.code, 0, r.stderr);
  const last = (await events(s, id)).at(-1)!;
  assert.is(last.state, 'succeeded');
  assert.match(r.stdout, /bench: utime=/, 'it read to the end of the encode');
  assert.ok(Date.now() - started < 60_000);
});

test('--json prints each batch as an object naming its job, node, attempt and pass', async () => {
  const id = await submit(s, smallJob());
  await events(s, id);
  const r = await waitFor('the log as JSON', async () => {
    const x = await cliRun(s, ['logs', id, '--json']);
    return x.code === 0 && x.stdout.trim() ? x : undefined;
  }, 20_000, 500);
  const batches = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as JobLogBatch);
  assert.ok(batches.length >= 1);
  for (const b of batches) {
    assert.is(b.job_id, id);
    assert.is(b.node_id, 'node-l');
    assert.is(b.attempt, 1);
    assert.ok(b.lines.length > 0);
  }
});

test('a job nobody has is refused at once, as a job that does not exist', async () => {
  const r = await cliRun(s, ['logs', newJobId(), '--json']);
  assert.is(r.code, 4);
  assert.match(JSON.parse(r.stdout).error.message, /^no job /);
});

test.run();
