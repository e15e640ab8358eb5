/**
 * gRPC between coordinators and agents is mutual TLS with the cluster's CA, and each side acts
 * only on what the caller's certificate allows (issue 17): an agent takes orders from
 * coordinators only, a coordinator takes a node's Register, Heartbeat and ReportStatus only from
 * that node's certificate, and a report only for a task assigned to that node. Each attack runs
 * with no certificate, a certificate from another CA, or another member's, and nothing changes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  AgentClient, ConsulLeaderLookup, CoordinatorClient, PROTO_PATH, REVOKED_KEY, consulClient, initCa, loadIdentity, natsUsersFile, parseRevokedList, pkiDirOf, readSecret, revokedFingerprints, type Assignment, type Identity, type TaskStatusReport,
} from '../../shared/index.js';
import type { AgentHandle } from '../../node-agent/index.js';
import { agent, cliRun, events, identity, oneNodeCluster, smallJob, submit, waitFor, type OneNodeCluster } from '../helpers/cluster.js';

let k: OneNodeCluster;
let b: AgentHandle;
let leaderAddress: string;
let foreignDir: string;
/** A certificate for `coordinator c1` made by another CA: right name, wrong issuer. */
let foreign: Identity;

test.before(async () => {
  k = await oneNodeCluster('grpc-auth', '0');
  b = await agent(k.s, 'node-b', '1');
  leaderAddress = (await waitFor('a leader', () => new ConsulLeaderLookup(k.s.endpoints.consul_http).currentLeader()))!.address;
  await waitFor('both nodes registered', () => k.c.leader()?.ledger.snapshot().nodes.length === 2);
  foreignDir = mkdtempSync(path.join(os.tmpdir(), 'prescient-foreign-ca-'));
  initCa(foreignDir);
  foreign = loadIdentity(foreignDir, { role: 'coordinator', name: 'c1' });
});
test.after(async () => {
  await b?.stop();
  await k?.down();
  if (foreignDir) rmSync(foreignDir, { recursive: true, force: true });
});

const order = (task_id: string, node_id: string, term: number, attempt = 1): Assignment => ({
  task_id, schema_json: JSON.stringify(smallJob()), predicted: { cpu_cores: 1, gpu_percent: 0, memory_gb: 0.1, bandwidth_mbps: 1, duration_s: 1 },
  allocation: { node_id, core_ids: [0], gpu_ids: [], memory_gb: 0.1, bandwidth_mbps: 1, lease_expires_at: Date.now() + 5000, term },
  attempt, model_version: 'forged',
});
const report = (over: Partial<TaskStatusReport> & Pick<TaskStatusReport, 'task_id' | 'node_id'>): TaskStatusReport => ({
  state: 'succeeded', reason: '', actual: { cpu_cores: 1, gpu_percent: 0, memory_gb: 0.1, bandwidth_mbps: 1, duration_s: 1 }, output_bytes: 1,
  output_path: '/tmp/attacker.mp4', psnr_db: 40, ssim: 0.99, pinned: true, frames: 1, term: k.a.term(), ...over,
});
/** A gRPC failure's code and message, or 'answered' when the call got through. */
const failure = (p: Promise<unknown>) => p.then(() => 'answered', (e: grpc.ServiceError) => `${grpc.status[e.code]}: ${e.details}`);

/** A client of either service with no certificate at all: a plain-text channel. */
function plaintext(service: 'Agent' | 'Coordinator', address: string): grpc.Client {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO_PATH, { keepCase: true, longs: Number, enums: String, defaults: true })) as unknown as {
    prescient: { v1: Record<string, grpc.ServiceClientConstructor> };
  };
  return new pkg.prescient.v1[service](address, grpc.credentials.createInsecure());
}
const call = (c: grpc.Client, method: string, req: unknown) => new Promise((resolve, reject) =>
  (c as unknown as Record<string, Function>)[method].call(c, req, { deadline: Date.now() + 3000 }, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))));

test('a caller with no certificate cannot reach an agent or the coordinator at all', async () => {
  const toAgent = plaintext('Agent', k.a.address), toLeader = plaintext('Coordinator', leaderAddress);
  try {
    assert.match(await failure(call(toAgent, 'AssignBatch', { assignments: [order('plain-order', 'node-a', k.a.term())] })), /^UNAVAILABLE/);
    assert.match(await failure(call(toLeader, 'ReportStatus', report({ task_id: 'x', node_id: 'node-a' }))), /^UNAVAILABLE/);
  } finally {
    toAgent.close();
    toLeader.close();
  }
  assert.not.ok(k.a.running().includes('plain-order'));
});

