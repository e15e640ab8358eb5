/**
 * The burst configuration, staged as types (as Temporal's worker options are): the file as
 * written (`RawBurstConfig`, YAML or JSON) → validated with defaults (`BurstConfig`), every error
 * naming its field → the provider verified once at start (`verifyProvider`: no credentials or
 * a region that does not exist refuse the start).
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
import { ConfigError, SLA_CLASSES, type SlaClass, type StackEndpoints } from '../../shared/index.js';
import type { BurstPolicy } from './decide.js';
import type { ForecastPolicy } from './forecast.js';
import { ProviderError, type CloudProvider, type InstanceType } from './providers/types.js';
import type { InstallSource } from './userdata.js';

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

const DEFAULTS = {
  agent_port: 7070, metadata_url: 'http://169.254.169.254', forecast: { window: '15m', horizon: '5m' },
  spot: false, cooldown: '2m', idle_period: '10m', join_timeout: '5m', tick: '5s', dry_run: false, keep_decisions: 50,
  max_wait: { premium: '1m', standard: '10m', batch: '60m' } as Record<SlaClass, string>,
};

/** `90s`, `2m`, `1h`, `500ms` or a number of seconds, as milliseconds. */
export function parseDuration(field: string, v: unknown): number {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v * 1000;
  const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/.exec(v.trim()) : null;
  if (!m) throw new ConfigError(field, `must be a duration such as 90s, 2m or 1h, got ${JSON.stringify(v)}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function num(field: string, v: unknown, o: { min?: number; above?: number; int?: boolean } = {}): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(field, `must be a number, got ${JSON.stringify(v)}`);
  if (o.int && !Number.isInteger(v)) throw new ConfigError(field, `must be a whole number, got ${v}`);
  if (o.above !== undefined && !(v > o.above)) throw new ConfigError(field, `must be greater than ${o.above}, got ${v}`);
  if (o.min !== undefined && v < o.min) throw new ConfigError(field, `must be at least ${o.min}, got ${v}`);
  return v;
}

function instanceType(field: string, v: unknown): InstanceType {
  if (!isObject(v)) throw new ConfigError(field, 'must be an object with name, vcpus, memory_gb, gpus, bandwidth_mbps and price_per_hour');
  if (typeof v.name !== 'string' || !v.name) throw new ConfigError(`${field}.name`, 'must be the provider\'s name of the type');
  const t: InstanceType = {
    name: v.name,
    vcpus: num(`${field}.vcpus`, v.vcpus, { min: 1, int: true }),
    memory_gb: num(`${field}.memory_gb`, v.memory_gb, { above: 0 }),
    gpus: num(`${field}.gpus`, v.gpus ?? 0, { min: 0, int: true }),
    bandwidth_mbps: num(`${field}.bandwidth_mbps`, v.bandwidth_mbps, { above: 0 }),
    price_per_hour: num(`${field}.price_per_hour`, v.price_per_hour, { above: 0 }),
  };
  if (v.spot_price_per_hour !== undefined) t.spot_price_per_hour = num(`${field}.spot_price_per_hour`, v.spot_price_per_hour, { above: 0 });
  if (v.gpu_model !== undefined) t.gpu_model = String(v.gpu_model);
  return t;
}

/** A URL with one of `protocols`, nothing in it a shell or an env file would read twice. */
function httpUrl(field: string, v: unknown, protocols: string[]): string {
  if (typeof v !== 'string' || !URL.canParse(v) || !protocols.includes(new URL(v).protocol)) {
    throw new ConfigError(field, `must be a ${protocols.map((p) => p.replace(':', '')).join(' or ')} URL, got ${JSON.stringify(v)}`);
  }
  if (/[\s'"`$\\]/.test(v)) throw new ConfigError(field, `must not contain whitespace, quotes, $ or backslashes, got ${JSON.stringify(v)}`);
  return v;
}

/** The leader keeps arrivals this long (coordinator/core ARRIVALS_KEPT_MS). */
const FORECAST_WINDOW_MAX_MS = 3_600_000;

