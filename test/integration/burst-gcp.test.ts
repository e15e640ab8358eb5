// The GCP provider through @google-cloud/compute's REST transport, down to the wire: the SDK talks
// HTTP to a loopback server replaying recorded Compute Engine exchanges (test/fixtures/gcp/), which
// checks every request exactly (method, path, query, JSON body) and answers the recorded response.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { OAuth2Client } from 'google-auth-library';
import { FixtureServer, loadFixture, assertAllConsumed, refusal } from '../helpers/fixture-server.js';
import { GcpProvider, gcpLabel } from '../../coordinator/burst/providers/gcp.js';
import { burstTemplate, CLUSTER_TAG, ProviderError, renderUserData, toStartupScript } from '../../coordinator/burst/index.js';
import type { InstanceType, LaunchSpec } from '../../coordinator/burst/index.js';

// TEST CREDENTIALS: a fixed, fake OAuth access token only ever sent to the loopback fixture server.
const TEST_TOKEN = 'ya29.test-only-token-for-the-fixture-server';

let server: FixtureServer;

function provider(zone = 'europe-west1-b'): GcpProvider {
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: TEST_TOKEN, expiry_date: Date.now() + 3_600_000 });
  return new GcpProvider({
    project: 'prescient-test',
    zone,
    source_image: 'projects/prescient-test/global/images/family/prescient-agent',
    client_options: { apiEndpoint: '127.0.0.1', port: server.port, protocol: 'http', authClient },
  });
}

const SPEC: LaunchSpec = {
  instance_type: 'n2-standard-8',
  count: 1,
  spot: true,
  user_data: '#!/bin/bash\nexec /opt/prescient/install-agent.sh --coordinator 10.0.0.2:7070\n',
  tags: { [CLUSTER_TAG]: 'prod-eu', 'prescient-burst': 'burst-0001', '9Team': 'Video Encode' },
  client_token: 'burst-0001',
};

const allConsumed = () => assertAllConsumed(server);

test.before(async () => { server = await FixtureServer.start(); });
test.after(async () => { await server.stop(); });

test('verify reads the configured zone with the bearer token of the credential chain', async () => {
  server.load(loadFixture('gcp/verify'));
  await provider().verify();
  allConsumed();
  assert.is(server.received[0].headers.authorization, `Bearer ${TEST_TOKEN}`);
});

test('a zone that does not exist is refused at verify as invalid', async () => {
  server.load(loadFixture('gcp/verify-unknown-zone'));
  const e = await refusal(provider('europe-west9-z').verify());
  assert.is(e.kind, 'invalid');
  assert.match(e.message, /zone europe-west9-z/);
  allConsumed();
});

test('a spot launch inserts exactly the recorded instance, waits for its operation and returns it', async () => {
  server.load(loadFixture('gcp/launch-spot'));
  const launched = await provider().launch(SPEC);
  allConsumed();
  assert.equal(launched, { instances: [{
    id: 'prescient-4de6d91066-0',
    instance_type: 'n2-standard-8',
    state: 'running',
    spot: true,
    private_ip: '10.132.0.17',
    launched_at: Date.parse('2025-03-04T09:12:01.109-08:00'),
    tags: { 'prescient-cluster': 'prod-eu', 'prescient-burst': 'burst-0001', x9team: 'video_encode' },
  }] });
  const insert = server.received[0].body as { labels: Record<string, string>; scheduling: unknown; metadata: unknown };
  assert.equal(insert.scheduling, { instanceTerminationAction: 'DELETE', provisioningModel: 'SPOT' });
  assert.equal(insert.metadata, { items: [{ key: 'startup-script', value: SPEC.user_data }] });
});

test('a launch of two where the second is refused for quota returns the first with the refusal of the second', async () => {
  server.load(loadFixture('gcp/launch-partial'));
  const { instances, refused } = await provider().launch({ ...SPEC, count: 2 });
  allConsumed();
  assert.equal(instances.map((i) => [i.id, i.state]), [['prescient-4de6d91066-0', 'running']]);
  assert.instance(refused, ProviderError);
  assert.is(refused!.kind, 'capacity');
  assert.match(refused!.message, /1 of 2 × n2-standard-8 in europe-west1-b: .*Quota 'N2_CPUS' exceeded/);
});

