/**
 * One host's capacity counted once (node-agent/host-claims.ts): the pure decision, and the
 * claims file with real processes as the other claimants.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HostClaims, decideClaim, type HostClaim } from '../../node-agent/host-claims.js';
import { parsePidStat } from '../../node-agent/sampling/index.js';
import { ConfigError } from '../../shared/index.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'host-claims-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const other = (node_id: string, cores: number[], memory_gb: number, gpus: number[] = []): HostClaim => ({ node_id, pid: 4242, pid_start: '1', cores, memory_gb, gpus, at: '' });
const ask = { node_id: 'b', allowed_cores: [0, 1, 2, 3], host_memory_gb: 16, gpus: [0, 1] };

test('a core another agent holds is refused, naming the agent and the cores still free', () => {
  const d = decideClaim([other('a', [0, 1], 4)], { ...ask, cores: [1, 2] });
  assert.equal(d, { field: '--cores', why: 'core 1 is held by agent a (pid 4242) on this host; cores no agent holds: 2,3' });
});

test('an agent given no grant takes what the others left: cores, memory and GPUs, never the whole host twice', () => {
  assert.equal(decideClaim([other('a', [0, 1], 4, [0])], ask), { cores: [2, 3], memory_gb: 12, gpus: [1] });
  assert.equal(decideClaim([], ask), { cores: [0, 1, 2, 3], memory_gb: 16, gpus: [0, 1] });
});

test('memory asked beyond what the others left is refused; none left at all is refused too', () => {
  const d = decideClaim([other('a', [0], 10), other('c', [1], 4)], { ...ask, cores: [2], memory_gb: 3 });
  assert.ok('why' in d && d.field === '--memory-gb' && d.why.startsWith('3 GB asked, but only 2.0 of this host\'s 16.0 GB'), JSON.stringify(d));
  assert.equal(decideClaim([other('a', [0], 10), other('c', [1], 4)], { ...ask, cores: [2], memory_gb: 2 }), { cores: [2], memory_gb: 2, gpus: [0, 1] });
  const none = decideClaim([other('a', [0, 1], 16)], { ...ask, cores: [2] });
  assert.ok('why' in none && /no memory is left/.test(none.why));
});

test('a second agent with a node id already running on the host is refused', () => {
  const d = decideClaim([other('b', [0], 1)], { ...ask, cores: [3] });
  assert.equal(d, { field: '--node-id', why: 'an agent with node id b already runs on this host (pid 4242)' });
});

test('claims of processes that are gone are dropped, those of live ones held; a release gives the claim back', async () => {
  const file = path.join(dir, 'claims.json');
  const alive = spawn('sleep', ['30'], { stdio: 'ignore' });
  const start = (pid: number) => String(parsePidStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).starttime);
  try {
    writeFileSync(file, JSON.stringify([
      { ...other('live', [0], 4), pid: alive.pid, pid_start: start(alive.pid!) },
      { ...other('gone', [1], 4), pid: alive.pid, pid_start: 'another process that had this pid' },
    ]));
    const c = new HostClaims(file);
    const refused = await c.claim({ ...ask, node_id: 'me', cores: [0] }).then(() => undefined, (e: Error) => e);
    assert.instance(refused, ConfigError);
    assert.match(refused!.message, '--cores: core 0 is held by agent live');
    assert.equal(await c.claim({ ...ask, node_id: 'me', cores: [1] }), { cores: [1], memory_gb: 12, gpus: [0, 1] }, 'the dead claimant\'s core and memory are free');
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).map((x: HostClaim) => x.node_id), ['live', 'me']);
    await c.release();
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).map((x: HostClaim) => x.node_id), ['live']);
  } finally {
    alive.kill();
  }
});

test('a claims file that is not one is ignored and said, not trusted', async () => {
  const file = path.join(dir, 'bad.json');
  writeFileSync(file, JSON.stringify([{ node_id: 'x', pid: 'one', cores: [0] }]));
  const said: string[] = [];
  assert.equal(await new HostClaims(file, (m) => said.push(m)).claim({ ...ask, node_id: 'me', cores: [0], memory_gb: 1 }), { cores: [0], memory_gb: 1, gpus: [0, 1] });
  assert.match(said[0], '0.pid "one" is not a number');
});

test('a lock left by a claimant that died is broken: one naming a dead process, and an empty one older than a write takes', async () => {
  const file = path.join(dir, 'locked.json');
  writeFileSync(`${file}.lock`, '999999 1');
  assert.equal(await new HostClaims(file).claim({ ...ask, node_id: 'me', cores: [0], memory_gb: 1 }), { cores: [0], memory_gb: 1, gpus: [0, 1] });
  writeFileSync(`${file}.lock`, '');
  const old = (Date.now() - 10_000) / 1000;
  utimesSync(`${file}.lock`, old, old);
  assert.equal(await new HostClaims(file).claim({ ...ask, node_id: 'me2', cores: [1], memory_gb: 1 }), { cores: [1], memory_gb: 1, gpus: [] }, 'the GPUs are the first claim\'s');
});

test.run();
