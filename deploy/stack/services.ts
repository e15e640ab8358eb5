/**
 * How each service is launched and how its health is judged. One `ServiceSpec` per service;
 * the orchestration in stack.ts knows nothing service-specific.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QUESTDB_USER, type StackEndpoints } from '../../shared/config.js';
import { REVOKED_KEY, ensureSecret, issue, publishRevoked, loadIdentity, natsPidFile, natsUsersFile, refreshNatsUsers, type Identity } from '../../shared/pki/index.js';
import { MissingDependencyError } from './errors.js';
import { httpGet, LOOPBACK, tcpGreeting } from './net.js';
import { findExecutable } from './proc.js';
import type { ConfigurablePort, ServiceName } from './types.js';

/** What launching a service needs: the resolved command and its own data dir and ports. */
export interface LaunchPlan {
  cmd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

/** What every service's plan may need beyond its own folder: where the cluster's certificates and secrets are, and the address it serves on. */
export interface ServiceContext {
  pkiDir: string;
  /** The address every service binds to and advertises (StackOptions.host; loopback by default). */
  host: string;
  /** Consul as a server with its data on disk (StackOptions.durable), not a dev agent. */
  durable: boolean;
}

export interface ServiceSpec {
  name: ServiceName;
  /** Named ports it listens on; each is either pinned through `pinnedBy` or picked free. */
  ports: readonly string[];
  /** Which StackOptions.ports key pins which of its ports. */
  pinnedBy: Partial<Record<string, ConfigurablePort>>;
  /** Fixed values for ports that are switched off (-1) rather than allocated. */
  disabled?: Record<string, number>;
  /** Generous: a cold JVM on a busy 2-core machine takes a while. */
  startTimeoutMs: number;
  /** Grace between SIGTERM and SIGKILL. */
  stopGraceMs: number;
  /** Command-line substring that identifies this service's process (besides its data dir). */
  marker: string;
  /** Resolves binaries and writes config files; throws MissingDependencyError. */
  plan(dataDir: string, ports: Record<string, number>, cx: ServiceContext): LaunchPlan;
  /** Run once a freshly launched process is healthy: what lives in its memory (Consul's ACL policies and tokens). */
  configure?(ports: Record<string, number>, cx: ServiceContext): Promise<void>;
  /** Resolves when healthy, throws an Error whose message says what is wrong. */
  probe(ports: Record<string, number>, timeoutMs: number, cx: ServiceContext): Promise<void>;
  /** The address consumers use (ServiceStatus.endpoint). */
  endpoint(ports: Record<string, number>, host: string): string;
}

function need(name: string, envVar: string): string {
  const bin = findExecutable(name, process.env[envVar]);
  if (!bin) throw new MissingDependencyError(name, process.env[envVar] ? `${envVar}=${process.env[envVar]} is not executable` : `not on PATH, nor in /usr/sbin; ${envVar} overrides`);
  return bin;
}

async function expectOk(url: string, timeoutMs: number, headers?: Record<string, string>): Promise<string> {
  const res = await httpGet(url, timeoutMs, headers);
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${res.body.slice(0, 200)}`);
  return res.body;
}

const nats: ServiceSpec = {
  name: 'nats',
  ports: ['client', 'monitor'],
  pinnedBy: { client: 'nats' },
  startTimeoutMs: 20_000,
  stopGraceMs: 10_000,
  marker: 'nats-server',
  plan(dataDir, p, cx) {
    const cmd = need('nats-server', 'PRESCIENT_NATS_SERVER');
    // TLS only, and every client shows a certificate from the cluster CA, mapped to the user its
    // subject names (shared/pki/nats.ts writes the users and their permissions, and has the
    // server reload them through the pid file whenever a member is issued or forgotten).
    const tls = natsServerIdentity(cx.pkiDir, cx.host);
    refreshNatsUsers(cx.pkiDir);
    const q = (v: string) => JSON.stringify(v);
    const conf = [
      `listen: ${q(`${cx.host}:${p.client}`)}`,
      `http: ${q(`${cx.host}:${p.monitor}`)}`,
      // A stable server name keeps JetStream's identity across restarts.
      'server_name: "prescient"',
      `pid_file: ${q(natsPidFile(cx.pkiDir))}`,
      `jetstream { store_dir: ${q(dataDir)} }`,
      `tls { cert_file: ${q(tls.cert_file)}, key_file: ${q(tls.key_file)}, ca_file: ${q(tls.ca_file)}, verify_and_map: true, timeout: 2 }`,
      `authorization { include ${q(path.relative(dataDir, natsUsersFile(cx.pkiDir)))} }`,
      '',
    ].join('\n');
    const file = path.join(dataDir, 'nats.conf');
    writeFileSync(file, conf, { mode: 0o600 });
    return { cmd, args: ['-c', file], env: process.env };
  },
  async probe(p, t, cx) {
    // The client port must greet with INFO (a real NATS speaks first) and /healthz covers JetStream.
    const greeting = await tcpGreeting(cx.host, p.client, t);
    if (!greeting.startsWith('INFO ')) throw new Error(`unexpected greeting on client port: ${greeting.slice(0, 80)}`);
    const body = await expectOk(`http://${cx.host}:${p.monitor}/healthz`, t);
    if ((JSON.parse(body) as { status?: string }).status !== 'ok') throw new Error(`/healthz: ${body}`);
  },
  endpoint: (p, host) => `nats://${host}:${p.client}`,
};

