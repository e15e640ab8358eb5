/**
 * The local stack against the real nats-server, consul and QuestDB (installed by deploy/install.sh).
 * The steps run in order on one stack in a temp state dir; the after hook always takes it down.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadEndpoints, stackFile } from '../../shared/config.js';
import { stackDown, stackStatus, stackUp, startService, stopService, type StackOptions, type StackStatus } from '../../deploy/stack/index.js';
import { httpGet } from '../../deploy/stack/net.js';
import { QUESTDB_QUIET } from '../../deploy/stack/services.js';
import { questdbExec } from '../../models/data/index.js';
import net from 'node:net';

const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-stack-'));
const opts: StackOptions = { stateDir: dir, log: (l) => console.log(`    [stack] ${l}`) };
let first: StackStatus;

/** Runs SQL through QuestDB's REST API and returns the parsed answer. */
async function sql(query: string): Promise<{ dataset?: unknown[][]; error?: string }> {
  return questdbExec(loadEndpoints(dir).questdb_http, query).catch((e: Error) => ({ error: e.message }));
}
const pidsOf = (s: StackStatus) => Object.fromEntries(s.services.map((x) => [x.name, x.pid]));
const service = (s: StackStatus, name: string) => s.services.find((x) => x.name === name)!;
/** kill(pid, 0) succeeds for zombies too, so also ask /proc whether it is one. */
function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

test.after(async () => {
  await stackDown(opts).catch((e) => console.error('stack down failed:', e));
  rmSync(dir, { recursive: true, force: true });
});

