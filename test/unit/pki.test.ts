/**
 * The cluster's certificates (shared/pki) with the real openssl CLI: what a certificate names,
 * what a member loads, what the CA signs for a request, and the NATS users made from them.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  canIssue, initCa, issue, listIssued, loadIdentity, memberOf, natsPermissions, natsUsersConf, requestCertificate, revoke, revokedFingerprints, signRequest, subjectFields,
} from '../../shared/pki/index.js';

const dirs: string[] = [];
const scratch = () => { const d = mkdtempSync(path.join(os.tmpdir(), 'prescient-pki-')); dirs.push(d); return d; };
test.after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const thrown = (fn: () => unknown) => { try { fn(); return ''; } catch (e) { return `${(e as Error).name}: ${(e as Error).message}`; } };

test('a CA is made once, its key 0600, and a member\'s certificate names its role and name', () => {
  const dir = scratch();
  assert.ok(initCa(dir));
  assert.not.ok(initCa(dir), 'kept, not remade');
  assert.is(statSync(path.join(dir, 'ca.key')).mode & 0o777, 0o600);
  const files = issue(dir, { role: 'node', name: 'gpu-07.example.com' }, ['10.0.0.7']);
  assert.is(statSync(files.key_file).mode & 0o777, 0o600);
  const x = new X509Certificate(readFileSync(files.cert_file));
  assert.equal(memberOf(subjectFields(x.subject)), { role: 'node', name: 'gpu-07.example.com' });
  assert.match(x.subjectAltName ?? '', /URI:urn:prescient:node:gpu-07\.example\.com/);
  assert.match(x.subjectAltName ?? '', /IP Address:10\.0\.0\.7/);
  assert.ok(x.verify(new X509Certificate(readFileSync(path.join(dir, 'ca.crt'))).publicKey));
  assert.equal(listIssued(dir).map((c) => `${c.role}/${c.name}`), ['node/gpu-07.example.com']);
});

test('a subject names a member only when it is a prescient one with a known role and a plain name', () => {
  assert.equal(memberOf({ O: 'prescient', OU: 'client', CN: 'ci' }), { role: 'client', name: 'ci' });
  assert.is(memberOf({ O: 'other', OU: 'client', CN: 'ci' }), undefined);
  assert.is(memberOf({ O: 'prescient', OU: 'root', CN: 'ci' }), undefined);
  assert.is(memberOf({ O: 'prescient', OU: ['node', 'coordinator'], CN: 'n1' }), undefined, 'a repeated field is refused');
  assert.is(memberOf({ O: 'prescient', OU: 'node', CN: 'a b' }), undefined);
  assert.is(memberOf(undefined), undefined);
});

test('a member loads its own certificate; without one and without the CA key it is told how to get one', () => {
  const dir = scratch();
  initCa(dir);
  const id = loadIdentity(dir, { role: 'coordinator', name: 'c1' });
  assert.is(id.name, 'c1');
  // Another host: the CA certificate only.
  const other = scratch();
  writeFileSync(path.join(other, 'ca.crt'), readFileSync(path.join(dir, 'ca.crt')));
  assert.not.ok(canIssue(other));
  assert.match(thrown(() => loadIdentity(other, { role: 'node', name: 'n1' })), /ConfigError: .*no certificate for node n1: run `prescient certs issue --node n1`/);
  assert.match(thrown(() => loadIdentity(scratch(), { role: 'node', name: 'n1' })), /no cluster CA/);
  assert.match(thrown(() => issue(dir, { role: 'node', name: '../etc' })), /name must match/);
});

test('a certificate from another CA, or naming another member, is not loaded as this one', () => {
  const a = scratch(), b = scratch();
  initCa(a);
  initCa(b);
  issue(b, { role: 'node', name: 'n1' });
  // b's certificate copied into a's folder for n1.
  const target = path.join(a, 'node', 'n1');
  issue(a, { role: 'node', name: 'n1' });
  writeFileSync(path.join(target, 'tls.crt'), readFileSync(path.join(b, 'node', 'n1', 'tls.crt')));
  assert.match(thrown(() => loadIdentity(a, { role: 'node', name: 'n1' })), /was not issued by this cluster's CA/);
  issue(a, { role: 'node', name: 'n2' });
  writeFileSync(path.join(target, 'tls.crt'), readFileSync(path.join(a, 'node', 'n2', 'tls.crt')));
  assert.match(thrown(() => loadIdentity(a, { role: 'node', name: 'n1' })), /names node n2, not node n1/);
});

test('the CA signs a request for the member it names, whatever the request says, and the key stays with the member', () => {
  const ca = scratch(), node = scratch();
  initCa(ca);
  writeFileSync(path.join(node, 'ca.crt'), readFileSync(path.join(ca, 'ca.crt')));
  const req = requestCertificate(node, { role: 'node', name: 'i-0abc' });
  const pem = signRequest(ca, req.csr, { role: 'node', name: 'i-0abc' });
  const id = req.commit(pem);
  assert.equal([id.role, id.name], ['node', 'i-0abc']);
  assert.equal(listIssued(ca).map((c) => `${c.role}/${c.name}`), ['node/i-0abc'], 'the CA host keeps the certificate (for NATS), not the key');
  assert.not.ok(existsSync(path.join(ca, 'node', 'i-0abc', 'tls.key')), 'no key on the CA host');
  // A certificate for another key, or not from this CA, is not installed.
  const other = requestCertificate(node, { role: 'node', name: 'i-0def' });
  assert.match(thrown(() => other.commit(pem)), /is not for the key this host made/);
  assert.match(thrown(() => signRequest(ca, 'not a request', { role: 'node', name: 'x' })), /is not one PEM certificate request/);
  assert.ok(thrown(() => signRequest(scratch(), req.csr, { role: 'node', name: 'x' })) !== '', 'no CA key, no signature');
});

test('a revoked member\'s fingerprint is listed, and its certificate and NATS user are gone from this host', () => {
  const dir = scratch();
  initCa(dir);
  const x = new X509Certificate(readFileSync(issue(dir, { role: 'client', name: 'leaver' }).cert_file));
  issue(dir, { role: 'client', name: 'stayer' });
  assert.is(revoke(dir, { role: 'client', name: 'leaver' }), x.fingerprint256);
  assert.ok(revokedFingerprints(dir).has(x.fingerprint256));
  assert.equal(listIssued(dir).map((c) => c.name), ['stayer']);
  const users = readFileSync(path.join(dir, 'nats', 'users.conf'), 'utf8');
  assert.not.match(users, /CN=leaver/);
  assert.match(users, /CN=stayer/);
  assert.is(revoke(dir, { role: 'client', name: 'nobody' }), undefined);
});

test('NATS users: each member by its subject, with its own name in its subjects; services and enrolments get none', () => {
  const conf = natsUsersConf([{ role: 'client', name: 'alice' }, { role: 'node', name: 'gpu.7' }, { role: 'service', name: 'nats' }, { role: 'enrol', name: 'e1' }]);
  assert.match(conf, /user: "CN=alice,OU=client,O=prescient"/);
  assert.match(conf, /"prescient\.jobs\.submit\.alice"/);
  assert.match(conf, /"\$JS\.API\.CONSUMER\.CREATE\.PRESCIENT_EVENTS\.\*\.prescient\.job\.alice\.\*\.events"/);
  assert.match(conf, /"prescient\.feedback\.report\.gpu~7"/, 'a dot in a name is one token');
  assert.match(conf, /"_INBOX_node_gpu~7\.>"/);
  assert.not.match(conf, /OU=service|OU=enrol/);
  assert.equal(natsPermissions({ role: 'coordinator', name: 'c' }), { publish: ['>'], subscribe: ['>'] });
  const client = natsPermissions({ role: 'client', name: 'bob' })!;
  assert.not.ok(client.publish.some((p) => p.includes('>') || p === '$JS.API.CONSUMER.CREATE.PRESCIENT_EVENTS'), 'no wildcard a client could read others\' events through');
});

test.run();
