/**
 * NATS users from the cluster's certificates. The server maps each client certificate to the
 * user named by its subject (`verify_and_map`: "CN=<name>,OU=<role>,O=prescient"), and each user
 * gets its role's permissions with its own name in the subjects (checked against nats-server
 * 2.9.10, one permission at a time):
 * - coordinator, admin: everything (the leader's streams, consumers and buckets; an operator);
 * - node: its own feedback and weight-delta subjects, encode progress and logs, and reading the model
 *   versions and their object store;
 * - client: its own submit and cancel subjects, and its own jobs' events, progress and ffmpeg logs.
 * Replies go to a per-member inbox prefix (`_INBOX_<name>`), which only that member may read.
 *
 * The users file is rewritten whenever a certificate is issued or forgotten on this host, and
 * the server (its pid file beside it) told to reload: a new member connects within moments, a
 * forgotten one is cut off.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ConnectionOptions, NatsConnection } from 'nats';
import { memberToken } from '../subjects.js';
import type { Identity, Member } from './index.js';

const quote = (s: string) => JSON.stringify(s);

/** The user name nats-server matches a member's certificate to. */
export function natsUser(m: Member): string {
  return `CN=${m.name},OU=${m.role},O=prescient`;
}

/** Where a member's replies come back: a prefix only it may subscribe under. */
export function inboxPrefix(m: Member): string {
  return `_INBOX_${m.role}_${memberToken(m.name)}`;
}

/** A role's permissions for one member, or undefined for a role with no NATS user (a service). */
export function natsPermissions(m: Member): { publish: string[]; subscribe: string[]; allow_responses?: boolean } | undefined {
  const t = memberToken(m.name), inbox = `${inboxPrefix(m)}.>`;
  switch (m.role) {
    case 'coordinator':
    case 'admin':
      return { publish: ['>'], subscribe: ['>'] };
    case 'node':
      return {
        publish: [
          '$JS.API.INFO',
          `prescient.feedback.report.${t}`,
          `prescient.models.delta.${t}`,
          'prescient.job.*.*.progress',
          'prescient.job.*.*.log',
          // The last model version announced, and the model files in their object store.
          '$JS.API.DIRECT.GET.PRESCIENT_MODELS.prescient.models.versions',
          '$JS.API.STREAM.MSG.GET.PRESCIENT_MODELS',
          '$JS.API.STREAM.NAMES',
          '$JS.API.STREAM.INFO.OBJ_prescient_models',
          '$JS.API.STREAM.MSG.GET.OBJ_prescient_models',
          '$JS.API.CONSUMER.CREATE.OBJ_prescient_models',
        ],
        // Announcements of new model versions, as they come.
        subscribe: [inbox, 'prescient.models.versions'],
        // Flow control of an object's chunks answers the server.
        allow_responses: true,
      };
    case 'client':
      return {
        publish: [
          '$JS.API.INFO',
          `prescient.jobs.submit.${t}`,
          `prescient.jobs.cancel.${t}`,
          // Following its own jobs: a named consumer, whose filter is in the subject NATS checks.
          `$JS.API.CONSUMER.CREATE.PRESCIENT_EVENTS.*.prescient.job.${t}.*.events`,
          '$JS.API.CONSUMER.INFO.PRESCIENT_EVENTS.*',
          '$JS.API.CONSUMER.MSG.NEXT.PRESCIENT_EVENTS.*',
          '$JS.API.CONSUMER.DELETE.PRESCIENT_EVENTS.*',
          // Reading its own jobs' ffmpeg logs, the same way.
          `$JS.API.CONSUMER.CREATE.PRESCIENT_LOGS.*.prescient.job.${t}.*.log`,
          '$JS.API.CONSUMER.INFO.PRESCIENT_LOGS.*',
          '$JS.API.CONSUMER.MSG.NEXT.PRESCIENT_LOGS.*',
          '$JS.API.CONSUMER.DELETE.PRESCIENT_LOGS.*',
        ],
        subscribe: [inbox, `prescient.job.${t}.*.progress`],
      };
    case 'service':
    case 'enrol':
      return undefined;
  }
}

