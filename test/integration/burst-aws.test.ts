/**
 * The AWS EC2 provider against moto's server on loopback: the only fake in this file, standing in
 * for EC2 itself. The provider reads credentials from the SDK's default chain, so each test sets
 * the process environment to moto's FAKE test key (or to nothing) through `awsTestEnv`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DescribeImagesCommand, DescribeInstanceAttributeCommand, DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CLUSTER_TAG, ProviderError, verifyProvider, type AwsProviderOptions, type LaunchSpec } from '../../coordinator/burst/index.js';
import { AwsProvider } from '../../coordinator/burst/providers/aws.js';
import { ConfigError } from '../../shared/index.js';
import { awsTestEnv, MOTO_FAKE_CREDENTIALS, startMoto, type MotoServer } from '../helpers/moto.js';

const REGION = 'eu-west-1';
let moto: MotoServer;
let restoreEnv: () => void;
let image: string;
const providers: AwsProvider[] = [];

/** A provider on moto; `over` changes its options. */
function aws(over: Partial<AwsProviderOptions> = {}): AwsProvider {
  const p = new AwsProvider({ region: REGION, image_id: image, endpoint: moto.endpoint, max_attempts: 1, ...over });
  providers.push(p);
  return p;
}
/** A plain SDK client on moto, to look at what the provider did from EC2's side. */
const ec2 = () => new EC2Client({ region: REGION, endpoint: moto.endpoint });

const USER_DATA = '#cloud-config\nruncmd:\n  - [sh, -c, "prescient-agent --coordinator 10.0.0.5:7000 --node burst-$(hostname)"]\n# ünïcödé\n';
const spec = (over: Partial<LaunchSpec> = {}): LaunchSpec => ({
  instance_type: 'c5.xlarge', count: 2, spot: false, user_data: USER_DATA,
  tags: { [CLUSTER_TAG]: 'blue', 'prescient-role': 'encoder' }, client_token: `tok-${Math.random().toString(36).slice(2)}`, ...over,
});

async function rejection(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, ProviderError, `expected a ProviderError, got ${e}`);
    return e as ProviderError;
  }
  assert.unreachable('expected the call to fail');
  throw new Error('unreachable');
}

test.before(async () => {
  moto = await startMoto();
  restoreEnv = awsTestEnv(MOTO_FAKE_CREDENTIALS);
  // One of the public images moto starts with (the same after every reset). Listing them takes seconds: once.
  const images = await ec2().send(new DescribeImagesCommand({ Owners: ['amazon'], Filters: [{ Name: 'name', Values: ['amzn2-ami-*'] }] }));
  image = images.Images![0].ImageId!;
});
test.before.each(async () => {
  await moto.reset();
  restoreEnv();
  restoreEnv = awsTestEnv(MOTO_FAKE_CREDENTIALS);
});
test.after(async () => {
  for (const p of providers) p.close();
  restoreEnv?.();
  await moto?.stop();
});

test('a launch runs the requested type and count, tagged as the cluster on instances and volumes', async () => {
  const { instances: launched, refused } = await aws().launch(spec());
  assert.is(launched.length, 2);
  assert.is(refused, undefined, 'all of them accepted');
  for (const i of launched) {
    assert.match(i.id, /^i-[0-9a-f]+$/);
    assert.is(i.instance_type, 'c5.xlarge');
    assert.ok(['pending', 'running'].includes(i.state), i.state);
    assert.is(i.spot, false);
    assert.is(i.tags[CLUSTER_TAG], 'blue');
    assert.is(i.tags['prescient-role'], 'encoder');
    assert.ok(i.launched_at > Date.now() - 3_600_000, 'launched_at is the launch time');
  }
  const seen = await ec2().send(new DescribeInstancesCommand({ InstanceIds: launched.map((i) => i.id) }));
  const instances = seen.Reservations!.flatMap((r) => r.Instances!);
  assert.is(instances.length, 2);
  for (const i of instances) {
    assert.is(i.ImageId, image);
    assert.equal(Object.fromEntries(i.Tags!.map((t) => [t.Key, t.Value])), { [CLUSTER_TAG]: 'blue', 'prescient-role': 'encoder' });
  }
});

