/**
 * Agents on one host count its capacity once (issue 18): real agents, in this process and as
 * `prescient agent` processes under another state directory, against the host-wide claims file.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { startAgent, type AgentHandle } from '../../node-agent/index.js';
import { agent, CLI, startStack, waitFor, type TestStack } from '../helpers/cluster.js';
import { CLI_NODE_FLAGS } from '../helpers/bench-cluster.js';

let s: TestStack;
let other: TestStack;
let a: AgentHandle | undefined;

test.before(async () => {
  s = await startStack('host-claims');
  other = await startStack('host-claims-other');
  a = await agent(s, 'claims-a', '0');
});
test.after(async () => {
  await a?.stop();
  await s?.down();
  await other?.down();
});

test('a second agent granted a core another agent on this host holds is refused, naming that agent and the free cores', async () => {
  const refused = await agent(s, 'claims-b', '0').then(async (b) => { await b.stop(); return undefined; }, (e: Error) => e);
  assert.ok(refused, 'refused');
  assert.match(refused!.message, `--cores: core 0 is held by agent claims-a (pid ${process.pid}) on this host`);
  const b = await agent(s, 'claims-b', '1');
  assert.equal(b.hardware.core_ids, [1]);
  await b.stop();
});

test('an agent of another cluster on the same host (its own state directory, its own process) is refused the same core', () => {
  const r = spawnSync(process.execPath, [...CLI_NODE_FLAGS, CLI, '--state-dir', other.dir, 'agent', '--node-id', 'claims-elsewhere', '--cores', '0', '--memory-gb', '1', '--shape-interfaces', ''], { encoding: 'utf8', timeout: 60_000 });
  assert.is.not(r.status, 0);
  assert.match(r.stderr, 'core 0 is held by agent claims-a');
});

test('memory is split: one agent cannot be granted more than the others left, and one given none takes only what is left', async () => {
  const host = (await import('node:os')).totalmem() / 1024 ** 3;
  const greedy = await agent(s, 'claims-c', '1', Math.floor(host)).then(async (c) => { await c.stop(); return undefined; }, (e: Error) => e);
  assert.ok(greedy);
  assert.match(greedy!.message, /--memory-gb: \d+ GB asked, but only [\d.]+ of this host's/);
  const rest = await startAgent({
    nodeId: 'claims-c', endpoints: s.endpoints, validation: s.validation, log: s.log, grant: { cores: '1' },
    outputDir: path.join(s.dir, 'output', 'claims-c'), spoolDir: path.join(s.dir, 'spool', 'claims-c'), enforcement: { shape_interfaces: [] },
  });
  try {
    assert.ok(rest.hardware.memory_gb <= host - 2 + 0.1, `${rest.hardware.memory_gb} GB taken, with 2 GB held by claims-a`);
  } finally {
    await rest.stop();
  }
});

test('a stopped agent gives its claim back: its core can be granted again', async () => {
  await a!.stop();
  a = undefined;
  a = await waitFor('core 0 to be free again', () => agent(s, 'claims-a2', '0').catch(() => undefined), 10_000);
  assert.equal(a.hardware.core_ids, [0]);
});

test.run();
