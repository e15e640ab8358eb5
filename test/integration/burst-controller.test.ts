/**
 * The burst controller on a real leader, against real NATS, Consul and agents; only the cloud is
 * fake (test/helpers/fake-cloud.ts records what would have reached its API). The test plays
 * cloud-init: when an instance is launched it starts a real agent with the instance's id.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AgentHandle } from '../../node-agent/index.js';
import { BurstStore, CLUSTER_TAG, ProviderError, validateBurstConfig, type BurstConfig } from '../../coordinator/burst/index.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAgent } from '../../node-agent/index.js';
import { nodeIdentity } from '../../node-agent/enrol.js';
import { BURST_BUCKET, ConsulLeaderLookup, CoordinatorClient } from '../../shared/index.js';
import { agent, cliRun, coordinator, events, identity, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';
import { FakeCloud } from '../helpers/fake-cloud.js';

let s: TestStack;
/** Everything started, stopped at the end (each once, newest first) unless a test stopped it. */
const stopAll: Array<() => Promise<void>> = [];
const track = (stop: () => Promise<void>) => {
  let done: Promise<void> | undefined;
  const once = () => (done ??= stop());
  stopAll.unshift(once);
  return once;
};

function config(over: Record<string, unknown> = {}): BurstConfig {
  return validateBurstConfig({
    provider: 'aws', provider_options: { region: 'fake-region-1', image_id: 'ami-test' }, cluster: 'burst-test',
    catalogue: [{ name: 'fake.small', vcpus: 2, memory_gb: 4, gpus: 0, bandwidth_mbps: 1000, price_per_hour: 0.1, spot_price_per_hour: 0.04 }],
    max_instances: 2, budget_per_hour: 1, cooldown: '2s', idle_period: '2s', join_timeout: '60s', tick: '300ms',
    max_wait: { premium: '5s', standard: '5s', batch: '5s' }, install: { source: 'image' },
    ...over,
  });
}

async function burstCoordinator(id: string, cloud: FakeCloud, cfg: BurstConfig): Promise<CoordinatorHandle> {
  const c = await coordinator(s, id, { burst: { config: cfg, provider: cloud } });
  const original = c.stop.bind(c);
  const stop = track(original);
  await waitFor(`${id} leads`, () => c.isLeader() && c.burst());
  return Object.assign(c, { stop });
}

