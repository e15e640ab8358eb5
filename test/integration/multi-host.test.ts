/**
 * Issue 18's multi-host test, on one machine: three "hosts" are network namespaces joined by a
 * bridge, each with its own address and no 127.0.0.1 (test/helpers/netns.ts), so every byte goes
 * over the hosts' addresses. Host a runs the stack (`prescient stack up --host`), coordinator c1
 * and an agent; hosts b and c join with a token (`prescient certs join-token` on a, `prescient
 * join` on b and c: a key made on the host, a node certificate signed by the leader) and run
 * their agents from the config file join wrote; host b also runs coordinator c2, set up as an
 * operator would (its certificate issued on a, copied over, endpoints on the command line).
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import YAML from 'yaml';
import { stackDown } from '../../deploy/stack/index.js';
import { connectBus, ensureStreams, JetStreamLedgerStore } from '../../coordinator/index.js';
import { ConsulLeaderLookup, disconnectMember, loadEndpoints, loadIdentity, pkiDirOf, retryUnavailable } from '../../shared/index.js';
import type { CoordinatorProcess } from '../helpers/bench-cluster.js';
import { events, smallJob, submit, TEST_OWNER, waitFor, type TestStack } from '../helpers/cluster.js';
import { makeHosts, netnsUnavailable, onHost, runOnHost, type Host, type Hosts } from '../helpers/netns.js';

const unavailable = netnsUnavailable();
if (unavailable) console.log(`  skipped: the multi-host tests (${unavailable})`);
const it = unavailable ? test.skip : test;

let net: Hosts;
let a: Host, b: Host, c: Host;
let s: TestStack;
const root = mkdtempSync(path.join(os.tmpdir(), 'prescient-multi-host-'));
const stateOf = (h: Host) => path.join(root, h.name);
const procs: CoordinatorProcess[] = [];
const started = (p: CoordinatorProcess) => { procs.push(p); return p; };
let c1: CoordinatorProcess, c2: CoordinatorProcess;
const agents: Record<string, CoordinatorProcess> = {};

/** `prescient agent` on host `h`, its grants in its own host's claims file; resolves once it registered. */
async function agentOn(h: Host, id: string, args: string[]): Promise<CoordinatorProcess> {
  const p = started(onHost(h, ['--state-dir', stateOf(h), 'agent', '--node-id', id, '--shape-interfaces', '', '--sample-ms', '1000', ...args], { PRESCIENT_HOST_CLAIMS: path.join(stateOf(h), 'host-claims.json') }));
  await waitFor(`${id} registered`, () => {
    if (p.child.exitCode !== null) throw new Error(`agent ${id} exited ${p.child.exitCode}: ${p.output().slice(-1500)}`);
    return p.output().includes(`[agent ${id}] registered with leader`);
  }, 60_000, 100);
  return p;
}

/** deploy/install.sh run as root on host `h`, to completion. */
function installOn(h: Host, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  const script = fileURLToPath(new URL('../../../deploy/install.sh', import.meta.url));
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', h.ns, 'bash', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('close', (code) => resolve({ code, output }));
  });
}

const leaderId = async () => (await new ConsulLeaderLookup(s.endpoints.consul_http).currentLeader().catch(() => null));
const ledgerNodes = async () => ((await (await JetStreamLedgerStore.open(s.nc.jetstream())).load())?.nodes ?? []);

/** A run that dies early (uvu skips `after` then) still leaves no process, namespace or bridge behind. */
function leaveNothing(): void {
  for (const p of procs) try { p.child.kill('SIGKILL'); } catch { /* gone */ }
  try {
    const rec = JSON.parse(readFileSync(path.join(stateOf(a), 'stack.json'), 'utf8')) as { services?: Record<string, { pid?: number }> };
    for (const sv of Object.values(rec.services ?? {})) if (sv.pid) try { process.kill(-sv.pid, 'SIGKILL'); } catch { /* gone */ }
  } catch { /* no stack */ }
  net?.remove();
  rmSync(root, { recursive: true, force: true });
}

