/**
 * A node agent that dies mid-encode loses neither the job nor the reservation: the leader
 * declares the node lost after its lease, releases what it held, and runs the job elsewhere.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import { alive, cli, coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';
import { removeKilledAgents } from '../helpers/enforcement.js';

let s: TestStack;
let c: CoordinatorHandle;
const agents = new Map<string, ChildProcess>();

test.before(async () => {
  s = await startStack('agent-loss');
  c = await coordinator(s, 'c1', { leaseMs: 4000 });
  for (const [id, cores] of [['n1', '0'], ['n2', '1']]) {
    const p = cli(s, ['agent', '--node-id', id, '--cores', cores, '--memory-gb', '2']);
    p.stdout!.on('data', (d) => s.log(String(d).trimEnd()));
    p.stderr!.on('data', (d) => s.log(String(d).trimEnd()));
    agents.set(id, p);
  }
  await waitFor('both agent processes to register', () => c.leader()?.ledger.nodeIds().length === 2, 30_000);
});

test.after(async () => {
  await removeKilledAgents(agents);
  await c?.stop();
  await s?.down();
});

/** Live ffmpeg processes working on this job (their argv names its output file). */
function ffmpegFor(jobId: string): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return argv.some((a) => a.endsWith('ffmpeg')) && argv.some((a) => a.includes(jobId));
    } catch { return false; }
  }).map(Number);
}

test('a job whose agent is killed mid-encode is re-queued after the lease and finishes on another node', async () => {
  const id = await submit(s, smallJob({ input: { resolution: '640x360', duration_s: 12 }, output: { preset: 'medium' } }));
  const followed = events(s, id, 180_000);
  const victim = await waitFor('the job to be running', () => c.leader()!.ledger.reservation(id)?.node_id);
  await waitFor('ffmpeg to start', () => ffmpegFor(id).length > 0);
  const p = agents.get(victim)!;
  p.kill('SIGKILL');
  await waitFor('the agent to die', () => !alive(p.pid!));
  await waitFor('its ffmpeg to die with it', () => ffmpegFor(id).length === 0, 5000);
  const evs = await followed;
  const placed = evs.filter((e) => e.state === 'placed');
  assert.is(evs.at(-1)!.state, 'succeeded', evs.at(-1)!.reason);
  assert.equal(placed.map((e) => e.node_id), [victim, victim === 'n1' ? 'n2' : 'n1']);
  assert.ok(evs.some((e) => e.state === 'queued' && e.reason === `node ${victim} was lost`));
  assert.is(evs.at(-1)!.node_id, victim === 'n1' ? 'n2' : 'n1');
  assert.equal(c.leader()!.ledger.nodeIds(), [victim === 'n1' ? 'n2' : 'n1']);
  await waitFor('no reservation left', () => c.leader()!.ledger.allReservations().length === 0);
});

test.run();
