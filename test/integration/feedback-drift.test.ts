/**
 * The feedback loop on a real cluster (NATS, Consul, QuestDB, ffmpeg; one coordinator, one
 * agent on one core): the agent reports predicted against actual after each encode; once the
 * node's encodes are slowed by a competing load (three busy loops pinned to its core), the
 * duration error passes its threshold, an alert arrives on NATS and at a webhook, and within a
 * stated number of runs the node's rolling error is back under the threshold through the online
 * correction alone (no retraining). `prescient model status --json` shows the figures.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { JSONCodec, type Subscription } from 'nats';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import type { ErrorGroup } from '../../coordinator/feedback/index.js';
import type { AgentHandle } from '../../node-agent/index.js';
import { MODEL_ALERTS_SUBJECT, type ModelAlert } from '../../shared/index.js';
import { agent, cliRun, coordinator, events, smallJob, startStack, submit, waitFor, type TestStack } from '../helpers/cluster.js';

/** Rolling duration MAPE (%) above which the node's error alerts. */
const THRESHOLD = 35;
/** Runs after the load starts within which the rolling error must be back under THRESHOLD. */
const RECOVER_WITHIN = 10;
const CORE = '1';
/**
 * Busy loops pinned to the core under load. Two slowed the 2 s encodes only about 2.6× (ffmpeg's
 * start-up is not all CPU); with the correction's α = 0.5 the 4-run rolling error then often
 * peaked just under the threshold as the correction caught up (seen failing in CI). Three hogs
 * (about 3.4×) and α = 0.3 cross it within 1–3 runs and recover within 8 at slowdowns of
 * 2.6–5.5× in a simulation of this loop, so the test no longer depends on how loaded the host is.
 */
const HOGS = 3;
const ALPHA = 0.3;

let s: TestStack;
let c: CoordinatorHandle;
let a: AgentHandle;
let hooks: http.Server;
let sub: Subscription;
const onNats: ModelAlert[] = [];
const onWebhook: ModelAlert[] = [];
const hogs: ChildProcess[] = [];
const trace: string[] = [];

test.before(async () => {
  s = await startStack('feedback');
  hooks = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => { onWebhook.push(JSON.parse(body) as ModelAlert); res.end('ok'); });
  });
  await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r));
  const codec = JSONCodec<ModelAlert>();
  sub = s.nc.subscribe(MODEL_ALERTS_SUBJECT, { callback: (_e, m) => onNats.push(codec.decode(m.data)) });
  c = await coordinator(s, 'c1', {
    alertWebhook: `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/alerts`,
    feedback: { window: 4, alerts: { mape: { duration_s: THRESHOLD }, minRuns: 3 }, correction: { alpha: ALPHA } },
  });
  a = await agent(s, 'node-a', CORE);
});
test.after(async () => {
  for (const h of hogs) h.kill('SIGKILL');
  sub?.unsubscribe();
  await a?.stop();
  await c?.stop();
  await new Promise((r) => hooks?.close(r));
  await s?.down();
  if (process.env.PRESCIENT_FEEDBACK_TRACE) console.error(trace.join('\n'));
});

const durationGroup = (): ErrorGroup | undefined =>
  c.feedback().figures().groups.find((g) => g.target === 'duration_s' && g.node === 'node-a' && g.codec === 'h264');

/** One encode, to its end and until its feedback has been taken into the figures. */
async function run(label: string): Promise<ErrorGroup> {
  const before = durationGroup()?.count ?? 0;
  // 6 s of content (about 0.4 s of encoding here): with 2 s, start-up was most of an encode, so
  // a busy machine slowed the unloaded runs about as much as the hogs slowed the loaded ones.
  const id = await submit(s, smallJob({ input: { duration_s: 6 }, output: { preset: 'veryfast' } }));
  // To its release: its quality pass runs at nice 19, which the hogs may starve for a while.
  const evs = await events(s, id, 60_000, 'released');
  const last = evs.at(-1)!;
  assert.is(last.state, 'succeeded', `${id}: ${last.reason}`);
  const g: ErrorGroup = await waitFor(`feedback of ${id}`, () => { const x = durationGroup(); return x && x.count > before ? x : undefined; }, 15_000);
  trace.push(`${label}: predicted ${last.predicted!.expected.duration_s.toFixed(3)} s, actual ${last.result!.actual.duration_s.toFixed(3)} s; rolling MAPE ${g.figures.mape.toFixed(1)}% over ${g.figures.n}, correction ×${Math.exp(g.correction).toFixed(2)}${g.alert_open ? ', ALERT OPEN' : ''}`);
  return g;
}