test.before(async () => {
  if (unavailable) return;
  process.once('exit', leaveNothing);
  net = makeHosts(['a', 'b', 'c']);
  [a, b, c] = net.hosts;
  for (const h of net.hosts) mkdirSync(stateOf(h), { recursive: true });
  const up = await runOnHost(a, ['--state-dir', stateOf(a), 'stack', 'up', '--host', a.address]);
  assert.is(up.code, 0, up.output.slice(-2000));
  // The test process sits on the bridge, another host to the stack.
  const endpoints = loadEndpoints(stateOf(a));
  const nc = await connectBus(endpoints.nats_url, loadIdentity(pkiDirOf(endpoints), { role: 'admin', name: TEST_OWNER }), 'test-multi-host');
  await retryUnavailable(() => ensureStreams(nc));
  s = {
    dir: stateOf(a), endpoints, nc, logs: [], log: () => undefined, validation: { allowedInputRoots: [] },
    async down() { await disconnectMember(nc); await stackDown({ stateDir: stateOf(a) }); },
  };
  c1 = started(onHost(a, ['--state-dir', stateOf(a), 'coordinator', '--id', 'c1', '--grpc-host', a.address]));
  await waitFor('c1 leading', async () => (await leaderId())?.id === 'c1', 60_000);
});

test.after(async () => {
  if (unavailable) return;
  await Promise.all(procs.map((p) => p.stop(5000)));
  await s?.down();
  net?.remove();
  rmSync(root, { recursive: true, force: true });
});

it('the stack serves on host a\'s address, and the leader and agents advertise their hosts\' addresses, never loopback', async () => {
  for (const url of Object.values(s.endpoints).filter((x): x is string => typeof x === 'string' && x.includes(':') && !x.startsWith('/'))) {
    assert.ok(url.includes(a.address), `${url} is on ${a.address}`);
  }
  agents.a1 = await agentOn(a, 'host-a-1', ['--cores', '0', '--memory-gb', '1', '--grpc-host', a.address]);
  assert.is((await leaderId())?.address.split(':')[0], a.address);
});

it('hosts b and c join with a token (b with `prescient join`, c through install.sh --agent --join): each makes its key, the leader signs its node certificate, and the agent runs from the config written', async () => {
  const t = await runOnHost(a, ['--state-dir', stateOf(a), 'certs', 'join-token', '--nodes', '2', '--ttl', '1h', '--json']);
  assert.is(t.code, 0, t.output);
  const { token, nats_url } = JSON.parse(t.output) as { token: string; nats_url: string };
  for (const [h, id, cores] of [[b, 'host-b-1', '1'], [c, 'host-c-1', '0']] as const) {
    const config = path.join(stateOf(h), 'etc', 'agent.yaml');
    const args = ['--join', nats_url, '--node-id', id, '--cores', cores, '--memory-gb', '1'];
    // b with the CLI; c as a new host is meant to be set up, through install.sh (its packages are
    // here already, its npm steps skipped; no systemd runs here, so it says how to start the agent).
    const j = h === b
      ? await runOnHost(h, ['--state-dir', stateOf(h), 'join', '--token', token, ...args, '--write-config', config])
      : await installOn(h, ['--agent', ...args], { PRESCIENT_JOIN_TOKEN: token, PRESCIENT_SKIP_NPM: '1', PRESCIENT_STATE_DIR: stateOf(h), PRESCIENT_ETC_DIR: path.dirname(config) });
    assert.is(j.code, 0, j.output);
    assert.match(j.output, h === b ? /enrolled host-b-1/ : /join +enrolled; settings in .*agent\.yaml[\s\S]*systemd is not running here/);
    const written = YAML.parse(readFileSync(config, 'utf8')) as Record<string, unknown>;
    assert.is(written.grpc_host, h.address, 'the agent advertises the address on its route to NATS');
    assert.is(written.nats_url, nats_url);
    assert.not.ok(readFileSync(config, 'utf8').includes(readFileSync(path.join(stateOf(a), 'pki', 'secrets', 'questdb'), 'utf8').trim()), 'no password in the config file');
    agents[id] = await agentOn(h, id, ['--config', config]);
  }
  // The token's two places are used: a third host is refused, and says why.
  const third = await runOnHost(c, ['--state-dir', path.join(root, 'c2nd'), 'join', '--token', token, '--node-id', 'host-c-9']);
  assert.is.not(third.code, 0);
  assert.match(third.output, /2 places are used/);
  // A token does not buy a certificate for a node already in the cluster (its holder could speak for it).
  const t2 = await runOnHost(a, ['--state-dir', stateOf(a), 'certs', 'join-token', '--json']);
  const impostor = await runOnHost(c, ['--state-dir', path.join(root, 'c3rd'), 'join', '--token', (JSON.parse(t2.output) as { token: string }).token, '--node-id', 'host-a-1']);
  assert.is.not(impostor.code, 0);
  assert.match(impostor.output, /node host-a-1 is in the cluster already/);
  await waitFor('three nodes in the ledger', async () => (await ledgerNodes()).length === 3, 10_000);
  const addresses = (await ledgerNodes()).map((n) => n.capacity.address.split(':')[0]).sort();
  assert.equal(addresses, [a.address, b.address, c.address]);
});

