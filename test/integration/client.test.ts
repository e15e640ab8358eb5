/**
 * The typed client (`prescient/client`, issue 20) against a real stack, imported as a user
 * imports it: by the package's own name, which Node resolves through package.json "exports" to
 * the built JS. One coordinator and one agent on one core; `alice` speaks as a client
 * certificate (her own jobs' events only), `ops` as an operator (the task records too).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ClientClosedError, NoSuchJobError, Prescient, SchemaValidationError, UnknownKindError, WrongKindError, isFinalEvent, type TaskEvent,
} from 'prescient/client';
import { EVENTS_STREAM, JOBS_STREAM } from '../../shared/index.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import type { AgentHandle } from '../../node-agent/index.js';
import { agent, coordinator, smallJob, startStack, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c: CoordinatorHandle;
let a: AgentHandle;
let alice: Prescient;
let ops: Prescient;
let done = '';

test.before(async () => {
  try {
    s = await startStack('client');
    c = await coordinator(s, 'c1');
    // Node ids are claimed host-wide: a name of its own, so another suite's agent on this host is no clash.
    a = await agent(s, `client-${process.pid}`, '0');
    alice = await Prescient.connect({ stateDir: s.dir, identity: 'client/alice' });
    ops = await Prescient.connect({ stateDir: s.dir, identity: 'admin/ops' });
  } catch (e) {
    // uvu drops an error thrown by a `before` hook without a word.
    console.error('setting up failed:', e);
    throw e;
  }
});
test.after(async () => {
  await alice?.close();
  await ops?.close();
  await a?.stop();
  await c?.stop();
  await s?.down();
});

/** The jobs stream's last sequence: it moves whenever anything is published there. */
const lastSeq = async () => (await (await s.nc.jetstreamManager()).streams.info(JOBS_STREAM)).state.last_seq;
/** The consumers the client has made on the events stream and not deleted. */
async function clientConsumers(): Promise<string[]> {
  const names: string[] = [];
  for await (const ci of (await s.nc.jetstreamManager()).consumers.list(EVENTS_STREAM)) if (ci.name.startsWith('client_')) names.push(ci.name);
  return names;
}
async function refusal(p: Promise<unknown>): Promise<Error> {
  try { await p; } catch (e) { return e as Error; }
  throw new Error('it was not refused');
}

test('an invalid job is refused with every field named, before anything is sent', async () => {
  const before = await lastSeq();
  const bad = { input: { synthetic: { source: 'nope' }, resolution: '320x240', fps: -1, duration_s: 1 }, output: { codec: 'mpeg9', rate_control: { mode: 'crf', crf: 28 } }, priority: 'urgent' };
  const one = await refusal(alice.submit(bad));
  assert.instance(one, SchemaValidationError);
  const fields = (one as SchemaValidationError).issues.map((i) => i.field);
  for (const f of ['input.synthetic.source', 'input.fps', 'output.codec', 'priority']) assert.ok(fields.includes(f), `${f} not in ${fields.join(', ')}`);
  // In a batch, the good job is not sent either, and each issue names its document.
  const many = await refusal(alice.submit([smallJob(), bad]));
  assert.instance(many, SchemaValidationError);
  const named = (many as SchemaValidationError).issues.map((i) => i.field);
  assert.ok(named.includes('[1].output.codec') && named.includes('[1].priority'), named.join(', '));
  assert.not.ok(named.some((f) => f.startsWith('[0]')), named.join(', '));
  assert.is(await lastSeq(), before, 'nothing was published');
});