/** The token Consul gives a request that carries none: anyone on the network. */
const ANONYMOUS_TOKEN = '00000000-0000-0000-0000-000000000002';

/**
 * Consul's ACL policies, one per role (Consul 1.8 rules). Anyone may read who leads, the last
 * term and the revoked certificates (agents and the CLI need nothing more; what they read is validated, and gRPC is
 * mutual TLS whoever it names); only a coordinator's token may take the lock or write the term.
 */
export const CONSUL_POLICIES: Readonly<Record<string, string>> = {
  'prescient-public': `key "prescient/leader" { policy = "read" }\nkey "prescient/term" { policy = "read" }\nkey "${REVOKED_KEY}" { policy = "read" }`,
  // Sessions and the TTL check tying them to a live coordinator are registered on the node.
  'prescient-coordinator': 'key_prefix "prescient/" { policy = "write" }\nsession_prefix "" { policy = "write" }\nnode_prefix "" { policy = "write" }\nagent_prefix "" { policy = "read" }',
};

async function consulCall(method: 'GET' | 'PUT', host: string, port: number, token: string, urlPath: string, body?: unknown): Promise<Response> {
  return fetch(`http://${host}:${port}${urlPath}`, { method, headers: { 'X-Consul-Token': token }, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(5000) });
}

async function consulPut(host: string, port: number, token: string, urlPath: string, body: unknown): Promise<unknown> {
  const res = await consulCall('PUT', host, port, token, urlPath, body);
  if (!res.ok) throw new Error(`PUT ${urlPath} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
  return res.json();
}

/**
 * Makes Consul's ACL policies and the coordinators' token as CONSUL_POLICIES says, whether or not
 * they exist: a durable server keeps them from its last start (created again they would clash).
 */
async function upsertAcls(host: string, port: number, management: string, coordinator: string): Promise<void> {
  for (const [Name, Rules] of Object.entries(CONSUL_POLICIES)) {
    const have = await consulCall('GET', host, port, management, `/v1/acl/policy/name/${Name}`);
    const id = have.ok ? ((await have.json()) as { ID?: string }).ID : undefined;
    await consulPut(host, port, management, id ? `/v1/acl/policy/${id}` : '/v1/acl/policy', { Name, Rules });
  }
  const token = { SecretID: coordinator, Description: 'prescient coordinators', Policies: [{ Name: 'prescient-coordinator' }] };
  const self = await consulCall('GET', host, port, coordinator, '/v1/acl/token/self');
  const accessor = self.ok ? ((await self.json()) as { AccessorID?: string }).AccessorID : undefined;
  await consulPut(host, port, management, accessor ? `/v1/acl/token/${accessor}` : '/v1/acl/token', accessor ? { ...token, AccessorID: accessor } : token);
}

const consul: ServiceSpec = {
  name: 'consul',
  ports: ['http', 'serf_lan', 'server'],
  pinnedBy: { http: 'consul_http' },
  // DNS, WAN gossip, gRPC (Connect/xDS) and HTTPS are unused: switched off so they cannot collide.
  disabled: { dns: -1, serf_wan: -1, grpc: -1, https: -1 },
  startTimeoutMs: 30_000,
  stopGraceMs: 10_000,
  marker: 'consul',
  plan(dataDir, p, cx) {
    const cmd = need('consul', 'PRESCIENT_CONSUL');
    const management = ensureSecret(cx.pkiDir, 'consul-management');
    // Consul 1.8's JSON config. `-dev` keeps Raft in memory (a restart starts empty) and data_dir
    // only holds the node id; a durable stack runs a one-server cluster whose Raft log, KV and ACLs
    // live in data_dir (raft_multiplier 1: Consul's own setting for production servers, which
    // elects in a second or two rather than the default's laptop-friendly 5×).
    const config = {
      node_name: 'prescient',
      bind_addr: cx.host,
      advertise_addr: cx.host,
      client_addr: cx.host,
      data_dir: path.join(dataDir, 'data'),
      log_level: 'INFO', // -dev defaults to DEBUG, which logs every session renewal
      disable_update_check: true, // never phone home
      ports: { http: p.http, https: p.https, dns: p.dns, serf_lan: p.serf_lan, serf_wan: p.serf_wan, server: p.server, grpc: p.grpc },
      // Deny by default; the management token (0600 under pki/secrets) is the agent's own too.
      acl: { enabled: true, default_policy: 'deny', down_policy: 'extend-cache', tokens: { master: management, agent: management } },
      ...(cx.durable ? { server: true, bootstrap_expect: 1, performance: { raft_multiplier: 1 } } : {}),
    };
    const file = path.join(dataDir, 'consul.json');
    writeFileSync(file, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
    return { cmd, args: ['agent', ...(cx.durable ? [] : ['-dev']), '-config-file', file], env: process.env };
  },
  async configure(p, cx) {
    const management = ensureSecret(cx.pkiDir, 'consul-management');
    const coordinator = ensureSecret(cx.pkiDir, 'consul-coordinator');
    // A dev agent keeps ACLs in memory: every start makes them again, with the same secrets. A
    // durable server has them from before, and gets them brought up to date.
    const until = Date.now() + 15_000;
    for (;;) {
      try {
        await upsertAcls(cx.host, p.http, management, coordinator);
        await consulPut(cx.host, p.http, management, `/v1/acl/token/${ANONYMOUS_TOKEN}`, { Description: 'anyone: who leads, the term, and the revoked certificates', Policies: [{ Name: 'prescient-public' }] });
        // Its KV too: the certificates revoked on this host (the CA's) are the cluster's list again.
        await publishRevoked(`${cx.host}:${p.http}`, management, cx.pkiDir);
        return;
      } catch (e) {
        // Right after election the ACL system may still be starting.
        if (Date.now() > until) throw new Error(`Consul ACLs not set up: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  },
  async probe(p, t, cx) {
    const leader = JSON.parse(await expectOk(`http://${cx.host}:${p.http}/v1/status/leader`, t)) as unknown;
    if (typeof leader !== 'string' || leader === '') throw new Error('no Raft leader elected yet');
  },
  endpoint: (p, host) => `${host}:${p.http}`,
};

