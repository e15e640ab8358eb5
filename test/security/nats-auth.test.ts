/**
 * NATS takes only the cluster's certificates, over TLS, and gives each member its role's
 * permissions with its own name in the subjects (issue 17): a client submits, cancels and
 * follows its own jobs only; a node publishes feedback for itself only; nobody but a
 * coordinator reads the leader's consumer or writes its buckets. Each attack runs with no
 * certificate, another CA's, or another member's, and the test checks that nothing changed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AckPolicy, DeliverPolicy, JSONCodec, connect, nanos, nuid, type NatsConnection } from 'nats';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  EVENTS_STREAM, FEEDBACK_STREAM, LOGS_STREAM, jobLogSubject, JOBS_CONSUMER, JOBS_STREAM, TASKS_BUCKET, cancelSubject, feedbackSubject, initCa, jobEventsSubject, loadIdentity,
  newJobId, pkiDirOf, readSecret, submitSubject, type FeedbackReport, type TaskEvent,
} from '../../shared/index.js';
import { connectBus, followJob, publishCancel, publishSubmission, readJobLogs } from '../../coordinator/bus/index.js';
import { agent, cliRun, events, identity, oneNodeCluster, smallJob, waitFor, type OneNodeCluster } from '../helpers/cluster.js';

let k: OneNodeCluster;
let alice: NatsConnection, bob: NatsConnection, node: NatsConnection;
let foreignDir: string;
const json = JSONCodec();

test.before(async () => {
  k = await oneNodeCluster('nats-auth', '0');
  alice = await connectBus(k.s.endpoints.nats_url, identity(k.s, 'client', 'alice'), 'alice');
  bob = await connectBus(k.s.endpoints.nats_url, identity(k.s, 'client', 'bob'), 'bob');
  node = await connectBus(k.s.endpoints.nats_url, identity(k.s, 'node', 'node-a'), 'node-a-probe');
  foreignDir = mkdtempSync(path.join(os.tmpdir(), 'prescient-foreign-ca-'));
  initCa(foreignDir);
});
test.after(async () => {
  for (const nc of [alice, bob, node]) await nc?.close().catch(() => undefined);
  await k?.down();
  if (foreignDir) rmSync(foreignDir, { recursive: true, force: true });
});

/** Resolves with 'refused: <why>' when the action fails, 'done' when it does not. */
const attempt = (p: Promise<unknown>) => Promise.race([
  p.then(() => 'done', (e: Error) => `refused: ${e.message}`),
  new Promise<string>((r) => setTimeout(() => r('refused: no answer within 5 s'), 5000)),
]);
const jobsInStream = async () => (await (await k.s.nc.jetstreamManager()).streams.info(JOBS_STREAM)).state.messages;

test('a connection with no certificate, over plain TCP, or with another CA\'s certificate is refused', async () => {
  const url = k.s.endpoints.nats_url;
  assert.match(await attempt(connect({ servers: url, reconnect: false, timeout: 3000 })), /^refused/);
  const ca = identity(k.s, 'admin', 'test').ca.toString();
  assert.match(await attempt(connect({ servers: url, reconnect: false, timeout: 3000, tls: { ca } })), /^refused/, 'TLS without a client certificate');
  const foreign = loadIdentity(foreignDir, { role: 'client', name: 'alice' });
  assert.match(await attempt(connect({ servers: url, reconnect: false, timeout: 3000, tls: { ca, cert: foreign.cert.toString(), key: foreign.key.toString() } })), /^refused/, 'alice\'s name, another CA');
});

