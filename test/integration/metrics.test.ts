/**
 * Prometheus metrics (issue 20) on the real parts: a coordinator and an agent serving /metrics,
 * a real encode going through, and what each says while it runs and after it ends.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { questdbQuery, RUNS_TABLE, type AgentHandle } from '../../node-agent/index.js';
import { freePort } from '../../deploy/stack/index.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import { agent, coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c: CoordinatorHandle;
let a: AgentHandle;

test.before(async () => {
  s = await startStack('metrics');
  c = await coordinator(s, 'c1', { metrics: { host: '127.0.0.1', port: 0 } });
  a = await agent(s, 'node-m', '0', 2, { metrics: { host: '127.0.0.1', port: 0 } });
  await waitFor('the coordinator to lead and the agent to register', () => c.leader()?.ledger.nodeIds().length === 1);
});

test.after(async () => {
  await a?.stop();
  await c?.stop();
  await s?.down();
});

/** The samples of a scrape, keyed by name and labels (sorted by name; the member label every sample carries left out). */
async function scrape(address: string | undefined): Promise<Map<string, number>> {
  assert.ok(address, 'serves metrics');
  const r = await fetch(`http://${address}/metrics`);
  assert.is(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /text\/plain/);
  const out = new Map<string, number>();
  for (const line of (await r.text()).split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    delete labels.member;
    out.set(key(m[1], labels), Number(m[3]));
  }
  return out;
}

function key(name: string, labels: Record<string, string> = {}): string {
  const l = Object.keys(labels).sort().map((k) => `${k}="${labels[k]}"`).join(',');
  return l ? `${name}{${l}}` : name;
}

test('a running encode shows in both: the agent\'s reserved and used cores, the leader\'s running job and node reservation', async () => {
  const id = await submit(s, smallJob({ input: { resolution: '1280x720', duration_s: 8 }, output: { preset: 'medium' } }));
  const during = await waitFor('the encode to be sampled while it runs', async () => {
    const m = await scrape(a.metricsAddress);
    return m.get('prescient_agent_encodes_running') === 1 && (m.get(key('prescient_agent_used', { resource: 'cores' })) ?? 0) > 0 ? m : undefined;
  }, 30_000, 100);
  assert.is(during.get(key('prescient_agent_reserved', { resource: 'cores' })), 1);
  assert.ok(during.get(key('prescient_agent_reserved', { resource: 'memory_gb' }))! > 0);
  assert.ok(during.get(key('prescient_agent_used', { resource: 'memory_gb' }))! > 0);
  assert.is(during.get(key('prescient_agent_capacity', { resource: 'cores' })), 1);
  assert.is(during.get('prescient_agent_leader_connected'), 1);
  const lead = await scrape(c.metricsAddress);
  assert.is(lead.get('prescient_leader'), 1);
  assert.is(lead.get('prescient_leader_term'), c.leader()!.term);
  assert.is(lead.get(key('prescient_jobs', { state: 'running', class: 'standard' })), 1);
  assert.is(lead.get(key('prescient_node_reserved', { node: 'node-m', resource: 'cores' })), 1);
  assert.is(lead.get(key('prescient_node_capacity', { node: 'node-m', resource: 'cores' })), 1);
  assert.ok((await events(s, id)).some((e) => e.state === 'succeeded'));
});

test('after it ends: counted by state, its wait in the submit-to-placed histogram, nothing reserved', async () => {
  const id = await submit(s, smallJob({ priority: 'premium' }));
  assert.is((await events(s, id)).at(-1)!.state, 'succeeded');
  const lead = await waitFor('the leader to count the premium success', async () => {
    const m = await scrape(c.metricsAddress);
    return m.get(key('prescient_job_transitions_total', { state: 'succeeded', class: 'premium' })) === 1 ? m : undefined;
  });
  assert.is(lead.get(key('prescient_job_transitions_total', { state: 'placed', class: 'premium' })), 1);
  assert.is(lead.get(key('prescient_submit_to_placed_seconds_count', { class: 'premium' })), 1);
  assert.ok(lead.get(key('prescient_submit_to_placed_seconds_sum', { class: 'premium' }))! < 10);
  assert.is(lead.get(key('prescient_jobs', { state: 'running', class: 'premium' })), 0);
  assert.is(lead.get(key('prescient_queue_depth', { class: 'premium' })), 0);
  assert.is(lead.get(key('prescient_node_reserved', { node: 'node-m', resource: 'cores' })), 0);
  const ag = await scrape(a.metricsAddress);
  assert.is(ag.get(key('prescient_agent_reports_total', { state: 'succeeded' })), 2, 'both encodes of this file');
  assert.is(ag.get('prescient_agent_encodes_running'), 0);
  assert.is(ag.get(key('prescient_agent_used', { resource: 'cores' })), 0);
});

