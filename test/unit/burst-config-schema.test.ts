/**
 * The burst configuration as one schema (coordinator/burst/config.ts, issue 20): every wrong
 * setting reported at once, unknown keys refused by name, the JSON Schema editors read, and the
 * BurstConfig a good file gives.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { ConfigError, type FieldIssue } from '../../shared/index.js';
import { burstConfigJsonSchema, loadBurstConfig, validateBurstConfig, type BurstConfig } from '../../coordinator/burst/index.js';

const MIN = 60_000;
const SMALL = { name: 'c6i.2xlarge', vcpus: 8, memory_gb: 16, gpus: 0, bandwidth_mbps: 12500, price_per_hour: 0.34, spot_price_per_hour: 0.13 };
const GPU = { name: 'g5.xlarge', vcpus: 4, memory_gb: 16, gpus: 1, gpu_model: 'A10G', bandwidth_mbps: 10000, price_per_hour: 1.01 };

/** A configuration that sets most of what can be set (and leaves a few defaults). */
const good = () => ({
  provider: 'aws',
  provider_options: { region: 'eu-west-1', image_id: 'ami-0abc', subnet_id: 'subnet-1' },
  cluster: 'prod',
  catalogue: [SMALL, { ...GPU }, { name: 'm7i.large', vcpus: 2, memory_gb: 8, bandwidth_mbps: 5000, price_per_hour: 0.1 }],
  instance_types: ['g5.xlarge', 'c6i.2xlarge'],
  max_instances: 6,
  budget_per_hour: 3.5,
  spot: true,
  cooldown: 90,
  idle_period: '15m',
  max_wait: { premium: '30s', batch: '2h' },
  tick: '500ms',
  endpoints: { nats_url: 'nats://10.0.0.5:4222', consul_http: '10.0.0.5:8500', questdb_http: 'http://10.0.0.5:9000', questdb_pg: '10.0.0.5:8812' },
  refusal_period: '20m',
  install: { source: 'tarball', url: 'https://dl.example.com/prescient.tgz', sha256: 'AB'.repeat(32) },
  agent_port: 7443,
  metadata_url: 'http://[fd00:ec2::254]/',
  forecast: { window: '30m' },
  agent_args: ['--accounted-only', 'bandwidth'],
});

/** The issues a configuration is refused with (fails the test if it is accepted). */
function refusal(raw: unknown): ConfigError {
  try {
    validateBurstConfig(raw);
  } catch (e) {
    assert.instance(e, ConfigError);
    return e as ConfigError;
  }
  assert.unreachable('the configuration was accepted');
  throw new Error('unreachable');
}
const fields = (issues: readonly FieldIssue[]) => issues.map((i) => i.field);