test('a client submits as itself only, and its job is its own', async () => {
  const before = await jobsInStream();
  const forged = newJobId();
  assert.match(await attempt(bob.jetstream().publish(submitSubject('alice'), json.encode({ job_id: forged, submitted_at: Date.now(), schema: smallJob() }))), /^refused.*[Pp]ermission/);
  assert.is(await jobsInStream(), before, 'nothing was stored');
  const id = newJobId();
  await publishSubmission(alice.jetstream(), 'alice', { job_id: id, submitted_at: Date.now(), schema: smallJob() });
  const seen: TaskEvent[] = [];
  const last = await followJob(alice.jetstream(), { owner: 'alice', id }, (e) => seen.push(e), 120_000);
  assert.is(last?.state, 'succeeded');
  assert.ok(seen.every((e) => e.owner === 'alice'), 'every event names its owner');
  assert.is((await (await k.s.nc.jetstream().views.kv(TASKS_BUCKET)).get(id))?.json<{ owner: string }>().owner, 'alice');
  // Bob may not follow it, by its subject or by any wildcard.
  for (const filter of [jobEventsSubject('alice', id), 'prescient.job.*.*.events', '>']) {
    const jsm = await bob.jetstreamManager();
    assert.match(await attempt(jsm.consumers.add(EVENTS_STREAM, { name: `peek_${nuid.next()}`, filter_subject: filter, deliver_policy: DeliverPolicy.All, ack_policy: AckPolicy.None, inactive_threshold: nanos(10_000) })), /^refused/, filter);
  }
});

test('a client reads its own job\'s ffmpeg log, and another client cannot, by its subject or any wildcard', async () => {
  const id = newJobId();
  await publishSubmission(alice.jetstream(), 'alice', { job_id: id, submitted_at: Date.now(), schema: smallJob() });
  assert.is((await followJob(alice.jetstream(), { owner: 'alice', id }, () => undefined, 120_000))?.state, 'succeeded');
  const lines: string[] = [];
  await waitFor('alice to read her job\'s log', async () => (await readJobLogs(alice.jetstream(), { owner: 'alice', id }, (b) => lines.push(...b.lines))) > 0, 20_000, 500);
  assert.ok(lines.some((l) => /bench: utime=/.test(l)), 'ffmpeg\'s own lines');
  for (const filter of [jobLogSubject('alice', id), 'prescient.job.*.*.log', '>']) {
    const jsm = await bob.jetstreamManager();
    assert.match(await attempt(jsm.consumers.add(LOGS_STREAM, { name: `peek_${nuid.next()}`, filter_subject: filter, deliver_policy: DeliverPolicy.All, ack_policy: AckPolicy.None, inactive_threshold: nanos(10_000) })), /^refused/, filter);
  }
  // Nor may a client write a log line into anyone's job.
  assert.match(await attempt(bob.jetstream().publish(jobLogSubject('alice', id), json.encode({ lines: ['forged'] }))), /^refused/);
});

test('a client cannot read or take the leader\'s submissions, records or feedback', async () => {
  const js = alice.jetstream();
  assert.match(await attempt(js.consumers.get(JOBS_STREAM, JOBS_CONSUMER).then((c) => c.next({ expires: 1000 }))), /^refused/, 'the leader\'s consumer');
  assert.match(await attempt(js.views.kv(TASKS_BUCKET).then((kv) => kv.get('anything'))), /^refused/, 'task records');
  assert.match(await attempt(js.views.kv(TASKS_BUCKET).then((kv) => kv.put('anything', json.encode({})))), /^refused/, 'writing a record');
  assert.match(await attempt(js.publish(feedbackSubject('node-a'), json.encode({}))), /^refused/, 'feedback');
  assert.match(await attempt((await alice.jetstreamManager()).streams.purge(JOBS_STREAM)), /^refused/, 'purging the queue');
});

test('only a job\'s owner cancels it: another client cannot publish on its subject, and the leader refuses a cancel on the wrong one', async () => {
  const long = smallJob({ input: { resolution: '640x360', duration_s: 20 }, output: { preset: 'medium' } });
  const id = newJobId();
  await publishSubmission(alice.jetstream(), 'alice', { job_id: id, submitted_at: Date.now(), schema: long });
  await waitFor('alice\'s job to run', () => k.a.running().includes(id), 60_000);
  assert.match(await attempt(publishCancel(bob.jetstream(), 'alice', { job_id: id, requested_at: Date.now() })), /^refused/);
  // An operator can publish anywhere; a cancel on bob's subject is still bob's, and this job is alice's.
  await publishCancel(k.s.nc.jetstream(), 'bob', { job_id: id, requested_at: Date.now() });
  await waitFor('the refusal to be logged', () => k.s.logs.some((l) => l.includes(`cancel ${id} refused: it was asked for by bob, and the job is alice's`)), 10_000);
  assert.ok(k.a.running().includes(id), 'still running');
  await publishCancel(alice.jetstream(), 'alice', { job_id: id, requested_at: Date.now() });
  assert.is((await events(k.s, id)).at(-1)!.state, 'cancelled');
});

