/**
 * Federated learning against a real stack (NATS JetStream, QuestDB, Consul): two nodes with
 * different runs fine-tune the global model and send weight deltas, published while no leader
 * is up; the leader merges them, judges the merge on runs held out in QuestDB, promotes it and
 * publishes it; its own predictor, a standby coordinator and the nodes' followers take it
 * without a restart; bad deltas in the same stream are refused with the reason, and a round of
 * only bad deltas leaves the global model as it was, byte for byte.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ModelRegistry, priorRows, runsToRows, trainModel, type LabelledRow, type Model, type TrainingRun, type WeightDelta } from '../../models/index.js';
import { ModelChannel, ModelFollower } from '../../models/federated/channel.js';
import { LocalLearner } from '../../node-agent/learn/index.js';
import type { RunRecord } from '../../node-agent/telemetry/index.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import { startAgent, type AgentHandle } from '../../node-agent/index.js';
import { heldOutPart } from '../../models/index.js';
import { coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';
import { priorRuns, recordRuns } from '../helpers/models.js';

let s: TestStack;
let channel: ModelChannel;
let base: Model;
const coordinators: CoordinatorHandle[] = [];
const followers: ModelFollower[] = [];
let agentC: AgentHandle | undefined;

/** Node A encodes H.264/HEVC twice as slowly as the global model expects; node B VP9/AV1 at 0.6 of it with 1.3× the memory. */
function nodeRuns(node: 'A' | 'B', n: number, seed: number): RunRecord[] {
  const codecs = node === 'A' ? ['h264', 'hevc'] : ['vp9', 'av1'];
  return priorRuns(n * 3, { seed, node: `node-${node}`, prefix: `fed-${node}`, t0: Date.now() - 3_600_000, stepMs: 5000 })
    .filter((r) => codecs.includes(r.codec!)).slice(0, n)
    .map((r) => node === 'A'
      ? { ...r, duration_s: r.duration_s! * 2, bandwidth_mbps: r.bandwidth_mbps! / 2 }
      : { ...r, duration_s: r.duration_s! * 0.6, bandwidth_mbps: r.bandwidth_mbps! / 0.6, memory_gb: r.memory_gb! * 1.3 });
}
/** The runs as a node's own learner sees them (the same rows QuestDB gives back). */
const rowsOf = (runs: RunRecord[]): LabelledRow[] => runsToRows(runs.map((r) => ({
  ...r, ts: new Date(r.ts).toISOString(), gpu_model: null, model_version: null,
}) as unknown as TrainingRun));

function learner(node: string): { learner: LocalLearner; registry: ModelRegistry } {
  const registry = new ModelRegistry(path.join(s.dir, `agent-models-${node}`));
  followers.push(new ModelFollower({ channel, registry, log: s.log, who: `agent ${node}`, pollMs: 500 }).start());
  return { learner: new LocalLearner({ nodeId: node, channel, registry, everyRuns: 0, minRows: 20, log: s.log }), registry };
}

test.before(async () => {
  s = await startStack('model-federation');
  channel = await ModelChannel.open(s.nc);
  ({ model: base } = await trainModel(priorRows(360, { seed: 7 }), { version: 'fed-base', source: 'prior rows, seed 7', seed: 7, threads: 1, network: { maxEpochs: 120 } }));
});
test.after(async () => {
  for (const f of followers) f.stop();
  await agentC?.stop().catch(() => undefined);
  for (const c of coordinators) await c.stop().catch(() => undefined);
  await s?.down();
});

let a: ReturnType<typeof learner>, b: ReturnType<typeof learner>;
let deltaA: WeightDelta | undefined;