/** `forecast`: on by default (window 15m, horizon 5m); `false` turns it off. */
function forecastPolicy(v: unknown): ForecastPolicy | undefined {
  if (v === false) return undefined;
  if (v !== undefined && v !== true && !isObject(v)) throw new ConfigError('forecast', `must be false, or { window, horizon } durations, got ${JSON.stringify(v)}`);
  const o = isObject(v) ? v : {};
  for (const k of Object.keys(o)) if (k !== 'window' && k !== 'horizon') throw new ConfigError(`forecast.${k}`, 'unknown setting (known: window, horizon)');
  const window_ms = parseDuration('forecast.window', o.window ?? DEFAULTS.forecast.window);
  const horizon_ms = parseDuration('forecast.horizon', o.horizon ?? DEFAULTS.forecast.horizon);
  if (window_ms < 60_000) throw new ConfigError('forecast.window', `must be at least 1m (a shorter window makes the rate jump with every job), got ${window_ms / 1000}s`);
  if (window_ms > FORECAST_WINDOW_MAX_MS) throw new ConfigError('forecast.window', `must be at most 1h (the leader remembers arrivals that long), got ${window_ms / 60_000} min`);
  return { window_ms, horizon_ms };
}

/** Set by the boot script from the metadata service and agent_port: not to be given again. */
const BOOT_SET_ARGS = ['--node-id', '--grpc-host', '--grpc-port'];

function agentArgs(v: unknown): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new ConfigError('agent_args', `must be a list of \`prescient agent\` arguments, got ${JSON.stringify(v)}`);
  return v.map((a, k) => {
    if (typeof a !== 'string' || /[\r\n\0]/.test(a)) throw new ConfigError(`agent_args[${k}]`, `must be one line of text, got ${JSON.stringify(a)}`);
    if (BOOT_SET_ARGS.some((b) => a === b || a.startsWith(`${b}=`))) throw new ConfigError(`agent_args[${k}]`, `${a} is set by the burst node's boot script (from the metadata service and agent_port)`);
    return a;
  });
}

const INSTALL_HELP = '{ source: image } (Prescient is in the image), { source: git, url, ref } or { source: tarball, url, sha256 }';

