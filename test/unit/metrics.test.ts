/**
 * What the coordinator's metrics count from the leader's records, and the pieces of the metrics
 * endpoint that need no cluster: the listen address, and a service that does not answer.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer } from 'node:net';
import { CoordinatorMetrics } from '../../coordinator/metrics/index.js';
import { pooledFigures, type ErrorGroup } from '../../coordinator/feedback/index.js';
import { dependencyChecks, dependencyGauge, memberRegistry, parseListen } from '../../shared/metrics.js';
import type { EncodingTask } from '../../shared/index.js';

const task = (over: Partial<EncodingTask>): EncodingTask => ({
  id: 'j1', schema: { priority: 'batch' } as EncodingTask['schema'], state: 'queued', submitted_at: 1000, updated_at: 1000, term: 1, attempts: 0, ...over,
});

async function value(m: CoordinatorMetrics, name: string, labels: Record<string, string>): Promise<number | undefined> {
  // A histogram's _count and _sum are values of the histogram, named by metricName.
  const values = (await m.registry.getMetricsAsJSON()).flatMap((metric) =>
    (metric.values as Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>).map((x) => ({ ...x, name: x.metricName ?? metric.name })));
  return values.find((x) => x.name === name && Object.entries(labels).every(([k, val]) => String(x.labels[k]) === val))?.value;
}

const metrics = () => new CoordinatorMetrics({ id: 't', leader: () => undefined, errorGroups: () => [], checks: {} });

test('each state a job enters is counted once, a quality amendment after success not again', async () => {
  const m = metrics();
  m.recorded(task({ state: 'queued' }));
  m.recorded(task({ state: 'queued', reason: 'still waiting' }));
  m.recorded(task({ state: 'placed', attempts: 1, started_at: 3500 }));
  m.recorded(task({ state: 'running', attempts: 1, started_at: 3500 }));
  m.recorded(task({ state: 'succeeded', attempts: 1 }));
  m.recorded(task({ state: 'succeeded', attempts: 1, reason: 'quality measured' }));
  for (const s of ['queued', 'placed', 'running', 'succeeded']) assert.is(await value(m, 'prescient_job_transitions_total', { state: s, class: 'batch' }), 1, s);
});

test('the submit-to-placed histogram takes a job\'s first placement only, timed from its stored submission', async () => {
  const m = metrics();
  m.recorded(task({ state: 'placed', attempts: 1, started_at: 3500 }));
  m.recorded(task({ state: 'running', attempts: 1, started_at: 3500 }));
  m.recorded(task({ state: 'queued', attempts: 1, memory_floor_gb: 2 })); // stopped at its memory limit
  m.recorded(task({ state: 'placed', attempts: 2, started_at: 9000, memory_floor_gb: 2 }));
  assert.is(await value(m, 'prescient_submit_to_placed_seconds_count', { class: 'batch' }), 1);
  assert.is(await value(m, 'prescient_submit_to_placed_seconds_sum', { class: 'batch' }), 2.5);
});

test('a memory-limit re-queue and a time-limit stop are counted as overruns of their resource', async () => {
  const m = metrics();
  m.recorded(task({ state: 'running', attempts: 1 }));
  m.recorded(task({ state: 'queued', attempts: 1, memory_floor_gb: 1 }));
  m.recorded(task({ state: 'running', attempts: 2, memory_floor_gb: 1 }));
  m.recorded(task({ state: 'running', attempts: 2, memory_floor_gb: 1, time_limit_stop_at: 5000 }));
  m.recorded(task({ state: 'running', attempts: 2, memory_floor_gb: 1, time_limit_stop_at: 5000, reason: 'same stop, written again' }));
  assert.is(await value(m, 'prescient_overruns_total', { resource: 'memory' }), 1);
  assert.is(await value(m, 'prescient_overruns_total', { resource: 'duration' }), 1);
});

test('the rolling error is pooled per target over codecs and nodes, weighted by runs, for the version asked', () => {
  const g = (model_version: string, target: string, n: number, mape: number, coverage: number) => ({ model_version, target, figures: { n, mape, coverage, bias: 0 } }) as unknown as ErrorGroup;
  const groups = [g('v1', 'duration_s', 3, 10, 1), g('v1', 'duration_s', 1, 30, NaN), g('v1', 'memory_gb', 2, 5, 0.5), g('v0', 'duration_s', 9, 90, 0)];
  assert.equal(pooledFigures(groups, 'v1'), [
    { target: 'duration_s', mape: 15, coverage: 1, runs: 4 },
    { target: 'memory_gb', mape: 5, coverage: 0.5, runs: 2 },
  ]);
  assert.is(pooledFigures(groups).find((f) => f.target === 'duration_s')!.runs, 13);
});

test('a standby says it does not lead and reports no jobs', async () => {
  const m = metrics();
  assert.is(await value(m, 'prescient_leader', {}), 0);
  assert.is(await value(m, 'prescient_queue_depth', { class: 'premium' }), undefined);
});

test('the listen address takes HOST:PORT or a port alone (loopback), and names the flag otherwise', () => {
  assert.equal(parseListen('0.0.0.0:9464'), { host: '0.0.0.0', port: 9464 });
  assert.equal(parseListen('9464'), { host: '127.0.0.1', port: 9464 });
  assert.equal(parseListen('[::1]:0'), { host: '::1', port: 0 });
  assert.throws(() => parseListen('localhost:99999'), /^--metrics: must be HOST:PORT/);
  assert.throws(() => parseListen('http://x:1'), /--metrics/);
});

test('a service that does not answer reads 0, one that does reads 1', async () => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
  const port = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r())); // nothing listens there now
  const r = memberRegistry({ member: 't' });
  const checks = dependencyChecks({ consulHttp: `127.0.0.1:${port}`, questdbHttp: `http://127.0.0.1:${port}`, timeoutMs: 500 });
  dependencyGauge(r, { ...checks, fine: async () => true });
  const up = (await r.getMetricsAsJSON()).find((x) => x.name === 'prescient_dependency_up')!.values as Array<{ labels: { service: string }; value: number }>;
  const by = Object.fromEntries(up.map((x) => [x.labels.service, x.value]));
  assert.equal(by, { nats: 0, consul: 0, questdb: 0, fine: 1 });
});

test.run();
