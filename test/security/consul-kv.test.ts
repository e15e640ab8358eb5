/**
 * What coordinators read from stores anyone on the host could write (Consul's KV, the ledger's
 * JetStream bucket) is checked before it is used: a term that is not a number is refused, a
 * ledger term no election issued is overwritten rather than obeyed, and a leader deposed by a
 * real later term gives its Consul lock up at once so that a standby takes over.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { StorageType } from 'nats';
import { LEADER_KEY, LEDGER_BUCKET, META_BUCKET, TASKS_BUCKET, TERM_KEY, consulClient, parseLeaderInfo, pkiDirOf, readSecret } from '../../shared/index.js';
import { parseTerm } from '../../coordinator/election/consul.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import type { AgentHandle } from '../../node-agent/index.js';
import { agent, coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
const cs: CoordinatorHandle[] = [];
let a: AgentHandle | undefined;

test.before(async () => { s = await startStack('consul-kv'); });
test.after(async () => {
  await a?.stop();
  for (const c of cs) await c.stop();
  await s?.down();
});

const leading = () => cs.find((c) => c.leader());
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

test('a term and a leader key are read as numbers and names, or not at all', () => {
  assert.is(parseTerm('42'), 42);
  for (const bad of ['abc', '', '1e3', '-1', '9'.repeat(20), 'NaN']) assert.is(parseTerm(bad), undefined, bad);
  assert.equal(parseLeaderInfo('{"id":"c1","address":"127.0.0.1:5000","term":3}'), { id: 'c1', address: '127.0.0.1:5000', term: 3 });
  for (const bad of ['{', '[]', '{"id":"c1","address":"nowhere","term":3}', '{"id":"c1","address":"127.0.0.1:5000","term":"3"}', '{"id":"a b","address":"127.0.0.1:5000","term":1}']) {
    assert.type(parseLeaderInfo(bad), 'string', bad);
  }
});

/** What Consul answered a request, as `ok` or its status code. */
const outcome = (p: Promise<unknown>) => p.then(() => 'ok', (e: { statusCode?: number; message: string }) => String(e.statusCode ?? e.message));

test('without a token nobody can write the term, take the leader key or delete it; anyone can read who leads', async () => {
  const anonymous = consulClient(s.endpoints.consul_http);
  assert.is(await outcome(anonymous.kv.set(TERM_KEY, '99')), '403');
  assert.is(await outcome(anonymous.kv.set(LEADER_KEY, '{"id":"evil","address":"127.0.0.1:1","term":99}')), '403');
  assert.is(await outcome(anonymous.kv.del(LEADER_KEY)), '403');
  assert.is(await outcome(anonymous.session.create({ name: 'evil', ttl: '10s' })), '403');
  assert.is(await outcome(anonymous.kv.get(LEADER_KEY)), 'ok');
  assert.is(await outcome(anonymous.kv.get('prescient/anything-else')), '403');
  // A coordinator's token may write the term; the management token may do anything.
  assert.ok(readSecret(pkiDirOf(s.endpoints), 'consul-coordinator'), 'the stack made a coordinator token');
});

test('a term in Consul that is not a number is refused and logged, and the leader takes a proper term', async () => {
  // Only a holder of a write token can do this: an insider, or a stolen token.
  await consulClient(s.endpoints.consul_http, readSecret(pkiDirOf(s.endpoints), 'consul-management')).kv.set(TERM_KEY, 'abc');
  cs.push(await coordinator(s, 'c1'));
  const c1 = await waitFor('c1 to lead', () => cs[0].leader());
  assert.ok(Number.isSafeInteger(c1.term) && c1.term >= 1, `term ${c1.term}`);
  assert.ok(s.logs.some((l) => /prescient\/term holds "abc", not a term: ignored/.test(l)), 'the refusal is logged');
  a = await agent(s, 'node-a', '0');
  await waitFor('the agent to register under it', () => a!.term() === c1.term);
  assert.is((await events(s, await submit(s, smallJob()))).at(-1)!.state, 'succeeded');
});

test('a ledger term no election issued is overwritten, not obeyed, and the leader goes on placing', async () => {
  cs.push(await coordinator(s, 'c2'));
  const kv = await s.nc.jetstream().views.kv(LEDGER_BUCKET, { history: 1, storage: StorageType.File });
  await kv.put('meta', enc({ format: 1, term: 2 ** 40, version: 1 }));
  const before = leading()!;
  assert.is((await events(s, await submit(s, smallJob()))).at(-1)!.state, 'succeeded');
  assert.ok(s.logs.some((l) => /ledger meta carries term 1099511627776, above the highest ever issued \(\d+\): forged, overwritten/.test(l)), 'the forgery is logged');
  assert.is(leading(), before, 'the same leader leads');
});

test('a leader deposed by a later term gives its Consul lock up at once, and the standby takes over well inside the session TTL', async () => {
  const old = leading()!, term = old.leader()!.term;
  // A later term, issued as far as the durable record says, writes the ledger.
  const meta = await s.nc.jetstream().views.kv(META_BUCKET, { history: 1, storage: StorageType.File });
  await meta.put('term', new TextEncoder().encode(String(term + 5)));
  const ledger = await s.nc.jetstream().views.kv(LEDGER_BUCKET, { history: 1, storage: StorageType.File });
  await ledger.put('meta', enc({ format: 1, term: term + 5, version: 1 }));
  const started = Date.now();
  const id = await submit(s, smallJob()); // its reservation's save finds the later term
  const next = await waitFor('the standby to lead', () => cs.find((c) => c !== old && c.leader()), 10_000);
  assert.ok(Date.now() - started < 8_000, `took ${Date.now() - started} ms; the session TTL is 10 s`);
  assert.ok(next.leader()!.term > term + 5, 'under a term above the one that deposed the old leader');
  assert.ok(s.logs.some((l) => /resigned: deposed/.test(l)), 'the old leader says it resigned');
  assert.is((await events(s, id)).at(-1)!.state, 'succeeded', 'the job submitted meanwhile runs under the new leader');
});

test('task records that are not tasks are ignored and logged: the next leader starts and places', async () => {
  const kv = await s.nc.jetstream().views.kv(TASKS_BUCKET, { history: 1, storage: StorageType.File });
  await kv.put('not-json-0000', new TextEncoder().encode('{{{'));
  await kv.put('wrong-shape-0000', enc({ id: 'wrong-shape-0000', state: 'running', schema: {}, submitted_at: 'yesterday', updated_at: 1, term: 1, attempts: 0 }));
  await kv.put('someone-else-0000', enc({ id: 'another-id', state: 'queued', schema: {}, submitted_at: 1, updated_at: 1, term: 1, attempts: 0 }));
  const old = leading()!;
  await old.stop();
  cs.splice(cs.indexOf(old), 1);
  const next = await waitFor('another coordinator to lead', () => leading(), 30_000);
  assert.ok(s.logs.some((l) => /task record not-json-0000 ignored: not a JSON object/.test(l)));
  assert.ok(s.logs.some((l) => /task record wrong-shape-0000 ignored: submitted_at "yesterday" is not a number/.test(l)));
  assert.ok(s.logs.some((l) => /task record someone-else-0000 ignored: its id "another-id" is not its key/.test(l)));
  assert.is((await events(s, await submit(s, smallJob()))).at(-1)!.state, 'succeeded', `placed by ${next.id}`);
});

test.run();
