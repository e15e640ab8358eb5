/**
 * Leadership through Consul: exactly one of two coordinator processes leads; when it is
 * killed, the standby takes over under a higher term, finishes the bookkeeping of work that
 * was running, and agents refuse orders stamped with the dead leader's term.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChildProcess } from 'node:child_process';
import { ConsulLeaderLookup, type LeaderInfo } from '../../coordinator/index.js';
import { AgentClient, type TaskEvent } from '../../shared/index.js';
import type { AgentHandle } from '../../node-agent/index.js';
import { agent, alive, cli, events, identity, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let a: AgentHandle;
const procs = new Map<string, ChildProcess>();
let lookup: ConsulLeaderLookup;

test.before(async () => {
  s = await startStack('failover');
  lookup = new ConsulLeaderLookup(s.endpoints.consul_http);
  for (const id of ['c1', 'c2']) {
    const p = cli(s, ['coordinator', '--id', id]);
    p.stdout!.on('data', (d) => s.log(String(d).trimEnd()));
    p.stderr!.on('data', (d) => s.log(String(d).trimEnd()));
    procs.set(id, p);
  }
  a = await agent(s, 'node-a', '0');
});

test.after(async () => {
  await a?.stop();
  for (const p of procs.values()) if (p.exitCode === null) p.kill('SIGKILL');
  await s?.down();
});

const leader = () => waitFor<LeaderInfo | null>('a leader', () => lookup.currentLeader(), 30_000);

let first: LeaderInfo;

test('exactly one of two coordinators leads, under term 1, and serves the jobs', async () => {
  first = await leader();
  assert.ok(['c1', 'c2'].includes(first.id));
  assert.is(first.term, 1);
  await waitFor('the agent to register with the leader', () => a.term() === 1);
  const evs = await events(s, await submit(s, smallJob()));
  assert.is(evs.at(-1)!.state, 'succeeded');
  assert.ok(evs.every((e) => e.term === 1));
});

test('killing the leader mid-encode lets the standby take over with a higher term and settle the job', async () => {
  const long = await submit(s, smallJob({ input: { resolution: '640x360', duration_s: 20 }, output: { preset: 'medium' } }));
  const seen: TaskEvent[] = [];
  const followed = events(s, long, 180_000).then((evs) => { seen.push(...evs); return evs; });
  await waitFor('the long job to run', () => a.running().includes(long));
  const dead = procs.get(first.id)!;
  dead.kill('SIGKILL');
  await waitFor('the old leader to exit', () => !alive(dead.pid!));
  const next = await waitFor('a new leader', async () => {
    const l = await lookup.currentLeader();
    return l && l.id !== first.id ? l : undefined;
  }, 60_000);
  assert.is(next.term, first.term + 1);
  const evs = await followed;
  assert.is(evs.at(-1)!.state, 'succeeded', evs.at(-1)!.reason);
  assert.is(evs.at(-1)!.term, next.term, 'the new leader recorded the result');
  assert.ok(evs.at(-1)!.result!.output_bytes > 0);
  assert.is(evs.filter((e) => e.state === 'placed').length, 1, 'the job was not run twice');
});

test('after failover new jobs are placed by the new leader', async () => {
  const now = await leader();
  const evs = await events(s, await submit(s, smallJob()));
  assert.is(evs.at(-1)!.state, 'succeeded');
  assert.ok(evs.every((e) => e.term === now.term));
  assert.is(a.term(), now.term);
});

test('an agent refuses an assignment stamped with a deposed leader\'s term', async () => {
  const client = new AgentClient(a.address, identity(s, 'coordinator', 'test'), 'node-a');
  try {
    const reply = await client.assign({
      task_id: 'stale-order', schema_json: JSON.stringify(smallJob()), predicted: { cpu_cores: 1, gpu_percent: 0, memory_gb: 0.1, bandwidth_mbps: 1, duration_s: 1 },
      allocation: { node_id: 'node-a', core_ids: [0], gpu_ids: [], memory_gb: 0.1, bandwidth_mbps: 1, lease_expires_at: Date.now() + 5000, term: first.term },
      attempt: 1, model_version: 'test',
    });
    assert.is(reply.accepted, false);
    assert.match(reply.reason, /stale leader term 1/);
    assert.is(reply.refusal, 'STALE_TERM');
    assert.not.ok(a.running().includes('stale-order'));
  } finally {
    client.close();
  }
});

test('a coordinator stopped with SIGTERM gives up the lock at once, without waiting for its session to expire', async () => {
  const now = await leader();
  const p = procs.get(now.id)!;
  const started = Date.now();
  p.kill('SIGTERM');
  await waitFor('it to exit', () => p.exitCode !== null);
  assert.is(p.exitCode, 0);
  await waitFor('no leader left', async () => (await lookup.currentLeader()) === null, 5000);
  assert.ok(Date.now() - started < 5000, 'lock released well inside the 10 s session TTL');
});

test.run();
