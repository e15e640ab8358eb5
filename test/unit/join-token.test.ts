/**
 * Joining a cluster from another host (issue 18): the join token's contents and checks, the
 * decision the leader takes on each enrolment, the stack's address check, and endpoints and
 * config keys that point an agent or coordinator at another host's stack.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decideJoin, decodeJoinToken, encodeJoinToken, type JoinToken } from '../../shared/pki/index.js';
import { loadEndpoints, stackFile, whyNotAll } from '../../shared/index.js';
import { checkStackHost } from '../../deploy/stack/net.js';
import { AGENT_CONFIG, COORDINATOR_CONFIG } from '../../coordinator/cli/config-file.js';

const PEM = (what: string) => `-----BEGIN ${what}-----\nAAAA\n-----END ${what}-----\n`;
const token: JoinToken = {
  v: 1, ca: PEM('CERTIFICATE'), cert: PEM('CERTIFICATE'), key: PEM('PRIVATE KEY'),
  endpoints: { nats_url: 'nats://10.0.0.5:4222', consul_http: '10.0.0.5:8500', questdb_http: 'http://10.0.0.5:9000', questdb_pg: '10.0.0.5:8812' },
  questdb_password: 'secret', expires_at: 2_000_000_000_000,
};
const thrown = (fn: () => unknown) => { try { fn(); return ''; } catch (e) { return `${(e as Error).name}: ${(e as Error).message}`; } };

test('a join token reads back as it was written', () => {
  assert.equal(decodeJoinToken(encodeJoinToken(token)), token);
  assert.equal(decodeJoinToken(`  ${encodeJoinToken(token)}\n`), token, 'pasted with spaces and a line end');
});

test('text that is no token, and a token missing a field, are refused naming --token and the field', () => {
  assert.match(thrown(() => decodeJoinToken('not a token!')), /ConfigError: --token: is not a join token/);
  const { endpoints: _e, ...noEndpoints } = token;
  assert.match(thrown(() => decodeJoinToken(Buffer.from(JSON.stringify(noEndpoints)).toString('base64url'))), /--token: is not a join token: endpoints is missing/);
  const badKey = { ...token, key: 'not pem' };
  assert.match(thrown(() => decodeJoinToken(encodeJoinToken(badKey))), /key .*is not a PEM text/);
});

test('a join token enrols as many nodes as it was made for, each once, until it expires', () => {
  const now = 1_000;
  let record = { nodes: 2, enrolled: [] as string[], expires_at: 5_000 };
  for (const id of ['gpu-1', 'gpu-2']) {
    const d = decideJoin(record, id, now);
    assert.ok(d.ok, JSON.stringify(d));
    if (d.ok) record = d.record;
  }
  assert.equal(record.enrolled, ['gpu-1', 'gpu-2']);
  const full = decideJoin(record, 'gpu-3', now);
  assert.equal(full.ok ? '' : full.why, 'this join token\'s 2 places are used (gpu-1, gpu-2)');
  const again = decideJoin({ ...record, nodes: 3 }, 'gpu-1', now);
  assert.match(again.ok ? '' : again.why, /gpu-1 has enrolled with this join token already/);
  const late = decideJoin({ ...record, nodes: 3 }, 'gpu-3', 6_000);
  assert.match(late.ok ? '' : late.why, /expired at/);
  const unknown = decideJoin(undefined, 'gpu-3', now);
  assert.match(unknown.ok ? '' : unknown.why, /not one this cluster made/);
});

test('the stack serves only on an IPv4 address of this host, never the wildcard', () => {
  assert.is(checkStackHost('127.0.0.1'), '127.0.0.1');
  assert.match(thrown(() => checkStackHost('0.0.0.0')), /--host: must be an address clients can dial/);
  assert.match(thrown(() => checkStackHost('my-host')), /--host: must be an IPv4 address of this host/);
  assert.match(thrown(() => checkStackHost('10.0.0.300')), /--host: must be an IPv4 address/);
  assert.match(thrown(() => checkStackHost('192.0.2.77')), /192\.0\.2\.77 is not an address of this host/);
});

test('endpoints given on the command line or in a config file win over the environment and the stack file', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-endpoints-'));
  try {
    writeFileSync(stackFile(dir), JSON.stringify({ endpoints: { nats_url: 'nats://127.0.0.1:1', consul_http: '127.0.0.1:2', questdb_http: 'http://127.0.0.1:3', questdb_pg: '127.0.0.1:4' } }));
    const e = loadEndpoints(dir, { nats_url: 'nats://10.0.0.5:4222', consul_http: '10.0.0.5:8500' });
    assert.equal([e.nats_url, e.consul_http, e.questdb_http, e.questdb_pg], ['nats://10.0.0.5:4222', '10.0.0.5:8500', 'http://127.0.0.1:3', '127.0.0.1:4']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('agent and coordinator config files take the cluster\'s endpoints, and say which key is wrong', () => {
  const endpoints = { nats_url: 'nats://10.0.0.5:4222', consul_http: '10.0.0.5:8500', questdb_http: 'http://10.0.0.5:9000', questdb_pg: '10.0.0.5:8812' };
  assert.equal(whyNotAll(AGENT_CONFIG, { node_id: 'gpu-1', grpc_host: '10.0.0.7', ...endpoints }), []);
  assert.equal(whyNotAll(COORDINATOR_CONFIG, { id: 'c2', ...endpoints }), []);
  assert.equal(whyNotAll(AGENT_CONFIG, { nats_url: 5, consul: 'x' }), ['nats_url 5 is not a string', 'consul is not a setting here']);
});

test.run();
