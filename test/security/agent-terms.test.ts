/**
 * Orders to an agent under a term it has not seen are checked against the leader Consul names:
 * a caller that stamps an Assign or a Cancel with a term from far in the future is refused and
 * logged, the agent's idea of the current term does not move, and the real leader's work goes
 * on. (Who may call at all is for mutual TLS, test/security/grpc-auth.test.ts; this is what the agent
 * checks of a coordinator's certificate: a stolen one still cannot jump terms.)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AgentClient } from '../../shared/index.js';
import { events, identity, oneNodeCluster, smallJob, submit, waitFor, type OneNodeCluster } from '../helpers/cluster.js';

let k: OneNodeCluster;
test.before(async () => { k = await oneNodeCluster('agent-terms'); });
test.after(async () => { await k?.down(); });

const FAR = Number.MAX_SAFE_INTEGER;
const order = (task_id: string, term: number) => ({
  task_id, schema_json: JSON.stringify(smallJob()), predicted: { cpu_cores: 1, gpu_percent: 0, memory_gb: 0.1, bandwidth_mbps: 1, duration_s: 1 },
  allocation: { node_id: 'node-a', core_ids: [0], gpu_ids: [], memory_gb: 0.1, bandwidth_mbps: 1, lease_expires_at: Date.now() + 5000, term },
  attempt: 1, model_version: 'forged',
});

test('an Assign stamped with a term from far in the future is refused and logged, and the agent keeps its term', async () => {
  const term = await waitFor('the agent to register', () => k.a.term() || undefined);
  const client = new AgentClient(k.a.address, identity(k.s, 'coordinator', 'rogue'), k.a.nodeId);
  try {
    const reply = await client.assign(order('forged-order', FAR));
    assert.is(reply.accepted, false);
    assert.is(reply.refusal, 'STALE_TERM');
    assert.match(reply.reason, new RegExp(`term ${FAR} is not the leader's in Consul \\(c1, term ${term}\\)`));
  } finally {
    client.close();
  }
  assert.is(k.a.term(), term, 'the agent\'s term did not move');
  assert.not.ok(k.a.running().includes('forged-order'));
  assert.ok(k.s.logs.some((l) => /refused forged-order: term \d+ is not the leader's in Consul/.test(l)), 'the refusal is logged');
});

test('a Cancel stamped with a future term stops nothing', async () => {
  const id = await submit(k.s, smallJob({ input: { resolution: '640x360', duration_s: 20 }, output: { preset: 'medium' } }));
  await waitFor('the job to run', () => k.a.running().includes(id));
  const client = new AgentClient(k.a.address, identity(k.s, 'coordinator', 'rogue'), k.a.nodeId);
  try {
    const ack = await client.cancel({ task_id: id, term: FAR });
    assert.is(ack.ok, false);
    assert.match(ack.reason, /is not the leader's in Consul/);
  } finally {
    client.close();
  }
  assert.ok(k.a.running().includes(id), 'still running');
  await waitFor('it to finish', () => !k.a.running().includes(id), 120_000);
  assert.is((await events(k.s, id)).at(-1)!.state, 'succeeded');
});

test('the real leader\'s jobs still run after the forged orders', async () => {
  assert.is((await events(k.s, await submit(k.s, smallJob()))).at(-1)!.state, 'succeeded');
});

test.run();