test('the user data reaches the instance base64-encoded and decodes back to the same cloud-init', async () => {
  const { instances: [i] } = await aws().launch(spec({ count: 1 }));
  const attr = await ec2().send(new DescribeInstanceAttributeCommand({ InstanceId: i.id, Attribute: 'userData' }));
  assert.is(Buffer.from(attr.UserData!.Value!, 'base64').toString('utf8'), USER_DATA);
});

test('a spot launch asks for spot capacity and the instances say so', async () => {
  const p = aws();
  assert.equal(p.runInstancesInput(spec({ spot: true })).InstanceMarketOptions?.MarketType, 'spot');
  assert.is(p.runInstancesInput(spec()).InstanceMarketOptions, undefined, 'on-demand sends no market options');
  const { instances: launched } = await p.launch(spec({ spot: true, count: 1 }));
  assert.is(launched[0].spot, true);
  const [described] = await p.describe([launched[0].id]);
  assert.is(described.spot, true);
});

test('a launch without the cluster tag is refused before it reaches EC2', async () => {
  const e = await rejection(aws().launch(spec({ tags: { other: 'x' } })));
  assert.is(e.kind, 'invalid');
  assert.is((await aws().list('blue')).length, 0);
});

test("list finds this cluster's instances and not another cluster's", async () => {
  const p = aws();
  const blue = (await p.launch(spec({ count: 2 }))).instances;
  const green = (await p.launch(spec({ count: 1, tags: { [CLUSTER_TAG]: 'green' } }))).instances;
  assert.equal((await p.list('blue')).map((i) => i.id).sort(), blue.map((i) => i.id).sort());
  assert.equal((await p.list('green')).map((i) => i.id), green.map((i) => i.id));
  assert.equal(await p.list('red'), []);
});

test('describe gives each instance its state, and an id EC2 does not know as terminated', async () => {
  const p = aws();
  const { instances: [a] } = await p.launch(spec({ count: 1, instance_type: 'm5.large' }));
  const described = await p.describe([a.id, 'i-0123456789abcdef0', 'not-even-an-id']);
  assert.equal(described.map((i) => i.id), [a.id, 'i-0123456789abcdef0', 'not-even-an-id']);
  assert.ok(['pending', 'running'].includes(described[0].state));
  assert.is(described[0].instance_type, 'm5.large');
  assert.is(described[0].tags[CLUSTER_TAG], 'blue');
  assert.is(described[1].state, 'terminated');
  assert.is(described[2].state, 'terminated');
  assert.equal(await p.describe([]), []);
});

test('terminated instances are described as terminated and leave the list; unknown ids are no error', async () => {
  const p = aws();
  const { instances: launched } = await p.launch(spec({ count: 3 }));
  const [gone, gone2, kept] = launched.map((i) => i.id);
  await p.terminate([gone, gone2, 'i-0fffffffffffffff0']);
  const states = Object.fromEntries((await p.describe([gone, gone2, kept])).map((i) => [i.id, i.state]));
  assert.equal(states, { [gone]: 'terminated', [gone2]: 'terminated', [kept]: states[kept] });
  assert.ok(['pending', 'running'].includes(states[kept]));
  assert.equal((await p.list('blue')).map((i) => i.id), [kept]);
  await p.terminate([gone]); // again: already terminated, nothing to do
  await p.terminate(['i-0eeeeeeeeeeeeeee0']);
});

test('an instance type EC2 does not offer is refused as invalid', async () => {
  const e = await rejection(aws().launch(spec({ instance_type: 'c99.mega' })));
  assert.is(e.kind, 'invalid');
  assert.match(e.message, /InvalidInstanceType/);
});