/** Why a promise was refused ('' when it was not). */
const refusal = (p: Promise<unknown>) => p.then(() => '', (e: Error) => e.message);
/** Scratch certificate folders (a burst node's own host), removed at the end. */
const dirs: string[] = [];
test.before(async () => { s = await startStack('burst'); });
test.after(async () => {
  for (const stop of stopAll) await stop().catch(() => undefined);
  await s.down();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('the queue grows → a tagged launch with user data → the instance joins as its id → the queue drains → terminated after the idle period', async () => {
  const cloud = new FakeCloud();
  const c = await burstCoordinator('c1', cloud, config());
  assert.ok(cloud.calls.some((x) => x.op === 'verify' && x.types.join() === 'fake.small'), 'verified at start, with the catalogue');
  // No node at all: the jobs can start nowhere, past every class bound.
  const jobs = [await submit(s, smallJob()), await submit(s, smallJob())];
  const spec = (await waitFor('a launch', () => cloud.launches()[0], 20_000));
  assert.is(spec.instance_type, 'fake.small');
  assert.is(spec.count, 1);
  assert.is(spec.spot, false);
  assert.is(spec.tags[CLUSTER_TAG], 'burst-test');
  assert.ok(spec.user_data.startsWith('#cloud-config'));
  assert.ok(spec.user_data.includes(`PRESCIENT_NATS_URL=${s.endpoints.nats_url}`), 'the stack\'s NATS in the user data');
  assert.ok(spec.user_data.includes(`PRESCIENT_CONSUL_HTTP=${s.endpoints.consul_http}`));
  assert.match(spec.user_data, /--node-id "\$node_id"/);
  assert.match(spec.user_data, /PRESCIENT_INSTALL_SOURCE=image\n/);
  const [id] = [...cloud.instances.keys()];

  // No second launch while the first instance boots (it counts as capacity), even past the cooldown.
  await new Promise((r) => setTimeout(r, 2500));
  assert.is(cloud.launches().length, 1);

  // The launch's enrolment buys a node certificate for that launch's instance only, once: not
  // for another id, and not with a node's own certificate.
  const bundle = /PRESCIENT_ENROL_BUNDLE=([A-Za-z0-9+/=]+)\n/.exec(spec.user_data)?.[1];
  assert.ok(bundle, 'the user data carries an enrolment');
  const scratch = () => { const d = mkdtempSync(path.join(os.tmpdir(), 'prescient-burst-pki-')); dirs.push(d); return d; };
  const enrolAs = (nodeId: string) => nodeIdentity({ pkiDir: scratch(), nodeId, consulHttp: s.endpoints.consul_http, bundle, log: () => undefined });
  assert.match(await refusal(enrolAs('i-not-launched')), /the leader refused: i-not-launched was not launched with enrolment burst-test-\d+/);
  const leaderAddress = (await new ConsulLeaderLookup(s.endpoints.consul_http).currentLeader())!.address;
  const asNode = new CoordinatorClient(leaderAddress, identity(s, 'node', 'node-x'));
  assert.match(await refusal(asNode.enrol({ node_id: id, csr_pem: '' })), /PERMISSION_DENIED: only an enrolment certificate \(a burst launch's or a join token's\) may enrol/);
  asNode.close();

  // cloud-init: the agent starts with the instance id as its node id, on a host with no
  // certificate and no CA key: it enrols with the launch's bundle, then registers over gRPC.
  const nodePki = scratch();
  const a: AgentHandle = await startAgent({
    nodeId: id, endpoints: { ...s.endpoints, pki_dir: nodePki }, validation: s.validation, log: s.log, grant: { cores: '0-1', memoryGb: 2 }, sampleIntervalMs: 100,
    outputDir: path.join(s.dir, 'output', id), spoolDir: path.join(s.dir, 'spool', id), enforcement: { shape_interfaces: [] }, enrolBundle: bundle,
  });
  assert.ok(existsSync(path.join(nodePki, 'node', id, 'tls.key')), 'the node made its own key');
  assert.not.ok(existsSync(path.join(nodePki, 'ca.key')), 'and holds no CA key');
  assert.match(await refusal(enrolAs(id)), /has enrolled already/);
  const stopAgent = track(() => a.stop());
  // Watched from now: it joins, runs both jobs, idles and is terminated, all before their quality passes end.
  const joined = waitFor('joined', () => c.burst()!.snapshot().state.instances.find((x) => x.id === id)?.joined_at, 60_000, 50);
  for (const j of jobs) {
    const ev = await events(s, j, 60_000);
    assert.is(ev.at(-1)!.state, 'succeeded');
    assert.ok(ev.some((e) => e.node_id === id), `${j} ran on the burst node`);
  }
  await joined;

  // Idle for the idle period: drained, then terminated.
  await waitFor('terminated after the idle period', () => cloud.terminated().includes(id), 20_000);
  const { state, decisions } = c.burst()!.snapshot();
  assert.is(state.instances.length, 0);
  assert.ok(state.ended.some((x) => x.id === id));
  assert.ok(decisions.some((d) => d.drain.some((x) => x.id === id)), 'drained before it was terminated');
  assert.ok(decisions.some((d) => d.launch && /launched 1 × fake\.small because .*standard: 2 job\(s\) would wait with no start at all/.test(d.summary)));
  await stopAgent();

  // `prescient scale status --json` reads the same from the KV bucket.
  const r = await cliRun(s, ['scale', 'status', '--json', '--last', '50']);
  assert.is(r.code, 0, r.stderr);
  const view = JSON.parse(r.stdout);
  assert.is(view.configured, true);
  assert.is(view.cluster, 'burst-test');
  assert.ok(view.budget.spent_this_hour > 0);
  assert.ok(view.decisions.some((d: { launch?: { instance_type: string } }) => d.launch?.instance_type === 'fake.small'));
  assert.ok(Math.abs(view.forecast.standard.rate_per_min - 2 / 15) < 1e-9, 'two standard jobs in the 15-minute window');
  assert.is(view.forecast.standard.arriving, 0, 'fewer than one in the 5-minute horizon');
  const text = await cliRun(s, ['scale', 'status']);
  assert.match(text.stdout, /burst on fake fake-region-1, cluster burst-test/);
  assert.match(text.stdout, /arrivals forecast: premium 0\.0\/min \(0 in the horizon\), standard 0\.1\/min \(0 in the horizon\), batch 0\.0\/min/);
  await c.stop();
});

test('a provider error during a burst never loses or blocks queued jobs; spot is refused, on-demand is tried at once', async () => {
  const cloud = new FakeCloud();
  cloud.failing.launch = new ProviderError('fake', 'launch', 'capacity', 'InsufficientInstanceCapacity');
  const c = await burstCoordinator('c2', cloud, config({ spot: true, max_wait: { premium: '0s', standard: '0s', batch: '0s' } }));
  const a = await agent(s, 'node-a', '0', 2);
  const stopA = track(() => a.stop());
  // The first test's burst node is in the ledger c2 resumed until its lease runs out: its free
  // cores would count as room to this test's decisions.
  await waitFor('node-a alone in the ledger', () => c.leader()!.ledger.snapshot().nodes.map((n) => n.node_id).join() === 'node-a', 20_000);
  const jobs = await Promise.all([0, 1, 2, 3].map(() => submit(s, smallJob())));
  await waitFor('a refused launch', () => cloud.launches().length >= 2, 20_000);
  const [first, second] = cloud.launches();
  assert.equal([first.spot, second.spot], [true, false], 'spot first, then on-demand in the same tick');
  for (const j of jobs) assert.is((await events(s, j, 60_000)).at(-1)!.state, 'succeeded', `${j} ran on node-a despite the failing cloud`);
  const { state, decisions } = c.burst()!.snapshot();
  assert.equal(state.refusals.map((r) => r.spot).sort(), [false, true]);
  assert.ok(decisions.some((d) => d.outcome.errors.some((e) => /failed \(capacity\)/.test(e))));
  assert.ok(s.logs.some((l) => /burst: tried to launch \d × fake\.small .*errors \(retried next tick\)/.test(l)));
  assert.is(state.instances.length, 0);
  await c.stop();
  await stopA();
});

test('a launch only partly accepted keeps what it got, remembers the refusal, and asks another type for the rest at once; a stopped instance is deleted', async () => {
  const cloud = new FakeCloud();
  cloud.capacity['fake.small'] = 1;
  const cfg = config({
    cluster: 'burst-partial', max_instances: 4, max_wait: { premium: '0s', standard: '0s', batch: '0s' },
    catalogue: [
      { name: 'fake.small', vcpus: 2, memory_gb: 4, gpus: 0, bandwidth_mbps: 1000, price_per_hour: 0.1 },
      { name: 'fake.medium', vcpus: 4, memory_gb: 8, gpus: 0, bandwidth_mbps: 1000, price_per_hour: 0.25 },
    ],
  });
  const c = await burstCoordinator('c4', cloud, cfg);
  // The nodes of earlier tests, restored from the saved ledger, are lost once their agents stay silent.
  await waitFor('an empty fleet', () => c.leader()?.burstView().snap.count === 0, 30_000);
  // Four one-core jobs and no node: to start them all now takes four cores.
  const jobs = await Promise.all([0, 1, 2, 3].map(() => submit(s, smallJob())));
  await waitFor('a second launch in the same tick', () => cloud.launches().length >= 2, 20_000);
  const [first, second] = cloud.launches();
  assert.equal([first.instance_type, first.count], ['fake.small', 2], 'two of the cheapest type clear it');
  assert.equal([second.instance_type, second.count], ['fake.medium', 1], 'the refused rest from the next type, not another fake.small');
  const { state, decisions } = c.burst()!.snapshot();
  assert.equal(state.instances.map((x) => x.instance_type).sort(), ['fake.medium', 'fake.small']);
  assert.equal(state.refusals.map((r) => [r.instance_type, r.spot]), [['fake.small', false]]);
  const d = decisions.find((x) => x.outcome.launched.length === 2)!;
  assert.match(d.outcome.errors.join(), /launch 2 × fake\.small: 1 accepted \(i-fake\d+\), the rest refused: .*no capacity/);
  assert.match(d.summary, /after fake\.small was refused \(1 of 2 accepted\): .*launch 1 × fake\.medium/);

  // Someone stops the fake.medium instance in the cloud's console: the next tick deletes it.
  const medium = state.instances.find((x) => x.instance_type === 'fake.medium')!.id;
  cloud.instances.get(medium)!.state = 'stopped';
  await waitFor('the stopped instance terminated', () => cloud.terminated().includes(medium), 10_000);
  assert.ok(c.burst()!.snapshot().state.ended.some((x) => x.id === medium && /stopped/.test(x.why)));

  // The jobs run once a node joins (the instances never will: nothing is lost meanwhile).
  const a = await agent(s, 'node-b', '0-1', 2);
  track(() => a.stop());
  for (const j of jobs) assert.is((await events(s, j, 60_000)).at(-1)!.state, 'succeeded');
  await c.stop();
  await a.stop();
});

test('a dry run decides as a real run would, logs "would launch … because …" and calls nothing in the cloud but verify', async () => {
  const cloud = new FakeCloud();
  const c = await burstCoordinator('c3', cloud, config({ cluster: 'burst-dry', dry_run: true, max_wait: { premium: '0s', standard: '0s', batch: '0s' } }));
  // One one-core node: four jobs that would all start now do not fit it.
  const a = await agent(s, 'node-c', '0', 2);
  const stopA = track(() => a.stop());
  // The nodes of earlier tests, restored from the saved ledger, count as room until they are lost.
  await waitFor('node-c alone in the ledger', () => c.leader()!.ledger.snapshot().nodes.map((n) => n.node_id).join() === 'node-c', 20_000);
  const jobs = await Promise.all([0, 1, 2, 3].map(() => submit(s, smallJob())));
  await waitFor('a dry-run decision', () => c.burst()!.snapshot().decisions.find((d) => d.dry_run && d.launch), 20_000);
  for (const j of jobs) assert.is((await events(s, j, 60_000)).at(-1)!.state, 'succeeded');
  assert.equal(cloud.calls.filter((x) => x.op !== 'verify' && x.op !== 'list'), [], 'nothing launched, described or terminated');
  assert.ok(s.logs.some((l) => /burst: would launch \d × fake\.small because /.test(l)));
  const stored = await (await BurstStore.open(s.nc.jetstream())).state();
  assert.is(stored?.dry_run, true);
  await c.stop();
  await stopA();
});

test('a burst bucket entry that is not what the controller saves is ignored, and says which field is wrong', async () => {
  const kv = await s.nc.jetstream().views.kv(BURST_BUCKET);
  const good = await kv.get('state');
  assert.ok(good?.value.length, 'the dry run left a saved state');
  const said: string[] = [];
  const store = await BurstStore.open(s.nc.jetstream(), (m) => said.push(m));
  assert.ok(await store.state(), 'what the controller saved reads back');
  const saved = JSON.parse(new TextDecoder().decode(good!.value));
  try {
    await kv.put('state', JSON.stringify({ ...saved, instances: [{ id: 'i-forged', instance_type: 'fake.small', spot: false, state: 'running', launched_at: 'yesterday', price_per_hour: 0 }] }));
    assert.is(await store.state(), undefined);
    assert.match(said.at(-1)!, 'state ignored: instances.0.launched_at "yesterday" is not a number');
    await kv.put('decisions', '{"not": "a list"}');
    assert.equal(await store.decisions(), []);
    assert.match(said.at(-1)!, 'decisions ignored: {"not":"a list"} is not a list');
  } finally {
    await kv.put('state', good!.value);
  }
});

test('`prescient coordinator --burst` refuses a bad configuration at start, naming the field', async () => {
  const base = {
    provider: 'aws', provider_options: { region: 'eu-west-1', image_id: 'ami-0abc' }, cluster: 'prod', max_instances: 2, budget_per_hour: 1, install: { source: 'image' },
    catalogue: [{ name: 'c6i.2xlarge', vcpus: 8, memory_gb: 16, gpus: 0, bandwidth_mbps: 12500, price_per_hour: 0.34 }],
  };
  for (const [over, text] of [
    [{ budget_per_hour: 0 }, /^budget_per_hour: must be greater than 0, got 0/],
    [{ instance_types: ['c7.mega'] }, /^instance_types\[0\]: unknown instance type "c7.mega"/],
    [{ max_instances: 0 }, /^max_instances: must be at least 1/],
    [{ provider_options: undefined }, /^provider_options: missing/],
    [{ install: undefined }, /^install: missing: burst nodes need to know where Prescient comes from/],
    [{ install: { source: 'git', url: 'https://git.example.com/p.git', ref: '--upload-pack=evil' } }, /^install\.ref: must be a tag, branch or commit/],
  ] as const) {
    const file = path.join(s.dir, 'burst-bad.yaml');
    writeFileSync(file, JSON.stringify({ ...base, ...over }));
    const r = await cliRun(s, ['coordinator', '--burst', file]);
    assert.is(r.code, 1, JSON.stringify(over));
    assert.match(r.stderr.trim(), text);
  }
  const r = await cliRun(s, ['coordinator', '--burst-dry-run']);
  assert.match(r.stderr, /--burst-dry-run: needs --burst <config>/);
});

test.run();
