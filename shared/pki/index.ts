/**
 * The cluster's certificates: one private CA, and one certificate per member, naming its role
 * and its name in the subject (`O=prescient, OU=<role>, CN=<name>`). Every service reads who a
 * caller is from the certificate it presented, never from what the caller says about itself:
 * gRPC (mutual TLS both ways) and NATS (each certificate mapped to a user with its permissions).
 *
 * Keys and certificates are made by the openssl CLI (a maintained X.509 implementation), read
 * back with Node's `X509Certificate` (the same OpenSSL). Layout under `pkiDirFor(STATE)` (shared/config):
 *   ca.crt, ca.key            the cluster CA (the key stays on the host that issues)
 *   <role>/<name>/tls.crt|key one member's certificate and key (0600), made in a temporary
 *                             folder and renamed into place whole, so agents starting together
 *                             never pair one's key with another's certificate
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { natsPermissions, writeNatsUsers } from './nats.js';
import { readLocal, writeLocal } from './revoked.js';

export { REVOKED_KEY, followRevoked, parseRevokedList, publishRevoked, revokedFingerprints, type RevokedEntry } from './revoked.js';
export { JOINS_PREFIX, JOIN_NAME, MAX_JOIN_NODES, claimJoin, decideJoin, decodeJoinToken, encodeJoinToken, recordJoin, unclaimJoin, type JoinRecord, type JoinToken } from './join.js';

/**
 * Who a certificate speaks for: a coordinator, a node agent, a submitting client, an operator
 * (admin: the CLI on a host that holds the CA key), a service (the NATS server), or a burst
 * launch's enrolment (it may only ask for the node certificates of that launch's instances).
 */
export const ROLES = ['coordinator', 'node', 'client', 'admin', 'service', 'enrol'] as const;
export type Role = (typeof ROLES)[number];

/** Names go into subjects (NATS users, file names): the alphabet of node ids (a dot becomes `~` in a subject token). */
export const MEMBER_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export interface Member { role: Role; name: string }

/** One member's credentials, as TLS needs them. */
export interface Identity extends Member {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  /** The certificate file (for services that take a path: nats-server). */
  cert_file: string;
  key_file: string;
  ca_file: string;
}

const caCert = (dir: string) => path.join(dir, 'ca.crt');
const caKey = (dir: string) => path.join(dir, 'ca.key');
const memberDir = (dir: string, m: Member) => path.join(dir, m.role, m.name);
const memberFiles = (dir: string, m: Member) => ({ cert: path.join(memberDir(dir, m), 'tls.crt'), key: path.join(memberDir(dir, m), 'tls.key') });

/** A CA lives 10 years; a member's certificate 2 years (issue again to renew). */
const CA_DAYS = 3650;
const MEMBER_DAYS = 825;

