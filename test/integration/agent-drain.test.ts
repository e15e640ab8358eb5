/**
 * Stopping an agent drains it (issue 18): it takes no new work, lets its encodes finish for a
 * while, hands back the rest, and deregisters, so the leader takes its node out at once rather
 * than after a lease of silence. Real leader, real agents, real encodes; and a real `prescient
 * agent` process stopped as systemd stops it (SIGTERM).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AgentHandle } from '../../node-agent/index.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import { JetStreamTaskStore } from '../../coordinator/index.js';
import { agent, coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';
import { spawnAgent } from '../helpers/bench-cluster.js';

let s: TestStack;
let c: CoordinatorHandle;
const running: AgentHandle[] = [];
const start = async (id: string, cores: string) => { const a = await agent(s, id, cores); running.push(a); return a; };
const stop = async (a: AgentHandle) => { running.splice(running.indexOf(a), 1); await a.stop(); };

test.before(async () => {
  s = await startStack('agent-drain');
  // A lease of 20 s: a node taken out within a second or two was deregistered, not found silent.
  c = await coordinator(s, 'c1', { leaseMs: 20_000 });
});
test.after(async () => {
  for (const a of [...running]) await a.stop().catch(() => undefined);
  await c?.stop();
  await s?.down();
});

const long = (seconds: number) => smallJob({ input: { resolution: '640x360', duration_s: seconds }, output: { codec: 'h264', encoder: 'libx264', preset: 'slow', rate_control: { mode: 'crf', crf: 23 } } });
const nodeOf = (id: string) => c.leader()!.ledger.reservation(id)?.node_id;
const inLedger = (node: string) => c.leader()!.ledger.snapshot().nodes.some((n) => n.node_id === node);

/** Agent `first` (core 0) running a `seconds`-long encode, then agent `second` (core 1) registered and idle. */
async function busyThenIdle(first: string, second: string, seconds: number) {
  const a = await start(first, '0');
  const job = await submit(s, long(seconds));
  await waitFor(`the job running on ${first}`, () => nodeOf(job) === first);
  const b = await start(second, '1');
  await waitFor(`${second} registered`, () => inLedger(second));
  return { a, b, job };
}

test('a draining agent takes no new work while its encode finishes, then leaves the ledger at once when it stops', async () => {
  const { a, b, job: x } = await busyThenIdle('drain-a', 'drain-b', 4);
  const draining = a.drain(60_000);
  const y = await submit(s, smallJob());
  const yEvents = await events(s, y, 60_000);
  assert.is(yEvents.at(-1)!.state, 'succeeded');
  assert.ok(yEvents.every((e) => e.node_id === undefined || e.node_id === 'drain-b'), `y went to drain-b only: ${yEvents.map((e) => `${e.state}@${e.node_id}`).join(', ')}`);
  assert.is(await draining, 0, 'x finished within the drain');
  assert.is((await events(s, x, 60_000)).at(-1)!.state, 'succeeded');
  const stopped = Date.now();
  await stop(a);
  await waitFor('drain-a out of the ledger', () => !inLedger('drain-a'), 5_000, 50);
  assert.ok(Date.now() - stopped < 5_000, 'taken out at once, not after the 20 s lease');
  await stop(b);
});

test('an encode still running when the drain ends is handed back and runs elsewhere at once, its attempt not counted', async () => {
  const { a, b, job: z } = await busyThenIdle('drain-c', 'drain-d', 12);
  assert.is(await a.drain(300), 1, 'one encode handed back');
  await stop(a);
  await waitFor('z placed again on drain-d', () => nodeOf(z) === 'drain-d', 5_000, 50);
  const zEvents = await events(s, z, 120_000);
  assert.is(zEvents.at(-1)!.state, 'succeeded');
  assert.is(zEvents.at(-1)!.node_id, 'drain-d');
  const record = await (await JetStreamTaskStore.open(s.nc.jetstream())).get(z);
  assert.is(record!.attempts, 1, 'the handed-back attempt is not the job\'s');
  await stop(b);
});

test('`prescient agent` stopped as systemd stops it (SIGTERM) drains, deregisters and exits 0', async () => {
  const p = await spawnAgent(s, 'drain-p', { cores: '0', memoryGb: 1, args: ['--drain-timeout', '5'] });
  try {
    await waitFor('drain-p registered', () => inLedger('drain-p'));
    p.child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => p.child.once('exit', (c) => r(c)));
    assert.is(code, 0, p.output().slice(-2000));
    assert.match(p.output(), 'draining: taking no new work');
    assert.match(p.output(), 'deregistered from the leader');
    await waitFor('drain-p out of the ledger', () => !inLedger('drain-p'), 3_000, 50);
  } finally {
    await p.stop(1000);
  }
});

test.run();
