/**
 * The leader's decisions replayed (coordinator/core): each leader appends the events it fed its
 * core to an event log; `prescient replay` re-runs them through a fresh core and must decide
 * the same, here across a failover with jobs running on two real agents.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import type { AgentHandle } from '../../node-agent/index.js';
import { JetStreamTaskStore } from '../../coordinator/index.js';
import type { ReplayResult } from '../../coordinator/core/index.js';
import { agent, cliRun, coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c1: CoordinatorHandle | undefined;
let c2: CoordinatorHandle | undefined;
const agents: AgentHandle[] = [];
const logOf = (id: string) => path.join(s.dir, `events-${id}.jsonl`);

test.before(async () => {
  s = await startStack('replay');
  c1 = await coordinator(s, 'c1', { eventLog: logOf('c1') });
  agents.push(await agent(s, 'node-a', '0'), await agent(s, 'node-b', '1'));
  await waitFor('both nodes in the ledger', () => c1!.leader()?.ledger.nodeIds().length === 2);
});
test.after(async () => {
  for (const a of agents) await a.stop();
  await c1?.stop();
  await c2?.stop();
  await s?.down();
});

const replay = async (file: string) => {
  const r = await cliRun(s, ['replay', file, '--json']);
  return { code: r.code, result: JSON.parse(r.stdout || '{}') as ReplayResult, stderr: r.stderr };
};

test('a failover incident replays to identical placements, the old leader\'s term and the new one\'s', async () => {
  const store = await JetStreamTaskStore.open(s.nc.jetstream());
  const long = await submit(s, smallJob({ input: { resolution: '1280x720', duration_s: 20 }, output: { preset: 'medium' } }));
  const early = [await submit(s, smallJob()), await submit(s, smallJob())];
  await waitFor('the long encode to run', async () => (await store.get(long))?.state === 'running', 60_000);
  // The short ones finish under c1 (one after the other on the free node) while the long one runs on.
  for (const id of early) assert.is((await events(s, id)).at(-1)!.state, 'succeeded', id);
  assert.is((await store.get(long))?.state, 'running', 'the long encode outlasts them');
  await c1!.stop();
  c1 = undefined;
  c2 = await coordinator(s, 'c2', { eventLog: logOf('c2') });
  await waitFor('c2 to lead', () => c2!.leader());
  const late = [await submit(s, smallJob()), await submit(s, smallJob({ priority: 'premium' }))];
  for (const id of [long, ...early, ...late]) assert.is((await events(s, id)).at(-1)!.state, 'succeeded', id);
  await c2!.stop();
  c2 = undefined;

  for (const id of ['c1', 'c2']) {
    const { code, result, stderr } = await replay(logOf(id));
    assert.is(code, 0, `${id}: ${stderr} ${JSON.stringify(result.differences)}`);
    assert.is(result.differing, 0);
    assert.ok(result.batches > 3, `${id}: ${result.batches} batches`);
  }
  const a = (await replay(logOf('c1'))).result, b = (await replay(logOf('c2'))).result;
  assert.ok(a.placements >= 3, `c1 placed ${a.placements}`);
  assert.ok(b.placements >= 2, `c2 placed ${b.placements}`);
  assert.ok(b.terms[0] > a.terms[0], 'the new leader\'s term is later');
  // c2 began by resuming c1's running encode from the saved ledger, before its agent reported.
  const started = JSON.parse(readFileSync(logOf('c2'), 'utf8').split('\n')[0]) as { events: { kind: string; tasks?: { id: string }[] }[] };
  assert.ok(started.events.find((e) => e.kind === 'Started')!.tasks!.some((t) => t.id === long), 'the running encode is among the resumed tasks');
});

test('a log whose decisions were changed does not replay the same, and replay says where', async () => {
  const lines = readFileSync(logOf('c2'), 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes('"assigns":[["'));
  assert.ok(i >= 0, 'the log has an assignment');
  const tampered = path.join(s.dir, 'tampered.jsonl');
  writeFileSync(tampered, lines.map((l, k) => (k === i ? l.replace(/"assigns":\[\["([^"]+)","node-(a|b)"/, (_m, id, n) => `"assigns":[["${id}","node-${n === 'a' ? 'b' : 'a'}"`) : l)).join('\n'));
  const { code, result } = await replay(tampered);
  assert.is(code, 1);
  assert.is(result.differing, 1);
  assert.is(result.differences[0].batch, i + 1);
});

test.run();
