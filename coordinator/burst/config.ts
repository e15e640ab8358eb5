/**
 * The burst configuration, staged as types (as Temporal's worker options are): the file as
 * written (YAML or JSON) → validated with defaults (`BurstConfig`) by one schema
 * (`BurstConfigSchema`, shared/schema/kit), every error at once and each naming its field →
 * the provider verified once at start (`verifyProvider`: no credentials or a region that does
 * not exist refuse the start). The same schema gives the JSON Schema editors read
 * (`burstConfigJsonSchema`).
 *
 *   provider: aws                       # aws | gcp | azure
 *   provider_options: { region: eu-west-1, image_id: ami-0abc… }
 *   cluster: prod                       # tag value on every instance; agents join this cluster
 *   catalogue:                          # what may be launched, with prices (USD per hour)
 *     - { name: c6i.2xlarge, vcpus: 8, memory_gb: 16, gpus: 0, bandwidth_mbps: 12500, price_per_hour: 0.34, spot_price_per_hour: 0.13 }
 *   instance_types: [c6i.2xlarge]       # optional subset of the catalogue's names (default: all)
 *   max_instances: 10
 *   budget_per_hour: 5
 *   spot: true
 *   cooldown: 2m                        # durations: 90s, 2m, 1h, or a number of seconds
 *   idle_period: 10m
 *   join_timeout: 5m
 *   max_wait: { premium: 1m, standard: 10m, batch: 60m }
 *   tick: 5s
 *   dry_run: false
 *   endpoints: { nats_url: …, consul_http: …, questdb_http: …, questdb_pg: … }   # as burst nodes reach them (default: the coordinator's)
 *   install: { source: git, url: https://git.example.com/prescient.git, ref: v0.4.0 }   # required: where burst nodes get Prescient
 *            # or { source: image } (the image has it) or { source: tarball, url: https://…/prescient.tar.gz, sha256: … }
 *   forecast: { window: 15m, horizon: 5m }   # also replay the jobs each class is expected to submit
 *                                       # within horizon (about a node's boot time); false: off
 *   agent_port: 7070                    # the agent's gRPC port on burst nodes (the leader dials it)
 *   agent_args: [--accounted-only, bandwidth]   # more `prescient agent` arguments for burst nodes
 *   metadata_url: http://169.254.169.254   # the cloud's instance metadata service (http://[fd00:ec2::254] on IPv6-only EC2)
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { ConfigError, describeValue, type StackEndpoints } from '../../shared/index.js';
import { crossCheck, described, dictionary, either, first, flag, jsonSchemaOf, list, mapping, num, optional, parseDocument, pathTo, text, v } from '../../shared/schema/kit.js';
import type { JsonSchema } from '@valibot/to-json-schema';
import type { BurstPolicy } from './decide.js';
import type { ForecastPolicy } from './forecast.js';
import { ProviderError, type CloudProvider, type InstanceType } from './providers/types.js';
import type { InstallSource } from './userdata.js';
import type { Log } from '../../shared/log.js';

export const PROVIDER_NAMES = ['aws', 'gcp', 'azure'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];

/** Options each provider cannot do without (the rest are the provider's own business). */
export const REQUIRED_PROVIDER_OPTIONS: Record<ProviderName, string[]> = {
  aws: ['region'],
  gcp: ['project', 'zone', 'source_image'],
  azure: ['subscription_id', 'resource_group', 'location', 'subnet_id', 'admin_username', 'ssh_public_key'],
};

export interface BurstConfig extends BurstPolicy {
  provider: ProviderName;
  provider_options: Record<string, unknown>;
  cluster: string;
  /** How often the controller decides. */
  tick_ms: number;
  /** Decide and log what it would do, launch and terminate nothing. */
  dry_run: boolean;
  /** Endpoints written into burst nodes' user data (default: the coordinator's own). */
  endpoints?: StackEndpoints;
  /** Where burst nodes get Prescient from. */
  install: InstallSource;
  /** The gRPC port agents on burst nodes serve (at the private address the metadata service gives). */
  agent_port: number;
  /** The instance metadata service burst nodes ask for their id and address. */
  metadata_url: string;
  /** More `prescient agent` arguments burst nodes start with. */
  agent_args: string[];
  /** How many decisions `prescient scale status` keeps. */
  keep_decisions: number;
}

