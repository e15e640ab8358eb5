/**
 * The ledger's JetStream KV store against a real nats-server (only NATS: the store needs
 * nothing else, so this file starts just that, on a free loopback port, and stops it after).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, type JetStreamClient, type NatsConnection } from 'nats';
import { freePort } from '../../deploy/stack/index.js';
import { findExecutable } from '../../deploy/stack/proc.js';
import { JetStreamLedgerStore, Ledger, StaleLedgerWriteError, type LedgerState } from '../../coordinator/ledger/index.js';
import { disconnectMember, type NodeCapacity, type ResourceAllocation } from '../../shared/index.js';
import { waitFor } from '../helpers/cluster.js';

let server: ChildProcess;
let dir: string;
let nc: NatsConnection;
let js: JetStreamClient;
let buckets = 0;

test.before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-ledger-store-'));
  const port = await freePort();
  const bin = findExecutable('nats-server', process.env.PRESCIENT_NATS_SERVER);
  assert.ok(bin, 'nats-server is not installed (apt-get install nats-server)');
  server = spawn(bin!, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' });
  nc = await waitFor('nats-server to accept connections', () => connect({ servers: `nats://127.0.0.1:${port}` }).catch(() => undefined), 20_000);
  js = nc.jetstream();
});
test.after(async () => {
  await disconnectMember(nc);
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

const node = (id: string, cores: number, sessions: number[] = []): NodeCapacity => ({
  node_id: id, address: '10.0.0.1:7000', core_ids: Array.from({ length: cores }, (_, i) => i), memory_gb: 16, bandwidth_mbps: 1000, cpu_model: 'test',
  gpus: sessions.map((s, i) => ({ id: i, name: 'gpu', memory_gb: 16, sessions: s })),
});
const open = () => JetStreamLedgerStore.open(js, `ledger_test_${++buckets}`);
const reserve = (l: Ledger, task_id: string, node_id: string, core_ids: number[], gpu_ids: number[] = []) =>
  assert.ok(l.commit({ task_id, node_id, core_ids, gpu_ids, memory_gb: 1.5, bandwidth_mbps: 25 }, 1000).ok);
const held = (s: LedgerState | undefined) => s?.nodes.flatMap((n) => n.reservations.map((r) => `${r.task_id}@${n.capacity.node_id}`)).sort();

test('a saved ledger loads back, in a new store, as it was', async () => {
  const l = new Ledger(1, 5000);
  l.upsertNode(node('a', 4), 0);
  l.upsertNode(node('g', 8, [3]), 0);
  reserve(l, 'x', 'a', [0, 1]);
  reserve(l, 'y', 'g', [0], [0]);
  const store = await open();
  assert.is(await store.load(), undefined, 'an empty bucket holds no ledger');
  await store.save(l.toState());
  const bucket = `ledger_test_${buckets}`;
  const loaded = await (await JetStreamLedgerStore.open(js, bucket)).load();
  assert.equal(loaded, JSON.parse(JSON.stringify(l.toState())));
  const back = Ledger.fromState(loaded!, 2, 5000, 9000);
  assert.equal(back.checkInvariants(), []);
  assert.equal(back.reservation('y')!.gpu_ids, [0]);
  assert.is(back.snapshot().node('g')!.gpus[0].free_sessions, 2);
});

test('an entry that is not what the store writes is left out and said, whatever else the bucket holds: the good nodes still load', async () => {
  const l = new Ledger(1, 5000);
  l.upsertNode(node('a', 4), 0);
  reserve(l, 'x', 'a', [0, 1]);
  const bucket = `ledger_test_${++buckets}`;
  await (await JetStreamLedgerStore.open(js, bucket)).save(l.toState());
  const kv = await js.views.kv(bucket);
  const good = JSON.parse(new TextDecoder().decode((await kv.get('node.a'))!.value));
  await kv.put('node.b', JSON.stringify({ term: 1, record: { ...good.record, capacity: { ...good.record.capacity, node_id: 'b', core_ids: [0, 'all'] } } }));
  await kv.put('node.c', JSON.stringify({ term: 1, record: { ...good.record, capacity: { ...good.record.capacity, node_id: 'c' } } }));
  await kv.put('node.d', JSON.stringify({ term: 1, record: { ...good.record, capacity: { ...good.record.capacity, node_id: 'a' } } }));
  await kv.put('node.e', '{"term": 1, "record": ');
  const said: string[] = [];
  const loaded = await (await JetStreamLedgerStore.open(js, bucket, { log: (m) => said.push(m) })).load();
  assert.equal(loaded?.nodes.map((n) => n.capacity.node_id), ['a']);
  assert.equal(said.sort(), [
    `${bucket} node.b ignored: record.capacity.core_ids.1 "all" is not a number`,
    `${bucket} node.c ignored: reservation of x is on node "a", not this one`,
    `${bucket} node.d ignored: it is node "a"'s, not this key's`,
    `${bucket} node.e ignored: undefined is not a mapping`,
  ]);
});

test('a save writes only the nodes that changed, and removed nodes stay gone', async () => {
  const l = new Ledger(1, 5000);
  for (const id of ['a', 'b', 'c']) l.upsertNode(node(id, 4), 0);
  const store = await open();
  await store.save(l.takeChanges());
  const kv = await js.views.kv(`ledger_test_${buckets}`);
  const revB = (await kv.get('node.b'))!.revision;
  reserve(l, 'x', 'a', [0]);
  l.removeNode('c');
  const changes = l.takeChanges();
  assert.equal([changes.nodes.map((n) => n.capacity.node_id), changes.removed], [['a'], ['c']]);
  await store.save(changes);
  assert.is((await kv.get('node.b'))!.revision, revB, 'an unchanged node was rewritten');
  const loaded = await (await JetStreamLedgerStore.open(js, `ledger_test_${buckets}`)).load();
  assert.equal(loaded!.nodes.map((n) => n.capacity.node_id), ['a', 'b']);
  assert.equal(held(loaded), ['x@a']);
});

test('node ids outside the KV key alphabet are kept under an encoded key', async () => {
  const l = new Ledger(1, 5000);
  l.upsertNode(node('encoder-7.example.com:7000', 2), 0);
  reserve(l, 'x', 'encoder-7.example.com:7000', [1]);
  const store = await open();
  await store.save(l.toState());
  const loaded = await (await JetStreamLedgerStore.open(js, `ledger_test_${buckets}`)).load();
  assert.equal(held(loaded), ['x@encoder-7.example.com:7000']);
});

test('once a new leader has saved, the deposed leader\'s save is refused and changes nothing', async () => {
  const old = new Ledger(1, 5000);
  old.upsertNode(node('a', 4), 0);
  reserve(old, 'x', 'a', [0]);
  const oldStore = await open();
  await oldStore.save(old.toState());

  // Failover: the new leader loads, rebuilds under term 2, reconciles, and saves.
  const newStore = await JetStreamLedgerStore.open(js, `ledger_test_${buckets}`);
  const next = Ledger.fromState((await newStore.load())!, 2, 5000, 2000);
  const running: ResourceAllocation = { ...next.reservation('x')! };
  next.reconcile([{ node_id: 'a', running: [{ task_id: 'x', allocation: running }] }], (t) => t === 'x', 2000);
  reserve(next, 'y', 'a', [1]);
  await newStore.save(next.takeChanges());

  // The old leader, not yet aware, reserves and saves.
  reserve(old, 'z', 'a', [1]);
  let err: unknown;
  await oldStore.save(old.takeChanges()).catch((e) => { err = e; });
  assert.instance(err, StaleLedgerWriteError);
  assert.equal([(err as StaleLedgerWriteError).term, (err as StaleLedgerWriteError).storedTerm, (err as StaleLedgerWriteError).key], [1, 2, 'meta']);
  const loaded = await (await JetStreamLedgerStore.open(js, `ledger_test_${buckets}`)).load();
  assert.is(loaded!.term, 2);
  assert.equal(held(loaded), ['x@a', 'y@a']);
});

test('a write the deposed leader made after the new leader loaded is overwritten by the new leader\'s save', async () => {
  const old = new Ledger(1, 5000);
  old.upsertNode(node('a', 4), 0);
  const oldStore = await open();
  await oldStore.save(old.toState());
  const newStore = await JetStreamLedgerStore.open(js, `ledger_test_${buckets}`);
  const next = Ledger.fromState((await newStore.load())!, 2, 5000, 2000);
  // The old leader's last write lands between the new leader's load and its first save.
  reserve(old, 'late', 'a', [0]);
  await oldStore.save(old.takeChanges());
  reserve(next, 'y', 'a', [3]);
  await newStore.save(next.takeChanges());
  const loaded = await (await JetStreamLedgerStore.open(js, `ledger_test_${buckets}`)).load();
  assert.equal([loaded!.term, held(loaded)], [2, ['y@a']]);
  // And from then on the old leader is fenced out.
  reserve(old, 'later', 'a', [2]);
  await oldStore.save(old.takeChanges()).then(() => assert.unreachable('the deposed leader wrote'), (e) => assert.instance(e, StaleLedgerWriteError));
});

test.run();
