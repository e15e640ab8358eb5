/**
 * The ledger on a real cluster: groups of renditions placed together or spread, and a ledger
 * that survives leader failover — persisted in JetStream KV by one leader, resumed by the next
 * before any agent has re-registered, then reconciled with what the agents report.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import type { AgentHandle } from '../../node-agent/index.js';
import { JetStreamTaskStore } from '../../coordinator/index.js';
import { agent, coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c1: CoordinatorHandle | undefined;
let c2: CoordinatorHandle | undefined;
let c3: CoordinatorHandle | undefined;
const agents: AgentHandle[] = [];

test.before(async () => {
  s = await startStack('ledger-failover');
  c1 = await coordinator(s, 'c1');
  agents.push(await agent(s, 'node-a', '0'), await agent(s, 'node-b', '1'));
  await waitFor('both nodes in the ledger', () => c1!.leader()?.ledger.nodeIds().length === 2);
});
test.after(async () => {
  for (const a of agents) await a.stop();
  await c1?.stop();
  await c2?.stop();
  await c3?.stop();
  await s?.down();
});

const record = async (id: string) => (await JetStreamTaskStore.open(s.nc.jetstream())).get(id);
const member = (group: Record<string, unknown>) => ({ ...smallJob(), submitter: 'ladder-test', group });

test('a spread group waits for all its members, then each runs on a different node', async () => {
  const first = await submit(s, member({ id: 'abr-1', size: 2, placement: 'spread' }));
  const waiting = await waitFor('the first member to be recorded', async () => (await record(first))?.reason);
  assert.match(waiting, /waiting for 1 more job\(s\) of group abr-1 \(1 of 2 arrived\)/);
  const second = await submit(s, member({ id: 'abr-1', size: 2, placement: 'spread' }));
  const [a, b] = await Promise.all([events(s, first), events(s, second)]);
  assert.equal([a.at(-1)!.state, b.at(-1)!.state], ['succeeded', 'succeeded']);
  const nodes = [a, b].map((evs) => evs.find((e) => e.state === 'placed')!.node_id);
  assert.equal(nodes.sort(), ['node-a', 'node-b']);
});

test('a group that must run together but fits no single node says so, and reserves nothing', async () => {
  const ids = [await submit(s, member({ id: 'abr-2', size: 2, placement: 'together' })), await submit(s, member({ id: 'abr-2', size: 2, placement: 'together' }))];
  for (const id of ids) {
    const reason = await waitFor(`${id}'s reason`, async () => { const r = (await record(id))?.reason; return r && /group/.test(r) && !/waiting for/.test(r) ? r : undefined; });
    assert.match(reason, /group infeasible \(together\)/);
  }
  assert.equal(c1!.leader()!.ledger.allReservations(), []);
});

test('a new leader resumes the saved ledger before any agent re-registers, and the encode finishes under it', async () => {
  const long = await submit(s, smallJob({ input: { resolution: '1280x720', duration_s: 30 }, output: { preset: 'medium' } }));
  await waitFor('the long encode to run', async () => (await record(long))?.state === 'running', 60_000);
  const held = c1!.leader()!.ledger.reservation(long)!;
  const oldTerm = c1!.leader()!.term;
  await c1!.stop();
  c1 = undefined;
  c2 = await coordinator(s, 'c2');
  const l = await waitFor('c2 to lead', () => c2!.leader());
  assert.ok(l.term > oldTerm);
  assert.ok(s.logs.some((m) => m.includes(`[leader c2 t${l.term}]`) && /2 node\(s\) from the saved ledger/.test(m)), 'resumed both nodes from the store');
  const resumed = l.ledger.reservation(long);
  assert.ok(resumed, 'the running encode keeps its reservation');
  assert.equal(resumed!.core_ids, held.core_ids);
  assert.is(resumed!.term, oldTerm, 'the reservation keeps the term that made it');
  const final = (await events(s, long)).at(-1)!;
  assert.is(final.state, 'succeeded');
  assert.is(final.term, l.term, 'its result was recorded by the new leader');
  assert.equal(l.ledger.allReservations(), []);
  assert.equal(l.ledger.checkInvariants(), []);
});

test('after a failover, a restored node whose agent is gone gets no work; jobs go to the node that reports', async () => {
  await agents[1].stop(); // node-b's agent is gone, but the saved ledger still lists node-b
  await c2!.stop();
  c2 = undefined;
  c3 = await coordinator(s, 'c3');
  await waitFor('c3 to lead', () => c3!.leader());
  const ids = [await submit(s, smallJob()), await submit(s, smallJob())];
  const all = await Promise.all(ids.map((id) => events(s, id)));
  for (const evs of all) {
    assert.is(evs.at(-1)!.state, 'succeeded');
    assert.equal(evs.filter((e) => e.state === 'placed').map((e) => e.node_id), ['node-a'], 'placed once, on the node that reported');
    assert.not.ok(evs.some((e) => /could not be reached|refused/.test(e.reason ?? '')), evs.map((e) => e.reason).join(' | '));
  }
});

test.run();