/**
 * QuestDB settings for a small machine shared with the encodes it records (each name checked
 * against QuestDB 9.3's `SHOW PARAMETERS`; the stack test reads them back). A QuestDB worker
 * looks for work in a loop: once idle it spins, then naps 1 ms a round until `sleep.threshold`
 * idle rounds (10000 by default: about 3 s of naps) and only then sleeps `sleep.timeout`
 * (10 ms) a round. Telemetry comes every second, so by default the workers never get to sleep:
 * a thousand wake-ups a second per thread, over a dozen threads, cost more than the ingest.
 */
export const QUESTDB_QUIET: Readonly<Record<string, string>> = {
  // The shared pools (network: HTTP, ILP, SQL; query; write: WAL apply and housekeeping) nap
  // for about a tenth of a second after a burst, then sleep: a request that finds them asleep
  // waits up to 10 ms.
  QDB_SHARED_WORKER_NAP_THRESHOLD: '100',
  QDB_SHARED_WORKER_SLEEP_THRESHOLD: '200',
  // WAL apply and mat-view refresh default to max(2, cores) threads each; one each is plenty
  // for a few requests a second, and they nap and sleep like the shared pools.
  QDB_WAL_APPLY_WORKER_COUNT: '1',
  QDB_WAL_APPLY_WORKER_NAP_THRESHOLD: '100',
  QDB_WAL_APPLY_WORKER_SLEEP_THRESHOLD: '200',
  QDB_MAT_VIEW_REFRESH_WORKER_COUNT: '1',
  QDB_MAT_VIEW_REFRESH_WORKER_NAP_THRESHOLD: '100',
  QDB_MAT_VIEW_REFRESH_WORKER_SLEEP_THRESHOLD: '200',
  // The view compiler (2 threads by default) and export (1) pools idle all the time here.
  QDB_VIEW_COMPILER_WORKER_COUNT: '1',
  QDB_VIEW_COMPILER_WORKER_NAP_THRESHOLD: '100',
  QDB_VIEW_COMPILER_WORKER_SLEEP_THRESHOLD: '200',
  QDB_EXPORT_WORKER_NAP_THRESHOLD: '100',
  QDB_EXPORT_WORKER_SLEEP_THRESHOLD: '200',
  // PG wire is not used by the cluster; its one worker (QDB_PG_WORKER_COUNT) naps like the others.
  QDB_PG_WORKER_NAP_THRESHOLD: '100',
  QDB_PG_WORKER_SLEEP_THRESHOLD: '200',
  // Read by QuestDB's log setup (w.stdout.level in conf/log.conf), not a server.conf key: INFO
  // writes a line to stdout (the stack's log file) for every commit and query, on the logging
  // thread. Errors are what that log is read for.
  QDB_LOG_W_STDOUT_LEVEL: 'ERROR,CRITICAL',
};

