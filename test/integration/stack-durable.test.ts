/**
 * A durable stack (`prescient stack up --durable`, issue 18's production stack): Consul runs as
 * a one-server cluster with its Raft data on disk, so the leader's term, the revoked list and
 * every other key, and the ACL tokens, outlive a Consul restart and the whole stack going down.
 * A dev stack (the default, the tests' and the demo's) starts Consul empty each time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { stackDown, stackUp, startService, stopService, type StackOptions } from '../../deploy/stack/index.js';
import { consulClient, loadEndpoints, pkiDirOf, readSecret } from '../../shared/index.js';

const dirs: string[] = [];
const options = (durable: boolean): StackOptions => {
  const stateDir = mkdtempSync(path.join(os.tmpdir(), `prescient-stack-${durable ? 'durable' : 'dev'}-`));
  dirs.push(stateDir);
  return { stateDir, durable: durable || undefined };
};
test.after(async () => {
  for (const stateDir of dirs) {
    await stackDown({ stateDir }).catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
  }
});

/** Writes a key with the coordinators' token (the stack's ACLs must let it), then reads it back after `restart`. */
async function survives(o: StackOptions, restart: () => Promise<void>): Promise<string | undefined> {
  const e = loadEndpoints(o.stateDir);
  const token = readSecret(pkiDirOf(e), 'consul-coordinator')!;
  assert.ok(await consulClient(e.consul_http, token).kv.set('prescient/durability-check', 'kept'), 'the coordinators\' token writes under prescient/');
  await restart();
  const after = loadEndpoints(o.stateDir);
  const item = (await consulClient(after.consul_http, token).kv.get('prescient/durability-check')) as { Value?: string } | null;
  return item?.Value ?? undefined;
}

test('a durable stack\'s Consul keeps its keys and its ACL tokens across a restart of Consul and of the whole stack', async () => {
  const o = options(true);
  await stackUp(o);
  assert.is(await survives(o, async () => { await stopService(o, 'consul'); await startService(o, 'consul'); }), 'kept', 'after Consul restarted');
  assert.is(await survives(o, async () => { await stackDown(o); await stackUp(o); }), 'kept', 'after the stack went down and up');
  // Still deny-by-default: an anonymous write is refused after the restarts.
  const e = loadEndpoints(o.stateDir);
  const anonymous = await fetch(`http://${e.consul_http}/v1/kv/prescient/leader`, { method: 'PUT', body: 'x' });
  assert.is(anonymous.status, 403);
});

test('a dev stack\'s Consul starts empty after a restart, as the embedded default always has', async () => {
  const o = options(false);
  await stackUp(o);
  assert.is(await survives(o, async () => { await stopService(o, 'consul'); await startService(o, 'consul'); }), undefined);
});

test.run();