test('a good configuration validates to the BurstConfig it always gave, defaults and milliseconds included', () => {
  const expected: BurstConfig = {
    provider: 'aws',
    provider_options: { region: 'eu-west-1', image_id: 'ami-0abc', subnet_id: 'subnet-1' },
    cluster: 'prod',
    // instance_types picks from the catalogue, in its own order.
    catalogue: [GPU, SMALL],
    max_instances: 6,
    budget_per_hour: 3.5,
    spot: true,
    cooldown_ms: 90_000,
    idle_period_ms: 15 * MIN,
    join_timeout_ms: 5 * MIN,
    refusal_ms: 20 * MIN,
    max_wait_ms: { premium: 30_000, standard: 10 * MIN, batch: 120 * MIN },
    tick_ms: 500,
    dry_run: false,
    endpoints: { nats_url: 'nats://10.0.0.5:4222', consul_http: '10.0.0.5:8500', questdb_http: 'http://10.0.0.5:9000', questdb_pg: '10.0.0.5:8812' },
    install: { source: 'tarball', url: 'https://dl.example.com/prescient.tgz', sha256: 'ab'.repeat(32) },
    agent_port: 7443,
    metadata_url: 'http://[fd00:ec2::254]',
    forecast: { window_ms: 30 * MIN, horizon_ms: 5 * MIN },
    agent_args: ['--accounted-only', 'bandwidth'],
    keep_decisions: 50,
  };
  assert.equal(validateBurstConfig(good()), expected);

  // The least a file can say: every default, and undefined where there is none.
  const least = { provider: 'gcp', provider_options: { project: 'p', zone: 'europe-west1-b', source_image: 'img' }, cluster: 'c1', catalogue: [SMALL], max_instances: 1, budget_per_hour: 0.2, install: { source: 'image' } };
  assert.equal(validateBurstConfig(least), {
    provider: 'gcp', provider_options: { project: 'p', zone: 'europe-west1-b', source_image: 'img' }, cluster: 'c1',
    catalogue: [SMALL], max_instances: 1, budget_per_hour: 0.2, spot: false,
    cooldown_ms: 2 * MIN, idle_period_ms: 10 * MIN, join_timeout_ms: 5 * MIN, refusal_ms: undefined,
    max_wait_ms: { premium: MIN, standard: 10 * MIN, batch: 60 * MIN }, tick_ms: 5000, dry_run: false, endpoints: undefined,
    install: { source: 'image' }, agent_port: 7070, metadata_url: 'http://169.254.169.254',
    forecast: { window_ms: 15 * MIN, horizon_ms: 5 * MIN }, agent_args: [], keep_decisions: 50,
  } satisfies BurstConfig);
});

