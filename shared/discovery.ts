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

export function consulClient(consulHttp: string): Consul {
  const { host, port } = parseHostPort(consulHttp, 'consul_http');
  const ConsulClient: typeof Consul = require('consul');
  return new ConsulClient({ host, port });
}

export interface KvItem { Value: string | null; ModifyIndex: number; Session?: string }

export class ConsulLeaderLookup implements LeaderLookup {
  private readonly consul: Consul;
  constructor(consulHttp: string) { this.consul = consulClient(consulHttp); }
  async currentLeader(): Promise<LeaderInfo | null> {
    const item = (await this.consul.kv.get(LEADER_KEY)) as KvItem | null;
    if (!item?.Session || !item.Value) return null;
    const info = JSON.parse(item.Value) as LeaderInfo;
    return info.term > 0 ? info : null;
  }
}