test('a certificate from another CA is refused by the agent, even naming a coordinator', async () => {
  // It trusts the real CA (so it can check the agent), but shows a certificate the cluster never issued.
  const client = new AgentClient(k.a.address, { ...foreign, ca: identity(k.s, 'coordinator', 'c1').ca }, 'node-a');
  try {
    assert.match(await failure(client.assign(order('foreign-order', 'node-a', k.a.term()))), /^UNAVAILABLE/);
  } finally {
    client.close();
  }
  assert.not.ok(k.a.running().includes('foreign-order'));
});

test('a node\'s certificate cannot give another agent orders, and the refusal is logged', async () => {
  const client = new AgentClient(k.a.address, identity(k.s, 'node', 'node-b'), 'node-a');
  try {
    assert.match(await failure(client.assign(order('node-order', 'node-a', k.a.term()))), /^PERMISSION_DENIED: only a coordinator may call \/prescient\.v1\.Agent\/AssignBatch/);
    assert.match(await failure(client.cancel({ task_id: 'anything', term: k.a.term() })), /^PERMISSION_DENIED/);
    assert.match(await failure(client.probe({ path: '/etc/passwd', term: k.a.term() })), /^PERMISSION_DENIED/);
  } finally {
    client.close();
  }
  assert.not.ok(k.a.running().includes('node-order'));
  assert.ok(k.s.logs.some((l) => /\[agent node-a\] refused \/prescient\.v1\.Agent\/AssignBatch from node node-b/.test(l)), 'logged');
});

test('a coordinator dials an agent only when its certificate names the node it expects', async () => {
  // node-b's address, but the ledger says node-a is there: the TLS handshake fails, nothing is sent.
  const client = new AgentClient(b.address, identity(k.s, 'coordinator', 'c1'), 'node-a');
  try {
    assert.match(await failure(client.cancel({ task_id: 'x', term: k.a.term() })), /^UNAVAILABLE.*is node node-b, not node node-a/s);
  } finally {
    client.close();
  }
  // And an agent talks to coordinators only: an agent's server is no leader to it.
  const fake = new CoordinatorClient(b.address, identity(k.s, 'node', 'node-a'));
  try {
    assert.match(await failure(fake.heartbeat({ node_id: 'node-a', running: [] })), /^UNAVAILABLE.*is node node-b, not a coordinator/s);
  } finally {
    fake.close();
  }
});

test('no certificate, or another node\'s, cannot register as a node or report for one', async () => {
  const before = k.c.leader()!.ledger.snapshot().nodes.map((n) => `${n.node_id}@${n.capacity.address}`).sort();
  const asB = new CoordinatorClient(leaderAddress, identity(k.s, 'node', 'node-b'));
  try {
    const capacity = { node_id: 'node-a', address: '127.0.0.1:1', core_ids: [0], memory_gb: 64, bandwidth_mbps: 1000, gpus: [], cpu_model: 'evil', enforcement: [] };
    assert.match(await failure(asB.register({ capacity, running: [] })), /^PERMISSION_DENIED: node node-b may not speak for node "node-a"/);
    assert.match(await failure(asB.heartbeat({ node_id: 'node-a', running: [] })), /^PERMISSION_DENIED/);
    assert.match(await failure(asB.reportStatus(report({ task_id: 'x', node_id: 'node-a' }))), /^PERMISSION_DENIED/);
  } finally {
    asB.close();
  }
  const asClient = new CoordinatorClient(leaderAddress, identity(k.s, 'client', 'mallory'));
  try {
    assert.match(await failure(asClient.heartbeat({ node_id: 'mallory', running: [] })), /^PERMISSION_DENIED: client mallory may not speak for node "mallory"/);
  } finally {
    asClient.close();
  }
  assert.equal(k.c.leader()!.ledger.snapshot().nodes.map((n) => `${n.node_id}@${n.capacity.address}`).sort(), before, 'the ledger did not change');
  assert.ok(k.s.logs.some((l) => /refused \/prescient\.v1\.Coordinator\/Register from node node-b about node "node-a"/.test(l)), 'logged');
});

test('a node cannot report on a task assigned to another node', async () => {
  // Long enough to be running while the forged report arrives; node-a has one core, node-b one.
  const long = smallJob({ input: { resolution: '640x360', duration_s: 20 }, output: { preset: 'medium' } });
  const ids = [await submit(k.s, long), await submit(k.s, long)];
  await waitFor('both running', () => ids.every((id) => k.a.running().includes(id) || b.running().includes(id)));
  const onA = ids.find((id) => k.a.running().includes(id))!;
  const asB = new CoordinatorClient(leaderAddress, identity(k.s, 'node', 'node-b'));
  try {
    const stolen = await asB.reportStatus(report({ task_id: onA, node_id: 'node-b' }));
    assert.is(stolen.ok, false);
    assert.match(stolen.reason, new RegExp(`task ${onA} is assigned to node-a, not node-b`));
  } finally {
    asB.close();
  }
  assert.ok(k.a.running().includes(onA), 'still running on node-a');
  for (const id of ids) {
    const last = (await events(k.s, id)).at(-1)!;
    assert.is(last.state, 'succeeded');
    assert.is.not(last.result?.output_path, '/tmp/attacker.mp4');
  }
});

