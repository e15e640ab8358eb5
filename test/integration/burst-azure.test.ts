// The Azure provider through @azure/arm-compute, down to the wire: the SDK talks HTTPS (ARM bearer
// tokens are refused over plain HTTP) to a loopback server with a throwaway self-signed certificate,
// replaying recorded ARM exchanges (test/fixtures/azure/) and checking every request exactly.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import https from 'node:https';
import { CredentialUnavailableError } from '@azure/identity';
import type { TokenCredential } from '@azure/identity';
import { FixtureServer, loadFixture, selfSignedCertificate, assertAllConsumed, refusal } from '../helpers/fixture-server.js';
import { AzureProvider } from '../../coordinator/burst/providers/azure.js';
import { CLUSTER_TAG, ProviderError } from '../../coordinator/burst/index.js';
import type { InstanceType, LaunchSpec } from '../../coordinator/burst/index.js';

// TEST CREDENTIALS: a fixed, fake ARM access token only ever sent to the loopback fixture server.
const TEST_TOKEN = 'eyJ0eXAiOiJKV1QiLCJ0ZXN0LW9ubHkiOnRydWV9.fixture-server-token';
const fixedToken: TokenCredential = { getToken: async () => ({ token: TEST_TOKEN, expiresOnTimestamp: Date.now() + 3_600_000 }) };

let server: FixtureServer;
let agent: https.Agent;

function provider(location = 'westeurope', credential: TokenCredential = fixedToken): AzureProvider {
  return new AzureProvider({
    subscription_id: '00000000-0000-0000-0000-000000000000',
    resource_group: 'prescient-burst',
    location,
    subnet_id: '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/prescient-burst/providers/Microsoft.Network/virtualNetworks/prescient-vnet/subnets/encode',
    image: { publisher: 'Canonical', offer: 'ubuntu-24_04-lts', sku: 'server', version: 'latest' },
    admin_username: 'prescient',
    ssh_public_key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestOnlyPublicKeyForFixtures prescient@test',
    poll_interval_ms: 10,
    credential,
    client_options: { endpoint: server.origin, agent, retryOptions: { maxRetries: 0 } },
  });
}

const SPEC: LaunchSpec = {
  instance_type: 'Standard_F8s_v2',
  count: 1,
  spot: true,
  user_data: '#!/bin/bash\nexec /opt/prescient/install-agent.sh --coordinator 10.0.0.2:7070\n',
  tags: { [CLUSTER_TAG]: 'prod-eu', 'prescient-burst': 'burst-0001' },
  client_token: 'burst-0001',
};

const allConsumed = () => assertAllConsumed(server);

test.before(async () => {
  const tls = selfSignedCertificate();
  server = await FixtureServer.start(tls);
  agent = new https.Agent({ ca: tls.cert });
});
test.after(async () => {
  agent.destroy();
  await server.stop();
});

test('verify checks the location and the resource group with the credential\'s bearer token', async () => {
  server.load(loadFixture('azure/verify'));
  await provider().verify();
  allConsumed();
  assert.is(server.received[0].headers.authorization, `Bearer ${TEST_TOKEN}`);
});

test('a location that does not exist is refused at verify as invalid', async () => {
  server.load(loadFixture('azure/verify-unknown-location'));
  const e = await refusal(provider('moonbase1').verify());
  assert.is(e.kind, 'invalid');
  assert.match(e.message, /location moonbase1/);
  allConsumed();
});

test('a resource group that does not exist is refused at verify as invalid', async () => {
  server.load(loadFixture('azure/verify-unknown-resource-group'));
  const e = await refusal(provider().verify());
  assert.is(e.kind, 'invalid');
  assert.match(e.message, /resource group prescient-burst/);
  allConsumed();
});

test('a spot launch PUTs exactly the recorded VM, polls its async operation and returns it', async () => {
  server.load(loadFixture('azure/launch-spot'));
  const launched = await provider().launch(SPEC);
  allConsumed();
  assert.equal(launched, { instances: [{
    id: 'prescient-4de6d91066-0',
    instance_type: 'Standard_F8s_v2',
    state: 'running',
    spot: true,
    launched_at: Date.parse('2025-03-04T17:12:01.109Z'),
    tags: { 'prescient-cluster': 'prod-eu', 'prescient-burst': 'burst-0001' },
  }] });
  const put = server.received[0].body as { tags: unknown; properties: { priority: string; evictionPolicy: string; osProfile: { customData: string } } };
  assert.equal(put.tags, SPEC.tags);
  assert.is(put.properties.priority, 'Spot');
  assert.is(put.properties.evictionPolicy, 'Delete');
  assert.is(Buffer.from(put.properties.osProfile.customData, 'base64').toString('utf8'), SPEC.user_data);
});

