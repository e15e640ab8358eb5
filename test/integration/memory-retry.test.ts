/**
 * An encode its memory limit stops is not lost: the leader re-queues it with twice the memory
 * reserved until it fits. The predictor here under-predicts memory on purpose (a fixed
 * ResourcePredictor: the one thing faked, so that the limit is certain to bite).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import type { AgentHandle } from '../../node-agent/index.js';
import type { ResourcePredictor } from '../../models/index.js';
import type { Prediction } from '../../shared/index.js';
import { agent, coordinator, events, smallJob, startStack, submit, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c: CoordinatorHandle;
let a: AgentHandle;

/** Right about everything but memory, which it puts at 30 MB. */
const shortOnMemory: ResourcePredictor = {
  version: 'short-on-memory',
  predict(): Prediction {
    const u = { cpu_cores: 1, gpu_percent: 0, memory_gb: 0.03, bandwidth_mbps: 5, duration_s: 5 };
    return { model_version: 'short-on-memory', coverage: 0.95, expected: u, upper: u };
  },
};

test.before(async () => {
  s = await startStack('memory-retry');
  c = await coordinator(s, 'c1', { predictor: shortOnMemory });
  a = await agent(s, 'node-a', '0', 4);
});
test.after(async () => {
  await a?.stop();
  await c?.stop();
  await s?.down();
});

test('an encode stopped by its memory limit is re-queued with twice the memory until it fits, and succeeds', async () => {
  const id = await submit(s, smallJob({ input: { resolution: '1280x720', duration_s: 2 }, output: { codec: 'hevc', preset: 'fast' } }));
  const evs = await events(s, id);
  const placed = evs.filter((e) => e.state === 'placed').map((e) => e.allocation!.memory_gb);
  assert.is(evs.at(-1)!.state, 'succeeded', evs.map((e) => `${e.state}: ${e.reason ?? ''}`).join('\n'));
  const memory = a.enforcement.find((e) => e.resource === 'memory')!;
  if (memory.mode === 'enforced' && /cgroup/.test(memory.detail)) {
    // 720p libx265 needs far more than 30 MB: the first attempts are stopped, each retry doubles.
    assert.ok(placed.length >= 2, `placed ${placed.length} time(s): ${placed.join(', ')} GB`);
    for (let i = 1; i < placed.length; i++) assert.ok(placed[i] >= 2 * placed[i - 1] - 0.011, `attempt ${i + 1} reserved ${placed[i]} GB after ${placed[i - 1]} GB`);
    const requeued = evs.filter((e) => e.state === 'queued' && /exceeded its memory reservation/.test(e.reason ?? ''));
    assert.is(requeued.length, placed.length - 1);
    assert.match(requeued[0].reason!, /re-queued to run with \d+\.\d\d GB reserved/);
  } else {
    // Without a cgroup nothing stops it (an rlimit backstop allows several times the reservation).
    assert.is(placed.length, 1, `memory is ${memory.mode}: ${memory.detail}`);
  }
});

test.run();