test('an image that does not exist is refused as invalid, by verify and by launch', async () => {
  const p = aws({ image_id: 'ami-00000000deadbeef0' });
  const v = await rejection(p.verify());
  assert.is(v.kind, 'invalid');
  assert.match(v.message, /InvalidAMIID/);
  const l = await rejection(p.launch(spec({ count: 1 })));
  assert.is(l.kind, 'invalid');
  assert.match(l.message, /InvalidAMIID/);
});

test('verify passes with a known region, image and credentials', async () => {
  await aws().verify();
});

const C5_LARGE = { name: 'c5.large', vcpus: 2, memory_gb: 4, gpus: 0, bandwidth_mbps: 10_000, price_per_hour: 0.085 };

test('verify checks every catalogue type against DescribeInstanceTypes: it must exist and have what the catalogue lists', async () => {
  await aws().verify([C5_LARGE, { ...C5_LARGE, name: 'g4dn.xlarge', vcpus: 4, memory_gb: 16, gpus: 1 }, { ...C5_LARGE, vcpus: 1, memory_gb: 2 }]);
  const unknown = await rejection(aws().verify([C5_LARGE, { ...C5_LARGE, name: 'c5.mega' }]));
  assert.is(unknown.kind, 'invalid');
  assert.match(unknown.message, /instance type c5\.mega is not one EC2 offers in eu-west-1/);
  const overstated = await rejection(aws().verify([{ ...C5_LARGE, vcpus: 8, memory_gb: 16 }]));
  assert.is(overstated.kind, 'invalid');
  assert.match(overstated.message, /c5\.large: the catalogue lists 8 vCPUs, the cloud has 2; the catalogue lists 16 GB of memory, the cloud has 4/);
  const gpus = await rejection(aws().verify([{ ...C5_LARGE, gpus: 1 }]));
  assert.match(gpus.message, /the catalogue lists 1 GPU\(s\), the cloud has 0/);
});

test("a catalogue type EC2 does not offer refuses the coordinator's start with an error naming it", async () => {
  try {
    await verifyProvider(aws(), [C5_LARGE, { ...C5_LARGE, name: 'c5.mega' }]);
    assert.unreachable('refused');
  } catch (e) {
    assert.instance(e, ConfigError);
    assert.match((e as Error).message, /^burst provider aws \(eu-west-1\): invalid configuration: .*instance type c5\.mega is not one EC2 offers in eu-west-1/);
  }
});

test('verify refuses a region that does not exist as invalid', async () => {
  const e = await rejection(aws({ region: 'xx-nowhere-1' }).verify());
  assert.is(e.kind, 'invalid');
  assert.match(e.message, /xx-nowhere-1/);
});

test('verify refuses a launch template that does not exist as invalid', async () => {
  const e = await rejection(aws({ image_id: undefined, launch_template: { name: 'no-such-template' } }).verify());
  assert.is(e.kind, 'invalid');
});

test('with no credentials anywhere, verify fails as auth at once and names no secret', async () => {
  restoreEnv();
  restoreEnv = awsTestEnv(null); // empty env, no shared files, IMDS off
  const started = Date.now();
  const e = await rejection(aws().verify());
  assert.is(e.kind, 'auth');
  assert.ok(Date.now() - started < 10_000, 'no wait on instance metadata');
  assert.not.match(e.message, /testing|AKIA|ASIA/);
});

test('credentials EC2 refuses fail verify as auth, and neither the key id nor the secret is in the error', async () => {
  await moto.requireAuth(); // from here moto checks keys like AWS: its test key is unknown to it
  const e = await rejection(aws().verify());
  assert.is(e.kind, 'auth');
  assert.not.ok(e.message.includes(MOTO_FAKE_CREDENTIALS.secret_access_key), e.message);
  assert.not.ok(e.message.includes(MOTO_FAKE_CREDENTIALS.access_key_id), e.message);
});

test.run();