test('deltas from two nodes, sent while no leader is up, are merged, promoted, published, and taken by the leader, a standby and the nodes without a restart; a bad delta in the same round is refused with its reason', async () => {
  // The global version everyone starts from: in the leader's registry, and announced to the others.
  const leaderModels = new ModelRegistry(path.join(s.dir, 'models-c1'));
  leaderModels.register(base, 'the global model of this test');
  leaderModels.promote('fed-base', 'test');
  await channel.publishVersion(base, { parent: leaderModels.shippedVersion(), promoted_at: new Date().toISOString(), reason: 'the test\'s starting point', deltas: [] });
  a = learner('node-A'); b = learner('node-B');
  await waitFor('the nodes to follow fed-base', () => a.registry.currentVersion() === 'fed-base' && b.registry.currentVersion() === 'fed-base', 20_000);

  // Each node's runs: in QuestDB (where the leader finds its held-out window) and in its learner.
  const runsA = nodeRuns('A', 200, 101), runsB = nodeRuns('B', 200, 202);
  await recordRuns(s, [...runsA, ...runsB], 'federation');
  for (const r of rowsOf(runsA)) a.learner.observe(r);
  for (const r of rowsOf(runsB)) b.learner.observe(r);
  assert.ok(a.learner.size() < 200 && a.learner.size() > 100, `node A kept ${a.learner.size()} runs: the leader's held-out ones are not learned from`);

  deltaA = await a.learner.learnNow();
  const deltaB = await b.learner.learnNow();
  assert.ok(deltaA && deltaB, 'both nodes sent a delta');
  assert.is(deltaA!.base_version, 'fed-base');
  // A corrupt delta in the same stream, from a third node.
  const corrupt = structuredClone(deltaA!);
  Object.assign(corrupt, { id: 'corrupt-1', node: 'node-X' });
  corrupt.networks[0].layers[0].weights[7] = Number.NaN;
  await channel.publishDelta(corrupt);

  // Only now does a leader come up, with a standby beside it.
  const c1 = await coordinator(s, 'c1', { modelDir: path.join(s.dir, 'models-c1'), federation: { minDeltas: 2, pollMs: 300 } });
  coordinators.push(c1);
  await waitFor('c1 to lead', () => c1.isLeader(), 30_000);
  const c2 = await coordinator(s, 'c2', { modelDir: path.join(s.dir, 'models-c2'), federation: { minDeltas: 2, pollMs: 300 } });
  coordinators.push(c2);

  const fed = c1.federation()!.leader;
  const round = await waitFor('the leader to decide a round', () => fed.rounds()[0], 60_000);
  assert.ok(round.promoted, `not promoted: ${round.reason}; ${JSON.stringify(round.figures && { rows: round.figures.rows, current: round.figures.current, candidate: round.figures.candidate })}`);
  assert.equal(round.accepted.map((x) => x.node).sort(), ['node-A', 'node-B']);
  assert.is(round.base, 'fed-base');
  const version = round.version!;
  console.log(`merged ${version}: held-out mean scale error ${round.figures!.candidate.toFixed(4)} vs ${round.figures!.current.toFixed(4)} for fed-base on ${round.figures!.rows} runs; bounds on ${round.figures!.calibration_rows}`);
  assert.ok(round.figures!.rows >= 40 && round.figures!.calibration_rows >= 20, JSON.stringify(round.figures));

  // The bad delta: refused with its reason, in the log and in the journal.
  const refusal = fed.rejections().find((r) => r.delta === 'corrupt-1');
  assert.ok(refusal, JSON.stringify(fed.rejections()));
  assert.is(refusal!.code, 'non-finite');
  assert.ok(s.logs.some((l) => /^federation: delta corrupt-1 from node-X refused \(non-finite\): network 0 layer 1 weight 7 is not a finite number \(null\)/.test(l)));
  assert.match(readFileSync(path.join(s.dir, 'models-c1', 'federation.jsonl'), 'utf8'), /"kind":"rejection".*"delta":"corrupt-1"/);

  // Which deltas went into the version: in its file and in the registry history.
  const merged = leaderModels.load(version);
  assert.equal(merged.file.federated!.deltas.map((d) => d.id).sort(), [deltaA!.id, deltaB!.id].sort());
  assert.is(merged.file.parent, 'fed-base');
  assert.is(leaderModels.currentVersion(), version);
  assert.match(leaderModels.history().find((h) => h.action === 'register' && h.version === version)!.reason, new RegExp(`^federated: 2 deltas \\(.*${deltaA!.id} from node-A`));

  // The leader predicts with it, without a restart: a job admitted now carries the new version.
  await waitFor('the leader\'s live model to swap', () => s.logs.some((l) => l === `model ${version} in service (was fed-base)`), 10_000);
  const id = await submit(s, smallJob());
  const first = await waitFor('the job to be admitted', async () => (await events(s, id, 3000)).find((e) => e.predicted), 20_000);
  assert.is(first.predicted!.model_version, version);
  // The standby and both nodes fetched it from the object store and put it in service locally.
  const c2Models = new ModelRegistry(path.join(s.dir, 'models-c2'));
  await waitFor('the standby to follow', () => c2Models.currentVersion() === version, 20_000);
  await waitFor('the nodes to follow', () => a.registry.currentVersion() === version && b.registry.currentVersion() === version, 20_000);
  assert.is(a.registry.load().file.checksum, merged.file.checksum);

  // A real agent started with learning on: its follower takes the published version at start,
  // and the job queued above, encoded there, becomes one of its own runs (unless held out).
  agentC = await startAgent({
    nodeId: 'node-C', endpoints: s.endpoints, validation: s.validation, log: s.log, grant: { cores: '0', memoryGb: 2 }, sampleIntervalMs: 100,
    outputDir: path.join(s.dir, 'output', 'node-C'), spoolDir: path.join(s.dir, 'spool', 'node-C'), enforcement: { shape_interfaces: [] },
    learn: { everyRuns: 0, modelDir: path.join(s.dir, 'agent-models-node-C') },
  });
  await waitFor('node-C to follow', () => agentC!.learning!.registry.currentVersion() === version, 20_000);
  const done = (await events(s, id, 120_000)).at(-1)!;
  assert.is(done.state, 'succeeded', JSON.stringify(done));
  await waitFor('node-C to keep its run', () => agentC!.learning!.learner.size() === (heldOutPart(`${id}#1`) ? 0 : 1), 5000);
});