it('a second agent on host c asking for the core host c\'s agent holds is refused, naming the core and its holder', async () => {
  // Its certificate the operator's way: issued on the CA host, copied over.
  const issued = await runOnHost(a, ['--state-dir', stateOf(a), 'certs', 'issue', '--node', 'host-c-2']);
  assert.is(issued.code, 0, issued.output);
  cpSync(path.join(stateOf(a), 'pki', 'node', 'host-c-2'), path.join(stateOf(c), 'pki', 'node', 'host-c-2'), { recursive: true });
  const r = await runOnHost(c, ['--state-dir', stateOf(c), 'agent', '--config', path.join(stateOf(c), 'etc', 'agent.yaml'), '--node-id', 'host-c-2'],
    { PRESCIENT_HOST_CLAIMS: path.join(stateOf(c), 'host-claims.json') });
  assert.is.not(r.code, 0);
  assert.match(r.output, /--cores: core 0 is held by agent host-c-1/);
});

it('jobs run across the hosts: one encode on each of the three nodes at once', async () => {
  const ids = await Promise.all([1, 2, 3].map(() => submit(s, smallJob({ input: { duration_s: 4 } }))));
  const finals = await Promise.all(ids.map((id) => events(s, id, 120_000).then((e) => e.at(-1)!)));
  assert.ok(finals.every((e) => e.state === 'succeeded'), finals.map((e) => `${e.state} ${e.reason ?? ''}`).join('; '));
  const nodes = new Set(finals.map((e) => e.node_id));
  assert.ok(nodes.size >= 2, `ran on ${[...nodes].join(', ')}`);
});

it('killing the leader on host a fails over to c2 on host b, whose agents then run new jobs', async () => {
  // c2 as an operator sets it up: its certificate issued on the CA host and copied to b, with the secrets it needs.
  const issued = await runOnHost(a, ['--state-dir', stateOf(a), 'certs', 'issue', '--coordinator', 'c2']);
  assert.is(issued.code, 0, issued.output);
  const from = path.join(stateOf(a), 'pki'), to = path.join(stateOf(b), 'pki');
  for (const f of ['ca.crt', 'coordinator/c2', 'secrets/consul-coordinator', 'secrets/questdb']) cpSync(path.join(from, f), path.join(to, f), { recursive: true });
  const e = s.endpoints;
  c2 = started(onHost(b, ['--state-dir', stateOf(b), 'coordinator', '--id', 'c2', '--grpc-host', b.address,
    '--nats-url', e.nats_url, '--consul-http', e.consul_http, '--questdb-http', e.questdb_http.replace(/\/\/[^@]*@/, '//'), '--questdb-pg', e.questdb_pg]));
  await waitFor('c2 campaigning', () => c2.output().includes('campaigning through Consul'), 30_000);
  c1.child.kill('SIGKILL');
  const killed = Date.now();
  const leader = await waitFor('c2 leading', async () => { const l = await leaderId(); return l?.id === 'c2' ? l : undefined; }, 60_000, 100);
  assert.is(leader.address.split(':')[0], b.address);
  await waitFor('every agent registered with c2', () => Object.values(agents).every((p) => p.output().includes('registered with leader c2')), 30_000);
  const id = await submit(s, smallJob());
  const final = (await events(s, id, 120_000)).at(-1)!;
  assert.is(final.state, 'succeeded', final.reason);
  console.log(`  failover: c2 led ${((Date.now() - killed) / 1000).toFixed(1)} s after c1 was killed (job done)`);
});

it('host b\'s agent stopped as systemd stops it drains, deregisters from c2 and exits 0', async () => {
  const p = agents['host-b-1'];
  p.child.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => (p.child.exitCode !== null ? r(p.child.exitCode) : p.child.once('exit', (x) => r(x))));
  assert.is(code, 0, p.output().slice(-1500));
  assert.match(p.output(), /deregistered from the leader/);
  await waitFor('host-b-1 out of the ledger', async () => !(await ledgerNodes()).some((n) => n.capacity.node_id === 'host-b-1'), 10_000);
});

test.run();