/** The QuestDB jar: PRESCIENT_QUESTDB_JAR, the install.sh location, else the newest in ~/.m2. */
export function findQuestdbJar(): string {
  const env = process.env.PRESCIENT_QUESTDB_JAR;
  if (env) {
    if (!existsSync(env)) throw new MissingDependencyError('questdb jar', `PRESCIENT_QUESTDB_JAR=${env} does not exist`);
    return env;
  }
  const installed = '/opt/prescient/questdb/questdb.jar';
  if (existsSync(installed)) return installed;
  const m2 = path.join(os.homedir(), '.m2/repository/org/questdb/questdb');
  const versions = existsSync(m2) ? readdirSync(m2).filter((v) => existsSync(path.join(m2, v, `questdb-${v}.jar`))) : [];
  versions.sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const newest = versions.at(-1);
  if (!newest) throw new MissingDependencyError('questdb jar', `looked at PRESCIENT_QUESTDB_JAR, ${installed} and ${m2}`);
  return path.join(m2, newest, `questdb-${newest}.jar`);
}

const basicAuth = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

const questdb: ServiceSpec = {
  name: 'questdb',
  ports: ['http', 'pg', 'ilp'],
  pinnedBy: { http: 'questdb_http', pg: 'questdb_pg', ilp: 'questdb_ilp' },
  startTimeoutMs: 120_000,
  stopGraceMs: 20_000, // it flushes tables on SIGTERM
  marker: 'io.questdb.ServerMain',
  plan(dataDir, p, cx) {
    const jar = findQuestdbJar();
    const password = ensureSecret(cx.pkiDir, 'questdb');
    const java = need('java', 'PRESCIENT_JAVA');
    // Inherited QDB_* variables would silently move ports or data: start from a clean slate.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('QDB_')));
    Object.assign(env, {
      QDB_HTTP_NET_BIND_TO: `${cx.host}:${p.http}`,
      QDB_PG_NET_BIND_TO: `${cx.host}:${p.pg}`,
      QDB_LINE_TCP_NET_BIND_TO: `${cx.host}:${p.ilp}`,
      QDB_LINE_UDP_ENABLED: 'false',
      // Writes only from cluster members: HTTP (queries, and ILP over HTTP, which agents use)
      // and PG wire take the cluster's password; ILP over TCP, which has no password, is off.
      QDB_HTTP_USER: QUESTDB_USER,
      QDB_HTTP_PASSWORD: password,
      QDB_PG_USER: QUESTDB_USER,
      QDB_PG_PASSWORD: password,
      QDB_PG_READONLY_USER_ENABLED: 'false',
      QDB_LINE_TCP_ENABLED: 'false',
      QDB_HTTP_MIN_ENABLED: 'false', // its health page (default :9003) is not used; /exec is the check
      QDB_TELEMETRY_ENABLED: 'false',
      // The whole cluster shares a small machine: one thread per shared pool, one PG worker.
      QDB_SHARED_WORKER_COUNT: '1',
      QDB_PG_WORKER_COUNT: '1',
      ...QUESTDB_QUIET,
    });
    mkdirSync(dataDir, { recursive: true }); // ServerMain refuses a missing -d dir
    return {
      cmd: java,
      args: ['-Xms64m', '-Xmx1g', `-XX:ErrorFile=${dataDir}/hs_err_pid%p.log`, '-p', jar, '-m', 'io.questdb/io.questdb.ServerMain', '-d', dataDir],
      env,
    };
  },
  async probe(p, t, cx) {
    const body = await expectOk(`http://${cx.host}:${p.http}/exec?query=select%201`, t, { authorization: basicAuth(QUESTDB_USER, ensureSecret(cx.pkiDir, 'questdb')) });
    if (!/"dataset":\[\[1\]\]/.test(body)) throw new Error(`select 1 returned ${body.slice(0, 200)}`);
  },
  endpoint: (p, host) => `http://${host}:${p.http}`,
};