test('a client\'s job is watched through placed, running and succeeded, and status and list read it from its events', async () => {
  const [id] = await alice.submit(smallJob());
  const seen: TaskEvent[] = [];
  for await (const e of alice.watch(id)) seen.push(e);
  const states = seen.map((e) => e.state);
  const order = ['placed', 'running', 'succeeded'].map((x) => states.indexOf(x as TaskEvent['state']));
  assert.ok(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1])), states.join(' → '));
  assert.ok(isFinalEvent(seen.at(-1)!), 'the iteration ended at the final event');
  assert.is(seen.at(-1)!.owner, 'alice');
  done = id;

  const st = await alice.status(id);
  assert.equal([st.source, st.state], ['events', 'succeeded']);
  const mine = await alice.list({ state: 'succeeded' });
  assert.is(mine.source, 'events');
  assert.equal(mine.jobs.map((j) => [j.job_id, j.state, j.owner]), [[id, 'succeeded', 'alice']]);
  assert.equal((await alice.list({ state: ['queued', 'running'] })).jobs, []);
  assert.equal(await clientConsumers(), [], 'every consumer it made is deleted');
});

test('an operator reads the job\'s record, lists every job, and waits on a submission for its final event', async () => {
  const st = await ops.status(done);
  assert.is(st.source, 'record');
  assert.ok(st.source === 'record' && st.task.owner === 'alice' && st.task.result && st.state === 'succeeded');
  const [final] = await ops.submit(smallJob(), { wait: true, timeoutMs: 60_000 });
  assert.is(final.state, 'succeeded');
  assert.ok(isFinalEvent(final));
  const all = await ops.list({ limit: 10 });
  assert.is(all.source, 'records');
  assert.equal(all.jobs.map((j) => j.job_id).sort(), [done, final.job_id].sort());
  assert.equal((await ops.list({ limit: 1 })).jobs.map((j) => j.job_id), [final.job_id], 'newest first');
  const nobody = await refusal(ops.status('j-no-such-job'));
  assert.instance(nobody, NoSuchJobError);
  assert.is((nobody as NoSuchJobError).jobId, 'j-no-such-job');
  assert.instance(await refusal(alice.status('j-no-such-job')), NoSuchJobError);
});

test('a running job is cancelled, and its watch ends cancelled', async () => {
  const [id] = await alice.submit(smallJob({ input: { resolution: '1280x720', duration_s: 60 }, output: { preset: 'slow' } }));
  for await (const e of alice.watch(id)) if (e.state === 'running') break;
  const r = await alice.cancel(id, { wait: true, timeoutMs: 30_000 });
  assert.is(r.outcome, 'ended');
  assert.ok(r.outcome === 'ended' && r.final.state === 'cancelled', JSON.stringify(r));
  const again = await ops.cancel(id);
  assert.equal(again, { job_id: id, outcome: 'already_ended', state: 'cancelled' });
  assert.instance(await refusal(ops.cancel('j-no-such-job')), NoSuchJobError);
  assert.equal(await clientConsumers(), [], 'breaking out of a watch deletes its consumer');
});

test('stop refuses a batch job and sends nothing; a client asked to stop a job it cannot see says it cannot tell', async () => {
  const before = await lastSeq();
  const byOps = await refusal(ops.stop(done));
  assert.instance(byOps, WrongKindError);
  assert.match(byOps.message, /is a batch job, not a live channel.*cancel it instead/);
  assert.instance(await refusal(alice.stop(done)), WrongKindError, 'alice submitted it here: the client knows its kind');
  const unseen = await refusal(alice.stop('j-elsewhere'));
  assert.instance(unseen, UnknownKindError);
  assert.is((unseen as UnknownKindError).jobId, 'j-elsewhere');
  assert.is(await lastSeq(), before, 'nothing was published');
});

test('a watch is ended by its AbortSignal, and by close(), without leaving its consumer behind', async () => {
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 300);
  const aborted = await refusal((async () => { for await (const _ of alice.watch('j-never-submitted', { signal: ac.signal })) { /* none come */ } })());
  assert.is(aborted.name, 'AbortError');
  assert.equal(await clientConsumers(), []);

  const bob = await Prescient.connect({ stateDir: s.dir, identity: 'client/bob' });
  const watching = refusal((async () => { for await (const _ of bob.watch('j-never-submitted')) { /* none come */ } })());
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await clientConsumers()).length, 1, 'the watch has its consumer');
  await bob.close();
  assert.instance(await watching, ClientClosedError);
  assert.equal(await clientConsumers(), []);
  assert.instance(await refusal(bob.submit(smallJob())), ClientClosedError);
});

test.run();