/** The extensions of a member's certificate; `hosts` (names, addresses) go into its subjectAltName. */
function memberExtensions(m: Member, hosts: readonly string[] = []): string[] {
  const san = [`URI:urn:prescient:${m.role}:${m.name}`, ...hosts.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`))];
  return ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth,clientAuth', `subjectAltName=${san.join(',')}`];
}
const subjectOf = (m: Member) => `/O=prescient/OU=${m.role}/CN=${m.name}`;

/**
 * Moves a member's freshly made folder into place whole (any old one moved aside first), so a
 * reader never pairs one key with another certificate; `tmp` is gone afterwards either way.
 */
function moveIntoPlace(tmp: string, final: string, make: () => void): void {
  try {
    make();
    if (existsSync(final)) renameSync(final, `${tmp}.old`);
    renameSync(tmp, final);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(`${tmp}.old`, { recursive: true, force: true });
  }
}

/** The NATS users change only with a member that has one (an enrolment or the server's own certificate has none). */
function membersChanged(dir: string, m: Member): void {
  if (natsPermissions(m)) refreshNatsUsers(dir);
}

function checkMember(m: Member): void {
  if (!(ROLES as readonly string[]).includes(m.role)) throw new ConfigError('role', `must be one of ${ROLES.join(', ')}, got ${JSON.stringify(m.role)}`);
  if (!MEMBER_NAME.test(m.name)) throw new ConfigError(m.role, `name must match ${MEMBER_NAME}, got ${JSON.stringify(m.name)}`);
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: Buffer; code?: string };
    if (err.code === 'ENOENT') throw new ConfigError('openssl', 'is not installed (deploy/install.sh installs it)');
    throw new Error(`openssl ${args[0]} failed: ${err.stderr?.toString().trim().split('\n').slice(-2).join('; ') ?? String(e)}`);
  }
}

/**
 * Creates the cluster CA under `dir` unless one is there; returns whether it made one. The key
 * is written 0600 and the pair moved into place together, so a crash leaves no half-made CA.
 */
export function initCa(dir: string): boolean {
  if (existsSync(caCert(dir)) && existsSync(caKey(dir))) return false;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmpKey = `${caKey(dir)}.${process.pid}.tmp`, tmpCert = `${caCert(dir)}.${process.pid}.tmp`;
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', tmpKey, '-out', tmpCert,
    '-days', String(CA_DAYS), '-subj', '/O=prescient/CN=Prescient cluster CA',
    '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  chmodSync(tmpKey, 0o600);
  renameSync(tmpKey, caKey(dir));
  renameSync(tmpCert, caCert(dir));
  return true;
}

export function hasCa(dir: string): boolean { return existsSync(caCert(dir)); }
/** Whether this host can issue (it holds the CA key). */
export function canIssue(dir: string): boolean { return existsSync(caKey(dir)); }

/**
 * Issues (or re-issues) a member's certificate signed by the CA in `dir`. `hosts` are the DNS
 * names and IP addresses a server is reached at (a service certificate needs them; gRPC peers
 * check the role and name instead, so members need none).
 */
export function issue(dir: string, m: Member, hosts: string[] = [], days = MEMBER_DAYS): { cert_file: string; key_file: string } {
  checkMember(m);
  if (!canIssue(dir)) throw new ConfigError(caKey(dir), 'no cluster CA key here: run `prescient certs init` (or issue on the host that holds it)');
  const final = memberDir(dir, m);
  mkdirSync(path.dirname(final), { recursive: true, mode: 0o700 });
  const tmp = mkdtempSync(path.join(path.dirname(final), `.${m.name}-`));
  moveIntoPlace(tmp, final, () => {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(tmp, 'tls.key'), '-out', path.join(tmp, 'tls.crt'),
      '-CA', caCert(dir), '-CAkey', caKey(dir), '-days', String(days), '-subj', subjectOf(m), ...memberExtensions(m, hosts).flatMap((x) => ['-addext', x])]);
    chmodSync(path.join(tmp, 'tls.key'), 0o600);
  });
  membersChanged(dir, m);
  const f = memberFiles(dir, m);
  return { cert_file: f.cert, key_file: f.key };
}

/** Removes a member's certificate and key from this host (it stays valid elsewhere until it expires: `revoke` lists it). */
export function forget(dir: string, m: Member): void {
  checkMember(m);
  rmSync(memberDir(dir, m), { recursive: true, force: true });
  membersChanged(dir, m);
}

/** The NATS users file from every member certificate here (the server reloads it). */
export function refreshNatsUsers(dir: string): void {
  writeNatsUsers(dir, listIssued(dir).filter((c) => !c.expired));
}

/** The member a certificate's subject names, or undefined when it names none (wrong O, unknown OU, bad name). */
export function memberOf(subject: { O?: string | string[]; OU?: string | string[]; CN?: string | string[] } | undefined): Member | undefined {
  const one = (v: string | string[] | undefined) => (typeof v === 'string' ? v : undefined); // a repeated field is refused
  const o = one(subject?.O), role = one(subject?.OU), name = one(subject?.CN);
  if (o !== 'prescient' || !role || !name || !(ROLES as readonly string[]).includes(role) || !MEMBER_NAME.test(name)) return undefined;
  return { role: role as Role, name };
}

/** Parses an X509Certificate's `subject` ("O=prescient\nOU=node\nCN=n1") into its fields. */
export function subjectFields(subject: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null);
  for (const line of subject.split('\n')) {
    const i = line.indexOf('=');
    if (i <= 0) continue;
    const k = line.slice(0, i), v = line.slice(i + 1);
    const had = out[k];
    out[k] = had === undefined ? v : ([] as string[]).concat(had, v);
  }
  return out;
}

export interface CertInfo extends Member { file: string; not_after: string; fingerprint256: string; expired: boolean }

/** Every member certificate on this host, for `prescient certs list`. */
export function listIssued(dir: string): CertInfo[] {
  const out: CertInfo[] = [];
  for (const role of ROLES) {
    const d = path.join(dir, role);
    if (!existsSync(d)) continue;
    for (const name of readdirSync(d).filter((x) => !x.startsWith('.')).sort()) {
      const file = path.join(d, name, 'tls.crt');
      if (!existsSync(file)) continue;
      const x = new X509Certificate(readFileSync(file));
      const m = memberOf(subjectFields(x.subject));
      if (!m) continue;
      out.push({ ...m, file, not_after: new Date(x.validTo).toISOString(), fingerprint256: x.fingerprint256, expired: Date.parse(x.validTo) < Date.now() });
    }
  }
  return out;
}

/**
 * A member's credentials from `dir`. When the certificate is missing and this host holds the CA
 * key (a single-host stack), it is issued on the spot; otherwise the error says how to get one.
 */
export function loadIdentity(dir: string, m: Member, hosts: string[] = []): Identity {
  checkMember(m);
  if (!hasCa(dir)) throw new ConfigError(caCert(dir), 'no cluster CA: run `prescient certs init` (`prescient stack up` does it), or copy ca.crt from the host that issues');
  const f = memberFiles(dir, m);
  if (!existsSync(f.cert) || !existsSync(f.key)) {
    if (!canIssue(dir)) throw new ConfigError(f.cert, `no certificate for ${m.role} ${m.name}: run \`prescient certs issue --${m.role} ${m.name}\` where the CA is and copy its ${m.role}/${m.name}/ folder here`);
    try {
      issue(dir, m, hosts);
    } catch (e) {
      // Another process on this host issued it at the same moment: its pair is as good.
      if (!existsSync(f.cert)) throw e;
    }
  }
  const cert = readFileSync(f.cert), ca = readFileSync(caCert(dir));
  const x = new X509Certificate(cert);
  if (!x.verify(new X509Certificate(ca).publicKey)) throw new ConfigError(f.cert, 'was not issued by this cluster\'s CA (ca.crt)');
  const named = memberOf(subjectFields(x.subject));
  if (!named || named.role !== m.role || named.name !== m.name) throw new ConfigError(f.cert, `names ${named ? `${named.role} ${named.name}` : 'no member'}, not ${m.role} ${m.name}`);
  if (Date.parse(x.validTo) < Date.now()) throw new ConfigError(f.cert, `expired on ${x.validTo}: issue it again`);
  return { ...m, ca, cert, key: readFileSync(f.key), cert_file: f.cert, key_file: f.key, ca_file: caCert(dir) };
}

