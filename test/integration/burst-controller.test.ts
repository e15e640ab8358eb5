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
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { agent, cliRun, coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';
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
    max_wait: { premium: '5s', standard: '5s', batch: '5s' },
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

test.before(async () => { s = await startStack('burst'); });
test.after(async () => {
  for (const stop of stopAll) await stop().catch(() => undefined);
  await s.down();
});

test('the queue grows → a tagged launch with user data → the instance joins as its id → the queue drains → terminated after the idle period', async () => {
  const cloud = new FakeCloud();
  const c = await burstCoordinator('c1', cloud, config());
  assert.ok(cloud.calls.some((x) => x.op === 'verify'), 'verified at start');
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
  assert.match(spec.user_data, /--node-id "\$NODE_ID"/);
  const [id] = [...cloud.instances.keys()];

  // No second launch while the first instance boots (it counts as capacity), even past the cooldown.
  await new Promise((r) => setTimeout(r, 2500));
  assert.is(cloud.launches().length, 1);

  // cloud-init: the agent starts with the instance id as its node id and registers over gRPC.
  const a: AgentHandle = await agent(s, id, '0-1', 2);
  const stopAgent = track(() => a.stop());
  for (const j of jobs) {
    const ev = await events(s, j, 60_000);
    assert.is(ev.at(-1)!.state, 'succeeded');
    assert.ok(ev.some((e) => e.node_id === id), `${j} ran on the burst node`);
  }
  await waitFor('joined', () => c.burst()!.snapshot().state.instances.find((x) => x.id === id)?.joined_at);

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
  const text = await cliRun(s, ['scale', 'status']);
  assert.match(text.stdout, /burst on fake fake-region-1, cluster burst-test/);
  await c.stop();
});

test('a provider error during a burst never loses or blocks queued jobs; spot is refused, on-demand is tried at once', async () => {
  const cloud = new FakeCloud();
  cloud.failing.launch = new ProviderError('fake', 'launch', 'capacity', 'InsufficientInstanceCapacity');
  const c = await burstCoordinator('c2', cloud, config({ spot: true, max_wait: { premium: '0s', standard: '0s', batch: '0s' } }));
  const a = await agent(s, 'node-a', '0', 2);
  track(() => a.stop());
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
});

test('a dry run decides as a real run would, logs "would launch … because …" and calls nothing in the cloud but verify', async () => {
  const cloud = new FakeCloud();
  const c = await burstCoordinator('c3', cloud, config({ cluster: 'burst-dry', dry_run: true, max_wait: { premium: '0s', standard: '0s', batch: '0s' } }));
  const jobs = await Promise.all([0, 1, 2, 3].map(() => submit(s, smallJob())));
  await waitFor('a dry-run decision', () => c.burst()!.snapshot().decisions.find((d) => d.dry_run && d.launch), 20_000);
  for (const j of jobs) assert.is((await events(s, j, 60_000)).at(-1)!.state, 'succeeded');
  assert.equal(cloud.calls.filter((x) => x.op !== 'verify' && x.op !== 'list'), [], 'nothing launched, described or terminated');
  assert.ok(s.logs.some((l) => /burst: would launch \d × fake\.small because /.test(l)));
  const stored = await (await BurstStore.open(s.nc.jetstream())).state();
  assert.is(stored?.dry_run, true);
  await c.stop();
});

test('`prescient coordinator --burst` refuses a bad configuration at start, naming the field', async () => {
  const base = {
    provider: 'aws', provider_options: { region: 'eu-west-1', image_id: 'ami-0abc' }, cluster: 'prod', max_instances: 2, budget_per_hour: 1,
    catalogue: [{ name: 'c6i.2xlarge', vcpus: 8, memory_gb: 16, gpus: 0, bandwidth_mbps: 12500, price_per_hour: 0.34 }],
  };
  for (const [over, text] of [
    [{ budget_per_hour: 0 }, /^budget_per_hour: must be greater than 0, got 0/],
    [{ instance_types: ['c7.mega'] }, /^instance_types\[0\]: unknown instance type "c7.mega"/],
    [{ max_instances: 0 }, /^max_instances: must be at least 1/],
    [{ provider_options: undefined }, /^provider_options: missing/],
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