/** The burst configuration with the provider it launches through (what a coordinator is given). */
export interface BurstOptions {
  config: BurstConfig;
  provider: CloudProvider;
  /** Extra `prescient agent` arguments burst nodes start with (default: config.agent_args). */
  agentArgs?: string[];
}

// ── the schema's parts ─────────────────────────────────────────────────────────────────

type Issue = v.BaseIssue<unknown>;
const isMapping = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const unknownSetting = (allowed: readonly string[]) => `unknown setting (known: ${allowed.join(', ')})`;

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** `90s`, `2m`, `1h`, `500ms` or a number of seconds, as milliseconds. */
function duration() {
  const why = (i: Issue) => `must be a duration such as 90s, 2m or 1h, got ${describeValue(i.input)}`;
  return first(v.pipe(
    v.union([v.pipe(v.number(why), v.finite(why), v.minValue(0, why)), v.pipe(v.string(why), v.regex(DURATION, why))], why),
    v.transform((x) => {
      if (typeof x === 'number') return x * 1000;
      const [, n, unit] = DURATION.exec(x)!;
      return Number(n) * UNIT_MS[unit as keyof typeof UNIT_MS];
    }),
  ));
}

/** Text of at least one character. */
function named(reason: string) {
  const why = (i: Issue) => `${reason}, got ${describeValue(i.input)}`;
  return first(v.pipe(v.string(why), v.nonEmpty(why)));
}

/** Greater than 0, saying so for a negative number too. */
const positive = () => first(v.pipe(num(), v.gtValue(0, (i: Issue) => `must be greater than 0, got ${i.input}`)));

/** A URL with one of `protocols`, nothing in it a shell or an env file would read twice. */
function httpUrl(protocols: readonly string[]) {
  const why = (i: Issue) => `must be a ${protocols.map((p) => p.replace(':', '')).join(' or ')} URL, got ${describeValue(i.input)}`;
  return first(v.pipe(
    v.string(why), v.url(why), v.check((u) => protocols.includes(new URL(u).protocol), why),
    v.check((u) => !/[\s'"`$\\]/.test(u), (i: Issue) => `must not contain whitespace, quotes, $ or backslashes, got ${describeValue(i.input)}`),
  ));
}

/** A mapping of whatever keys (a provider's own options); `__proto__` and the like are refused by name. */
const openMapping = (reason: string) => dictionary(v.string(), v.unknown(), { notMapping: reason });

/** Compile-time check that two types take the same values (each is assignable to the other). */
type Agree<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

const instanceTypeSchema = mapping({
  name: described(named('must be the provider\'s name of the type'), 'The provider\'s own name of the type: c6i.2xlarge, n2-standard-8, Standard_F8s_v2.'),
  vcpus: described(num({ min: 1, integer: true }), 'Virtual CPUs.'),
  memory_gb: described(positive(), 'Memory in GB.'),
  gpus: described(optional(num({ min: 0, integer: true }), 0), 'GPUs.'),
  bandwidth_mbps: described(positive(), 'Network bandwidth in Mbit/s: what the ledger will see as the node\'s bandwidth.'),
  price_per_hour: described(positive(), 'On-demand price in USD per hour.'),
  spot_price_per_hour: described(optional(positive()), 'Spot/preemptible price in USD per hour, where the type is offered that way.'),
  gpu_model: described(optional(named('must be the GPU\'s model name')), 'GPU model when gpus > 0 (its encoder sessions follow from it).'),
}, {
  notMapping: 'must be an instance type with name, vcpus, memory_gb, gpus, bandwidth_mbps and price_per_hour',
  missing: { name: 'must be the provider\'s name of the type' },
});
const _instanceTypeAgrees: Agree<v.InferOutput<typeof instanceTypeSchema>, InstanceType> = true;

/** Most catalogue entries and instance types; most agent arguments. */
const MAX_TYPES = 1000;
const MAX_AGENT_ARGS = 100;

const catalogueSchema = v.pipe(
  list(instanceTypeSchema, { min: 1, max: MAX_TYPES, what: 'a list of instance types, each with its name, vcpus, memory_gb, gpus, bandwidth_mbps and price_per_hour' }),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!Array.isArray(dataset.value)) return;
    const seen = new Set<string>();
    dataset.value.forEach((t: unknown, k) => {
      const name = isMapping(t) ? t.name : undefined;
      if (typeof name !== 'string') return;
      if (seen.has(name)) addIssue({ message: `${name} is listed twice`, path: pathTo(dataset.value, [k, 'name']) });
      seen.add(name);
    });
  }),
);