test('a stale, a wrong-shaped and an unknown-base delta are refused with their reasons, and the global model file is unchanged', async () => {
  const c1 = coordinators[0];
  const fed = c1.federation()!.leader;
  const leaderModels = new ModelRegistry(path.join(s.dir, 'models-c1'));
  const current = leaderModels.currentVersion();
  const file = leaderModels.pathOf(current);
  const bytes = readFileSync(file);
  const stale = { ...structuredClone(deltaA!), id: 'stale-1' };
  const shape = structuredClone(deltaA!);
  Object.assign(shape, { id: 'shape-1', base_version: current, base_checksum: leaderModels.load().file.checksum });
  shape.networks[0].layers[1].biases.push(0.1);
  const unknown = { ...structuredClone(deltaA!), id: 'unknown-1', base_version: 'm-20200101-000000' };
  for (const d of [stale, shape, unknown]) await channel.publishDelta(d);
  await waitFor('the three refusals', () => ['stale-1', 'shape-1', 'unknown-1'].every((x) => fed.rejections().some((r) => r.delta === x)), 20_000);
  const code = (x: string) => fed.rejections().find((r) => r.delta === x)!;
  assert.is(code('stale-1').code, 'stale-base');
  assert.match(code('stale-1').reason, new RegExp(`made from fed-base, the global model is now ${current}`));
  assert.is(code('shape-1').code, 'shape');
  assert.match(code('shape-1').reason, /layer 2 has \d+ biases, the base has \d+/);
  assert.is(code('unknown-1').code, 'unknown-base');
  assert.is(fed.pendingDeltas().length, 0);
  await new Promise((r) => setTimeout(r, 1000));
  assert.is(leaderModels.currentVersion(), current);
  assert.ok(readFileSync(file).equals(bytes), 'the global model file is byte for byte unchanged');
  assert.is(fed.rounds().length, 1, 'no round was decided from refused deltas');
});

test.run();