test('both say NATS, Consul and QuestDB answer them, and report their own process figures', async () => {
  for (const address of [c.metricsAddress, a.metricsAddress]) {
    const m = await scrape(address);
    for (const svc of ['nats', 'consul', 'questdb']) assert.is(m.get(key('prescient_dependency_up', { service: svc })), 1, `${svc} from ${address}`);
    assert.ok(m.get('process_resident_memory_bytes')! > 1e6);
    assert.ok(m.has('nodejs_eventloop_lag_seconds'));
  }
});

test('anything but /metrics and /healthz is not found, and only GET is served', async () => {
  assert.is((await fetch(`http://${c.metricsAddress}/healthz`)).status, 200);
  assert.is((await fetch(`http://${c.metricsAddress}/nope`)).status, 404);
  assert.is((await fetch(`http://${c.metricsAddress}/metrics`, { method: 'POST', body: 'x' })).status, 405);
});

/** Debian's Prometheus, unpacked by deploy/install.sh (never installed as a service). */
const PROMETHEUS = path.join(process.env.PRESCIENT_PROMETHEUS_DIR ?? '/opt/prescient/prometheus', 'usr/bin/prometheus');
const DASHBOARD = JSON.parse(readFileSync(new URL('../../../deploy/grafana/dashboards/prescient.json', import.meta.url), 'utf8')) as {
  panels: Array<{ title: string; targets?: Array<{ expr?: string; rawSql?: string }> }>;
};

test('a real Prometheus scrapes both, and every query of the Grafana dashboard runs on what it scraped', async () => {
  assert.ok(existsSync(PROMETHEUS), `${PROMETHEUS} is missing: deploy/install.sh unpacks it`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-prom-'));
  const port = await freePort();
  writeFileSync(path.join(dir, 'prometheus.yml'), [
    'global: { scrape_interval: 1s }',
    'scrape_configs:',
    `  - { job_name: coordinators, static_configs: [ { targets: ['${c.metricsAddress}'] } ] }`,
    `  - { job_name: agents, static_configs: [ { targets: ['${a.metricsAddress}'] } ] }`,
  ].join('\n'));
  let prom: ChildProcess | undefined;
  try {
    prom = spawn(PROMETHEUS, [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
    const query = async (q: string) => {
      const r = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`);
      return await r.json() as { status: string; error?: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    };
    await waitFor('Prometheus to scrape both members twice', async () => {
      const r = await query('count_over_time(up[1m]) >= 2 and up == 1').catch(() => undefined);
      return r?.data?.result.length === 2;
    }, 60_000, 500);
    const exprs = DASHBOARD.panels.flatMap((p) => (p.targets ?? []).filter((t) => t.expr).map((t) => ({ panel: p.title, expr: t.expr! })));
    assert.ok(exprs.length >= 15, `${exprs.length} queries`);
    for (const { panel, expr } of exprs) {
      const r = await query(expr);
      assert.is(r.status, 'success', `"${panel}": ${expr}: ${r.error}`);
    }
    // Queries over state answer from what was scraped (rates need a longer history; they parse and run above).
    for (const q of ['sum(prescient_node_capacity{resource="cores"})', 'sum(prescient_agent_reserved{resource="cores"})', 'min by (service) (prescient_dependency_up)', 'max(prescient_leader_term * on(member) prescient_leader)']) {
      const r = await query(q);
      assert.ok(r.data.result.length > 0, `${q} has data`);
    }
    assert.is((await query('sum(prescient_node_capacity{resource="cores"})')).data.result[0].value[1], '1');
  } finally {
    prom?.kill('SIGTERM');
    await new Promise((r) => (prom && prom.exitCode === null ? prom.once('exit', r) : r(undefined)));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the dashboard\'s QuestDB panels query real columns of the runs table, and find the encodes above', async () => {
  const sqls = DASHBOARD.panels.flatMap((p) => (p.targets ?? []).filter((t) => t.rawSql).map((t) => t.rawSql!));
  assert.ok(sqls.length >= 2);
  for (const sql of sqls) {
    assert.match(sql, new RegExp(`FROM ${RUNS_TABLE}\\b`));
    // Grafana's macro, as its PostgreSQL datasource expands it.
    const rows = await questdbQuery(s.endpoints.questdb_http, sql.replace(/\$__timeFilter\((\w+)\)/g, "$1 > dateadd('h', -1, now())"));
    assert.ok(rows.length >= 1, `rows for ${sql}`);
  }
});

test.run();
