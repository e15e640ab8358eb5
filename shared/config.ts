/**
 * Where the services are and where data lives. Every value can come from an environment
 * variable; otherwise endpoints are read from the stack file that `prescient stack up` writes.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from './errors.js';
import { readSecret } from './pki/index.js';

/** Loopback endpoints of one running stack. */
export interface StackEndpoints {
  /** nats://host:port */
  nats_url: string;
  /** host:port of Consul's HTTP API */
  consul_http: string;
  /** http://host:port of QuestDB's REST API (also ILP over HTTP) */
  questdb_http: string;
  /** host:port of QuestDB's PostgreSQL wire endpoint */
  questdb_pg: string;
  /**
   * Where this host keeps the cluster's certificates (shared/pki): PRESCIENT_PKI_DIR, else
   * STATE/pki. Absent in endpoints written for another host (a burst node's).
   */
  pki_dir?: string;
}

export const ENDPOINT_ENV: Record<Exclude<keyof StackEndpoints, 'pki_dir'>, string> = {
  nats_url: 'PRESCIENT_NATS_URL',
  consul_http: 'PRESCIENT_CONSUL_HTTP',
  questdb_http: 'PRESCIENT_QUESTDB_HTTP',
  questdb_pg: 'PRESCIENT_QUESTDB_PG',
};

/** State directory: PRESCIENT_STATE_DIR, else ~/.prescient. */
export function stateDir(explicit?: string): string {
  return path.resolve(explicit ?? process.env.PRESCIENT_STATE_DIR ?? path.join(os.homedir(), '.prescient'));
}

export function stackFile(dir: string): string {
  return path.join(dir, 'stack.json');
}

/**
 * Endpoints as `given` (a config file's or the command line's: another host's stack), else from
 * the environment, falling back field by field to the stack file in `dir`.
 * Throws ConfigError naming the first endpoint that is nowhere to be found.
 */
export function loadEndpoints(dir: string, given: Partial<Record<keyof typeof ENDPOINT_ENV, string>> = {}): StackEndpoints {
  let fromFile: Partial<StackEndpoints> = {};
  const file = stackFile(dir);
  if (existsSync(file)) {
    try {
      fromFile = (JSON.parse(readFileSync(file, 'utf8')) as { endpoints?: Partial<StackEndpoints> }).endpoints ?? {};
    } catch (e) {
      throw new ConfigError(file, `is not valid JSON (${(e as Error).message})`);
    }
  }
  const out = {} as StackEndpoints;
  for (const key of Object.keys(ENDPOINT_ENV) as (keyof typeof ENDPOINT_ENV)[]) {
    const v = given[key] ?? process.env[ENDPOINT_ENV[key]] ?? fromFile[key];
    if (!v) throw new ConfigError(ENDPOINT_ENV[key], `not set and no running stack found at ${file} (run \`prescient stack up\`)`);
    out[key] = v;
  }
  out.pki_dir = pkiDirFor(dir);
  // QuestDB takes cluster members only: its password rides in the URL (redactUrl cuts it from anything shown).
  const password = readSecret(out.pki_dir, 'questdb');
  if (password) out.questdb_http = withCredentials(out.questdb_http, QUESTDB_USER, password);
  return out;
}

/** The user cluster members log in to QuestDB as; its password is the `questdb` secret (shared/pki). */
export const QUESTDB_USER = 'prescient';

/** `url` with a user and password, unless it already carries some. */
export function withCredentials(url: string, user: string, password: string): string {
  const u = new URL(url);
  if (u.username) return url;
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  return u.toString().replace(/\/$/, '');
}

/** Where a state dir's host keeps the cluster's certificates: PRESCIENT_PKI_DIR, else STATE/pki. */
export function pkiDirFor(dir: string): string {
  return path.resolve(process.env.PRESCIENT_PKI_DIR ?? path.join(dir, 'pki'));
}

/** The certificates directory of a set of endpoints (STATE/pki when they do not say). */
export function pkiDirOf(e: StackEndpoints): string {
  return e.pki_dir ?? path.join(stateDir(), 'pki');
}

/** Directories input files may be read from: PRESCIENT_INPUT_ROOTS (colon-separated), else STATE/media. */
export function allowedInputRoots(dir: string): string[] {
  const env = process.env.PRESCIENT_INPUT_ROOTS;
  const roots = env ? env.split(':').filter(Boolean) : [path.join(dir, 'media')];
  return roots.map((r) => path.resolve(r));
}

/**
 * Directories an `output.path` may name: PRESCIENT_OUTPUT_ROOTS (colon-separated), else
 * STATE/output (where agents write by default). A path there is on the node that encodes.
 */
export function allowedOutputRoots(dir: string): string[] {
  const env = process.env.PRESCIENT_OUTPUT_ROOTS;
  const roots = env ? env.split(':').filter(Boolean) : [path.join(dir, 'output')];
  return roots.map((r) => path.resolve(r));
}

/** Splits host:port, refusing anything else. */
export function parseHostPort(v: string, setting: string): { host: string; port: number } {
  const m = /^\[?([A-Za-z0-9.:-]+?)\]?:(\d{1,5})$/.exec(v);
  if (!m || Number(m[2]) > 65535) throw new ConfigError(setting, `must be host:port, got ${JSON.stringify(v)}`);
  return { host: m[1], port: Number(m[2]) };
}

/** Parses a Linux CPU list such as "0-3,8,10-11". */
export function parseCpuList(list: string, setting = 'cores'): number[] {
  const out = new Set<number>();
  for (const part of list.trim().split(',').filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new ConfigError(setting, `not a CPU list: ${JSON.stringify(list)} (expected e.g. 0-3,6)`);
    const lo = Number(m[1]), hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new ConfigError(setting, `range ${part} runs backwards`);
    for (let c = lo; c <= hi; c++) out.add(c);
  }
  if (!out.size) throw new ConfigError(setting, 'is empty');
  return [...out].sort((a, b) => a - b);
}

/**
 * A listen address for a flag such as `--metrics` or `--dashboard`: `HOST:PORT`, `[IPv6]:PORT`,
 * or `PORT` alone (loopback); port 0 takes any free one. Names the flag when the value is not one.
 */
export function parseListen(value: string, flag = '--metrics'): { host: string; port: number } {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):)?(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new ConfigError(flag, `must be HOST:PORT or PORT (0 for any free port), got ${JSON.stringify(value)}`);
  return { host: (m[1] || '127.0.0.1').replace(/^\[|\]$/g, ''), port };
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Checks a `--log-level` value (shared/log.ts), naming the flag. */
export function parseLogLevel(v: string | undefined): LogLevel | undefined {
  if (v === undefined) return undefined;
  if (!(LOG_LEVELS as readonly string[]).includes(v)) throw new ConfigError('--log-level', `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(v)}`);
  return v as LogLevel;
}
