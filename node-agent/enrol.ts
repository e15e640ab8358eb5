/**
 * A node's certificate. On a host that has one (or holds the CA key) it is simply loaded. A
 * burst node has neither: its launch's user data carries the CA certificate and a one-time
 * enrolment certificate (PRESCIENT_ENROL_BUNDLE, base64 JSON). The agent makes its own key and a
 * certificate request, shows the enrolment certificate to the leader (gRPC Enrol), and installs
 * what the leader signs: the key never leaves the node, and the leader signs once per instance
 * it launched with that enrolment.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  ConfigError, ConsulLeaderLookup, CoordinatorClient, loadIdentity, memberOf, requestCertificate, subjectFields, type Identity, type grpc,
} from '../shared/index.js';
import type { Log } from '../shared/log.js';

/** How long a burst node keeps asking before it gives up (its launch's join timeout ends it sooner). */
const ENROL_GIVE_UP_MS = 10 * 60_000;

interface Bundle { ca: string; cert: string; key: string }

function parseBundle(b64: string): Bundle {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(b64, 'base64').toString('utf8'));
  } catch {
    throw new ConfigError('PRESCIENT_ENROL_BUNDLE', 'is not base64 JSON');
  }
  const b = v as Partial<Bundle>;
  for (const k of ['ca', 'cert', 'key'] as const) {
    if (typeof b?.[k] !== 'string' || !b[k]!.includes('-----BEGIN ')) throw new ConfigError(`PRESCIENT_ENROL_BUNDLE.${k}`, 'must be a PEM text');
  }
  return b as Bundle;
}

/**
 * This node's identity: loaded, or (with an enrolment bundle and no certificate yet) enrolled
 * through the leader. Throws ConfigError naming what is missing otherwise.
 */
export async function nodeIdentity(o: { pkiDir: string; nodeId: string; consulHttp: string; bundle?: string; log: Log }): Promise<Identity> {
  try {
    return loadIdentity(o.pkiDir, { role: 'node', name: o.nodeId });
  } catch (e) {
    if (!(e instanceof ConfigError) || !o.bundle) throw e;
  }
  const b = parseBundle(o.bundle);
  const enrolName = memberOf(subjectFields(new X509Certificate(b.cert).subject));
  if (enrolName?.role !== 'enrol') throw new ConfigError('PRESCIENT_ENROL_BUNDLE.cert', 'is not an enrolment certificate');
  // The CA certificate and the enrolment pair, where loadIdentity reads them.
  mkdirSync(path.join(o.pkiDir, 'enrol', enrolName.name), { recursive: true, mode: 0o700 });
  if (!existsSync(path.join(o.pkiDir, 'ca.crt'))) writeFileSync(path.join(o.pkiDir, 'ca.crt'), b.ca);
  writeFileSync(path.join(o.pkiDir, 'enrol', enrolName.name, 'tls.crt'), b.cert);
  writeFileSync(path.join(o.pkiDir, 'enrol', enrolName.name, 'tls.key'), b.key, { mode: 0o600 });
  const enrol = loadIdentity(o.pkiDir, enrolName);
  const req = requestCertificate(o.pkiDir, { role: 'node', name: o.nodeId });
  const lookup = new ConsulLeaderLookup(o.consulHttp);
  const until = Date.now() + ENROL_GIVE_UP_MS;
  for (let wait = 500; ; wait = Math.min(wait * 2, 10_000)) {
    const leader = await lookup.currentLeader().catch(() => null);
    if (leader) {
      const client = new CoordinatorClient(leader.address, enrol);
      try {
        const { cert_pem } = await client.enrol({ node_id: o.nodeId, csr_pem: req.csr });
        const id = req.commit(cert_pem);
        o.log(`enrolled with leader ${leader.id}: node certificate for ${o.nodeId} installed`);
        return id;
      } catch (e) {
        const err = e as grpc.ServiceError;
        // A refusal is final: the leader said this enrolment may not have this node.
        if (err.code === 7 /* PERMISSION_DENIED */) throw new ConfigError('enrolment', `the leader refused: ${err.details}`);
        o.log(`enrolment not answered yet (${err.details ?? err.message}); trying again`, 'warn');
      } finally {
        client.close();
      }
    }
    if (Date.now() > until) throw new ConfigError('enrolment', `no leader answered within ${ENROL_GIVE_UP_MS / 60_000} min`);
    await new Promise((r) => setTimeout(r, wait));
  }
}
