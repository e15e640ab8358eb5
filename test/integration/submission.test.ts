/**
 * Submissions on NATS: kept by JetStream while no coordinator runs, refused with field-named
 * errors when invalid (by the CLI before publishing, and by the leader for anything published
 * around it), and never reserving anything when refused.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { JOBS_STREAM, newJobId, submitSubject } from '../../shared/index.js';
import { publishSubmission } from '../../coordinator/index.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import type { AgentHandle } from '../../node-agent/index.js';
import { TEST_OWNER, agent, cliRun, coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c: CoordinatorHandle | undefined;
let a: AgentHandle | undefined;

test.before(async () => { s = await startStack('submission'); });
test.after(async () => {
  await a?.stop();
  await c?.stop();
  await s?.down();
});

const pendingSubmissions = async () => (await (await s.nc.jetstreamManager()).streams.info(JOBS_STREAM)).state.messages;
let early: string[] = [];

test('jobs submitted while no coordinator is up wait in JetStream', async () => {
  const file = path.join(s.dir, 'early.yaml');
  writeFileSync(file, [smallJob(), smallJob({ priority: 'premium' })].map((j) => YAML.stringify(j)).join('---\n'));
  const r = await cliRun(s, ['submit', file, '--json']);
  assert.is(r.code, 0, r.stderr);
  early = (JSON.parse(r.stdout) as { jobs: string[] }).jobs;
  assert.is(early.length, 2);
  assert.is(await pendingSubmissions(), 2);
});

test('the CLI refuses an invalid job naming each bad field, and publishes nothing', async () => {
  const bad = smallJob({ output: { codec: 'divx', rate_control: { mode: 'bitrate', bitrate_kbps: -1 } }, input: { resolution: '0x0' } });
  const file = path.join(s.dir, 'bad.yaml');
  writeFileSync(file, YAML.stringify(bad));
  const r = await cliRun(s, ['submit', file, '--json']);
  assert.is(r.code, 2);
  const fields = (JSON.parse(r.stdout) as { error: { issues: { field: string }[] } }).error.issues.map((i) => i.field).sort();
  // The bitrate is wrong whatever the codec: it is named too, not left until the codec is fixed.
  assert.equal(fields, ['input.resolution.height', 'input.resolution.width', 'output.codec', 'output.rate_control.bitrate_kbps']);
  const text = await cliRun(s, ['submit', file]);
  assert.match(text.stdout + text.stderr, /output\.codec: unknown value "divx"/);
  assert.is(await pendingSubmissions(), 2, 'nothing was published');
});

test('the CLI refuses an input file outside the allowed roots and one that does not exist', async () => {
  const outside = path.join(s.dir, 'outside.yaml');
  writeFileSync(outside, YAML.stringify({ ...smallJob(), input: { path: '/etc/hostname' } }));
  const r1 = await cliRun(s, ['validate', outside, '--json']);
  assert.is(r1.code, 2);
  assert.match(r1.stdout, /outside the allowed input roots/);
  const missing = path.join(s.dir, 'missing.yaml');
  writeFileSync(missing, YAML.stringify({ ...smallJob(), input: { path: path.join(s.dir, 'media', 'nope.mp4') } }));
  const r2 = await cliRun(s, ['validate', missing, '--json']);
  assert.is(r2.code, 2);
  assert.match(r2.stdout, /"field": "input.path"[\s\S]*does not exist/);
});

test('once a leader and an agent start, the waiting jobs run', async () => {
  c = await coordinator(s, 'c1');
  a = await agent(s, 'node-a', '0');
  const finals = await Promise.all(early.map(async (id) => (await events(s, id)).at(-1)!));
  assert.equal(finals.map((f) => f.state), ['succeeded', 'succeeded']);
  await waitFor('the submissions to be acknowledged', async () => (await pendingSubmissions()) === 0);
});

test('a job published around the CLI with bad fields is rejected by the leader with the field names, and nothing is reserved', async () => {
  const id = await submit(s, { input: { synthetic: { source: 'nosuchsource' }, resolution: '640x360', fps: 30, duration_s: 1 }, output: { codec: 'h264', preset: 'ludicrous', rate_control: { mode: 'crf', crf: 99 }, options: { 'filter_complex': 'movie=/etc/passwd' } } });
  const evs = await events(s, id);
  assert.equal(evs.map((e) => e.state), ['rejected']);
  const reason = evs[0].reason!;
  for (const f of ['input.synthetic.source', 'output.preset', 'output.rate_control.crf', 'output.options.filter_complex']) assert.ok(reason.includes(`${f}:`), `${f} named in: ${reason}`);
  assert.is(c!.leader()!.ledger.allReservations().length, 0);
  assert.is(evs[0].allocation, undefined);
});

test('a message that is not JSON is dropped without stopping the leader', async () => {
  await s.nc.jetstream().publish(submitSubject(TEST_OWNER), new TextEncoder().encode('{{{ not json'));
  const evs = await events(s, await submit(s, smallJob()));
  assert.is(evs.at(-1)!.state, 'succeeded');
});

test('prescient status --json shows a finished job\'s record', async () => {
  const r = await cliRun(s, ['status', early[0], '--json']);
  assert.is(r.code, 0, r.stderr);
  const t = JSON.parse(r.stdout) as { state: string; result: { frames: number } };
  assert.is(t.state, 'succeeded');
  assert.is(t.result.frames, 25);
});

test('a submission back-dated by its client is queued from when JetStream stored it, not from the date it claims', async () => {
  const id = newJobId();
  const before = Date.now();
  await publishSubmission(s.nc.jetstream(), TEST_OWNER, { job_id: id, submitted_at: 1, schema: smallJob() });
  assert.is((await events(s, id)).at(-1)!.state, 'succeeded');
  const r = await cliRun(s, ['status', id, '--json']);
  assert.is(r.code, 0, r.stderr);
  const t = JSON.parse(r.stdout) as { submitted_at: number };
  // Clocks here are one machine's: the stream's stamp lies between the publish and now.
  assert.ok(t.submitted_at >= before - 1000 && t.submitted_at <= Date.now(), `submitted_at ${t.submitted_at}, published at ${before}`);
});

test('a job id submitted again past JetStream\'s duplicate window is dropped, and the recorded job stays as it was', async () => {
  const before = await events(s, early[0]);
  // Published without a message id, so JetStream's duplicate window does not catch it: the leader must.
  const again = { job_id: early[0], submitted_at: Date.now(), schema: smallJob({ input: { resolution: '320x240' } }) };
  await s.nc.jetstream().publish(submitSubject(TEST_OWNER), new TextEncoder().encode(JSON.stringify(again)));
  // A job submitted after it has run: the duplicate was taken off the stream before it.
  assert.is((await events(s, await submit(s, smallJob()))).at(-1)!.state, 'succeeded');
  await waitFor('the submissions to be acknowledged', async () => (await pendingSubmissions()) === 0);
  const after = await events(s, early[0]);
  assert.is(after.length, before.length, 'no new event for the recorded job');
  const r = await cliRun(s, ['status', early[0], '--json']);
  const t = JSON.parse(r.stdout) as { state: string; result: { frames: number } };
  assert.is(t.state, 'succeeded');
  assert.is(t.result.frames, 25);
  assert.is(c!.leader()!.ledger.reservation(early[0]), undefined, 'nothing reserved for the duplicate');
});

test.run();