test('a coordinator repeating an Assign for an attempt that already ran is refused, and its output is kept', async () => {
  const id = await submit(k.s, smallJob());
  const done = (await events(k.s, id)).at(-1)!;
  assert.is(done.state, 'succeeded');
  const out = done.result!.output_path!;
  const before = statSync(out).mtimeMs;
  const node = done.node_id === 'node-a' ? k.a : b;
  const client = new AgentClient(node.address, identity(k.s, 'coordinator', 'c1'), node.nodeId);
  try {
    const again = await client.assign({ ...order(id, node.nodeId, node.term()), allocation: { ...order(id, node.nodeId, node.term()).allocation, core_ids: node.hardware.core_ids } });
    assert.is(again.accepted, false);
    assert.is(again.refusal, 'ALREADY_RAN');
    assert.match(again.reason, /attempt 1 of \S+ already ran here/);
  } finally {
    client.close();
  }
  assert.not.ok(node.running().includes(id));
  assert.is(statSync(out).mtimeMs, before, 'the output was not written again');
});

test('a revoked node certificate is refused at once, though it is still within its dates; NATS drops its user', async () => {
  const id = identity(k.s, 'node', 'node-c'); // kept in memory, as a stolen copy would be
  const client = new CoordinatorClient(leaderAddress, id);
  try {
    assert.match(await failure(client.heartbeat({ node_id: 'node-c', running: [] })), /^(answered|FAILED_PRECONDITION|INTERNAL)/, 'accepted before (an unknown node is told to register)');
    const r = await cliRun(k.s, ['certs', 'revoke', '--node', 'node-c', '--json']);
    assert.is(r.code, 0, r.stderr);
    assert.is((JSON.parse(r.stdout) as { fingerprint256: string }).fingerprint256, new X509Certificate(id.cert).fingerprint256);
    const fresh = new CoordinatorClient(leaderAddress, id); // a new connection, after the revocation
    try {
      assert.match(await failure(fresh.heartbeat({ node_id: 'node-c', running: [] })), /^PERMISSION_DENIED/);
    } finally {
      fresh.close();
    }
    assert.match(readFileSync(natsUsersFile(pkiDirOf(k.s.endpoints)), 'utf8'), /^(?![\s\S]*CN=node-c,OU=node)/, 'no NATS user for node-c');
  } finally {
    client.close();
  }
});

test('a revocation reaches members on other hosts through Consul; nobody without a token can change the list, and a list that is not one is ignored', async () => {
  const id = identity(k.s, 'node', 'node-d');
  const fp = new X509Certificate(id.cert).fingerprint256;
  // Another host: its certificates folder has no revoked.json, only what Consul carries.
  const elsewhere = mkdtempSync(path.join(os.tmpdir(), 'prescient-other-host-'));
  try {
    assert.not.ok(revokedFingerprints(elsewhere).has(fp));
    const r = await cliRun(k.s, ['certs', 'revoke', '--node', 'node-d', '--json']);
    assert.is(r.code, 0, r.stderr);
    assert.match((JSON.parse(r.stdout) as { cluster: string }).cluster, /^in Consul's revoked list/);
    await waitFor('the revocation to reach the other host', () => revokedFingerprints(elsewhere).has(fp), 10_000);
    const anonymous = consulClient(k.s.endpoints.consul_http);
    const before = ((await anonymous.kv.get(REVOKED_KEY)) as { Value: string }).Value;
    assert.ok((parseRevokedList(before) as { fingerprint256: string }[]).some((e) => e.fingerprint256 === fp), 'anyone reads the list');
    assert.match(await anonymous.kv.set(REVOKED_KEY, '[]').then(String, (e: Error) => e.message), /Permission denied|ACL not found|403/i, 'no token: the list cannot be emptied');
    assert.is(((await anonymous.kv.get(REVOKED_KEY)) as { Value: string }).Value, before);
    // Written with the management token, a value that is not a list: ignored, logged, and the last good list stays.
    const admin = consulClient(k.s.endpoints.consul_http, readSecret(pkiDirOf(k.s.endpoints), 'consul-management'));
    await admin.kv.set(REVOKED_KEY, JSON.stringify([{ fingerprint256: 'everyone', role: 'node', name: 'x', revoked_at: 'now' }]));
    await waitFor('the bad list to be logged', () => k.s.logs.some((l) => l.includes(`${REVOKED_KEY} ignored: 0.fingerprint256 "everyone" is not a SHA-256 fingerprint`)), 10_000);
    assert.ok(revokedFingerprints(elsewhere).has(fp), 'the last good list stays');
    await admin.kv.set(REVOKED_KEY, before);
  } finally {
    rmSync(elsewhere, { recursive: true, force: true });
  }
});

test.run();