test('a launch of two where the second is refused for quota returns the first with the refusal of the second', async () => {
  server.load(loadFixture('azure/launch-partial'));
  const { instances, refused } = await provider().launch({ ...SPEC, count: 2 });
  allConsumed();
  assert.equal(instances.map((i) => [i.id, i.state]), [['prescient-4de6d91066-0', 'running']]);
  assert.instance(refused, ProviderError);
  assert.is(refused!.kind, 'capacity');
  assert.match(refused!.message, /1 of 2 × Standard_F8s_v2 in westeurope: .*standardFSv2Family Cores quota/);
});

test('a quota refusal is a capacity error and nothing else is sent', async () => {
  server.load(loadFixture('azure/launch-quota-exceeded'));
  const e = await refusal(provider().launch({ ...SPEC, count: 2 }));
  assert.is(e.kind, 'capacity');
  assert.match(e.message, /standardFSv2Family Cores quota/);
  allConsumed();
  assert.is(server.received.length, 1);
});

test('SkuNotAvailable is a capacity error', async () => {
  server.load(loadFixture('azure/launch-sku-not-available'));
  assert.is((await refusal(provider().launch(SPEC))).kind, 'capacity');
  allConsumed();
});

test('an async operation that fails with AllocationFailed is a capacity error', async () => {
  server.load(loadFixture('azure/launch-allocation-failed'));
  const e = await refusal(provider().launch(SPEC));
  assert.is(e.kind, 'capacity');
  allConsumed();
});

test('a refused token is an auth error whose message carries no token', async () => {
  server.load(loadFixture('azure/list-unauthenticated'));
  const e = await refusal(provider().list('prod-eu'));
  assert.is(e.kind, 'auth');
  assert.not.match(e.message, TEST_TOKEN);
  allConsumed();
});

test('no credential in the chain is an auth error and nothing is sent', async () => {
  server.load({ exchanges: [] });
  const none: TokenCredential = { getToken: async () => { throw new CredentialUnavailableError('DefaultAzureCredential: no credential in the chain is available'); } };
  const e = await refusal(provider('westeurope', none).list('prod-eu'));
  assert.is(e.kind, 'auth');
  assert.is(server.received.length, 0);
});

test('a stopped, deallocated VM is described as stopped, so the controller deletes it', async () => {
  server.load(loadFixture('azure/describe-stopped'));
  const [i] = await provider().describe(['prescient-4de6d91066-0']);
  allConsumed();
  assert.is(i.state, 'stopped');
});

const F8: InstanceType = { name: 'Standard_F8s_v2', vcpus: 8, memory_gb: 16, gpus: 0, bandwidth_mbps: 12_500, price_per_hour: 0.34 };

test('verify checks every catalogue size against the sizes the location offers, naming the one that is wrong', async () => {
  server.load(loadFixture('azure/verify-vm-sizes'));
  await provider().verify([F8, { ...F8, name: 'standard_f4s_v2', vcpus: 4, memory_gb: 8 }]);
  allConsumed();
  for (const [bad, why] of [
    [{ ...F8, name: 'Standard_F7s_v9' }, /VM size Standard_F7s_v9 is not offered in westeurope/],
    [{ ...F8, memory_gb: 32 }, /VM size Standard_F8s_v2: the catalogue lists 32 GB of memory, the cloud has 16/],
  ] as const) {
    server.load(loadFixture('azure/verify-vm-sizes'));
    const e = await refusal(provider().verify([F8, bad]));
    assert.is(e.kind, 'invalid');
    assert.match(e.message, why);
  }
});

test('list keeps this cluster\'s VMs; describe reports unknown VMs as terminated; terminate deletes and waits', async () => {
  server.load(loadFixture('azure/list-describe-terminate'));
  const p = provider();
  const listed = await p.list('prod-eu');
  assert.equal(listed.map((i) => [i.id, i.state, i.spot]), [
    ['prescient-4de6d91066-0', 'running', true],
    ['prescient-4de6d91066-1', 'pending', false],
  ]);
  const described = await p.describe(['prescient-4de6d91066-0', 'prescient-0123456789-0']);
  assert.equal(described.map((i) => [i.id, i.state]), [['prescient-4de6d91066-0', 'running'], ['prescient-0123456789-0', 'terminated']]);
  await p.terminate(['prescient-4de6d91066-0', 'prescient-0123456789-0']);
  allConsumed();
});

test.run();
