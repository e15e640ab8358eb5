/**
 * The simulator's fidelity (issue 19): a small batch of real encodes runs on a real leader and a
 * two-core agent; the same batch is then replayed by `prescient plan`'s engine (the leader's own
 * core, each job arriving when it was submitted, using what its encode really used) on a fleet of
 * that one node. Its makespan and each job's completion time must land within 15 % of the real
 * run's: what the simulation leaves out (NATS, gRPC, the agent starting ffmpeg, telemetry, the
 * quality pass on idle cycles) must stay small next to the encodes.
 */
import os from 'node:os';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AgentHandle } from '../../node-agent/index.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import { fidelityOf, replayBatch } from '../helpers/plan-fidelity.js';
import { agent, coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c: CoordinatorHandle;
let a: AgentHandle;

test.before(async () => {
  s = await startStack('fidelity');
  c = await coordinator(s, 'c1');
  // Sampling at the production rate (1 Hz), as the packing bench's agent does.
  a = await agent(s, 'node-f', '0-1', 2, { sampleIntervalMs: 1000 });
  await waitFor('the coordinator to lead and the agent to register', () => c.leader()?.ledger.nodeIds().length === 1);
});

test.after(async () => {
  await a?.stop();
  await c?.stop();
  await s?.down();
});

/** Encodes of about 2 to 6 s on one core here: long enough that per-job overheads are a small part of each. */
const BATCH = [
  smallJob({ input: { resolution: '1280x720', duration_s: 2 }, output: { preset: 'medium' } }),
  smallJob({ input: { resolution: '640x360', duration_s: 6 }, output: { preset: 'slow' } }),
  smallJob({ input: { resolution: '1280x720', duration_s: 3 }, output: { preset: 'fast' } }),
  smallJob({ input: { resolution: '640x360', duration_s: 4 }, output: { codec: 'hevc', preset: 'fast' } }),
  smallJob({ input: { resolution: '1280x720', duration_s: 2 }, output: { preset: 'slow' } }),
  smallJob({ input: { resolution: '640x360', duration_s: 8 }, output: { preset: 'medium' } }),
];

test('the simulator replays a real batch on its node with the makespan and every job\'s completion within 15 % of the real run\'s', async () => {
  const submitted: { id: string; schema: Record<string, unknown>; submitted_at: number }[] = [];
  for (const schema of BATCH) {
    const submitted_at = Date.now();
    submitted.push({ id: await submit(s, schema), schema, submitted_at });
  }
  const jobs = await Promise.all(submitted.map(async (j) => ({ ...j, events: await events(s, j.id, 300_000, 'released') })));
  for (const j of jobs) assert.is(j.events.at(-1)!.state, 'succeeded', `${j.id}: ${j.events.at(-1)!.reason ?? ''}`);

  const node = { cores: 2, memory_gb: 2, cpu_model: os.cpus()[0]?.model ?? 'unknown' };
  const replay = replayBatch(jobs, node);
  const f = fidelityOf(jobs, replay);
  const detail = `real makespan ${f.real_makespan_s.toFixed(2)} s, simulated ${f.sim_makespan_s.toFixed(2)} s; per job real/simulated s: ${f.jobs.map((x) => `${x.real_s.toFixed(2)}/${x.sim_s.toFixed(2)}`).join(', ')}`;
  console.log(`  ${detail}`);
  assert.is(replay.jobs.filter((j) => j.state === 'succeeded').length, BATCH.length, detail);
  assert.ok(Math.abs(f.makespan_error) <= 0.15, `makespan off by ${(100 * f.makespan_error).toFixed(1)} %: ${detail}`);
  for (const x of f.jobs) assert.ok(Math.abs(x.error) <= 0.15, `job ${x.id} off by ${(100 * x.error).toFixed(1)} %: ${detail}`);
});

test.run();
