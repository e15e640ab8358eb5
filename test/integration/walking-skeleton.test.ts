/**
 * The whole path on the real parts: a job submitted on NATS is placed by the elected leader,
 * encoded by ffmpeg on an agent pinned to its reserved cores, its row lands in QuestDB, and
 * its reservation is released.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { questdbQuery, RUNS_TABLE, type AgentHandle } from '../../node-agent/index.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import { ConsulLeaderLookup, CoordinatorClient, type TaskStatusReport } from '../../shared/index.js';
import { agent, cliRun, coordinator, events, identity, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c: CoordinatorHandle;
let agents: AgentHandle[] = [];

test.before(async () => {
  s = await startStack('skeleton');
  c = await coordinator(s, 'c1');
  agents = [await agent(s, 'node-a', '0'), await agent(s, 'node-b', '1')];
  await waitFor('the coordinator to lead and both agents to register', () => c.leader()?.ledger.nodeIds().length === 2);
});

test.after(async () => {
  for (const a of agents) await a.stop();
  await c?.stop();
  await s?.down();
});

test('a job submitted on NATS goes placed → running → succeeded under the leader\'s term (queued first only when it waits), its quality following the release', async () => {
  const id = await submit(s, smallJob());
  const evs = await events(s, id);
  // The leader records a job once per admission batch: as placed when it fits at once. The
  // first success releases the reservation; the second brings the quality measured after it.
  assert.equal(evs.map((e) => e.state), ['placed', 'running', 'succeeded', 'succeeded']);
  assert.is(evs[2].result!.quality, 'pending');
  assert.match(evs[2].result!.quality_method!, /after the reservation is released/);
  assert.is(evs[3].result!.quality, 'measured');
  assert.ok(evs[3].result!.psnr_db! > 20 && evs[3].result!.ssim! > 0.5, `PSNR ${evs[3].result!.psnr_db}, SSIM ${evs[3].result!.ssim}`);
  assert.equal(evs[3].result!.actual, evs[2].result!.actual, 'the amendment changes only the quality');
  const term = c.leader()!.term;
  assert.ok(evs.every((e) => e.term === term), 'every event carries the leader term');
  const placed = evs[0];
  assert.equal(placed.allocation!.term, term);
  assert.ok(['node-a', 'node-b'].includes(placed.node_id!));
  assert.equal(placed.allocation!.core_ids, placed.node_id === 'node-a' ? [0] : [1]);
  assert.ok(placed.predicted!.upper.memory_gb >= placed.predicted!.expected.memory_gb);
});

test('the encode ran pinned to its reserved core and its actual usage, size and quality were measured', async () => {
  const id = await submit(s, smallJob({ output: { preset: 'medium', rate_control: { mode: 'crf', crf: 20 } } }));
  const done = (await events(s, id)).at(-1)!;
  assert.is(done.state, 'succeeded', done.reason);
  const r = done.result!;
  assert.ok(r.pinned, 'ffmpeg ran on exactly the reserved cores');
  assert.ok(r.actual.cpu_cores > 0 && r.actual.cpu_cores <= 1.2, `one reserved core, used ${r.actual.cpu_cores}`);
  assert.ok(r.actual.memory_gb > 0.005 && r.actual.memory_gb < 2, `peak memory ${r.actual.memory_gb} GB`);
  assert.ok(r.actual.duration_s > 0);
  assert.is(r.frames, 25);
  assert.ok(r.psnr_db! > 30, `PSNR ${r.psnr_db}`);
  assert.ok(r.ssim! > 0.9 && r.ssim! <= 1, `SSIM ${r.ssim}`);
  assert.ok(existsSync(r.output_path) && statSync(r.output_path).size === r.output_bytes);
  assert.not.ok(existsSync(r.output_path.replace(/\.mp4$/, '.part.mp4')));
});

test('each run is written to QuestDB and read back over HTTP with its prediction and actuals', async () => {
  const id = await submit(s, smallJob({ input: { resolution: '640x360', duration_s: 2 }, output: { codec: 'vp9', preset: '8', rate_control: { mode: 'crf', crf: 40 } } }));
  const done = (await events(s, id)).at(-1)!;
  assert.is(done.state, 'succeeded', done.reason);
  // The run is recorded as it is encoded, and again once its quality is measured (the same row, replaced by QuestDB's dedup).
  const rows = await waitFor('the run row with its quality in QuestDB', async () => {
    const r = await questdbQuery(s.endpoints.questdb_http, `SELECT * FROM ${RUNS_TABLE} WHERE job_id = '${id}'`);
    return r.length && r.some((x) => x.psnr_db !== null) ? r : undefined;
  }, 20_000);
  assert.is(rows.length, 1);
  const row = rows[0];
  assert.is(row.node, done.node_id);
  assert.is(row.codec, 'vp9');
  assert.is(row.encoder, 'libvpx-vp9');
  assert.is(row.status, 'succeeded');
  assert.is(row.width, 640);
  assert.is(row.output_bytes, done.result!.output_bytes);
  assert.ok(Math.abs((row.cpu_cores as number) - done.result!.actual.cpu_cores) < 1e-9);
  assert.ok(Math.abs((row.pred_memory_gb as number) - done.predicted!.expected.memory_gb) < 1e-9);
  assert.ok((row.psnr_db as number) > 20);
  assert.ok((row.si_mean as number) > 0, 'the input\'s complexity was probed');
  assert.is(row.model_version, done.predicted!.model_version);
  const samples = await waitFor('its samples in QuestDB', async () => {
    const r = await questdbQuery(s.endpoints.questdb_http, `SELECT count() n FROM encode_samples WHERE job_id = '${id}'`);
    return (r[0]?.n as number) > 0 ? r : undefined;
  }, 20_000);
  assert.is(samples[0].n, row.samples);
});

test('a quality amendment is taken only from the node that ran the job, with a known status, and only once', async () => {
  const id = await submit(s, smallJob());
  const evs = await events(s, id);
  const done = evs.at(-1)!;
  assert.is(done.result!.quality, 'measured');
  const leader = await new ConsulLeaderLookup(s.endpoints.consul_http).currentLeader();
  // Each node speaks with its own certificate: the other node may not amend a job it did not run.
  const other = done.node_id === 'node-a' ? 'node-b' : 'node-a';
  const client = new CoordinatorClient(leader!.address, identity(s, 'node', done.node_id!));
  const otherClient = new CoordinatorClient(leader!.address, identity(s, 'node', other));
  const report = (over: Partial<TaskStatusReport>): TaskStatusReport => ({
    task_id: id, node_id: done.node_id!, state: 'succeeded', reason: '', actual: null, output_bytes: 0, output_path: '',
    psnr_db: 10, ssim: 0.1, pinned: false, frames: 0, term: done.term, quality: 'measured', amend: true, ...over,
  });
  const amend = (over: Partial<TaskStatusReport>): Promise<{ ok: boolean; reason: string }> => client.reportStatus(report(over));
  try {
    const foreign = await otherClient.reportStatus(report({ node_id: other }));
    assert.not.ok(foreign.ok);
    assert.match(foreign.reason, /ran on node-[ab], not node-[ab]/);
    const unknown = await amend({ quality: 'excellent' });
    assert.not.ok(unknown.ok);
    assert.match(unknown.reason, /quality must be measured or unavailable/);
    // Already measured: nothing is changed.
    assert.match((await amend({})).reason, /nothing to amend/);
    const stored = (await events(s, id)).at(-1)!;
    assert.is(stored.result!.psnr_db, done.result!.psnr_db, 'the figures stayed');
    assert.is((await events(s, id)).length, evs.length, 'no event was added');
  } finally {
    client.close();
    otherClient.close();
  }
});

test('reservations are released once jobs finish, leaving every core free', async () => {
  const ids = await Promise.all([1, 2, 3].map(() => submit(s, smallJob())));
  const finals = await Promise.all(ids.map(async (id) => (await events(s, id)).at(-1)!));
  assert.equal(finals.map((f) => f.state), ['succeeded', 'succeeded', 'succeeded']);
  const ledger = c.leader()!.ledger;
  await waitFor('no reservation left', () => ledger.allReservations().length === 0);
  for (const n of ledger.snapshot().nodes) {
    assert.equal(n.free_core_ids, n.capacity.core_ids);
    assert.ok(Math.abs(n.free_memory_gb - n.capacity.memory_gb) < 1e-9);
  }
});

test('more jobs than cores wait in the queue and all complete, one per core at a time', async () => {
  const ids = await Promise.all([1, 2, 3, 4].map(() => submit(s, smallJob({ input: { duration_s: 2 } }))));
  const all = await Promise.all(ids.map((id) => events(s, id)));
  assert.ok(all.every((evs) => evs.at(-1)!.state === 'succeeded'));
  // Intervals each core was held: no two overlap on the same core.
  const held = all.map((evs) => {
    const placed = evs.find((e) => e.state === 'placed')!;
    // Held until the first success, which releases it (the quality pass follows on idle cycles).
    return { core: `${placed.node_id}:${placed.allocation!.core_ids}`, from: placed.at, to: evs.find((e) => e.state === 'succeeded')!.at };
  });
  // With two single-core nodes and four jobs, at least two had to wait for a core, and said why.
  const waited = all.filter((evs) => evs.some((e) => e.state === 'queued' && /no node has room now/.test(e.reason ?? '')));
  assert.ok(waited.length >= 2, `${waited.length} jobs reported waiting for room`);
  for (const a of held) for (const b of held) {
    if (a !== b && a.core === b.core) assert.ok(a.to <= b.from || b.to <= a.from, `overlap on ${a.core}`);
  }
});

test('prescient submit --wait --json runs a YAML job through the CLI and reports its result', async () => {
  const file = path.join(s.dir, 'job.yaml');
  writeFileSync(file, YAML.stringify(smallJob({ output: { codec: 'av1', encoder: 'libsvtav1', preset: '12', rate_control: { mode: 'crf', crf: 45 } } })));
  const r = await cliRun(s, ['submit', file, '--wait', '--json']);
  assert.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { jobs: Array<{ state: string; result: { output_bytes: number } }> };
  assert.is(out.jobs[0].state, 'succeeded');
  assert.ok(out.jobs[0].result.output_bytes > 0);
});

test('prescient submit --wait shows the encode\'s progress and ends with its result', async () => {
  const file = path.join(s.dir, 'progress.yaml');
  writeFileSync(file, YAML.stringify(smallJob({ input: { resolution: '640x360', duration_s: 4 }, output: { preset: 'medium' } })));
  const r = await cliRun(s, ['submit', file, '--wait']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /encoding on node-[ab]: frame \d+\/100 \(\d+%\)/);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines.at(-1)!, /succeeded on node-[ab]: actual [\d.]+ cores/);
});

test.run();
