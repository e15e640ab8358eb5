/** The durable task records a new leader resumes from (coordinator/bus JetStreamTaskStore), on a real NATS. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { JetStreamTaskStore } from '../../coordinator/index.js';
import type { EncodingTask, TaskState } from '../../shared/index.js';
import { startStack, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
test.before(async () => { s = await startStack('task-store'); });
test.after(async () => { await s?.down(); });

const STATES: TaskState[] = ['queued', 'placed', 'running', 'succeeded', 'failed', 'cancelled', 'rejected'];
const task = (i: number, state: TaskState): EncodingTask => ({
  id: `t${String(i).padStart(3, '0')}`, state, submitted_at: i, updated_at: i, term: 1, attempts: 0,
  schema: { priority: 'standard', submitter: 'x' } as EncodingTask['schema'],
});

test('listActive returns every non-terminal task, however many records and rewrites the bucket holds', async () => {
  const store = await JetStreamTaskStore.open(s.nc.jetstream());
  const want = new Set<string>();
  for (let i = 0; i < 300; i++) {
    const state = STATES[i % STATES.length];
    await store.put(task(i, 'queued'));
    await store.put(task(i, state)); // a second revision, as every admitted task gets
    if (!['succeeded', 'failed', 'cancelled', 'rejected'].includes(state)) want.add(task(i, state).id);
  }
  for (let round = 0; round < 3; round++) {
    const got = (await store.listActive()).map((t) => t.id).sort();
    assert.equal(got, [...want].sort(), `round ${round}: ${got.length} of ${want.size}`);
  }
});

test.run();