test('stack up starts nats, consul and questdb healthy on loopback endpoints', async () => {
  const t0 = Date.now();
  first = await stackUp(opts);
  console.log(`    stack up took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  assert.ok(first.up);
  for (const s of first.services) {
    assert.ok(s.running && s.healthy, `${s.name} should be running and healthy`);
    assert.ok(s.pid && s.pid > 0);
    assert.ok(s.log_file.startsWith(path.join(dir, 'logs')));
  }
  const e = first.endpoints!;
  assert.match(e.nats_url, /^nats:\/\/127\.0\.0\.1:\d+$/);
  assert.match(e.consul_http, /^127\.0\.0\.1:\d+$/);
  assert.match(e.questdb_http, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.match(e.questdb_pg, /^127\.0\.0\.1:\d+$/);
  // Other components find the stack through the stack file, and the cluster's secrets beside it:
  // QuestDB's password joins its URL there, never in the stack file.
  const loaded = loadEndpoints(dir);
  assert.equal({ ...loaded, questdb_http: e.questdb_http, pki_dir: undefined }, { ...e, pki_dir: undefined });
  assert.match(loaded.questdb_http, /^http:\/\/prescient:[0-9a-f-]{36}@127\.0\.0\.1:\d+$/);
  assert.is(loaded.pki_dir, path.join(dir, 'pki'));
  assert.not.match(readFileSync(stackFile(dir), 'utf8'), /prescient:[0-9a-f-]{36}@/);
  for (const name of ['nats', 'consul', 'questdb']) assert.ok(existsSync(path.join(dir, name)), `${name} data dir`);
});

test('status reports all three services healthy with their endpoints', async () => {
  const s = await stackStatus(opts);
  assert.ok(s.up);
  assert.equal(s.endpoints, first.endpoints);
  assert.equal(service(s, 'nats').endpoint, first.endpoints!.nats_url);
  assert.equal(service(s, 'consul').endpoint, first.endpoints!.consul_http);
  assert.equal(service(s, 'questdb').endpoint, first.endpoints!.questdb_http);
});

test('stack up on a healthy stack returns it unchanged with the same pids', async () => {
  const again = await stackUp(opts);
  assert.ok(again.up);
  assert.equal(pidsOf(again), pidsOf(first));
  assert.equal(again.endpoints, first.endpoints);
});

test('a stopped questdb is reported as neither running nor healthy while the others stay up', async () => {
  assert.not.ok((await sql('create table stack_probe (x int)')).error);
  assert.not.ok((await sql('insert into stack_probe values (42)')).error);
  const pid = service(first, 'questdb').pid!;
  await stopService(opts, 'questdb');
  assert.not.ok(pidExists(pid), 'questdb pid should be gone');
  const s = await stackStatus(opts);
  assert.not.ok(s.up);
  assert.not.ok(service(s, 'questdb').healthy);
  assert.not.ok(service(s, 'questdb').running);
  assert.ok(service(s, 'nats').healthy && service(s, 'consul').healthy);
});

test('startService brings questdb back on the same port and data with a new pid', async () => {
  await startService(opts, 'questdb');
  const s = await stackStatus(opts);
  assert.ok(s.up);
  assert.equal(s.endpoints, first.endpoints);
  assert.ok(service(s, 'questdb').healthy);
  assert.is.not(service(s, 'questdb').pid, service(first, 'questdb').pid);
  assert.equal(service(s, 'questdb').endpoint, first.endpoints!.questdb_http);
  assert.equal((await sql('select x from stack_probe')).dataset, [[42]]);
});

test('questdb runs with the quiet settings and writes no INFO lines to its log', async () => {
  // SHOW PARAMETERS lists every server setting with the variable that overrides it and where its value came from.
  const params = new Map((await sql('SHOW PARAMETERS')).dataset!.map((r) => [r[1] as string, { value: r[2], source: r[3] }]));
  const server = Object.entries(QUESTDB_QUIET).filter(([k]) => !k.startsWith('QDB_LOG_'));
  assert.ok(server.length >= 10);
  for (const [name, value] of server) assert.equal(params.get(name), { value, source: 'env' }, name);
  // The log settings are not server parameters: their effect is the log. By now QuestDB has started
  // twice, created a table, inserted and queried, each of which logs at INFO.
  const log = readFileSync(service(await stackStatus(opts), 'questdb').log_file, 'utf8');
  assert.match(log, /Using env: QDB_LOG_W_STDOUT_LEVEL=/);
  assert.match(log, /^\S+Z A server-main /m, 'advisory lines (startup) still reach the log');
  const info = log.split('\n').filter((l) => /^\S+Z I /.test(l));
  assert.equal(info, [], 'no INFO lines');
});

test('questdb takes only the cluster\'s password: no query or ILP write without it, and no ILP over TCP at all', async () => {
  const base = first.endpoints!.questdb_http; // as the stack file has it: no credentials
  assert.is((await httpGet(`${base}/exec?query=${encodeURIComponent('select x from stack_probe')}`, 5000)).status, 401);
  const write = await fetch(`${base}/write`, { method: 'POST', body: 'stack_probe x=7i\n' });
  assert.is(write.status, 401, 'ILP over HTTP refused');
  const wrong = await fetch(`${base}/exec?query=select%201`, { headers: { authorization: `Basic ${Buffer.from('prescient:guess').toString('base64')}` } });
  assert.is(wrong.status, 401, 'a wrong password refused');
  const ilpPort = (JSON.parse(readFileSync(stackFile(dir), 'utf8')) as { services: { questdb: { ports: { ilp: number } } } }).services.questdb.ports.ilp;
  const connected = await new Promise<boolean>((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port: ilpPort }, () => { sock.destroy(); resolve(true); });
    sock.on('error', () => resolve(false));
  });
  assert.not.ok(connected, `nothing listens on the ILP TCP port ${ilpPort}`);
  assert.equal((await sql('select x from stack_probe')).dataset, [[42]], 'with the password, queries work');
});

test('stack down leaves no process behind and status says the stack is not up', async () => {
  const before = pidsOf(await stackStatus(opts));
  const s = await stackDown(opts);
  for (const [name, pid] of Object.entries(before)) assert.not.ok(pid && pidExists(pid), `${name} pid ${pid} still exists`);
  assert.not.ok(s.up);
  assert.not.ok(s.endpoints);
  for (const x of s.services) assert.not.ok(x.running || x.healthy || x.pid, `${x.name} still reported`);
  const file = JSON.parse(readFileSync(stackFile(dir), 'utf8')) as { endpoints?: unknown; services: Record<string, { pid?: number }> };
  assert.not.ok(file.endpoints);
  assert.not.ok(Object.values(file.services).some((r) => r.pid));
  assert.not.ok((await stackStatus(opts)).up);
});

test.run();