/** Where burst nodes get Prescient: required, since a node that cannot install never joins. */
function installSource(v: unknown): InstallSource {
  if (v === undefined) throw new ConfigError('install', `missing: burst nodes need to know where Prescient comes from: ${INSTALL_HELP}`);
  if (!isObject(v)) throw new ConfigError('install', `must be ${INSTALL_HELP}`);
  const allowed: Record<string, string[]> = { image: ['source'], git: ['source', 'url', 'ref'], tarball: ['source', 'url', 'sha256'] };
  const fields = allowed[v.source as string];
  if (!fields) throw new ConfigError('install.source', `must be image, git or tarball, got ${JSON.stringify(v.source)}`);
  for (const k of Object.keys(v)) if (!fields.includes(k)) throw new ConfigError(`install.${k}`, `not a setting of install source ${v.source as string} (it takes ${fields.join(', ')})`);
  if (v.source === 'image') return { source: 'image' };
  if (v.source === 'git') {
    const url = v.url;
    // https:// or ssh:// URLs, or scp-like git@host:path; never an option or a local path.
    if (typeof url !== 'string' || !(/^(https|ssh):\/\/[^\s'"`$\\]+$/.test(url) || /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s'"`$\\]+$/.test(url))) {
      throw new ConfigError('install.url', `must be an https://, ssh:// or user@host:path git URL, got ${JSON.stringify(url)}`);
    }
    const ref = v.ref;
    if (typeof ref !== 'string' || !/^[A-Za-z0-9._][A-Za-z0-9._/-]{0,199}$/.test(ref) || ref.includes('..')) {
      throw new ConfigError('install.ref', `must be a tag, branch or commit (letters, digits, . _ / -), got ${JSON.stringify(ref)}; a fixed tag or commit keeps every node on the leader's version`);
    }
    return { source: 'git', url, ref };
  }
  const url = httpUrl('install.url', v.url, ['https:', 'http:']);
  if (typeof v.sha256 !== 'string' || !/^[0-9a-f]{64}$/i.test(v.sha256)) throw new ConfigError('install.sha256', `must be the tarball's sha256 as 64 hex digits, got ${JSON.stringify(v.sha256)}`);
  return { source: 'tarball', url, sha256: v.sha256.toLowerCase() };
}

/** Validates a parsed configuration; every error names its field. */
export function validateBurstConfig(raw: unknown): BurstConfig {
  if (!isObject(raw)) throw new ConfigError('burst', 'the configuration must be an object');
  const known = new Set(['provider', 'provider_options', 'cluster', 'catalogue', 'instance_types', 'max_instances', 'budget_per_hour', 'spot', 'cooldown', 'idle_period', 'join_timeout', 'max_wait', 'tick', 'dry_run', 'endpoints', 'keep_decisions', 'refusal_period', 'install', 'agent_port', 'metadata_url', 'forecast', 'agent_args']);
  for (const k of Object.keys(raw)) if (!known.has(k)) throw new ConfigError(k, `unknown setting (known: ${[...known].join(', ')})`);
  const provider = raw.provider;
  if (!PROVIDER_NAMES.includes(provider as ProviderName)) throw new ConfigError('provider', `must be one of ${PROVIDER_NAMES.join(', ')}, got ${JSON.stringify(provider)}`);
  const options = raw.provider_options;
  if (!isObject(options)) throw new ConfigError('provider_options', `missing: ${provider} needs ${REQUIRED_PROVIDER_OPTIONS[provider as ProviderName].join(', ')}`);
  for (const k of REQUIRED_PROVIDER_OPTIONS[provider as ProviderName]) {
    if (typeof options[k] !== 'string' || !options[k]) throw new ConfigError(`provider_options.${k}`, `missing: ${provider} needs it`);
  }
  if (provider === 'aws' && !options.image_id && !options.launch_template) throw new ConfigError('provider_options.image_id', 'missing: aws needs image_id or launch_template');
  if (provider === 'azure' && !isObject(options.image)) throw new ConfigError('provider_options.image', 'missing: azure needs image ({ publisher, offer, sku, version } or { id })');
  if (typeof raw.cluster !== 'string' || !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(raw.cluster)) {
    throw new ConfigError('cluster', `must be a name of lowercase letters, digits, - and _ (it becomes a tag and label value), got ${JSON.stringify(raw.cluster)}`);
  }
  if (!Array.isArray(raw.catalogue) || !raw.catalogue.length) throw new ConfigError('catalogue', 'must list at least one instance type with its vcpus, memory_gb, gpus, bandwidth_mbps and price_per_hour');
  const catalogue = raw.catalogue.map((t, k) => instanceType(`catalogue[${k}]`, t));
  const names = new Set<string>();
  catalogue.forEach((t, k) => { if (names.has(t.name)) throw new ConfigError(`catalogue[${k}].name`, `${t.name} is listed twice`); names.add(t.name); });
  let allowed = catalogue;
  if (raw.instance_types !== undefined) {
    if (!Array.isArray(raw.instance_types) || !raw.instance_types.length) throw new ConfigError('instance_types', 'must be a non-empty list of catalogue names');
    allowed = raw.instance_types.map((n, k) => {
      const t = catalogue.find((c) => c.name === n);
      if (!t) throw new ConfigError(`instance_types[${k}]`, `unknown instance type ${JSON.stringify(n)} (not in the catalogue: ${[...names].join(', ')})`);
      return t;
    });
  }
  const max_instances = num('max_instances', raw.max_instances, { min: 1, int: true });
  const budget_per_hour = num('budget_per_hour', raw.budget_per_hour, { above: 0 });
  const cheapest = Math.min(...allowed.map((t) => Math.min(t.price_per_hour, t.spot_price_per_hour ?? Infinity)));
  if (cheapest > budget_per_hour) throw new ConfigError('budget_per_hour', `${budget_per_hour} USD/h does not pay for one instance of the cheapest type (${cheapest} USD/h)`);
  const maxWait = raw.max_wait ?? {};
  if (!isObject(maxWait)) throw new ConfigError('max_wait', 'must map premium, standard and batch to durations');
  for (const k of Object.keys(maxWait)) if (!SLA_CLASSES.includes(k as SlaClass)) throw new ConfigError(`max_wait.${k}`, `unknown SLA class (known: ${SLA_CLASSES.join(', ')})`);
  const max_wait_ms = Object.fromEntries(SLA_CLASSES.map((c) => [c, parseDuration(`max_wait.${c}`, maxWait[c] ?? DEFAULTS.max_wait[c])])) as Record<SlaClass, number>;
  const bool = (field: string, v: unknown, d: boolean) => {
    if (v === undefined) return d;
    if (typeof v !== 'boolean') throw new ConfigError(field, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  let endpoints: StackEndpoints | undefined;
  if (raw.endpoints !== undefined) {
    if (!isObject(raw.endpoints)) throw new ConfigError('endpoints', 'must map nats_url, consul_http, questdb_http and questdb_pg');
    for (const k of ['nats_url', 'consul_http', 'questdb_http', 'questdb_pg']) {
      if (typeof raw.endpoints[k] !== 'string' || !raw.endpoints[k]) throw new ConfigError(`endpoints.${k}`, 'missing: burst nodes need every endpoint of the stack');
    }
    endpoints = raw.endpoints as unknown as StackEndpoints;
  }
  const install = installSource(raw.install);
  const agent_port = raw.agent_port === undefined ? DEFAULTS.agent_port : num('agent_port', raw.agent_port, { min: 1, int: true });
  if (agent_port > 65535) throw new ConfigError('agent_port', `must be a TCP port (1-65535), got ${agent_port}`);
  const metadata_url = httpUrl('metadata_url', raw.metadata_url ?? DEFAULTS.metadata_url, ['http:']).replace(/\/+$/, '');
  const forecast = forecastPolicy(raw.forecast);
  const agent_args = agentArgs(raw.agent_args);
  const tick_ms = parseDuration('tick', raw.tick ?? DEFAULTS.tick);
  if (tick_ms < 100) throw new ConfigError('tick', 'must be at least 100ms');
  return {
    provider: provider as ProviderName, provider_options: options, cluster: raw.cluster,
    catalogue: allowed, max_instances, budget_per_hour, spot: bool('spot', raw.spot, DEFAULTS.spot),
    cooldown_ms: parseDuration('cooldown', raw.cooldown ?? DEFAULTS.cooldown),
    idle_period_ms: parseDuration('idle_period', raw.idle_period ?? DEFAULTS.idle_period),
    join_timeout_ms: parseDuration('join_timeout', raw.join_timeout ?? DEFAULTS.join_timeout),
    refusal_ms: raw.refusal_period === undefined ? undefined : parseDuration('refusal_period', raw.refusal_period),
    max_wait_ms, tick_ms, dry_run: bool('dry_run', raw.dry_run, DEFAULTS.dry_run), endpoints, install, agent_port, metadata_url, forecast, agent_args,
    keep_decisions: raw.keep_decisions === undefined ? DEFAULTS.keep_decisions : num('keep_decisions', raw.keep_decisions, { min: 1, int: true }),
  };
}

/** Reads and validates a YAML or JSON burst configuration file. */
export function loadBurstConfig(file: string): BurstConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError('--burst', `cannot read ${file}: ${(e as Error).message}`);
  }
  const doc = YAML.parseDocument(text);
  if (doc.errors.length) throw new ConfigError(file, `is not valid YAML/JSON: ${doc.errors[0].message}`);
  return validateBurstConfig(doc.toJS());
}

/**
 * The provider's check at start: missing credentials ('auth') and bad configuration such as a
 * region that does not exist, or a catalogue type the cloud does not offer there or has less of
 * than the catalogue says ('invalid'), refuse the start; a transient failure does not (the
 * controller retries every tick).
 */
export async function verifyProvider(p: CloudProvider, types: readonly InstanceType[] = [], log: (m: string) => void = () => undefined): Promise<void> {
  try {
    await p.verify(types);
  } catch (e) {
    if (e instanceof ProviderError && (e.kind === 'auth' || e.kind === 'invalid')) {
      throw new ConfigError(`burst provider ${p.name} (${p.region})`, e.kind === 'auth' ? `no usable credentials: ${e.message}` : `invalid configuration: ${e.message}`);
    }
    log(`burst: ${p.name} could not be verified at start, going on (${(e as Error).message})`);
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
