/**
 * What the CLI says about jobs (issue 20), against a real stack: a job submitted while no leader
 * is up is found in JetStream by `status`, `queue` and `jobs`; `cancel` of a job nobody has
 * says so at once; `stop` refuses a batch job and points to `cancel`; `submit --wait` that
 * gives up says which job, where it stands and how to follow it. No agent runs: the jobs stay
 * queued, so every test takes seconds.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { JOBS_STREAM } from '../../shared/index.js';
import type { CoordinatorHandle } from '../../coordinator/index.js';
import { cliRun, coordinator, smallJob, startStack, waitFor, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
let c: CoordinatorHandle | undefined;
let early = '';

test.before(async () => { s = await startStack('cli-jobs'); });
test.after(async () => {
  await c?.stop();
  await s?.down();
});

const jobFile = (name: string, schema = smallJob()) => {
  const file = path.join(s.dir, `${name}.yaml`);
  writeFileSync(file, YAML.stringify(schema));
  return file;
};
const streamMessages = async () => (await (await s.nc.jetstreamManager()).streams.info(JOBS_STREAM)).state.messages;
const json = <T>(r: { stdout: string; stderr: string }): T => {
  try { return JSON.parse(r.stdout) as T; } catch { throw new Error(`not JSON: ${r.stdout} ${r.stderr}`); }
};

test('a job submitted while no leader is up is "submitted, waiting for a leader" to status, and is listed by queue and jobs', async () => {
  const sub = await cliRun(s, ['submit', jobFile('early'), '--json', '--no-probe']);
  assert.is(sub.code, 0, sub.stderr);
  early = json<{ jobs: string[] }>(sub).jobs[0];
  const st = await cliRun(s, ['status', early, '--json']);
  assert.is(st.code, 0, st.stderr);
  const record = json<{ id: string; state: string; reason: string }>(st);
  assert.equal([record.id, record.state], [early, 'submitted']);
  assert.match(record.reason, /waiting for a leader/);
  assert.match((await cliRun(s, ['status', early])).stdout, new RegExp(`${early} submitted: waiting for a leader`));
  const q = json<{ queue: Array<{ job_id: string; waiting_for_leader: boolean; estimated_start: string | null }> }>(await cliRun(s, ['queue', '--json'])).queue;
  assert.equal(q.map((r) => [r.job_id, r.waiting_for_leader, r.estimated_start]), [[early, true, null]]);
  const text = (await cliRun(s, ['queue'])).stdout;
  assert.match(text, new RegExp(`-\\s+${early}\\s+standard`), text);
  assert.match(text, /submitted, waiting for a/, text);
  const jobs = json<{ jobs: Array<{ job_id: string; state: string }> }>(await cliRun(s, ['jobs', '--json'])).jobs;
  assert.equal(jobs.map((j) => [j.job_id, j.state]), [[early, 'submitted']]);
  assert.equal(json<{ jobs: unknown[] }>(await cliRun(s, ['jobs', '--state', 'queued', '--json'])).jobs, []);
});

test('cancel of a job nobody has says at once that there is no such job, and publishes nothing', async () => {
  const before = await streamMessages();
  const started = Date.now();
  const r = await cliRun(s, ['cancel', 'j-no-such-job', '--json']);
  assert.ok(Date.now() - started < 4000, `answered after ${Date.now() - started} ms`);
  assert.is(r.code, 4);
  const e = json<{ error: { code: string; field: string } }>(r).error;
  assert.equal([e.code, e.field], ['no_such_job', '<job-id>']);
  const text = await cliRun(s, ['cancel', 'j-no-such-job']);
  assert.is(text.code, 4);
  assert.match(text.stderr, /no job j-no-such-job: no task record and no submission waiting in JetStream/);
  assert.is(await streamMessages(), before, 'no cancel request was published');
});

test('stop on a batch job waiting for a leader refuses, points to cancel, and publishes nothing', async () => {
  const before = await streamMessages();
  const r = await cliRun(s, ['stop', early]);
  assert.is(r.code, 2);
  assert.match(r.stderr, new RegExp(`${early} is a batch job, not a live channel.*\`prescient cancel ${early}\``));
  assert.is(await streamMessages(), before);
});

test('once a leader records it the job is queued to status and jobs, and stop still refuses it', async () => {
  c = await coordinator(s, 'c1');
  const st = await waitFor('the job recorded', async () => {
    const r = json<{ state: string }>(await cliRun(s, ['status', early, '--json']));
    return r.state === 'queued' ? r : undefined;
  }, 30_000, 300);
  assert.is(st.state, 'queued');
  const jobs = json<{ jobs: Array<{ job_id: string; state: string }> }>(await cliRun(s, ['jobs', '--state', 'queued,running', '--json'])).jobs;
  assert.equal(jobs.map((j) => [j.job_id, j.state]), [[early, 'queued']]);
  const q = json<{ queue: Array<{ job_id: string; waiting_for_leader: boolean }> }>(await cliRun(s, ['queue', '--json'])).queue;
  assert.equal(q.map((r) => [r.job_id, r.waiting_for_leader]), [[early, false]]);
  const stop = await cliRun(s, ['stop', early, '--json']);
  assert.is(stop.code, 2);
  const e = json<{ error: { code: string; message: string } }>(stop).error;
  assert.is(e.code, 'wrong_kind');
  assert.match(e.message, /prescient cancel/);
});

test('submit --wait that gives up names the job, its last state, that it is still in the system and how to follow it', async () => {
  const r = await cliRun(s, ['submit', jobFile('wait'), '--wait', '--timeout', '2', '--json', '--no-probe']);
  assert.is(r.code, 5, r.stderr);
  const out = json<{ jobs: Array<{ job_id: string; state: string; timed_out: boolean; reason: string }>; error: { code: string } }>(r);
  const j = out.jobs[0];
  assert.equal([j.state, j.timed_out, out.error.code], ['queued', true, 'timed_out']);
  assert.match(j.reason, new RegExp(`${j.job_id}: gave up waiting after 2 s; still queued\\. The job is still in the system: follow it with \`prescient status ${j.job_id}\``));
  const text = await cliRun(s, ['submit', jobFile('wait'), '--wait', '--timeout', '2', '--no-probe']);
  assert.is(text.code, 5);
  assert.match(text.stderr, /gave up waiting after 2 s; still queued\. The job is still in the system/);
  // The jobs it left are still there, and cancel ends them.
  for (const id of [j.job_id, /submitted (\S+)/.exec(text.stdout)![1]]) {
    const cancel = await cliRun(s, ['cancel', id, '--json']);
    assert.is(cancel.code, 0, cancel.stdout + cancel.stderr);
    assert.is(json<{ state: string }>(cancel).state, 'cancelled');
  }
});

test('cancel of a job that has ended says so and exits 3', async () => {
  assert.is((await cliRun(s, ['cancel', early, '--json'])).code, 0);
  const again = await cliRun(s, ['cancel', early, '--json']);
  assert.is(again.code, 3);
  assert.is(json<{ state: string; error: { code: string } }>(again).error.code, 'already_ended');
});

test.run();
