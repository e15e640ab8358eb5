/**
 * Retraining against a real stack: the leader's scheduled retraining reads its window of runs
 * from QuestDB, trains, and promotes a candidate that is no worse; a running coordinator swaps
 * promoted versions in without a restart and refuses a model file that does not load.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../../shared/index.js';
import { ModelRegistry, priorRows, trainModel, type RetrainResult } from '../../models/index.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import { RetrainScheduler, parseSchedule, parseWindow, type RetrainScheduleOptions } from '../../coordinator/retrain/index.js';
import { questdbQuery, RUNS_TABLE, type AgentHandle } from '../../node-agent/index.js';
import type { TaskEvent } from '../../shared/index.js';
import { agent, coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';
import { priorRuns, recordRuns } from '../helpers/models.js';

let s: TestStack;
const DAY = 86_400_000;
const WINDOW = 30 * DAY;
/** Runs recorded by the first tests: EARLY recent ones, and OLD ones outside the window. */
const EARLY = 20, OLD = 100;
/** Recent runs added before the first retraining that has enough. */
const RECENT = 200;
const started = Date.now();

test.before(async () => { s = await startStack('model-retrain'); });

/** Every scheduler made here: even one never started arms croner's timer, so each is stopped. */
const schedulers: RetrainScheduler[] = [];
test.after(async () => {
  for (const x of schedulers) x.stop();
  await s?.down();
});

/** A scheduler over the stack's QuestDB with its own registry directory and log. */
function scheduler(dir: string, o: Partial<RetrainScheduleOptions> = {}) {
  const registry = new ModelRegistry(path.join(s.dir, dir));
  const logs: string[] = [];
  const results: RetrainResult[] = [];
  const sch = new RetrainScheduler({
    schedule: 'weekly', windowMs: WINDOW, questdbHttp: s.endpoints.questdb_http, registry, minRows: 50,
    isLeader: () => true, log: (m) => { logs.push(m); s.log(m); }, onResult: (r) => results.push(r), ...o,
  });
  schedulers.push(sch);
  return { sch, registry, logs, results };
}

test('a tick on a cluster that has recorded no run yet is skipped, not a failure', async () => {
  // No agent has delivered a run, so QuestDB has no encode_runs table yet: a fresh cluster
  // started with --retrain has nothing to learn from, which is not an error.
  const { sch, registry, results } = scheduler('reg-fresh');
  assert.is(await sch.runOnce(), undefined);
  const last = sch.lastRun();
  assert.not.ok(last?.error, `the tick failed: ${last?.error}`);
  assert.match(last?.skipped ?? '', /^0 succeeded runs since \S+, fewer than 50$/);
  assert.is(results.length, 0);
  assert.equal(registry.history(), []);
});

test('a tick with fewer succeeded runs in the window than minRows is skipped, and says how many it found', async () => {
  const old = priorRuns(OLD, { seed: 21, prefix: 'old', t0: started - 45 * DAY, stepMs: 60_000 });
  const early = priorRuns(EARLY, { seed: 22, prefix: 'early', t0: started - 2 * 3_600_000, stepMs: 60_000 });
  const failed = priorRuns(30, { seed: 23, prefix: 'failed', t0: started - 3_600_000, stepMs: 1000 }).map((r) => ({ ...r, status: 'failed' as const }));
  await recordRuns(s, [...old, ...early, ...failed], 'before');
  const { sch, registry, results } = scheduler('reg-skip');
  assert.is(await sch.runOnce(), undefined);
  const last = sch.lastRun();
  assert.ok(last?.skipped, `lastRun: ${JSON.stringify(last)}`);
  // Only the recent succeeded runs count: old ones are outside the window, failed ones say nothing.
  assert.match(last!.skipped!, new RegExp(`^${EARLY} succeeded runs since \\S+, fewer than 50$`));
  assert.not.ok(last!.result || last!.error);
  assert.is(results.length, 0);
  assert.equal(registry.history(), []);
  assert.is(registry.currentVersion(), registry.shippedVersion());
});