const INSTALL_HELP = '{ source: image } (Prescient is in the image), { source: git, url, ref } or { source: tarball, url, sha256 }';
const INSTALL_MISSING = `missing: burst nodes need to know where Prescient comes from: ${INSTALL_HELP}`;
const installOf = (source: string) => ({ unknown: (allowed: readonly string[]) => `not a setting of install source ${source} (it takes ${allowed.join(', ')})` });
/** https:// or ssh:// URLs, or scp-like git@host:path; never an option or a local path. */
const GIT_URL = /^(?:(?:https|ssh):\/\/[^\s'"`$\\]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s'"`$\\]+)$/;
const GIT_URL_REASON = 'must be an https://, ssh:// or user@host:path git URL';
const GIT_REF = /^(?!.*\.\.)[A-Za-z0-9._][A-Za-z0-9._/-]{0,199}$/;
const GIT_REF_REASON = 'must be a tag, branch or commit (letters, digits, . _ / -; a fixed tag or commit keeps every node on the leader\'s version)';
const SHA256_REASON = 'must be the tarball\'s sha256 as 64 hex digits';
const TARBALL_URL_REASON = 'must be a https or http URL';

/** Where burst nodes get Prescient: required, since a node that cannot install never joins. */
const installSchema = described(first(v.pipe(
  v.unknown(),
  v.check((x) => !Array.isArray(x), `must be ${INSTALL_HELP}`),
  v.variant('source', [
    mapping({ source: described(v.literal('image'), 'The image already has Prescient (`prescient` on PATH): nothing is fetched at boot.') }, installOf('image')),
    mapping({
      source: described(v.literal('git'), 'A git repository at a fixed ref, so every node runs the leader\'s version.'),
      url: described(text(GIT_URL, GIT_URL_REASON), 'An https://, ssh:// or user@host:path git URL.'),
      ref: described(text(GIT_REF, GIT_REF_REASON), 'A tag, branch or commit (a fixed tag or commit keeps every node on the leader\'s version).'),
    }, { ...installOf('git'), missing: { url: GIT_URL_REASON, ref: GIT_REF_REASON } }),
    mapping({
      source: described(v.literal('tarball'), 'A tarball (e.g. `git archive`), refused unless it has this sha256.'),
      url: described(httpUrl(['https:', 'http:']), 'An https:// or http:// URL of the tarball.'),
      sha256: described(v.pipe(text(/^[0-9a-fA-F]{64}$/, SHA256_REASON), v.transform((s) => s.toLowerCase())), 'The tarball\'s sha256, 64 hex digits.'),
    }, { ...installOf('tarball'), missing: { url: TARBALL_URL_REASON, sha256: SHA256_REASON } }),
  ], (i: Issue) => {
    if (i.path) return `must be image, git or tarball, got ${describeValue(i.input)}`;
    return i.input === undefined || i.input === null ? INSTALL_MISSING : `must be ${INSTALL_HELP}`;
  }),
)), 'Where burst nodes get Prescient from.');
const _installAgrees: Agree<v.InferOutput<typeof installSchema>, InstallSource> = true;

/** The leader keeps arrivals this long (coordinator/core ARRIVALS_KEPT_MS). */
const FORECAST_WINDOW_MAX_MS = 3_600_000;

/** `forecast`: on by default (window 15m, horizon 5m); `false` turns it off. */
const forecastSchema = described(optional(first(v.pipe(
  v.unknown(),
  v.transform((x) => (x === true ? {} : x)),
  either({ flag: v.boolean(), mapping: mapping({
    window: described(optional(first(v.pipe(
      duration(),
      v.check((ms) => ms >= 60_000, (i: Issue) => `must be at least 1m (a shorter window makes the rate jump with every job), got ${(i.input as number) / 1000}s`),
      v.check((ms) => ms <= FORECAST_WINDOW_MAX_MS, (i: Issue) => `must be at most 1h (the leader remembers arrivals that long), got ${(i.input as number) / 60_000} min`),
    )), '15m'), 'How far back arrivals are counted: 1m to 1h.'),
    horizon: described(optional(duration(), '5m'), 'How far ahead arrivals are forecast (about what a burst node takes to join).'),
  }, { unknown: unknownSetting }) }, 'must be false, or { window, horizon } durations'),
  // `true` was read as {} above: only `false` is left of the booleans.
  v.transform((f): ForecastPolicy | undefined => (typeof f === 'boolean' ? undefined : { window_ms: f.window, horizon_ms: f.horizon })),
)), true), 'Also replay the jobs each class is expected to submit within horizon (about a node\'s boot time); false: off.');

/** Set by the boot script from the metadata service and agent_port: not to be given again. */
const BOOT_SET_ARGS = ['--node-id', '--grpc-host', '--grpc-port'];

const agentArgSchema = first(v.pipe(
  v.string((i: Issue) => `must be one line of text, got ${describeValue(i.input)}`),
  v.check((a) => !/[\r\n\0]/.test(a), (i: Issue) => `must be one line of text, got ${describeValue(i.input)}`),
  v.check((a) => !BOOT_SET_ARGS.some((b) => a === b || a.startsWith(`${b}=`)), (i: Issue) => `${i.input as string} is set by the burst node's boot script (from the metadata service and agent_port)`),
));

const endpointSchema = (what: string) => described(named('must be an endpoint of the stack'), what);
const ENDPOINT_MISSING = 'missing: burst nodes need every endpoint of the stack';

/** The catalogue entries `instance_types` allows (all of them without it), in its order. */
function allowedTypes(c: { catalogue: readonly InstanceType[]; instance_types?: readonly string[] }): InstanceType[] {
  return c.instance_types ? c.instance_types.map((n) => c.catalogue.find((t) => t.name === n)!) : [...c.catalogue];
}
const cheapest = (types: readonly InstanceType[]) => Math.min(...types.map((t) => Math.min(t.price_per_hour, t.spot_price_per_hour ?? Infinity)));

// ── the schema ─────────────────────────────────────────────────────────────────────────

/** The settings of a burst configuration file, each on its own. */
const settings = mapping({
  provider: described(v.picklist(PROVIDER_NAMES, (i: Issue) => `must be one of ${PROVIDER_NAMES.join(', ')}, got ${describeValue(i.input)}`), 'The cloud burst nodes are launched in.'),
  provider_options: described(openMapping('must be a mapping of the provider\'s options'),
    `The provider's options (aws: ${REQUIRED_PROVIDER_OPTIONS.aws.join(', ')} and image_id or launch_template; gcp: ${REQUIRED_PROVIDER_OPTIONS.gcp.join(', ')}; azure: ${REQUIRED_PROVIDER_OPTIONS.azure.join(', ')} and image).`),
  cluster: described(text(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be a name of lowercase letters, digits, - and _ (it becomes a tag and label value)'), 'Tag value on every instance; agents join this cluster.'),
  catalogue: described(catalogueSchema, 'What may be launched, with prices (USD per hour).'),
  instance_types: described(optional(list(v.string((i: Issue) => `must be the name of a catalogue entry, got ${describeValue(i.input)}`), {
    min: 1, max: MAX_TYPES, what: 'a non-empty list of catalogue names',
  })), 'The catalogue names that may be launched (default: all).'),
  max_instances: described(num({ min: 1, integer: true }), 'Burst instances alive at once (pending, running or draining), at most.'),
  budget_per_hour: described(positive(), 'USD per hour all burst instances together may cost, at most.'),
  spot: described(optional(flag(), false), 'Launch spot/preemptible capacity where the type has a spot price.'),
  cooldown: described(optional(duration(), '2m'), 'No new launch within this long of the last one (90s, 2m, 1h, or a number of seconds).'),
  idle_period: described(optional(duration(), '10m'), 'A burst node with no reservation for this long is drained, then terminated.'),
  join_timeout: described(optional(duration(), '5m'), 'A launched instance whose agent has not registered within this long is terminated.'),
  max_wait: described(optional(mapping({
    premium: described(optional(duration(), '1m'), 'Premium jobs.'),
    standard: described(optional(duration(), '10m'), 'Standard jobs.'),
    batch: described(optional(duration(), '60m'), 'Batch jobs.'),
  }, { unknown: (allowed) => `unknown SLA class (known: ${allowed.join(', ')})`, notMapping: 'must map premium, standard and batch to durations' }), {}),
  'Longest predicted wait (submission to start) each class may have before it bursts.'),
  tick: described(optional(first(v.pipe(duration(), v.check((ms) => ms >= 100, 'must be at least 100ms'))), '5s'), 'How often the controller decides (at least 100ms).'),
  dry_run: described(optional(flag(), false), 'Decide and log what it would do, launch and terminate nothing.'),
  endpoints: described(optional(mapping({
    nats_url: endpointSchema('nats://host:port'),
    consul_http: endpointSchema('host:port of Consul\'s HTTP API'),
    questdb_http: endpointSchema('http://host:port of QuestDB\'s REST API'),
    questdb_pg: endpointSchema('host:port of QuestDB\'s PostgreSQL wire endpoint'),
  }, {
    notMapping: 'must map nats_url, consul_http, questdb_http and questdb_pg',
    missing: { nats_url: ENDPOINT_MISSING, consul_http: ENDPOINT_MISSING, questdb_http: ENDPOINT_MISSING, questdb_pg: ENDPOINT_MISSING },
  })), 'The stack\'s endpoints as burst nodes reach them (default: the coordinator\'s).'),
  keep_decisions: described(optional(num({ min: 1, integer: true }), 50), 'How many decisions `prescient scale status` keeps.'),
  refusal_period: described(optional(duration()), 'How long a capacity refusal rules out a type (spot: its spot capacity). Default 30 min.'),
  install: installSchema,
  agent_port: described(optional(first(v.pipe(
    num({ min: 1, integer: true }),
    v.maxValue(65535, (i: Issue) => `must be a TCP port (1-65535), got ${i.input}`),
  )), 7070), 'The agent\'s gRPC port on burst nodes (the leader dials it).'),
  metadata_url: described(optional(v.pipe(httpUrl(['http:']), v.transform((u) => u.replace(/\/+$/, ''))), 'http://169.254.169.254'),
    'The cloud\'s instance metadata service (http://[fd00:ec2::254] on IPv6-only EC2).'),
  forecast: forecastSchema,
  agent_args: described(optional(list(agentArgSchema, { max: MAX_AGENT_ARGS, what: 'a list of `prescient agent` arguments' }), []),
    'More `prescient agent` arguments for burst nodes (not --node-id, --grpc-host or --grpc-port: the boot script sets them).'),
}, {
  unknown: unknownSetting,
  notMapping: 'the configuration must be a mapping',
  missing: {
    provider: `must be one of ${PROVIDER_NAMES.join(', ')}`,
    provider_options: (c) => (PROVIDER_NAMES.includes(c.provider as ProviderName) ? `missing: ${c.provider as ProviderName} needs ${REQUIRED_PROVIDER_OPTIONS[c.provider as ProviderName].join(', ')}` : 'is required'),
    cluster: 'must be a name of lowercase letters, digits, - and _ (it becomes a tag and label value)',
    catalogue: 'must list at least one instance type with its vcpus, memory_gb, gpus, bandwidth_mbps and price_per_hour',
    install: INSTALL_MISSING,
  },
});
/** The settings as validated on their own (the rules between them not yet checked). */
type Settings = v.InferOutput<typeof settings>;

/** The burst configuration file: what it takes, every rule between its settings, and the `BurstConfig` it gives. */
export const BurstConfigSchema = v.pipe(
  settings,
  // What each provider cannot do without.
  crossCheck<Settings>([['provider'], ['provider_options']], (c, report) => {
    const { provider, provider_options: options } = c;
    for (const k of REQUIRED_PROVIDER_OPTIONS[provider]) if (typeof options[k] !== 'string' || !options[k]) report(['provider_options', k], `missing: ${provider} needs it`);
    if (provider === 'aws' && !options.image_id && !options.launch_template) report(['provider_options', 'image_id'], 'missing: aws needs image_id or launch_template');
    if (provider === 'azure' && !isMapping(options.image)) report(['provider_options', 'image'], 'missing: azure needs image ({ publisher, offer, sku, version } or { id })');
  }),
  // instance_types names catalogue entries (those with a name, where another entry is wrong).
  crossCheck<Settings>([['instance_types']], (c, report) => {
    const catalogue: unknown = c.catalogue;
    if (!Array.isArray(catalogue) || !c.instance_types) return;
    const names = catalogue.flatMap((t: unknown) => (isMapping(t) && typeof t.name === 'string' ? [t.name] : []));
    c.instance_types.forEach((n, k) => {
      if (!names.includes(n)) report(['instance_types', k], `unknown instance type ${describeValue(n)} (not in the catalogue: ${names.join(', ')})`);
    });
  }),
  // The budget pays for one instance of the cheapest type allowed.
  crossCheck<Settings>([['budget_per_hour'], ['catalogue'], ['instance_types']], (c, report) => {
    const price = cheapest(allowedTypes(c));
    if (price > c.budget_per_hour) report(['budget_per_hour'], `${c.budget_per_hour} USD/h does not pay for one instance of the cheapest type (${price} USD/h)`);
  }),
  v.transform((c): BurstConfig => ({
    provider: c.provider, provider_options: c.provider_options, cluster: c.cluster,
    catalogue: allowedTypes(c), max_instances: c.max_instances, budget_per_hour: c.budget_per_hour, spot: c.spot,
    cooldown_ms: c.cooldown, idle_period_ms: c.idle_period, join_timeout_ms: c.join_timeout, refusal_ms: c.refusal_period,
    max_wait_ms: { premium: c.max_wait.premium, standard: c.max_wait.standard, batch: c.max_wait.batch },
    tick_ms: c.tick, dry_run: c.dry_run, endpoints: c.endpoints, install: c.install, agent_port: c.agent_port,
    metadata_url: c.metadata_url, forecast: c.forecast, agent_args: c.agent_args, keep_decisions: c.keep_decisions,
  })),
);
// The interface says what a BurstConfig is (BurstPolicy is decide.ts's); the schema gives just that.
const _configAgrees: Agree<v.InferOutput<typeof BurstConfigSchema>, BurstConfig> = true;

/** Validates a parsed configuration; throws a ConfigError naming every wrong field at once. */
export function validateBurstConfig(raw: unknown): BurstConfig {
  if (raw === undefined || raw === null) throw new ConfigError('burst', 'the configuration is empty (it must be a mapping of settings)');
  const r = parseDocument(BurstConfigSchema, raw);
  if (!r.ok) throw ConfigError.of(r.issues, r.omitted, 'burst');
  return r.value;
}

/**
 * The JSON Schema (draft-07) of a burst configuration file, for editors and other tools. What
 * each provider needs in provider_options is said per provider; the other rules between settings
 * (instance_types names catalogue entries, the budget pays for the cheapest, ...) are the
 * validator's alone.
 */
export function burstConfigJsonSchema(): JsonSchema {
  const schema = jsonSchemaOf(BurstConfigSchema, {
    title: 'Prescient burst configuration',
    description: 'Cloud burst (`prescient coordinator --burst FILE`): which instances may be launched, when, and how burst nodes join.',
  });
  const needs = (p: ProviderName): JsonSchema => {
    const required = REQUIRED_PROVIDER_OPTIONS[p];
    const properties = Object.fromEntries(required.map((k): [string, JsonSchema] => [k, { type: 'string', minLength: 1 }]));
    // `type` with `required`, or strict validators (Ajv's strictTypes) refuse the schema itself.
    if (p === 'aws') return { type: 'object', required, properties, anyOf: ['image_id', 'launch_template'].map((k) => ({ type: 'object', required: [k], properties: { [k]: { type: 'string', minLength: 1 } } })) };
    if (p === 'azure') return { type: 'object', required: [...required, 'image'], properties: { ...properties, image: { type: 'object' } } };
    return { type: 'object', required, properties };
  };
  return {
    ...schema,
    allOf: PROVIDER_NAMES.map((p) => ({
      if: { type: 'object', required: ['provider'], properties: { provider: { type: 'string', const: p } } },
      then: { properties: { provider_options: needs(p) } },
    })),
  };
}

/** Reads and validates a YAML or JSON burst configuration file. */
export function loadBurstConfig(file: string): BurstConfig {
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError('--burst', `cannot read ${file}: ${(e as Error).message}`);
  }
  const doc = YAML.parseDocument(source);
  if (doc.errors.length) throw new ConfigError(file, `is not valid YAML/JSON: ${doc.errors[0].message}`);
  return validateBurstConfig(doc.toJS());
}

/**
 * The provider's check at start: missing credentials ('auth') and bad configuration such as a
 * region that does not exist, or a catalogue type the cloud does not offer there or has less of
 * than the catalogue says ('invalid'), refuse the start; a transient failure does not (the
 * controller retries every tick).
 */
export async function verifyProvider(p: CloudProvider, types: readonly InstanceType[] = [], log: Log = () => undefined): Promise<void> {
  try {
    await p.verify(types);
  } catch (e) {
    if (e instanceof ProviderError && (e.kind === 'auth' || e.kind === 'invalid')) {
      throw new ConfigError(`burst provider ${p.name} (${p.region})`, e.kind === 'auth' ? `no usable credentials: ${e.message}` : `invalid configuration: ${e.message}`);
    }
    log(`burst: ${p.name} could not be verified at start, going on (${(e as Error).message})`, 'warn');
  }
}

/** Builds the configured provider (coordinator/burst/providers/<name>.ts), loaded only when configured. */
export async function createProvider(cfg: Pick<BurstConfig, 'provider' | 'provider_options'>): Promise<CloudProvider> {
  const o = cfg.provider_options as never;
  switch (cfg.provider) {
    case 'aws': return new (await import('./providers/aws.js')).AwsProvider(o);
    case 'gcp': return new (await import('./providers/gcp.js')).GcpProvider(o);
    case 'azure': return new (await import('./providers/azure.js')).AzureProvider(o);
  }
}
