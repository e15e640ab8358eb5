/**
 * Terms never go back: a Consul dev agent forgets its KV when restarted, so the highest term is
 * also kept in JetStream and the next leader's term continues from it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startService, stopService } from '../../deploy/stack/index.js';
import { ConsulLeaderLookup } from '../../coordinator/index.js';
import { LEADER_KEY, consulClient } from '../../shared/index.js';
import { coordinator, startStack, waitFor, type TestStack } from '../helpers/cluster.js';
import { spawnCoordinator, spawnStandby } from '../helpers/bench-cluster.js';

let s: TestStack;
test.before(async () => { s = await startStack('term-record'); });
test.after(async () => { await s?.down(); });

async function leadOnce(id: string): Promise<number> {
  const c = await coordinator(s, id);
  try {
    await waitFor(`${id} to lead`, () => c.isLeader(), 30_000);
    const l = await new ConsulLeaderLookup(s.endpoints.consul_http).currentLeader();
    assert.is(l?.id, id);
    return c.leader()!.term;
  } finally {
    await c.stop();
  }
}

test('each new leadership gets a higher term, even after Consul was restarted with empty KV', async () => {
  assert.is(await leadOnce('c1'), 1);
  assert.is(await leadOnce('c2'), 2);
  await stopService({ stateDir: s.dir }, 'consul');
  await startService({ stateDir: s.dir }, 'consul');
  assert.is(await new ConsulLeaderLookup(s.endpoints.consul_http).currentLeader(), null, 'Consul forgot the lock');
  assert.is(await leadOnce('c3'), 3);
});

test('a standby that takes the lock while NATS is down (so the term record cannot be read) leads once NATS is back, instead of holding the lock at term 0 with nobody leading', async () => {
  // Separate processes, as the chaos test runs them: the leader is killed, not stopped.
  const first = await spawnCoordinator(s, 'n1');
  const standby = spawnStandby(s, 'n2');
  try {
    await waitFor('n2 to campaign', () => standby.output().includes('campaigning through Consul'), 30_000);
    await stopService({ stateDir: s.dir }, 'nats');
    first.child.kill('SIGKILL');
    await first.stop(1000);
    const consul = consulClient(s.endpoints.consul_http);
    const lookup = new ConsulLeaderLookup(s.endpoints.consul_http);
    await waitFor('n2 to take the lock', async () => ((await consul.kv.get(LEADER_KEY)) as { Value?: string } | null)?.Value?.includes('"n2"'), 30_000);
    assert.is(await lookup.currentLeader(), null, 'no leader while its term cannot be recorded');
    await startService({ stateDir: s.dir }, 'nats');
    const l = await waitFor('n2 to lead', async () => { const x = await lookup.currentLeader(); return x?.id === 'n2' ? x : undefined; }, 60_000);
    assert.ok(l.term > 0, `term ${l.term}`);
  } finally {
    await standby.stop(3000);
  }
});

test.run();
