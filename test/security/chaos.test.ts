/**
 * Chaos: a batch of 50 real encodes on two coordinator processes and two agent processes, while
 * the leader, an agent, NATS and QuestDB are each killed (SIGKILL) and restarted, in an order
 * drawn from a seed (PRESCIENT_CHAOS_SEED, printed, so a failing order can be run again). When
 * the batch is done: no job lost (every one succeeded), none run twice (one succeeded run row
 * each in QuestDB), nothing over-committed (the saved ledger within every node's capacity), and
 * every run row written exactly once.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { newJobId, TERMINAL_STATES } from '../../shared/index.js';
import { ConsulLeaderLookup, JetStreamTaskStore, JetStreamLedgerStore } from '../../coordinator/index.js';
import { publishSubmission } from '../../coordinator/bus/index.js';
import { startService, stopService } from '../../deploy/stack/index.js';
import { RUNS, SAMPLES, questdbQuery } from '../../node-agent/telemetry/index.js';
import { TEST_OWNER, smallJob, startStack, waitFor, type TestStack } from '../helpers/cluster.js';
import { spawnAgent, spawnCoordinator, spawnStandby, type AgentProcess, type CoordinatorProcess } from '../helpers/bench-cluster.js';
import { keyCounts, walApplied } from '../helpers/telemetry.js';
import { permutation, seededRandom } from '../../models/network.js';

const JOBS = 50;
const SEED = Number(process.env.PRESCIENT_CHAOS_SEED ?? Date.now() % 100_000);
type Fault = 'leader' | 'agent' | 'nats' | 'questdb';

let s: TestStack;
const coordinators = new Map<string, CoordinatorProcess>();
const agents = new Map<string, AgentProcess>();

test.before(async () => {
  s = await startStack('chaos');
  coordinators.set('k1', await spawnCoordinator(s, 'k1'));
  coordinators.set('k2', spawnStandby(s, 'k2'));
  agents.set('na', await spawnAgent(s, 'na', { cores: '0', memoryGb: 2 }));
  agents.set('nb', await spawnAgent(s, 'nb', { cores: '1', memoryGb: 2 }));
});
test.after(async () => {
  for (const a of agents.values()) await a.stop(3000).catch(() => undefined);
  for (const c of coordinators.values()) await c.stop(3000).catch(() => undefined);
  await s?.down();
});

test(`50 encodes survive the leader, an agent, NATS and QuestDB killed in a seeded order (seed ${SEED}): none lost, none run twice, nothing over-committed, telemetry once`, async () => {
  console.log(`chaos seed ${SEED} (PRESCIENT_CHAOS_SEED=${SEED} repeats this order)`);
  const random = seededRandom(SEED);
  const faults: Fault[] = ['leader', 'agent', 'nats', 'questdb'];
  const order = [...permutation(faults.length, random)].map((i) => faults[i]);
  const lookup = new ConsulLeaderLookup(s.endpoints.consul_http);
  const store = await JetStreamTaskStore.open(s.nc.jetstream());
  const ids: string[] = [];
  const schemaOf = (i: number) => smallJob({ input: { resolution: i % 3 ? '320x240' : '640x360', duration_s: 1 + (i % 3) } });

  // Jobs keep arriving while the faults happen: a few every half second.
  const submitting = (async () => {
    for (let i = 0; i < JOBS; i++) {
      const id = newJobId();
      ids.push(id);
      // NATS may be down: the submitter retries, as `prescient submit` users would; JetStream drops the duplicate.
      await waitFor(`submission ${i} to be stored`, () => publishSubmission(s.nc.jetstream(), TEST_OWNER, { job_id: id, submitted_at: Date.now(), schema: schemaOf(i) }).then(() => true, () => false), 60_000, 250);
      if (i % 3 === 2) await sleep(500);
    }
  })();

  const log: string[] = [];
  for (const fault of order) {
    await sleep(1500 + random() * 1500);
    log.push(`${fault}@${new Date().toISOString().slice(11, 23)}`);
    if (fault === 'leader') {
      const l = await waitFor('a leader', () => lookup.currentLeader().catch(() => null), 30_000);
      const victim = coordinators.get(l.id)!;
      victim.child.kill('SIGKILL');
      await victim.stop(1000);
      coordinators.set(l.id, spawnStandby(s, l.id));
    } else if (fault === 'agent') {
      const id = random() < 0.5 ? 'na' : 'nb';
      const victim = agents.get(id)!;
      victim.child.kill('SIGKILL');
      await victim.stop(1000);
      await sleep(1000);
      agents.set(id, await spawnAgent(s, id, { cores: id === 'na' ? '0' : '1', memoryGb: 2, timeoutMs: 60_000 }));
    } else {
      await stopService({ stateDir: s.dir }, fault, 'SIGKILL');
      await sleep(fault === 'nats' ? 2000 : 4000);
      await startService({ stateDir: s.dir }, fault);
    }
  }
  await submitting;

  // Every job ends, and ends succeeded: none lost.
  const finals = await waitFor('every job to end', async () => {
    const ts = await Promise.all(ids.map((id) => store.get(id).catch(() => undefined)));
    return ts.every((t) => t && TERMINAL_STATES.has(t.state)) ? ts : undefined;
  }, 600_000, 1000);
  const notOk = finals.filter((t) => t!.state !== 'succeeded').map((t) => `${t!.id}: ${t!.state} (${t!.reason})`);
  assert.equal(notOk, [], `faults in order ${log.join(', ')}`);

  // None run twice, and each run row exactly once: one succeeded run row per job.
  // The agents' spools send what waited while QuestDB was down, with backoff: wait for a row per job, then count.
  // This stack's QuestDB holds this test's runs only.
  const succeededRuns = async () => new Map((await questdbQuery(s.endpoints.questdb_http, `SELECT job_id, count() n FROM ${RUNS.name} WHERE status = 'succeeded'`)).map((r) => [String(r.job_id), Number(r.n)]));
  await waitFor('a run row for every job', async () => { const r = await succeededRuns().catch(() => new Map()); return ids.every((id) => r.has(id)); }, 180_000, 1000).catch(() => undefined);
  await walApplied(s.endpoints.questdb_http, 120_000);
  const runs = await succeededRuns();
  const wrong = ids.filter((id) => runs.get(id) !== 1).map((id) => `${id}: ${runs.get(id) ?? 0} succeeded run rows`);
  // Where each job without exactly one row ran, and when it ended, against the faults' times.
  const where = wrong.map((w) => { const t = finals.find((f) => f!.id === w.split(':')[0])!; return `${w} (on ${t.allocation?.node_id}, ended ${new Date(t.updated_at).toISOString().slice(11, 23)})`; });
  assert.equal(where, [], `faults in order ${log.join(', ')}`);
  // Samples too, whatever was replayed from a spool after a kill: each at most once.
  for (const t of [SAMPLES, RUNS]) {
    const { rows: n, keys } = await keyCounts(s.endpoints.questdb_http, t, `node IN ('na', 'nb')`);
    assert.is(n, keys, `${t.name}: ${n} rows for ${keys} keys`);
  }

  // Nothing over-committed: the ledger the last leader saved holds every node within its capacity.
  await sleep(500);
  const ledger = await (await JetStreamLedgerStore.open(s.nc.jetstream())).load();
  assert.ok(ledger && ledger.nodes.length === 2, 'both nodes in the saved ledger');
  for (const n of ledger!.nodes) {
    const r = n.reservations.map((x) => x.allocation);
    const cores = r.flatMap((x) => x.core_ids);
    assert.is(new Set(cores).size, cores.length, `${n.capacity.node_id}: no core reserved twice`);
    assert.ok(cores.every((c) => n.capacity.core_ids.includes(c)), `${n.capacity.node_id}: only its own cores`);
    assert.ok(r.reduce((m, x) => m + x.memory_gb, 0) <= n.capacity.memory_gb + 1e-9, `${n.capacity.node_id}: memory within capacity`);
  }
});

test.run();