/** The `users = [...]` block for these members (nats-server config syntax). */
export function natsUsersConf(members: readonly Member[]): string {
  const lines = ['# Written by prescient (shared/pki/nats.ts) from the certificates issued here; do not edit.', 'users = ['];
  for (const m of members) {
    const p = natsPermissions(m);
    if (!p) continue;
    lines.push(`  { user: ${quote(natsUser(m))}, permissions: { publish: { allow: [${p.publish.map(quote).join(', ')}] }, subscribe: { allow: [${p.subscribe.map(quote).join(', ')}] }${p.allow_responses ? ', allow_responses: true' : ''} } }`);
  }
  lines.push(']', '');
  return lines.join('\n');
}

export const natsUsersFile = (dir: string) => path.join(dir, 'nats', 'users.conf');
export const natsPidFile = (dir: string) => path.join(dir, 'nats', 'server.pid');

/** Rewrites the users file (atomically) and tells a running server to reload it. */
export function writeNatsUsers(dir: string, members: readonly Member[]): void {
  const file = natsUsersFile(dir);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, natsUsersConf(members), { mode: 0o600 });
  renameSync(tmp, file);
  const pidFile = natsPidFile(dir);
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  try {
    // A pid file outlives its server: SIGHUP (which ends most processes) goes only to a process
    // that is nats-server. nats-server reloads its configuration on it (`--signal reload`).
    if (Number.isSafeInteger(pid) && pid > 1 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('nats-server')) process.kill(pid, 'SIGHUP');
  } catch {
    // Not running: it reads the file when it starts.
  }
}

/** How a member connects: TLS with its certificate, replies under its own inbox prefix. */
export function natsConnectOptions(servers: string, id: Identity): Pick<ConnectionOptions, 'servers' | 'tls' | 'inboxPrefix'> {
  return { servers, tls: { ca: id.ca.toString(), cert: id.cert.toString(), key: id.key.toString() }, inboxPrefix: inboxPrefix(id) };
}

/** How long a member whose certificate was just issued waits for the NATS server to reload its users. */
const NEW_MEMBER_GRACE_MS = 5000;

/**
 * Runs `fn` again while it fails with the NATS error `code`, backing off from 100 ms to 1 s, for
 * up to `withinMs`; any other error, or one that lasts, is thrown.
 */
async function retryWhile<T>(code: string, fn: () => Promise<T>, withinMs: number): Promise<T> {
  const until = Date.now() + withinMs;
  for (let wait = 100; ; wait = Math.min(wait * 2, 1000)) {
    try {
      return await fn();
    } catch (e) {
      if ((e as { code?: string }).code !== code || Date.now() > until) throw e;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/**
 * Connects as `id`: TLS with its certificate, its role's permissions, reconnecting without end.
 * A member issued its certificate a moment ago may be refused until the server has reloaded its
 * users: an authorization refusal is retried for a few seconds, nothing else is. (nats.js is
 * loaded here, on first use: most commands never speak NATS.)
 */
export async function connectMember(servers: string, id: Identity, name: string, extra: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
  const { connect } = await import('nats');
  return retryWhile('AUTHORIZATION_VIOLATION', () => connect({ ...natsConnectOptions(servers, id), name, maxReconnectAttempts: -1, reconnectTimeWait: 500, ...extra }), NEW_MEMBER_GRACE_MS);
}

/**
 * Lets go of a member's connection: drained (what is in flight is delivered), or closed where
 * it cannot drain (NATS down, or already closing). It reconnects without end, so a connection
 * left open after a failed drain kept its process alive on its reconnect timers.
 */
export async function disconnectMember(nc: NatsConnection | undefined): Promise<void> {
  await nc?.drain().catch(() => nc.close().catch(() => undefined));
}

/**
 * Runs a JetStream call again while it answers 503 (no responders), for up to `withinMs`:
 * nats-server's JetStream API is unreachable for a moment while it reloads its users (each new
 * member's certificate makes it reload), and a call in that moment fails where a moment later
 * it would not. Any other error, or a 503 that lasts, is thrown.
 */
export function retryUnavailable<T>(fn: () => Promise<T>, withinMs = 10_000): Promise<T> {
  return retryWhile('503', fn, withinMs);
}