export const SPECS: Record<ServiceName, ServiceSpec> = { nats, consul, questdb };

/** StackEndpoints from the recorded ports of all three services and the address they serve on. */
export function endpointsFrom(ports: Record<ServiceName, Record<string, number>>, host: string): StackEndpoints {
  return {
    nats_url: nats.endpoint(ports.nats, host),
    consul_http: consul.endpoint(ports.consul, host),
    questdb_http: questdb.endpoint(ports.questdb, host),
    questdb_pg: `${host}:${ports.questdb.pg}`,
  };
}

/**
 * The NATS server's certificate, naming the address it serves on (clients check it against the
 * URL they dial) besides loopback; issued again when the stack moves to an address it lacks.
 */
function natsServerIdentity(pkiDir: string, host: string): Identity {
  const m = { role: 'service' as const, name: 'nats' };
  const hosts = [...new Set([host, LOOPBACK, 'localhost'])];
  const id = loadIdentity(pkiDir, m, hosts);
  const x = new X509Certificate(readFileSync(id.cert_file));
  const names = (h: string) => (/^[\d.]+$|:/.test(h) ? x.checkIP(h) : x.checkHost(h));
  if (hosts.every((h) => names(h) !== undefined)) return id;
  issue(pkiDir, m, hosts);
  return loadIdentity(pkiDir, m, hosts);
}
