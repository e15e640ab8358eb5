/**
 * `prescient plan job.yaml` against a live cluster (issue 19, Nomad's `job plan`): it names the
 * node the leader then picks for the same job on an idle cluster, shows the prediction with its
 * bounds, says why a job that fits nowhere would wait or be refused, and submits nothing.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import YAML from 'yaml';
import type { AgentHandle } from '../../node-agent/index.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import { JetStreamTaskStore } from '../../coordinator/index.js';
import { agent, cliRun, coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c: CoordinatorHandle;
const agents: AgentHandle[] = [];

test.before(async () => {
  s = await startStack('plan-live');
  c = await coordinator(s, 'c1');
  // Unequal nodes, so best-fit has a choice to make.
  agents.push(await agent(s, 'plan-small', '0', 1), await agent(s, 'plan-large', '1', 3));
  await waitFor('both nodes in the ledger', () => c.leader()?.ledger.snapshot().count === 2);
  // The CLI reads the ledger the leader saved.
  await new Promise((r) => setTimeout(r, 500));
});
test.after(async () => {
  for (const a of agents) await a.stop().catch(() => undefined);
  await c?.stop();
  await s?.down();
});

const planOf = async (job: unknown) => {
  const file = path.join(s.dir, `plan-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, YAML.stringify(job));
  const r = await cliRun(s, ['plan', file, '--json']);
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { outcome: string; node_id?: string; reason?: string; prediction?: { expected: { duration_s: number; memory_gb: number }; upper: { duration_s: number; memory_gb: number } }; estimated_start?: string | null };
};

test('the live plan names the node the leader then picks for the same job, with the prediction and its bounds, and submits nothing', async () => {
  const job = smallJob({ input: { resolution: '640x360', duration_s: 2 } });
  const before = (await (await JetStreamTaskStore.open(s.nc.jetstream())).listActive()).length;
  const p = await planOf(job);
  assert.is(p.outcome, 'placed');
  assert.ok(p.node_id === 'plan-small' || p.node_id === 'plan-large', p.node_id);
  assert.ok(p.prediction!.upper.duration_s >= p.prediction!.expected.duration_s && p.prediction!.upper.memory_gb >= p.prediction!.expected.memory_gb);
  assert.is((await (await JetStreamTaskStore.open(s.nc.jetstream())).listActive()).length, before, 'nothing was submitted');
  const id = await submit(s, job);
  const placed = (await events(s, id, 60_000)).find((e) => e.state === 'placed' || e.state === 'running');
  assert.is(placed?.node_id, p.node_id, 'the leader picked the node the plan named');
});

test('a job no node can hold (NVENC on a fleet with no GPU) is shown waiting or refused with the core\'s reason, and the human output says nothing was submitted', async () => {
  const p = await planOf(smallJob({ output: { codec: 'h264', encoder: 'h264_nvenc', preset: 'p4' } }));
  assert.ok(p.outcome === 'queued' || p.outcome === 'rejected', JSON.stringify(p));
  assert.match(p.reason ?? '', /GPU|gpu/, p.reason);
  const file = path.join(s.dir, 'plan-text.yaml');
  writeFileSync(file, YAML.stringify(smallJob()));
  const r = await cliRun(s, ['plan', file]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /would be placed on plan-(small|large)[\s\S]*predicted \(.*bound at 95 %\)[\s\S]*nothing was submitted/);
});

test.run();
