/**
 * How each service is launched and how its health is judged. One `ServiceSpec` per service;
 * the orchestration in stack.ts knows nothing service-specific.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QUESTDB_USER, type StackEndpoints } from '../../shared/config.js';
import { REVOKED_KEY, ensureSecret, publishRevoked, loadIdentity, natsPidFile, natsUsersFile, refreshNatsUsers } from '../../shared/pki/index.js';
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

/** What every service's plan may need beyond its own folder: where the cluster's certificates and secrets are. */
export interface ServiceContext {
  pkiDir: string;
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
  endpoint(ports: Record<string, number>): string;
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
    const tls = loadIdentity(cx.pkiDir, { role: 'service', name: 'nats' }, [LOOPBACK, 'localhost']);
    refreshNatsUsers(cx.pkiDir);
    const q = (v: string) => JSON.stringify(v);
    const conf = [
      `listen: ${q(`${LOOPBACK}:${p.client}`)}`,
      `http: ${q(`${LOOPBACK}:${p.monitor}`)}`,
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
  async probe(p, t) {
    // The client port must greet with INFO (a real NATS speaks first) and /healthz covers JetStream.
    const greeting = await tcpGreeting(p.client, t);
    if (!greeting.startsWith('INFO ')) throw new Error(`unexpected greeting on client port: ${greeting.slice(0, 80)}`);
    const body = await expectOk(`http://${LOOPBACK}:${p.monitor}/healthz`, t);
    if ((JSON.parse(body) as { status?: string }).status !== 'ok') throw new Error(`/healthz: ${body}`);
  },
  endpoint: (p) => `nats://${LOOPBACK}:${p.client}`,
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

async function consulPut(port: number, token: string, urlPath: string, body: unknown): Promise<void> {
  const res = await fetch(`http://${LOOPBACK}:${port}${urlPath}`, { method: 'PUT', headers: { 'X-Consul-Token': token }, body: JSON.stringify(body), signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`PUT ${urlPath} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
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
    // Consul 1.8's JSON config; `-dev` keeps Raft in memory (a restart starts empty), data_dir only holds the node id.
    const config = {
      node_name: 'prescient',
      bind_addr: LOOPBACK,
      advertise_addr: LOOPBACK,
      client_addr: LOOPBACK,
      data_dir: path.join(dataDir, 'data'),
      log_level: 'INFO', // -dev defaults to DEBUG, which logs every session renewal
      disable_update_check: true, // never phone home
      ports: { http: p.http, https: p.https, dns: p.dns, serf_lan: p.serf_lan, serf_wan: p.serf_wan, server: p.server, grpc: p.grpc },
      // Deny by default; the management token (0600 under pki/secrets) is the agent's own too.
      acl: { enabled: true, default_policy: 'deny', down_policy: 'extend-cache', tokens: { master: management, agent: management } },
    };
    const file = path.join(dataDir, 'consul.json');
    writeFileSync(file, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
    return { cmd, args: ['agent', '-dev', '-config-file', file], env: process.env };
  },
  async configure(p, cx) {
    const management = ensureSecret(cx.pkiDir, 'consul-management');
    const coordinator = ensureSecret(cx.pkiDir, 'consul-coordinator');
    // A dev agent keeps ACLs in memory: every start makes them again, with the same secrets.
    const until = Date.now() + 15_000;
    for (;;) {
      try {
        for (const [Name, Rules] of Object.entries(CONSUL_POLICIES)) await consulPut(p.http, management, '/v1/acl/policy', { Name, Rules });
        await consulPut(p.http, management, '/v1/acl/token', { SecretID: coordinator, Description: 'prescient coordinators', Policies: [{ Name: 'prescient-coordinator' }] });
        await consulPut(p.http, management, `/v1/acl/token/${ANONYMOUS_TOKEN}`, { Description: 'anyone: who leads, the term, and the revoked certificates', Policies: [{ Name: 'prescient-public' }] });
        // Its KV too: the certificates revoked on this host (the CA's) are the cluster's list again.
        await publishRevoked(`${LOOPBACK}:${p.http}`, management, cx.pkiDir);
        return;
      } catch (e) {
        // Right after election the ACL system may still be starting.
        if (Date.now() > until) throw new Error(`Consul ACLs not set up: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  },
  async probe(p, t) {
    const leader = JSON.parse(await expectOk(`http://${LOOPBACK}:${p.http}/v1/status/leader`, t)) as unknown;
    if (typeof leader !== 'string' || leader === '') throw new Error('no Raft leader elected yet');
  },
  endpoint: (p) => `${LOOPBACK}:${p.http}`,
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
      QDB_HTTP_NET_BIND_TO: `${LOOPBACK}:${p.http}`,
      QDB_PG_NET_BIND_TO: `${LOOPBACK}:${p.pg}`,
      QDB_LINE_TCP_NET_BIND_TO: `${LOOPBACK}:${p.ilp}`,
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
    const body = await expectOk(`http://${LOOPBACK}:${p.http}/exec?query=select%201`, t, { authorization: basicAuth(QUESTDB_USER, ensureSecret(cx.pkiDir, 'questdb')) });
    if (!/"dataset":\[\[1\]\]/.test(body)) throw new Error(`select 1 returned ${body.slice(0, 200)}`);
  },
  endpoint: (p) => `http://${LOOPBACK}:${p.http}`,
};

export const SPECS: Record<ServiceName, ServiceSpec> = { nats, consul, questdb };

/** StackEndpoints from the recorded ports of all three services. */
export function endpointsFrom(ports: Record<ServiceName, Record<string, number>>): StackEndpoints {
  return {
    nats_url: nats.endpoint(ports.nats),
    consul_http: consul.endpoint(ports.consul),
    questdb_http: questdb.endpoint(ports.questdb),
    questdb_pg: `${LOOPBACK}:${ports.questdb.pg}`,
  };
}