/**
 * The cluster's shared secrets, one file each under `<pki>/secrets/` (0600): Consul's tokens
 * (`consul-management`, `consul-coordinator`), QuestDB's password (`questdb`) and the web
 * dashboard's admin token (`dashboard`: made by the first coordinator that serves a dashboard). The stack makes
 * them on first start; members on other hosts get theirs copied, or from the environment.
 */
export const SECRET_NAMES = ['consul-management', 'consul-coordinator', 'questdb', 'dashboard'] as const;
export type SecretName = (typeof SECRET_NAMES)[number];
const SECRET_ENV: Record<SecretName, string> = {
  'consul-management': 'PRESCIENT_CONSUL_MANAGEMENT_TOKEN',
  'consul-coordinator': 'PRESCIENT_CONSUL_TOKEN',
  questdb: 'PRESCIENT_QUESTDB_PASSWORD',
  dashboard: 'PRESCIENT_DASHBOARD_TOKEN',
};
export const secretFile = (dir: string, name: SecretName) => path.join(dir, 'secrets', name);

/** A secret from its environment variable, else its file; undefined when neither has it. */
export function readSecret(dir: string, name: SecretName): string | undefined {
  const env = process.env[SECRET_ENV[name]];
  if (env) return env;
  const f = secretFile(dir, name);
  return existsSync(f) ? readFileSync(f, 'utf8').trim() || undefined : undefined;
}

/** A secret, made (a random UUID, written 0600) when this host has none yet. */
export function ensureSecret(dir: string, name: SecretName): string {
  const have = readSecret(dir, name);
  if (have) return have;
  const f = secretFile(dir, name);
  mkdirSync(path.dirname(f), { recursive: true, mode: 0o700 });
  const tmp = `${f}.${process.pid}.tmp`;
  writeFileSync(tmp, `${randomUUID()}\n`, { mode: 0o600 });
  renameSync(tmp, f);
  return readFileSync(f, 'utf8').trim();
}