test('a node publishes feedback for itself only, and the leader drops a report about another node', async () => {
  const report = (n: string): FeedbackReport => ({
    kind: 'completion', job_id: 'job-x', attempt: 1, node: n, model_version: 'v', codec: 'h264', encoder: 'libx264', work: 'task', targets: {}, at: Date.now(),
  });
  assert.match(await attempt(node.jetstream().publish(feedbackSubject('node-b'), json.encode(report('node-b')))), /^refused.*[Pp]ermission/);
  // Published on node-a's subject (an operator could), naming node-b: not node-a's to say.
  const jsm = await k.s.nc.jetstreamManager();
  const before = (await jsm.streams.info(FEEDBACK_STREAM)).state.messages;
  await k.s.nc.jetstream().publish(feedbackSubject('node-a'), json.encode(report('node-b')));
  await waitFor('the forged report to be dropped', () => k.s.logs.some((l) => /\[feedback\] dropped a feedback report from node-a about node-b/.test(l)), 15_000);
  assert.is((await jsm.streams.info(FEEDBACK_STREAM)).state.messages, before + 1);
  // Its own subject it may use.
  assert.is(await attempt(node.jetstream().publish(feedbackSubject('node-a'), json.encode({ not: 'a report' }))), 'done');
});

test('a node cannot submit, cancel, or read anyone\'s jobs', async () => {
  assert.match(await attempt(node.jetstream().publish(submitSubject('node-a'), json.encode({}))), /^refused/);
  assert.match(await attempt(node.jetstream().publish(cancelSubject('test'), json.encode({}))), /^refused/);
  assert.match(await attempt(node.jetstream().views.kv(TASKS_BUCKET).then((kv) => kv.get('x'))), /^refused/);
});

test('a member whose certificate is issued while the cluster runs is taken within moments', async () => {
  const late = await agent(k.s, 'node-late', '1');
  try {
    await waitFor('node-late registered', () => k.c.leader()?.ledger.snapshot().nodes.some((n) => n.node_id === 'node-late'));
    const nc = await connectBus(k.s.endpoints.nats_url, identity(k.s, 'node', 'node-late'), 'late');
    assert.is(await attempt(nc.jetstream().publish(feedbackSubject('node-late'), json.encode({ not: 'a report' }))), 'done');
    await nc.close();
  } finally {
    await late.stop();
  }
});

test('no secret reaches a log line or a command\'s output: not QuestDB\'s password, a Consul token, or a private key', async () => {
  const secrets = (['questdb', 'consul-management', 'consul-coordinator'] as const).map((n) => readSecret(pkiDirOf(k.s.endpoints), n)!);
  assert.ok(secrets.every((x) => x && x.length >= 32), 'the stack made every secret');
  const outputs = [
    ...k.s.logs,
    ...(await Promise.all([['stack', 'status', '--json'], ['nodes', '--json'], ['queue', '--json'], ['certs', 'list', '--json'], ['dead-letters', '--json']]
      .map(async (args) => { const r = await cliRun(k.s, args); return `${r.stdout}${r.stderr}`; }))),
  ];
  assert.ok(outputs.length > 20);
  for (const line of outputs) {
    for (const x of secrets) assert.not.ok(line.includes(x), `a secret in: ${line.slice(0, 200)}`);
    assert.not.ok(line.includes('PRIVATE KEY'), `a key in: ${line.slice(0, 200)}`);
  }
});

test.run();
