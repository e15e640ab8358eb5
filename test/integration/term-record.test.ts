/**
 * Terms never go back: a Consul dev agent forgets its KV when restarted, so the highest term is
 * also kept in JetStream and the next leader's term continues from it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startService, stopService } from '../../deploy/stack/index.js';
import { ConsulLeaderLookup } from '../../coordinator/index.js';
import { coordinator, startStack, waitFor, type TestStack } from '../helpers/cluster.js';

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

test.run();