test('with enough runs, the leader\'s tick trains on the window, registers the candidate and promotes it over the shipped model, and the history says why', async () => {
  await recordRuns(s, priorRuns(RECENT, { seed: 24, prefix: 'recent', t0: started - 3_000_000, stepMs: 10_000 }), 'recent');
  const { sch, registry, results } = scheduler('reg-leader');
  const shipped = registry.shippedVersion();
  assert.is(registry.currentVersion(), shipped);
  const r = await sch.runOnce();
  assert.ok(r, `no result: ${JSON.stringify(sch.lastRun())}`);
  assert.is(sch.lastRun()?.result, r);
  assert.equal(results, [r]);
  assert.is(r!.previous, shipped);
  const n = EARLY + RECENT;
  assert.is(r!.train.split.fit.length + r!.train.split.calibration.length + r!.train.split.test.length, n, 'the window\'s succeeded runs, nothing older');
  // Judged on the latest runs: every held-out run started after every run it learned from.
  const held = r!.train.split.test;
  assert.is(held.length, Math.round(n * 0.2));
  const lastLearned = Math.max(...[...r!.train.split.fit, ...r!.train.split.calibration].map((x) => x.ts!));
  assert.ok(held.every((x) => x.ts! > lastLearned), 'the held-out runs are the most recent');
  assert.ok(r!.comparison, 'the candidate was compared with the model in service');
  assert.equal(Object.keys(r!.comparison!.targets).sort(), ['bandwidth_mbps', 'cpu_cores', 'duration_s', 'memory_gb']);
  assert.ok(r!.promoted, `not promoted: ${r!.reason}`);
  assert.match(r!.reason, /^no worse than the current model/);
  assert.is(registry.currentVersion(), r!.version);

  const h = registry.history();
  assert.equal(h.map((e) => `${e.action} ${e.version}`), [`register ${r!.version}`, `promote ${r!.version}`]);
  assert.is(h[1].reason, r!.reason);
  assert.match(h[0].reason, /^trained on QuestDB encode_runs \S+ \.\. \S+; 44 held-out rows; promoted: no worse than the current model/);
  const entry = registry.list().find((e) => e.version === r!.version)!;
  assert.is(entry.trained_on?.split, 'time');
  assert.is(entry.trained_on?.rows, n);
  assert.is(entry.parent, shipped);
});

test('a follower\'s tick does nothing, even with enough runs in the window', async () => {
  const { sch, registry, logs, results } = scheduler('reg-follower', { isLeader: () => false, minRows: 10 });
  assert.is(await sch.runOnce(), undefined);
  assert.is(sch.lastRun(), undefined);
  assert.is(results.length, 0);
  assert.equal(logs, []);
  assert.equal(registry.history(), []);
  assert.equal(registry.list().map((e) => e.version), [registry.shippedVersion()]);
});

test('a schedule firing every second retrains on its own once started, and stop() stops it', async () => {
  let running = 0, ticks = 0;
  class Counted extends RetrainScheduler {
    override async runOnce() {
      running++; ticks++;
      try { return await super.runOnce(); } finally { running--; }
    }
  }
  const registry = new ModelRegistry(path.join(s.dir, 'reg-cron'));
  const logs: string[] = [];
  const sch = new Counted({
    schedule: '* * * * * *', windowMs: WINDOW, questdbHttp: s.endpoints.questdb_http, registry, minRows: 50,
    isLeader: () => true, log: (m) => { logs.push(m); s.log(m); },
  });
  schedulers.push(sch);
  assert.is(sch.lastRun(), undefined);
  await new Promise((r) => setTimeout(r, 1500));
  assert.is(ticks, 0, 'nothing runs before start()');
  try {
    sch.start();
    assert.match(logs[0] ?? '', /^retraining on schedule \* \* \* \* \* \*, next at /);
    const last = await waitFor('a scheduled retraining', () => sch.lastRun()?.result, 60_000, 100);
    assert.is(registry.currentVersion(), last.promoted ? last.version : registry.shippedVersion());
    assert.ok(registry.list().some((e) => e.version === last.version), 'the candidate was registered');
  } finally {
    sch.stop();
  }
  await waitFor('the tick in flight to finish', () => running === 0, 60_000, 100);
  const after = { ticks, versions: registry.list().length, last: sch.lastRun() };
  assert.is(sch.nextRun(), null, 'no next run once stopped');
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal({ ticks, versions: registry.list().length, last: sch.lastRun() }, after, 'nothing ran after stop()');
});

test('parseSchedule accepts weekly, monthly, daily and cron expressions, and refuses anything else naming --retrain', () => {
  assert.is(parseSchedule('weekly'), '0 3 * * 0');
  assert.is(parseSchedule('monthly'), '0 3 1 * *');
  assert.is(parseSchedule(' Daily '), '0 3 * * *');
  assert.is(parseSchedule('*/15 * * * *'), '*/15 * * * *');
  assert.is(parseSchedule('30 0 4 * * 1'), '30 0 4 * * 1');
  for (const bad of ['fortnightly', 'every tuesday', '61 * * * *', '* * *', '']) {
    const e = (() => { try { parseSchedule(bad); } catch (x) { return x; } })();
    assert.instance(e, ConfigError, `${JSON.stringify(bad)} was accepted`);
    assert.is((e as ConfigError).setting, '--retrain');
    assert.ok((e as Error).message.startsWith('--retrain: ') && (e as Error).message.includes(JSON.stringify(bad)), (e as Error).message);
  }
  assert.throws(() => new RetrainScheduler({
    schedule: 'sometimes', windowMs: WINDOW, questdbHttp: s.endpoints.questdb_http, registry: new ModelRegistry(path.join(s.dir, 'unused')),
    isLeader: () => true, log: () => undefined,
  }), (e: Error) => e instanceof ConfigError && /sometimes/.test(e.message));
});