test('several wrong settings are all reported at once, each named, the rules between settings among them', () => {
  const e = refusal({
    ...good(),
    provider: 'gcp',
    cluster: 'Prod!',
    catalogue: [SMALL, { ...GPU, vcpus: 'many' }],
    instance_types: ['c6i.2xlarge', 'm9.huge'],
    max_instances: 0,
    tick: '50ms',
    install: { source: 'git', url: 'file:///srv/prescient', ref: 'a/../b' },
    agent_args: ['--cores', '--grpc-port=9'],
  });
  assert.equal(fields(e.issues), [
    'cluster', 'catalogue[1].vcpus', 'max_instances', 'tick', 'install.url', 'install.ref', 'agent_args[1]',
    'provider_options.project', 'provider_options.zone', 'provider_options.source_image', 'instance_types[1]',
  ]);
  const reason = (field: string) => e.issues.find((i) => i.field === field)?.reason ?? '';
  assert.match(reason('cluster'), /lowercase letters, digits, - and _.*got "Prod!"/);
  assert.match(reason('catalogue[1].vcpus'), /must be a number, got "many"/);
  assert.match(reason('tick'), /at least 100ms/);
  assert.match(reason('install.ref'), /tag, branch or commit/);
  assert.match(reason('agent_args[1]'), /--grpc-port=9 is set by the burst node's boot script/);
  assert.match(reason('provider_options.zone'), /missing: gcp needs it/);
  assert.match(reason('instance_types[1]'), /unknown instance type "m9.huge" \(not in the catalogue: c6i.2xlarge, g5.xlarge\)/);
  // The error names the first, and its message lists every one, a line each.
  assert.is(e.setting, 'cluster');
  assert.equal(e.message.split('\n'), e.issues.map((i) => `${i.field}: ${i.reason}`));
});

test('a rule between settings is left unchecked while a setting it reads is wrong, so nothing is reported twice', () => {
  // A wrong catalogue entry: the budget, too small for any of it, waits until the catalogue is right.
  const e = refusal({ ...good(), budget_per_hour: 0.01, catalogue: [{ ...SMALL, vcpus: 0 }, GPU] });
  assert.equal(fields(e.issues), ['catalogue[0].vcpus']);
  // Once the catalogue is right, the budget is.
  const budget = refusal({ ...good(), budget_per_hour: 0.01 });
  assert.equal(budget.issues, [{ field: 'budget_per_hour', reason: '0.01 USD/h does not pay for one instance of the cheapest type (0.13 USD/h)' }]);
});

test('an unknown key is refused by name wherever it is, __proto__ and constructor like any other', () => {
  const raw = {
    ...good(),
    ...JSON.parse('{"__proto__": {"polluted": true}, "constructor": 1, "budget": 3}'),
    catalogue: [{ ...SMALL, region: 'eu-west-1' }, GPU],
    install: JSON.parse('{"source": "image", "__proto__": {"polluted": true}}'),
    max_wait: { gold: '1m' },
  };
  const e = refusal(raw);
  assert.equal(fields(e.issues), ['catalogue[0].region', 'max_wait.gold', 'install.__proto__', '__proto__', 'constructor', 'budget']);
  const reason = (field: string) => e.issues.find((i) => i.field === field)?.reason ?? '';
  assert.match(reason('__proto__'), /^unknown setting \(known: provider, provider_options, cluster,/);
  assert.match(reason('install.__proto__'), /not a setting of install source image \(it takes source\)/);
  assert.match(reason('max_wait.gold'), /unknown SLA class \(known: premium, standard, batch\)/);
  assert.match(reason('catalogue[0].region'), /not a known field/);
  assert.is(({} as Record<string, unknown>).polluted, undefined);
  // The provider's own options take any key but those JavaScript reserves.
  const options = refusal({ ...good(), provider_options: JSON.parse('{"region": "eu-west-1", "image_id": "ami-0abc", "__proto__": {"polluted": true}}') });
  assert.equal(fields(options.issues), ['provider_options.__proto__']);
  assert.match(options.issues[0].reason, /reserves/);
});

test('a required setting written empty reads as missing, with what to write there', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-burst-'));
  try {
    const file = path.join(dir, 'burst.yaml');
    writeFileSync(file, 'provider: aws\nprovider_options:\ncluster: prod\ncatalogue: [{ name: c6i.2xlarge, vcpus: 8, memory_gb: 16, bandwidth_mbps: 12500, price_per_hour: 0.34 }]\nmax_instances: 2\nbudget_per_hour: 1\ninstall:\nspot:\n');
    const e = (() => { try { loadBurstConfig(file); } catch (x) { return x as ConfigError; } assert.unreachable('accepted'); throw new Error(); })();
    assert.instance(e, ConfigError);
    assert.equal(e.issues, [
      { field: 'provider_options', reason: 'missing: aws needs region' },
      { field: 'install', reason: 'missing: burst nodes need to know where Prescient comes from: { source: image } (Prescient is in the image), { source: git, url, ref } or { source: tarball, url, sha256 }' },
    ]);
    writeFileSync(file, '');
    assert.throws(() => loadBurstConfig(file), (x: unknown) => x instanceof ConfigError && x.setting === 'burst' && /the configuration is empty/.test(x.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ── the JSON Schema ────────────────────────────────────────────────────────────────────

type Json = Record<string, any>;

// A real draft-07 validator, strict (it refuses a schema with unknown keywords or loose types).
const ajv = new Ajv({ strict: true, allErrors: true, formats: { uri: (x: string) => URL.canParse(x) } });
const compiled = new WeakMap<object, ValidateFunction>();
/** Where `value` breaks `schema`: each error as `PATH KEYWORD` (and the property it names). */
function breaks(schema: Json, value: unknown): string[] {
  let check = compiled.get(schema);
  if (!check) compiled.set(schema, (check = ajv.compile(schema)));
  if (check(value)) return [];
  return (check.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.keyword}${e.params.missingProperty ? ` ${e.params.missingProperty}` : ''}${e.params.additionalProperty ? ` ${e.params.additionalProperty}` : ''}`);
}

test('the JSON Schema is draft-07, titled, with the settings required, their kinds, limits and defaults', () => {
  const s = burstConfigJsonSchema() as Json;
  assert.equal(JSON.parse(JSON.stringify(s)), s, 'plain JSON');
  assert.is(s.$schema, 'http://json-schema.org/draft-07/schema#');
  assert.is(s.title, 'Prescient burst configuration');
  assert.equal([s.type, s.additionalProperties], ['object', false]);
  assert.equal(s.required, ['provider', 'provider_options', 'cluster', 'catalogue', 'max_instances', 'budget_per_hour', 'install']);
  const p = s.properties;
  assert.equal(Object.keys(p), ['provider', 'provider_options', 'cluster', 'catalogue', 'instance_types', 'max_instances', 'budget_per_hour', 'spot', 'cooldown',
    'idle_period', 'join_timeout', 'max_wait', 'tick', 'dry_run', 'endpoints', 'keep_decisions', 'refusal_period', 'install', 'agent_port', 'metadata_url', 'forecast', 'agent_args']);
  for (const [k, x] of Object.entries(p)) assert.type((x as Json).description, 'string', `${k} is described`);
  assert.equal(p.provider.enum, ['aws', 'gcp', 'azure']);
  assert.equal(p.catalogue.minItems, 1);
  assert.equal(p.catalogue.items.required, ['name', 'vcpus', 'memory_gb', 'bandwidth_mbps', 'price_per_hour']);
  assert.equal(p.catalogue.items.additionalProperties, false);
  assert.equal([p.catalogue.items.properties.vcpus.type, p.catalogue.items.properties.vcpus.minimum], ['integer', 1]);
  assert.equal(p.catalogue.items.properties.price_per_hour.exclusiveMinimum, 0);
  assert.equal(p.budget_per_hour.exclusiveMinimum, 0);
  assert.equal([p.max_instances.type, p.max_instances.minimum], ['integer', 1]);
  assert.equal([p.agent_port.minimum, p.agent_port.maximum, p.agent_port.default], [1, 65535, 7070]);
  assert.equal([p.spot.type, p.spot.default, p.cooldown.default, p.tick.default, p.metadata_url.default], ['boolean', false, '2m', '5s', 'http://169.254.169.254']);
  assert.equal(p.max_wait.properties.batch.default, '60m');
  assert.equal(p.install.oneOf.map((o: Json) => [o.properties.source.const, o.required]), [['image', ['source']], ['git', ['source', 'url', 'ref']], ['tarball', ['source', 'url', 'sha256']]]);
  assert.equal(p.forecast.anyOf.map((o: Json) => o.type), ['boolean', 'object']);
  // What each provider needs in provider_options.
  const needs = Object.fromEntries(s.allOf.map((r: Json) => [r.if.properties.provider.const, r.then.properties.provider_options.required]));
  assert.equal(needs, {
    aws: ['region'], gcp: ['project', 'zone', 'source_image'],
    azure: ['subscription_id', 'resource_group', 'location', 'subnet_id', 'admin_username', 'ssh_public_key', 'image'],
  });
});

test('the JSON Schema accepts a known-good configuration and refuses what the validator refuses on its own', () => {
  const s = burstConfigJsonSchema() as Json;
  assert.equal(breaks(s, good()), []);
  assert.equal(breaks(s, { ...good(), max_wait: {}, forecast: false, install: { source: 'git', url: 'git@github.com:acme/prescient.git', ref: 'v0.4.0' } }), []);
  const wrong = new Set(breaks(s, {
    ...good(), budget: 3, agent_port: 70000, cooldown: 'soon', provider_options: { image_id: 'ami-0abc' },
    catalogue: [{ ...SMALL, vcpus: 0 }], install: { source: 'image', url: 'https://x' },
  }));
  for (const e of ['/provider_options required region', '/catalogue/0/vcpus minimum', '/cooldown anyOf', '/install oneOf', '/agent_port maximum', '/ additionalProperties budget']) {
    assert.ok(wrong.has(e), `${e} not among ${[...wrong].join('; ')}`);
  }
  // Nothing else is wrong with it: every error lies under one of those six (or is the provider rule they break).
  for (const e of wrong) assert.ok(/^\/(provider_options|catalogue\/0\/vcpus|cooldown|install|agent_port)[/ ]|^\/ additionalProperties budget$|^\/ if$/.test(e), e);
});

test.run();