test('a cloud-config launch boots from the equivalent startup script (GCE images run startup scripts, not cloud-config)', async () => {
  const cloudConfig = renderUserData(burstTemplate(), {
    provider: 'gcp', cluster: 'prod-eu', install: { source: 'image' }, metadata_url: 'http://169.254.169.254', agent_port: 7070,
    endpoints: { nats_url: 'nats://10.0.0.5:4222', consul_http: '10.0.0.5:8500', questdb_http: 'http://10.0.0.5:9000', questdb_pg: '10.0.0.5:8812' },
  });
  // The fixture holds the request for SPEC's script: answer it only if this launch sends the converted one.
  const script = toStartupScript(cloudConfig);
  const fixture = loadFixture('gcp/launch-spot');
  (fixture.exchanges[0].request.body as { metadata: { items: Array<{ value: string }> } }).metadata.items[0].value = script;
  server.load(fixture);
  await provider().launch({ ...SPEC, user_data: cloudConfig });
  allConsumed();
  assert.ok(script.startsWith('#!/bin/bash\n'));
  assert.match(script, /cat > '\/etc\/prescient\/burst\.env' <<'PRESCIENT_EOF_0'\nPRESCIENT_PROVIDER=gcp\n/);
});

test('a quota refusal is a capacity error and nothing else is sent', async () => {
  server.load(loadFixture('gcp/launch-quota-exceeded'));
  const e = await refusal(provider().launch({ ...SPEC, count: 2 }));
  assert.is(e.kind, 'capacity');
  assert.match(e.message, /Quota 'N2_CPUS' exceeded/);
  allConsumed();
  assert.is(server.received.length, 1);
});

test('an operation that ends in ZONE_RESOURCE_POOL_EXHAUSTED is a capacity error', async () => {
  server.load(loadFixture('gcp/launch-pool-exhausted'));
  const e = await refusal(provider().launch(SPEC));
  assert.is(e.kind, 'capacity');
  assert.match(e.message, /ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS/);
  allConsumed();
});

test('a 503 from the API is transient', async () => {
  server.load(loadFixture('gcp/launch-unavailable'));
  const e = await refusal(provider().launch(SPEC));
  assert.is(e.kind, 'transient');
  allConsumed();
});

test('a refused token is an auth error whose message carries no token', async () => {
  server.load(loadFixture('gcp/list-unauthenticated'));
  const e = await refusal(provider().list('prod-eu'));
  assert.is(e.kind, 'auth');
  assert.not.match(e.message, TEST_TOKEN);
  assert.not.match(e.message, /ya29\./);
  allConsumed();
});

test('list filters by the cluster label; describe reports unknown instances as terminated; terminate deletes and waits', async () => {
  server.load(loadFixture('gcp/list-describe-terminate'));
  const p = provider();
  const listed = await p.list('prod-eu');
  assert.equal(listed.map((i) => [i.id, i.state, i.spot, i.private_ip]), [
    ['prescient-4de6d91066-0', 'running', true, '10.132.0.17'],
    ['prescient-4de6d91066-1', 'pending', false, '10.132.0.18'],
  ]);
  const described = await p.describe(['prescient-4de6d91066-0', 'prescient-0123456789-0']);
  assert.equal(described.map((i) => [i.id, i.state]), [['prescient-4de6d91066-0', 'running'], ['prescient-0123456789-0', 'terminated']]);
  await p.terminate(['prescient-4de6d91066-0', 'prescient-0123456789-0']);
  allConsumed();
});

test('a stopped VM (GCE status TERMINATED) is described as stopped, so the controller deletes it', async () => {
  server.load(loadFixture('gcp/describe-stopped'));
  const [i] = await provider().describe(['prescient-4de6d91066-0']);
  allConsumed();
  assert.is(i.state, 'stopped');
});

const N2_8: InstanceType = { name: 'n2-standard-8', vcpus: 8, memory_gb: 32, gpus: 0, bandwidth_mbps: 16_000, price_per_hour: 0.39 };

test('verify reads every catalogue machine type in the zone and refuses one that is not offered there', async () => {
  server.load(loadFixture('gcp/verify-machine-types'));
  const e = await refusal(provider().verify([N2_8, { ...N2_8, name: 'n2-standard-7' }]));
  allConsumed();
  assert.is(e.kind, 'invalid');
  assert.match(e.message, /machine type n2-standard-7 is not offered in zone europe-west1-b/);
});

test('verify refuses a catalogue that lists more of a machine type than GCE gives', async () => {
  const fixture = loadFixture('gcp/verify-machine-types');
  fixture.exchanges.pop(); // only n2-standard-8 is asked about
  server.load(fixture);
  const e = await refusal(provider().verify([{ ...N2_8, vcpus: 16, memory_gb: 64 }]));
  allConsumed();
  assert.match(e.message, /n2-standard-8: the catalogue lists 16 vCPUs, the cloud has 8; the catalogue lists 64 GB of memory, the cloud has 32/);
});

test('labels are sanitised to lowercase [a-z0-9_-], at most 63 characters, keys starting with a letter', () => {
  assert.is(gcpLabel('Prod EU/1', 'value'), 'prod_eu_1');
  assert.is(gcpLabel('9Team', 'key'), 'x9team');
  assert.is(gcpLabel('a'.repeat(80), 'value').length, 63);
  assert.is(gcpLabel('_'.repeat(70), 'key'), `x${'_'.repeat(62)}`);
});

test.run();