const errorAlerts = (list: ModelAlert[]) => list.filter((x) => x.kind === 'error' && x.target === 'duration_s' && x.node === 'node-a');

let alertsBefore = 0;
/** The node's duration correction (a factor) once the unloaded runs had settled. */
let unloadedCorrection = 1;

test('on an unloaded node, the correction brings the duration error under its threshold', async () => {
  let g: ErrorGroup | undefined;
  for (let i = 1; i <= 10; i++) {
    g = await run(`unloaded ${i}`);
    if (i >= 4 && !g.alert_open && g.figures.mape <= THRESHOLD) break;
  }
  assert.ok(g && g.figures.mape <= THRESHOLD && !g.alert_open, trace.join('\n'));
  alertsBefore = errorAlerts(onNats).length;
  unloadedCorrection = Math.exp(g!.correction);
});

test(`a competing load on the node's core passes the threshold, alerts on NATS and the webhook, and the error is back under it within ${RECOVER_WITHIN} runs`, async () => {
  for (let i = 0; i < HOGS; i++) hogs.push(spawn('taskset', ['-c', CORE, process.execPath, '-e', 'for(;;){}'], { stdio: 'ignore' }));
  await new Promise((r) => setTimeout(r, 300));
  const mapes: number[] = [];
  let alertedAt = 0, recoveredAt = 0;
  try {
    for (let i = 1; i <= RECOVER_WITHIN; i++) {
      const g = await run(`loaded ${i}`);
      mapes.push(g.figures.mape);
      if (!alertedAt && g.alert_open) alertedAt = i;
      if (alertedAt && g.figures.mape <= THRESHOLD) { recoveredAt = i; break; }
    }
  } finally {
    for (const h of hogs.splice(0)) h.kill('SIGKILL');
  }
  trace.push(`alert after ${alertedAt} loaded run(s), back under ${THRESHOLD}% after ${recoveredAt}; rolling MAPEs ${mapes.map((m) => m.toFixed(0)).join(', ')}`);
  trace.push(`alerts: ${onNats.map((x) => `${x.kind} ${x.target}${x.direction ? ` ${x.direction}` : ''} ${x.magnitude.toFixed(2)}`).join('; ')}`);
  console.log(trace.slice(-2).join('\n'));
  assert.ok(alertedAt > 0, `no error alert under load:\n${trace.join('\n')}`);
  assert.ok(recoveredAt > 0, `not back under ${THRESHOLD}% within ${RECOVER_WITHIN} runs:\n${trace.join('\n')}`);
  await waitFor('the alert on NATS', () => errorAlerts(onNats).length > alertsBefore, 5000);
  const alert = errorAlerts(onNats).at(-1)!;
  assert.ok(alert.magnitude > THRESHOLD);
  assert.is(alert.codec, 'h264');
  assert.ok(alert.model_version.length > 0);
  await waitFor('the alert at the webhook', () => errorAlerts(onWebhook).length > alertsBefore, 5000);
  await waitFor('the recovery notice', () => onNats.some((x) => x.kind === 'recovered' && x.node === 'node-a' && x.target === 'duration_s' && x.at >= alert.at), 5000);
  assert.ok(s.logs.some((l) => /model alert \(error\): duration_s of h264 on node node-a/.test(l)), 'the alert is in the log');
});

test('prescient model status --json shows the node\'s rolling figures from the KV bucket', async () => {
  const r = await cliRun(s, ['model', 'status', '--json']);
  assert.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { in_service: string; groups: Array<{ model_version: string; target: string; node: string; codec: string; runs: number; mape: number; bias: number; correction: number; alert_open: boolean }> };
  const g = out.groups.find((x) => x.target === 'duration_s' && x.node === 'node-a' && x.codec === 'h264');
  assert.ok(g, r.stdout);
  assert.is(g!.runs, durationGroup()!.count);
  assert.ok(g!.mape <= THRESHOLD && !g!.alert_open);
  // Upward from where the unloaded runs left it: the shipped model may over- or under-predict
  // these tiny encodes, so the factor's side of 1 says nothing about the load.
  assert.ok(g!.correction > unloadedCorrection, `the node is corrected upward (from ×${unloadedCorrection.toFixed(2)} to ×${g!.correction.toFixed(2)})`);
  assert.ok(out.groups.some((x) => x.target === 'memory_gb' && x.node === 'node-a'));
  const text = await cliRun(s, ['model', 'status']);
  assert.match(text.stdout, /duration_s\s+h264\s+node-a/);
});

test.run();
