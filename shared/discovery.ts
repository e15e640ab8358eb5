/**
 * Finding the leader: the contract between coordinators (which publish themselves under the
 * Consul lock) and agents and tools (which read it).
 */
import type Consul from 'consul';
import { createRequire } from 'node:module';
import { LEADER_KEY } from './subjects.js';
import { parseHostPort } from './config.js';

// Required on first use, not on import: every process imports shared/, few of them ask Consul.
const require = createRequire(import.meta.url);

export interface LeaderInfo {
  id: string;
  /** host:port of the leader's Coordinator gRPC service. */
  address: string;
  term: number;
}

/** Reads who leads now, for agents and the CLI. */
export interface LeaderLookup {
  currentLeader(): Promise<LeaderInfo | null>;
}

/**
 * A Consul client; `token` is sent with every request (X-Consul-Token). Without one, a request
 * has the anonymous token's rights: on a Prescient stack, reading who leads and the term only.
 */
export function consulClient(consulHttp: string, token?: string): Consul {
  const { host, port } = parseHostPort(consulHttp, 'consul_http');
  const ConsulClient: typeof Consul = require('consul');
  return new ConsulClient({ host, port, ...(token && { defaults: { token } }) });
}

export interface KvItem { Value: string | null; ModifyIndex: number; Session?: string }

export class ConsulLeaderLookup implements LeaderLookup {
  private readonly consul: Consul;
  /** `onInvalid`: told when the leader key holds something that is not a leader (it is then treated as no leader). */
  constructor(consulHttp: string, private readonly onInvalid?: (why: string) => void) { this.consul = consulClient(consulHttp); }
  async currentLeader(): Promise<LeaderInfo | null> {
    const item = (await this.consul.kv.get(LEADER_KEY)) as KvItem | null;
    if (!item?.Session || !item.Value) return null;
    const info = parseLeaderInfo(item.Value);
    if (typeof info === 'string') { this.onInvalid?.(`${LEADER_KEY} ignored: ${info}`); return null; }
    return info.term > 0 ? info : null;
  }
}

/**
 * Calls `onChange` whenever the leader key changes (Consul blocking queries, so a new leader is
 * seen within moments, not at the next poll); returns the function that stops watching.
 */
export function watchLeaderKey(consulHttp: string, onChange: () => void): () => void {
  // Errors: the agent's loop reports contact itself.
  return watchKey(consulHttp, LEADER_KEY, () => onChange(), 5000);
}

/**
 * Calls `onChange` with a Consul key's item (undefined once it is gone) whenever it changes, by
 * blocking queries; errors are retried with capped backoff. Returns the function that stops it.
 */
export function watchKey(consulHttp: string, key: string, onChange: (item: KvItem | undefined) => void, backoffMaxMs: number): () => void {
  const consul = consulClient(consulHttp);
  const w = consul.watch({ method: consul.kv.get, options: { key }, backoffFactor: 250, backoffMax: backoffMaxMs });
  w.on('change', (item: KvItem | undefined) => onChange(item ?? undefined));
  w.on('error', () => undefined);
  return () => w.end();
}

/**
 * The leader key's value, checked field by field (anyone who can write Consul's KV can write
 * it): a LeaderInfo, or why it is not one.
 */
export function parseLeaderInfo(value: string): LeaderInfo | string {
  let v: unknown;
  try { v = JSON.parse(value); } catch { return 'not JSON'; }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'not a mapping';
  const { id, address, term } = v as Record<string, unknown>;
  if (typeof id !== 'string' || !/^[\w.@:-]{1,128}$/.test(id)) return 'id must be a short name';
  if (typeof address !== 'string') return 'address must be host:port';
  try { parseHostPort(address, 'address'); } catch { return 'address must be host:port'; }
  if (!Number.isSafeInteger(term) || (term as number) < 0) return 'term must be a whole number';
  return { id, address, term: term as number };
}