test('parseWindow reads 30d, 12h, 2w and 90m as milliseconds, and refuses 0d and words', () => {
  assert.is(parseWindow('30d'), 30 * DAY);
  assert.is(parseWindow('12h'), 12 * 3_600_000);
  assert.is(parseWindow('2w'), 14 * DAY);
  assert.is(parseWindow('90m'), 90 * 60_000);
  assert.is(parseWindow(' 1.5d '), 1.5 * DAY);
  for (const bad of ['0d', 'x', '', '-1d', '30', '5y', 'd']) {
    const e = (() => { try { parseWindow(bad); } catch (x) { return x; } })();
    assert.instance(e, ConfigError, `${JSON.stringify(bad)} was accepted`);
    assert.is((e as ConfigError).setting, '--retrain-window');
    assert.ok((e as Error).message.includes(JSON.stringify(bad)), (e as Error).message);
  }
  assert.throws(() => parseWindow('0d', '--window'), (e: Error) => e instanceof ConfigError && e.setting === '--window');
});

// ── a running coordinator and its registry ──────────────────────────────────────────────

let c: CoordinatorHandle | undefined;
let a: AgentHandle | undefined;
const liveDir = () => path.join(s.dir, 'live-models');

/** Trains a small model on prior rows in this process and registers it. */
async function registered(version: string, seed: number): Promise<void> {
  const rows = priorRows(180, { seed });
  const { model } = await trainModel(rows, { version, source: `prior rows, seed ${seed}`, seed });
  new ModelRegistry(liveDir()).register(model, 'for the live-model tests');
}

/** Submits the small encode and returns its events once it is terminal. */
async function encode(): Promise<{ id: string; evs: TaskEvent[] }> {
  const id = await submit(s, smallJob());
  const evs = await events(s, id, 120_000);
  assert.is(evs.at(-1)!.state, 'succeeded', JSON.stringify(evs.at(-1)));
  return { id, evs };
}

/** The model versions the job's predictions came from (admission and placement). */
const versionsOf = (evs: TaskEvent[]) => [...new Set(evs.filter((e) => e.predicted).map((e) => e.predicted!.model_version))];

test('a running coordinator predicts with the registry\'s current version, and swaps in a newly promoted one without a restart', async () => {
  try {
    await registered('live-a', 31);
    new ModelRegistry(liveDir()).promote('live-a', 'the first model of the live tests');
    c = await coordinator(s, 'c1', { modelDir: liveDir() });
    a = await agent(s, 'node-a', '0');
    await waitFor('the coordinator to lead with the agent registered', () => c!.leader()?.ledger.nodeIds().length === 1, 30_000);
    const term = c.leader()!.term;

    const first = await encode();
    assert.equal(versionsOf(first.evs), ['live-a']);
    assert.ok(first.evs.some((e) => e.state === 'placed' && e.predicted), 'the placement carried a prediction');

    await registered('live-b', 32);
    new ModelRegistry(liveDir()).promote('live-b', 'a newer model');
    await waitFor('the coordinator to pick up live-b', () => s.logs.some((l) => l.includes('model live-b in service (was live-a)')), 20_000);
    const second = await encode();
    assert.equal(versionsOf(second.evs), ['live-b']);
    assert.is(c.leader()?.term, term, 'the same coordinator, still leading the same term');
    const row = await waitFor('the run row in QuestDB', async () => {
      const r = await questdbQuery(s.endpoints.questdb_http, `SELECT model_version FROM ${RUNS_TABLE} WHERE job_id = '${second.id}'`);
      return r[0];
    }, 30_000);
    assert.is(row.model_version, 'live-b', 'the run is recorded with the model that predicted it');
  } catch (e) {
    await a?.stop(); a = undefined;
    await c?.stop(); c = undefined;
    throw e;
  }
});

test('a corrupt model file put in service behind the coordinator\'s back is refused: the previous version keeps predicting and the log says why', async () => {
  assert.ok(c && a, 'the coordinator of the previous test is running');
  try {
    const registry = new ModelRegistry(liveDir());
    await registered('live-c', 33);
    writeFileSync(path.join(registry.versionsDir, 'live-c.json'), '{"format": "prescient-model", garbage');
    const stateFile = path.join(liveDir(), 'registry.json');
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { current: string };
    state.current = 'live-c';
    writeFileSync(stateFile, JSON.stringify(state, null, 2));
    const refusal = await waitFor('the coordinator to refuse live-c', () => s.logs.find((l) => l.includes('model live-c refused')), 20_000);
    assert.match(refusal, /^model live-c refused, live-b stays in service: cannot load model .*live-c\.json: /);
    const after = await encode();
    assert.equal(versionsOf(after.evs), ['live-b']);
    assert.not.ok(s.logs.some((l) => l.includes('model live-c in service')));
  } finally {
    await a?.stop(); a = undefined;
    await c?.stop(); c = undefined;
  }
});

test.run();
