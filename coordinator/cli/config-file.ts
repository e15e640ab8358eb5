/**
 * `--config FILE` for `prescient agent` and `prescient coordinator` (issue 18): the same
 * settings as the flags, in YAML or JSON, keys in snake_case (`memory_gb` for `--memory-gb`).
 * The whole file is checked before anything starts, and every problem is reported at once, each
 * naming its key; a key that is no setting is one. A flag given on the command line wins over
 * the file. Values are handed on in the form the flag would have, so each is then parsed and
 * checked by the same code as the flag (a placement policy's name, a webhook URL, a schedule).
 *
 *   prescient agent --config /etc/prescient/agent.yaml
 *   prescient coordinator --config /etc/prescient/coordinator.yaml --grpc-port 7400
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import YAML from 'yaml';
import { ConfigError, shortText, v, whyNotAll } from '../../shared/index.js';
import { POLICY_NAMES } from '../placement/types.js';

const text = v.pipe(v.string(), v.minLength(1), v.maxLength(4096));
const positive = v.pipe(v.number(), v.finite(), v.minValue(Number.MIN_VALUE));
const whole = (min: number, max = Number.MAX_SAFE_INTEGER) => v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max));
/** `metrics`: HOST:PORT (or a port) for Prometheus' /metrics. */
const host = { grpc_host: v.optional(text), grpc_port: v.optional(whole(0, 65_535)), metrics: v.optional(v.union([text, whole(0, 65_535)])) };
/** Where the cluster's services are, on a host without the stack (`prescient join` writes them). */
const endpoints = { nats_url: v.optional(text), consul_http: v.optional(text), questdb_http: v.optional(text), questdb_pg: v.optional(text) };

export const AGENT_CONFIG = v.strictObject({
  node_id: v.optional(shortText),
  /** `0-3,6`, or a list of core numbers. */
  cores: v.optional(v.union([text, v.pipe(v.array(whole(0)), v.minLength(1))])),
  memory_gb: v.optional(positive),
  bandwidth_mbps: v.optional(positive),
  output_dir: v.optional(text),
  sample_ms: v.optional(whole(10, 3_600_000)),
  accounted_only: v.optional(v.array(v.picklist(['cpu', 'memory', 'gpu', 'bandwidth']))),
  shape_interfaces: v.optional(v.array(shortText)),
  ...host,
  ...endpoints,
  /** true, or every how many runs. */
  learn: v.optional(v.union([v.boolean(), whole(1)])),
  drain_timeout: v.optional(whole(0, 86_400)),
});

export const COORDINATOR_CONFIG = v.strictObject({
  id: v.optional(shortText),
  coverage: v.optional(v.pipe(v.number(), v.minValue(0.5), v.maxValue(0.999))),
  retrain: v.optional(text),
  retrain_window: v.optional(text),
  reservation: v.optional(text),
  placement: v.optional(v.picklist(POLICY_NAMES)),
  ...host,
  ...endpoints,
  alert_webhook: v.optional(text),
  federated: v.optional(v.union([v.boolean(), whole(1)])),
  burst: v.optional(text),
  burst_dry_run: v.optional(v.boolean()),
  event_log: v.optional(text),
  dashboard: v.optional(v.union([text, whole(0, 65_535)])),
});

/** A setting's value in the form its flag's parser gives it (commander's strings, lists joined). */
function asFlag(value: unknown): unknown {
  if (Array.isArray(value)) return value.join(',');
  if (typeof value === 'number' && !Number.isInteger(value)) return value;
  if (typeof value === 'number') return String(value);
  return value;
}

const camel = (key: string) => key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * Reads `file`, checks it against `schema` (every problem at once, as one ConfigError naming the
 * file), and sets each setting on `cmd` whose flag was not given on the command line.
 */
export function applyConfigFile(cmd: Command, file: string, schema: v.GenericSchema): void {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError('--config', `cannot read ${file}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(raw) ?? {};
  } catch (e) {
    throw new ConfigError('--config', `${file} is not YAML or JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  const problems = whyNotAll(schema, doc);
  if (problems.length) throw new ConfigError('--config', `${file}: ${problems.length} problem${problems.length > 1 ? 's' : ''}: ${problems.join('; ')}`);
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    const name = camel(key);
    if (value === undefined || cmd.getOptionValueSource(name) === 'cli') continue;
    // Numbers for the flags that parse to numbers (--memory-gb, --bandwidth-mbps), strings for the rest.
    const numeric = name === 'memoryGb' || name === 'bandwidthMbps';
    cmd.setOptionValueWithSource(name, numeric ? value : asFlag(value), 'config');
  }
}
