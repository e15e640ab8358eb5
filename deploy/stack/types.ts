/** Types of the local service stack (NATS + Consul + QuestDB on loopback). */
import type { StackEndpoints } from '../../shared/config.js';
import type { Log } from '../../shared/log.js';

/**
 * The three services of a stack:
 * - `nats`: NATS server with JetStream (job queue and events);
 * - `consul`: Consul dev agent (leader election, sessions, KV);
 * - `questdb`: QuestDB (telemetry time series).
 */
export type ServiceName = 'nats' | 'consul' | 'questdb';
export const SERVICE_NAMES: readonly ServiceName[] = ['nats', 'consul', 'questdb'];

/** Ports a caller may pin; every other port is picked free on the stack's address. */
export type ConfigurablePort = 'nats' | 'consul_http' | 'questdb_http' | 'questdb_pg' | 'questdb_ilp';

export interface StackOptions {
  /** Root of the stack's data, logs and stack file (see deploy/README.md for the layout). */
  stateDir: string;
  /**
   * The IPv4 address every service binds to and advertises (default 127.0.0.1): another host's
   * agents and coordinators reach the stack there. A running stack keeps the one it started on.
   */
  host?: string;
  /**
   * Consul as a server keeping Raft, its KV and its ACLs on disk (`STATE/consul/data`), rather
   * than a dev agent that starts empty: what a production single-host stack runs (deploy/README.md).
   * A stack keeps the mode it was first started in until it is brought down.
   */
  durable?: boolean;
  /** Pinned ports for a fresh stack; a stack that is already (partly) running keeps its own. */
  ports?: Partial<Record<ConfigurablePort, number>>;
  /** Progress lines (one per event, at the level each is written at); silent when absent. */
  log?: Log;
}

export interface ServiceStatus {
  name: ServiceName;
  /** Pid of the process group leader, when the stack file records one. */
  pid?: number;
  /** The recorded pid is alive (not a zombie) and is still this service's process. */
  running: boolean;
  /** `running` and its health check passed just now. */
  healthy: boolean;
  /** nats://…, host:port (Consul HTTP) or http://… (QuestDB REST); '' when never started. */
  endpoint: string;
  log_file: string;
}

export interface StackStatus {
  state_dir: string;
  /** Every service running and healthy. */
  up: boolean;
  /** Present while the stack file holds a started stack (removed by stackDown). */
  endpoints?: StackEndpoints;
  services: ServiceStatus[];
}

/** What the stack file remembers of one service. Ports are kept after a stop so a restart reuses them. */
export interface ServiceRecord {
  pid?: number;
  /** Named ports, e.g. nats: { client, monitor }; -1 means disabled. */
  ports: Record<string, number>;
  data_dir: string;
  log_file: string;
  started_at?: string;
  /** First time it passed its health check; tells a hung service from one still booting. */
  healthy_at?: string;
}

/** Contents of `stackFile(stateDir)`; `endpoints` is what shared/config.ts `loadEndpoints` reads. */
export interface StackRecord {
  /** The address the services serve on; absent for loopback. */
  host?: string;
  /** Consul runs as a server with its data on disk (StackOptions.durable). */
  durable?: boolean;
  endpoints?: StackEndpoints;
  services: Partial<Record<ServiceName, ServiceRecord>>;
}
