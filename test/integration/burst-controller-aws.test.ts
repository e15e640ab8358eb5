/**
 * Cloud burst end to end on EC2's API: the real controller on a real leader, the real AWS
 * provider, and moto's server on loopback standing in for EC2, with a fake instance metadata
 * service standing in for the instance's 169.254.169.254 (the only fakes: the cloud we cannot
 * reach). The instance boots from the user data moto holds for it: cloud-init's schema check, then
 * its own install and boot scripts, which start the agent as the instance (test/helpers/burst-node.ts).
 *
 *   queue grows → RunInstances (type, count, tags, user data) → instance seen → its boot script
 *   starts the agent, which joins → the queue drains → drained and terminated after the idle period
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Buffer } from 'node:buffer';
import { DescribeImagesCommand, DescribeInstanceAttributeCommand, DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CLUSTER_TAG, validateBurstConfig } from '../../coordinator/burst/index.js';
import { AwsProvider } from '../../coordinator/burst/providers/aws.js';
import { coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';
import { awsTestEnv, MOTO_FAKE_CREDENTIALS, startMoto, type MotoServer } from '../helpers/moto.js';
import { startMetadataService, type MetadataService } from '../helpers/metadata-service.js';
import { bootBurstNode, cloudInitSchema } from '../helpers/burst-node.js';
import { freePort } from '../../deploy/stack/index.js';
import path from 'node:path';

const REGION = 'eu-west-1';
let s: TestStack, moto: MotoServer, imds: MetadataService, restoreEnv: () => void;
const stops: Array<() => Promise<unknown>> = [];

test.before(async () => {
  moto = await startMoto();
  imds = await startMetadataService('aws');
  restoreEnv = awsTestEnv(MOTO_FAKE_CREDENTIALS);
  s = await startStack('burst-aws');
});
test.after(async () => {
  for (const stop of stops) await stop().catch(() => undefined);
  restoreEnv?.();
  await moto?.stop();
  await imds?.stop();
  await s?.down();
});

test('the queue grows → RunInstances with type, count, tags and user data → the instance boots from it and its agent joins → the queue drains → terminated after the idle period', async () => {
  const ec2 = new EC2Client({ region: REGION, endpoint: moto.endpoint });
  const images = await ec2.send(new DescribeImagesCommand({ Owners: ['amazon'], Filters: [{ Name: 'name', Values: ['amzn2-ami-*'] }] }));
  const config = validateBurstConfig({
    provider: 'aws', provider_options: { region: REGION, image_id: images.Images![0].ImageId!, endpoint: moto.endpoint, max_attempts: 1 }, cluster: 'moto-e2e',
    catalogue: [
      { name: 'c5.large', vcpus: 2, memory_gb: 4, gpus: 0, bandwidth_mbps: 10_000, price_per_hour: 0.085 },
      { name: 'c5.xlarge', vcpus: 4, memory_gb: 8, gpus: 0, bandwidth_mbps: 10_000, price_per_hour: 0.17 },
    ],
    max_instances: 2, budget_per_hour: 1, cooldown: '2s', idle_period: '2s', join_timeout: '120s', tick: '500ms',
    max_wait: { premium: '5s', standard: '5s', batch: '5s' },
    install: { source: 'image' }, metadata_url: imds.url, agent_port: await freePort(),
    // What every burst node's agent is started with: this host's interfaces stay unshaped, two cores.
    agent_args: ['--shape-interfaces', '', '--cores', '0-1', '--memory-gb', '2', '--sample-ms', '100'],
  });
  const provider = new AwsProvider(config.provider_options as never);
  stops.push(async () => provider.close());
  const c = await coordinator(s, 'c1', { burst: { config, provider } });
  stops.unshift(() => c.stop());
  await waitFor('c1 leads', () => c.isLeader() && c.burst());

  const jobs = [await submit(s, smallJob()), await submit(s, smallJob())];
  const launched = await waitFor('an instance in moto', () => c.burst()!.snapshot().state.instances[0], 30_000);
  const seen = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [launched.id] }));
  const inst = seen.Reservations![0].Instances!;
  assert.is(inst.length, 1, 'one instance: two one-core jobs fit the cheapest type');
  assert.is(inst[0].InstanceType, 'c5.large');
  assert.ok(inst[0].Tags!.some((t) => t.Key === CLUSTER_TAG && t.Value === 'moto-e2e'));
  const ud = await ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: launched.id, Attribute: 'userData' }));
  const userData = Buffer.from(ud.UserData!.Value!, 'base64').toString('utf8');
  assert.ok(userData.startsWith('#cloud-config'));
  assert.ok(userData.includes(`PRESCIENT_NATS_URL=${s.endpoints.nats_url}`));
  const schema = cloudInitSchema(userData);
  assert.ok(schema.valid, schema.output);

  // The instance boots: the metadata service knows it by moto's id, at a loopback address.
  imds.instance = { id: launched.id, address: '127.0.0.1' };
  const node = await bootBurstNode(userData, { stateDir: path.join(s.dir, 'burst-node') });
  stops.unshift(() => node.stop());
  assert.is(node.install.code, 0, node.install.output);
  await waitFor('the burst node joined', () => c.burst()!.snapshot().state.instances.find((x) => x.id === launched.id)?.joined_at, 60_000);
  for (const j of jobs) {
    const ev = await events(s, j, 90_000);
    assert.is(ev.at(-1)!.state, 'succeeded');
    assert.ok(ev.some((e) => e.node_id === launched.id), `${j} ran on the burst instance`);
  }
  await waitFor('terminated in moto after the idle period', async () => {
    const r = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [launched.id] }));
    return ['shutting-down', 'terminated'].includes(r.Reservations![0].Instances![0].State!.Name!);
  }, 30_000);
  // The controller records the end once its terminate call has returned: moto may show it a moment before.
  await waitFor('the controller recorded the end', () => c.burst()!.snapshot().state.ended.some((x) => x.id === launched.id), 10_000);
  const { state, decisions } = c.burst()!.snapshot();
  assert.ok(decisions.some((d) => d.drain.some((x) => x.id === launched.id)), 'drained before it was terminated');
  assert.ok(state.ended.some((x) => x.id === launched.id));
  assert.ok(imds.requests.includes('PUT /latest/api/token 200') && imds.requests.includes('GET /latest/meta-data/local-ipv4 200'), imds.requests.join(', '));
});

test.run();
