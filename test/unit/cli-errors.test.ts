/**
 * How a CLI command fails (issue 20): with --json always one JSON object on stdout naming the
 * field, with an exit status per kind of failure; and the pure parts of `jobs`, `--version` and
 * `submit --wait` giving up. The same run end to end, with no stack: test/unit/cli-help.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, SchemaValidationError, type EncodingTask, type TaskEvent } from '../../shared/index.js';
import { EXIT, NoSuchJobError, WrongKindError, errorJson, exitCodeOf, jsonRequested, versionRequest } from '../../coordinator/cli/errors.js';
import { formatJobs, jobsView, parseLimit, parseStates } from '../../coordinator/cli/jobs.js';
import { waitOutcome } from '../../coordinator/cli/main.js';
import type { PendingSubmission } from '../../coordinator/bus/index.js';

test('a bad setting becomes {"error": {message, field}} naming the flag, exit status 1', () => {
  const e = new ConfigError('--state', 'is not a job state');
  assert.equal(errorJson(e), { error: { message: '--state: is not a job state', field: '--state', code: 'invalid_setting' } });
  assert.is(exitCodeOf(e), EXIT.failed);
});

test('an invalid job lists every refused field under error.issues, exit status 2', () => {
  const e = new SchemaValidationError([{ field: 'output.codec', reason: 'unknown value "divx"' }]);
  const j = errorJson(e);
  assert.is(j.error.message, 'invalid encoding schema');
  assert.equal(j.error.issues, [{ field: 'output.codec', reason: 'unknown value "divx"' }]);
  assert.is(exitCodeOf(e), EXIT.invalid);
});

test('no such job names the job id argument and exits 4; stop on a batch job is invalid input (2)', () => {
  assert.equal(errorJson(new NoSuchJobError('j-1')).error, { message: 'no job j-1: no task record and no submission waiting in JetStream', field: '<job-id>', code: 'no_such_job' });
  assert.is(exitCodeOf(new NoSuchJobError('j-1')), EXIT.no_such_job);
  const wrong = new WrongKindError('<job-id>', 'j-1 is a batch job');
  assert.is(errorJson(wrong).error.code, 'wrong_kind');
  assert.is(exitCodeOf(wrong), EXIT.invalid);
});

test('commander\'s refusals name the option or argument, and a plain error still gives a message', () => {
  const unknown = Object.assign(new Error("error: unknown option '--sate'\n(Did you mean --state?)"), { name: 'CommanderError', code: 'commander.unknownOption', exitCode: 1 });
  assert.equal(errorJson(unknown).error, { message: "unknown option '--sate'\n(Did you mean --state?)", field: '--sate', code: 'commander.unknownOption' });
  const missing = Object.assign(new Error("error: missing required argument 'file'"), { name: 'CommanderError', code: 'commander.missingArgument', exitCode: 1 });
  assert.is(errorJson(missing).error.field, '<file>');
  const value = Object.assign(new Error("error: option '--limit <n>' argument missing"), { name: 'CommanderError', code: 'commander.optionMissingArgument', exitCode: 1 });
  assert.is(errorJson(value).error.field, '--limit');
  assert.equal(errorJson(new Error('connection refused')), { error: { message: 'connection refused' } });
  assert.equal(errorJson('a string thrown'), { error: { message: 'a string thrown' } });
});

test('secrets in an error message are redacted in its JSON', () => {
  const j = errorJson(new Error('cannot reach http://admin:hunter2@questdb:9000/exec'));
  assert.not.match(j.error.message, /hunter2/);
});

test('--version is read before commander, with --json and --state-dir beside it and nothing else', () => {
  assert.equal(versionRequest(['--version']), { json: false });
  assert.equal(versionRequest(['-V', '--json']), { json: true });
  assert.equal(versionRequest(['--state-dir', '/tmp/x', '--version']), { json: false });
  assert.is(versionRequest(['model', 'train', '--version', 'm1']), undefined, 'a model version name is no version request');
  assert.is(versionRequest(['status', 'j-1']), undefined);
  assert.is(versionRequest([]), undefined);
  assert.ok(jsonRequested(['status', 'j', '--json']));
  assert.not.ok(jsonRequested(['status', '--', '--json']));
});

const task = (id: string, state: EncodingTask['state'], submitted_at: number, over: Partial<EncodingTask> = {}): EncodingTask => ({
  id, state, submitted_at, updated_at: submitted_at + 1, term: 1, attempts: 0, owner: 'test',
  schema: { input: { kind: 'synthetic', source: 'testsrc2' }, output: { codec: 'h264' }, priority: 'standard', submitter: 'test' } as unknown as EncodingTask['schema'],
  ...over,
});
const pending = (job_id: string, stored_at: number, schema: unknown = { priority: 'premium' }): PendingSubmission => ({ job_id, owner: 'ci', stored_at, stream_seq: stored_at, schema });

test('jobs lists records and waiting submissions newest first, a recorded submission once, at most the limit', () => {
  const tasks = [
    task('j-old', 'succeeded', 1_000, { allocation: undefined, earlier: [{ node_id: 'enc-1', core_ids: [0], gpu_ids: [], memory_gb: 1, bandwidth_mbps: 0, lease_expires_at: 0, term: 1 }] }),
    task('j-mid', 'running', 2_000, { allocation: { node_id: 'enc-2', core_ids: [0], gpu_ids: [], memory_gb: 1, bandwidth_mbps: 0, lease_expires_at: 0, term: 1 } }),
  ];
  const v = jobsView(tasks, [pending('j-new', 3_000), pending('j-mid', 2_000)], { limit: 50 });
  assert.equal(v.jobs.map((j) => [j.job_id, j.state, j.node_id, j.class]), [['j-new', 'submitted', null, 'premium'], ['j-mid', 'running', 'enc-2', 'standard'], ['j-old', 'succeeded', 'enc-1', 'standard']]);
  assert.is(v.total, 3);
  const limited = jobsView(tasks, [pending('j-new', 3_000)], { limit: 2 });
  assert.equal(limited.jobs.map((j) => j.job_id), ['j-new', 'j-mid']);
  assert.is(limited.total, 3);
  assert.match(formatJobs(limited, false, 100), /2 newest of 3 shown/);
});

test('jobs --state filters by one or several states, and a wrong one is refused naming --state and the states there are', () => {
  const tasks = [task('a', 'queued', 1), task('b', 'failed', 2), task('c', 'running', 3)];
  assert.equal(jobsView(tasks, [pending('d', 4)], { states: parseStates('queued,submitted'), limit: 50 }).jobs.map((j) => j.job_id), ['d', 'a']);
  assert.throws(() => parseStates('finished'), (e: ConfigError) => e.setting === '--state' && /"finished" is not a job state: use submitted, queued, placed, running/.test(e.message));
  assert.throws(() => parseStates(''), (e: ConfigError) => e.setting === '--state');
  assert.throws(() => parseLimit('0'), (e: ConfigError) => e.setting === '--limit');
  assert.throws(() => parseLimit('ten'), (e: ConfigError) => e.setting === '--limit');
  assert.is(parseLimit('25'), 25);
});

const event = (job_id: string, state: TaskEvent['state'], extra: Partial<TaskEvent> = {}): TaskEvent => ({ job_id, state, at: 0, term: 1, ...extra } as TaskEvent);

test('submit --wait that gives up says which job, its last state, that it is still in the system and how to follow it; exit status 5', () => {
  const o = waitOutcome(['j-1', 'j-2'], [event('j-1', 'succeeded', { result: { quality: 'measured' } as TaskEvent['result'] }), event('j-2', 'queued')], 30);
  assert.is(o.exitCode, EXIT.timed_out);
  assert.is(o.jobs[0].state, 'succeeded');
  const waiting = o.jobs[1] as { job_id: string; state: string; timed_out: boolean; reason: string };
  assert.equal([waiting.job_id, waiting.state, waiting.timed_out], ['j-2', 'queued', true]);
  assert.match(waiting.reason, /j-2: gave up waiting after 30 s; still queued\. The job is still in the system: follow it with `prescient status j-2`/);
  assert.equal(o.notes, [waiting.reason]);
  assert.equal(o.error, { message: '1 of 2 job(s) still going after 30 s: j-2 (follow with prescient status <job-id>)', code: 'timed_out' });
});

test('a job no leader took before the wait ended is reported as submitted, waiting in JetStream', () => {
  const o = waitOutcome(['j-1'], [undefined], 5);
  assert.is(o.jobs[0].state, 'submitted');
  assert.match((o.jobs[0] as { reason: string }).reason, /not yet taken by a leader \(it waits in JetStream until one records it/);
});

test('a failed job makes the wait exit 1 with an error, and all succeeded is exit 0 without one', () => {
  const failed = waitOutcome(['j-1'], [event('j-1', 'failed', { reason: 'ffmpeg exited 1' })], 5);
  assert.is(failed.exitCode, EXIT.failed);
  assert.is(failed.error?.code, 'job_failed');
  const ok = waitOutcome(['j-1'], [event('j-1', 'succeeded')], 5);
  assert.is(ok.exitCode, 0);
  assert.is(ok.error, undefined);
  assert.equal(ok.notes, []);
});

test('a configuration file refused for several settings lists every one in --json, secrets redacted', () => {
  const e = ConfigError.of([
    { field: 'max_instances', reason: 'must be at least 1, got 0' },
    { field: 'metadata_url', reason: 'must be http://, got "http://user:hunter2@example.com/x"' },
  ], 0, 'burst');
  const j = errorJson(e).error;
  assert.is(j.field, 'max_instances');
  assert.equal(j.issues?.map((i) => i.field), ['max_instances', 'metadata_url']);
  assert.not.match(JSON.stringify(j), /hunter2/);
  assert.is(errorJson(new ConfigError('--state', 'is not a job state')).error.issues, undefined, 'one setting: no list');
});

test.run();
