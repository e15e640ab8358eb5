/**
 * Poison submissions, published straight onto NATS by a client that skips the CLI: each is
 * refused with a record that says why, or set aside in the dead-letter stream with why; none is
 * redelivered forever or dropped without a word, and valid jobs behind them still run.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { StorageType } from 'nats';
import { DEAD_LETTER_STREAM, JOBS_STREAM, TASKS_BUCKET, newJobId, submitSubject } from '../../shared/index.js';
import { listDeadLetters } from '../../coordinator/index.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import type { AgentHandle } from '../../node-agent/index.js';
import { TEST_OWNER, agent, cliRun, coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c: CoordinatorHandle | undefined;
let a: AgentHandle | undefined;

test.before(async () => {
  s = await startStack('poison');
  c = await coordinator(s, 'c1');
  a = await agent(s, 'node-a', '0');
});
test.after(async () => {
  await a?.stop();
  await c?.stop();
  await s?.down();
});

const raw = (text: string) => s.nc.jetstream().publish(submitSubject(TEST_OWNER), new TextEncoder().encode(text));
const pending = async () => (await (await s.nc.jetstreamManager()).streams.info(JOBS_STREAM)).state.messages;
const deadLetters = () => listDeadLetters(s.nc, 100);
const status = async (id: string) => {
  const r = await cliRun(s, ['status', id, '--json']);
  assert.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { state: string; reason: string; schema: Record<string, unknown> };
};

test('a submission nested 5,000 levels deep or over 64 KB is set aside unparsed, with why, and the job behind it runs', async () => {
  const deep = newJobId(), big = newJobId();
  await raw(`{"job_id":"${deep}","submitted_at":0,"schema":{"input":${'['.repeat(5000)}${']'.repeat(5000)},"output":{"codec":"h264"},"priority":"standard","submitter":"x"}}`);
  await raw(JSON.stringify({ job_id: big, submitted_at: 0, schema: smallJob({ output: { codec: 'h264', preset: 'x'.repeat(600_000) } }) }));
  assert.is((await events(s, await submit(s, smallJob()))).at(-1)!.state, 'succeeded');
  const dead = await waitFor('both dead letters', async () => { const d = await deadLetters(); return d.some((x) => x.job_id === deep) && d.some((x) => x.job_id === big) ? d : undefined; });
  assert.match(dead.find((x) => x.job_id === deep)!.reason, /nested deeper than 32 levels/);
  const b = dead.find((x) => x.job_id === big)!;
  assert.match(b.reason, /bytes, over the 65536 a submission may have/);
  assert.ok(b.head.length <= 512, 'the dead letter keeps the head of it, not the whole');
  await waitFor('nothing left to deliver', async () => (await pending()) === 0);
});

test('a long value is not repeated in the reason a refused job keeps, nor is a large schema kept', async () => {
  const id = newJobId();
  await raw(JSON.stringify({ job_id: id, submitted_at: 0, schema: smallJob({ output: { codec: 'h264', preset: 'x'.repeat(40_000) } }) }));
  const evs = await events(s, id);
  assert.equal(evs.map((e) => e.state), ['rejected']);
  assert.match(evs[0].reason ?? '', /output\.preset/);
  assert.ok((evs[0].reason ?? '').length <= 400, `reason is ${(evs[0].reason ?? '').length} characters`);
  const t = await status(id);
  assert.match(String(t.schema.not_kept), /bytes, over/);
});

test('a submission with no valid job id is set aside as a dead letter that says why', async () => {
  await raw(JSON.stringify({ job_id: '../../etc/passwd', submitted_at: 0, schema: smallJob() }));
  await raw('{{{ not json');
  const dead = await waitFor('both dead letters', async () => {
    const d = await deadLetters();
    const badId = d.find((x) => /job_id must match/.test(x.reason) && x.head.includes('../../etc/passwd'));
    const notJson = d.find((x) => x.reason === 'not taken: it is not JSON' && x.head === '{{{ not json');
    return badId && notJson ? { badId, notJson } : undefined;
  });
  assert.is(dead.badId.job_id, undefined, 'an invalid id is not given as its job id');
  await waitFor('nothing left to deliver', async () => (await pending()) === 0);
});

test('a submission whose record cannot be written while the store answers is set aside at once, and nothing is held for it', async () => {
  // The task bucket takes records up to 8 KB (someone lowered its limit); this refusal keeps its
  // 12 KB schema, so its record is too large on every delivery, while smaller ones still fit.
  const jsm = await s.nc.jetstreamManager();
  const stream = `KV_${TASKS_BUCKET}`;
  const config = (await jsm.streams.info(stream)).config;
  await jsm.streams.update(stream, { ...config, max_msg_size: 8192 });
  try {
    const id = newJobId();
    const before = (await deadLetters()).length;
    await raw(JSON.stringify({ job_id: id, submitted_at: 0, schema: { ...smallJob(), unknown_field: 'x'.repeat(12_000) } }));
    const dead = await waitFor('its dead letter', async () => (await deadLetters()).find((d) => d.job_id === id));
    assert.match(dead.reason, /record could not be written while the task store answered/);
    assert.is(dead.deliveries, 1, 'set aside on its first delivery, not retried');
    assert.is((await deadLetters()).length, before + 1);
    await waitFor('nothing left to deliver', async () => (await pending()) === 0);
    assert.is(c!.leader()!.ledger.reservation(id), undefined, 'nothing reserved for it');
    assert.is((await events(s, await submit(s, smallJob()))).at(-1)!.state, 'succeeded', 'the leader goes on');
  } finally {
    await jsm.streams.update(stream, { ...config, max_msg_size: config.max_msg_size });
  }
});

test('garbage written where a job\'s record will go is not a record: the job is recorded over it and runs', async () => {
  const id = newJobId();
  const kv = await s.nc.jetstream().views.kv(TASKS_BUCKET, { history: 1, storage: StorageType.File });
  await kv.put(id, new TextEncoder().encode('{{ garbage'));
  await raw(JSON.stringify({ job_id: id, submitted_at: 0, schema: smallJob() }));
  assert.is((await events(s, id)).at(-1)!.state, 'succeeded');
  assert.ok(s.logs.some((l) => l.includes(`task record ${id} ignored: not a JSON object`)), 'the garbage was noticed');
});

test('prescient dead-letters lists what was set aside, with why', async () => {
  const r = await cliRun(s, ['dead-letters', '--json']);
  assert.is(r.code, 0, r.stderr);
  const dead = JSON.parse(r.stdout) as { reason: string }[];
  assert.ok(dead.length >= 4 && dead.every((d) => d.reason.length > 0), r.stdout.slice(0, 500));
  const text = await cliRun(s, ['dead-letters', '--limit', '1']);
  assert.match(text.stdout, /^#\d+ /);
  const bad = await cliRun(s, ['dead-letters', '--limit', 'lots']);
  assert.is(bad.code === 0, false);
  assert.match(bad.stderr + bad.stdout, /--limit/);
});

test('the dead-letter stream is bounded', async () => {
  const info = await (await s.nc.jetstreamManager()).streams.info(DEAD_LETTER_STREAM);
  assert.ok(info.config.max_bytes > 0 && info.config.max_age > 0);
});

test.run();
