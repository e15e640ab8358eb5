/**
 * The SLA queue and cancellation on a real cluster: one agent with one core runs a long encode
 * while jobs of three classes wait in SLA order; `prescient cancel` ends a queued job at once
 * and stops a running one, releasing its reservation and leaving no partial output.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import type { AgentHandle } from '../../node-agent/index.js';
import { JetStreamTaskStore } from '../../coordinator/index.js';
import type { TaskEvent } from '../../shared/index.js';
import { cliRun, events, oneNodeCluster, smallJob, submit, waitFor, type OneNodeCluster, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c: CoordinatorHandle;
let a: AgentHandle;
let long = '';
const queued: Record<string, string> = {};

let cluster: OneNodeCluster | undefined;
test.before(async () => {
  cluster = await oneNodeCluster('queue-cancel');
  ({ s, c, a } = cluster);
});
test.after(async () => { await cluster?.down(); });

const state = async (id: string) => (await (await JetStreamTaskStore.open(s.nc.jetstream())).get(id))?.state;
const cancel = async (id: string) => {
  const r = await cliRun(s, ['cancel', id, '--json', '--timeout', '60']);
  return { ...r, event: r.stdout.trim() ? (JSON.parse(r.stdout) as TaskEvent) : undefined };
};

test('while a long encode holds the only core, waiting jobs queue in SLA order', async () => {
  long = await submit(s, smallJob({ input: { resolution: '1280x720', duration_s: 60 }, output: { preset: 'medium' } }));
  await waitFor('the long encode to run', async () => (await state(long)) === 'running', 60_000);
  queued.batch = await submit(s, { ...smallJob({ priority: 'batch' }), submitter: 'bulk' });
  queued.premium = await submit(s, { ...smallJob({ priority: 'premium' }), submitter: 'carol' });
  queued.standard = await submit(s, { ...smallJob({ priority: 'standard' }), submitter: 'dave' });
  const order = await waitFor('three queued jobs', () => {
    const q = c.leader()!.queue().map((t) => t.id);
    return q.length === 3 && q;
  });
  assert.equal(order, [queued.premium, queued.standard, queued.batch]);
});

test('prescient queue shows each waiting job\'s position, class, reason and an estimated start after the long encode', async () => {
  const r = await cliRun(s, ['queue', '--json']);
  assert.is(r.code, 0, r.stderr);
  assert.ok(r.stdout.includes(queued.premium), `queue output: ${r.stdout} ${r.stderr}`);
  const rows = (JSON.parse(r.stdout) as { queue: Array<{ position: number; job_id: string; class: string; reason: string; estimated_start: string | null; estimate: string }> }).queue;
  assert.equal(rows.map((x) => [x.position, x.job_id, x.class]), [[1, queued.premium, 'premium'], [2, queued.standard, 'standard'], [3, queued.batch, 'batch']]);
  assert.ok(rows.every((x) => /no node has room now/.test(x.reason)), rows.map((x) => x.reason).join(' | '));
  assert.ok(rows.every((x) => x.estimated_start !== null && Date.parse(x.estimated_start) > Date.now()), JSON.stringify(rows));
  assert.match(rows[0].estimate, /after earlier work on node-a ends/);
  const text = await cliRun(s, ['queue']);
  assert.match(text.stdout, new RegExp(`1\\s+${queued.premium}\\s+premium`));
});

test('prescient nodes shows the node, its reservation and how each resource is enforced', async () => {
  const r = await cliRun(s, ['nodes', '--json']);
  assert.is(r.code, 0, r.stderr);
  const { nodes } = JSON.parse(r.stdout) as { nodes: Array<{ node_id: string; cores: { total: number; free: number }; reservations: string[]; enforcement: Record<string, { mode: string; detail: string }> }> };
  assert.is(nodes.length, 1);
  assert.is(nodes[0].node_id, 'node-a');
  assert.equal(nodes[0].cores, { ...nodes[0].cores, total: 1, free: 0 });
  assert.equal(nodes[0].reservations, [long]);
  for (const res of ['cpu', 'memory', 'gpu', 'bandwidth']) assert.ok(['enforced', 'accounted-only'].includes(nodes[0].enforcement[res]?.mode), `${res}: ${JSON.stringify(nodes[0].enforcement[res])}`);
  assert.is(nodes[0].enforcement.cpu.mode, 'enforced', 'the agent pins encodes to their cores');
});

test('cancelling a queued job ends it at once and takes it out of the queue', async () => {
  const r = await cancel(queued.standard);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.event?.state, 'cancelled');
  assert.match(r.event!.reason!, /while queued/);
  assert.equal(c.leader()!.queue().map((t) => t.id), [queued.premium, queued.batch]);
  assert.is(await state(long), 'running', 'the running encode is untouched');
});

test('cancelling the running encode stops ffmpeg, releases its reservation and leaves no partial output', async () => {
  assert.ok(c.leader()!.ledger.reservation(long), 'it holds a reservation before');
  const r = await cancel(long);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.event?.state, 'cancelled');
  assert.match(r.event!.reason!, /cancelled on request/);
  assert.not.ok(a.running().includes(long), 'the agent no longer runs it');
  const out = path.join(s.dir, 'output', 'node-a');
  assert.equal(readdirSync(out).filter((f) => f.startsWith(long)), [], 'no output or .part file of the cancelled encode');
});

test('the freed core then runs the queued jobs, premium first', async () => {
  const [p, b] = await Promise.all([events(s, queued.premium), events(s, queued.batch)]);
  assert.is(p.at(-1)!.state, 'succeeded');
  assert.is(b.at(-1)!.state, 'succeeded');
  const placedAt = (evs: TaskEvent[]) => evs.find((e) => e.state === 'placed')!.at;
  assert.ok(placedAt(p) <= placedAt(b), 'premium was placed first');
  assert.equal(c.leader()!.ledger.allReservations(), []);
});

test('cancelling a finished job says so and changes nothing', async () => {
  const r = await cliRun(s, ['cancel', queued.premium]);
  assert.is(r.code, 3);
  assert.match(r.stdout, /already succeeded/);
  assert.is(await state(queued.premium), 'succeeded');
});

test.run();