export { connectMember, disconnectMember, inboxPrefix, natsConnectOptions, retryUnavailable, natsPermissions, natsUser, natsUsersConf, natsUsersFile, natsPidFile } from './nats.js';

/**
 * A key and a certificate request for `m`, made on the member's own host (the key never leaves
 * it): `commit` installs the certificate the CA's host signed, once it checks (this cluster's CA,
 * this member, this key).
 */
export function requestCertificate(dir: string, m: Member): { csr: string; commit(certPem: string): Identity } {
  checkMember(m);
  if (!hasCa(dir)) throw new ConfigError(caCert(dir), 'no cluster CA certificate to check the answer against');
  const final = memberDir(dir, m);
  mkdirSync(path.dirname(final), { recursive: true, mode: 0o700 });
  const tmp = mkdtempSync(path.join(path.dirname(final), `.${m.name}-`));
  try {
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(tmp, 'tls.key'), '-out', path.join(tmp, 'req.csr'),
      '-subj', subjectOf(m)]);
    chmodSync(path.join(tmp, 'tls.key'), 0o600);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const csr = readFileSync(path.join(tmp, 'req.csr'), 'utf8');
  return {
    csr,
    commit(certPem: string): Identity {
      moveIntoPlace(tmp, final, () => {
        const x = new X509Certificate(certPem);
        if (!x.verify(new X509Certificate(readFileSync(caCert(dir))).publicKey)) throw new ConfigError('certificate', 'was not issued by this cluster\'s CA');
        if (!x.checkPrivateKey(createPrivateKey(readFileSync(path.join(tmp, 'tls.key'))))) throw new ConfigError('certificate', 'is not for the key this host made');
        writeFileSync(path.join(tmp, 'tls.crt'), certPem, { mode: 0o644 });
        rmSync(path.join(tmp, 'req.csr'), { force: true });
      });
      return loadIdentity(dir, m);
    },
  };
}

/**
 * Signs a member's certificate request with the CA in `dir`, naming `m` whatever the request
 * says, and keeps a copy of the certificate (not the key, which stays with the member) so the
 * NATS users include it. Returns the certificate PEM.
 */
export function signRequest(dir: string, csrPem: string, m: Member): string {
  checkMember(m);
  if (!canIssue(dir)) throw new ConfigError(caKey(dir), 'no cluster CA key on this host: it cannot sign');
  if (csrPem.length > 16_384 || !/^-----BEGIN CERTIFICATE REQUEST-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE REQUEST-----\n?$/.test(csrPem)) {
    throw new ConfigError('csr_pem', 'is not one PEM certificate request');
  }
  const work = mkdtempSync(path.join(dir, '.sign-'));
  try {
    writeFileSync(path.join(work, 'req.csr'), csrPem);
    writeFileSync(path.join(work, 'ext.cnf'), [...memberExtensions(m), ''].join('\n'));
    openssl(['x509', '-req', '-in', path.join(work, 'req.csr'), '-CA', caCert(dir), '-CAkey', caKey(dir), '-set_serial', `0x${randomBytes(16).toString('hex')}`,
      '-days', String(MEMBER_DAYS), '-subj', subjectOf(m), '-extfile', path.join(work, 'ext.cnf'), '-out', path.join(work, 'tls.crt')]);
    const pem = readFileSync(path.join(work, 'tls.crt'), 'utf8');
    const final = memberDir(dir, m);
    mkdirSync(final, { recursive: true, mode: 0o700 });
    writeFileSync(path.join(final, 'tls.crt'), pem);
    membersChanged(dir, m);
    return pem;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Revokes a member: its certificate's fingerprint joins this host's revoked list (publishRevoked
 * then carries it to every host through Consul), and its certificate leaves this host, and so the
 * NATS users (cut off at once). Returns the fingerprint, or undefined when there was none here.
 */
export function revoke(dir: string, m: Member): string | undefined {
  checkMember(m);
  const cert = memberFiles(dir, m).cert;
  if (!existsSync(cert)) return undefined;
  const fingerprint256 = new X509Certificate(readFileSync(cert)).fingerprint256;
  writeLocal(dir, [...readLocal(dir), { role: m.role, name: m.name, fingerprint256, revoked_at: new Date().toISOString() }]);
  forget(dir, m);
  return fingerprint256;
}
