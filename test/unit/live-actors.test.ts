/**
 * Actors (live channels) as the pure parts see them: the schema that asks for one, the ffmpeg
 * argv that runs one, its steady-state prediction, its reservation, and a queue estimate that
 * knows it never ends.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileEncode, compileLive, LIVE_SEGMENT_S, LIVE_WINDOW_SEGMENTS, UnsupportedEncodeError } from '../../node-agent/ffmpeg/index.js';
import { compileComplexityProbe } from '../../node-agent/ffmpeg/args.js';
import { LIVE_WINDOW_S, loadModelFile, predictLive, predictWork, type ResourcePredictor } from '../../models/index.js';
import { estimateStarts, orderQueue } from '../../coordinator/queue/index.js';
import { sizeRequest } from '../../coordinator/sizing/index.js';
import { Ledger } from '../../coordinator/ledger/index.js';
import { SchemaValidationError, validateEncodingSchema, type EncodingSchema, type EncodingTask, type NodeCapacity, type Prediction, type ResourceUsage } from '../../shared/index.js';

const ctx = { allowedInputRoots: ['/media'] };
const channel = (over: Record<string, unknown> = {}) => ({
  kind: 'actor',
  input: { synthetic: { source: 'testsrc2' }, resolution: '640x360', fps: 25 },
  output: { codec: 'h264', preset: 'veryfast', rate_control: { mode: 'crf', crf: 23 } },
  ...over,
});
const fieldsOf = (fn: () => unknown): string[] => {
  try {
    fn();
  } catch (e) {
    if (e instanceof SchemaValidationError) return e.issues.map((i) => i.field);
    throw e;
  }
  return [];
};

test('a live channel is submitted as kind "actor" with a synthetic source that has no duration', () => {
  const s = validateEncodingSchema(channel(), ctx);
  assert.is(s.kind, 'actor');
  assert.is(s.input.duration_s, undefined);
  assert.is(s.output.passes, 1);
});

test('a batch task keeps its schema without a kind, and "task" is accepted as the default kind', () => {
  const job = { input: { synthetic: { source: 'testsrc2' }, resolution: '320x240', fps: 25, duration_s: 2 }, output: { codec: 'h264', rate_control: { mode: 'crf', crf: 28 } } };
  assert.is(validateEncodingSchema(job, ctx).kind, undefined);
  assert.is(validateEncodingSchema({ ...job, kind: 'task' }, ctx).kind, undefined);
  assert.equal(fieldsOf(() => validateEncodingSchema({ ...job, input: { ...job.input, duration_s: undefined } }, ctx)), ['input.duration_s'], 'a task still needs its duration');
});

test('an actor with a duration, two passes, a deadline or an unknown kind is refused, naming each field', () => {
  assert.equal(fieldsOf(() => validateEncodingSchema(channel({ input: { synthetic: { source: 'testsrc2' }, resolution: '640x360', fps: 25, duration_s: 30 } }), ctx)), ['input.duration_s']);
  assert.equal(fieldsOf(() => validateEncodingSchema(channel({ output: { codec: 'h264', rate_control: { mode: 'bitrate', bitrate_kbps: 800 }, passes: 2 } }), ctx)), ['output.passes']);
  assert.equal(fieldsOf(() => validateEncodingSchema(channel({ deadline: '2030-01-01T00:00:00Z' }), ctx)), ['deadline']);
  // Not an actor, so its source also lacks the duration a task needs: both are named.
  assert.equal(fieldsOf(() => validateEncodingSchema(channel({ kind: 'daemon' }), ctx)), ['kind', 'input.duration_s']);
});

test('a validated actor survives being validated again (it travels from leader to agent)', () => {
  const s = validateEncodingSchema(channel(), ctx);
  assert.equal(validateEncodingSchema(JSON.parse(JSON.stringify(s)), ctx), s);
});

const grant = { core_ids: [0, 1], gpu_ids: [] };

test('a live channel reads its source at real time with no end and writes a rolling HLS window', () => {
  const s = validateEncodingSchema(channel(), ctx);
  const plan = compileLive(s, grant, { task_id: 'chan-1', output_dir: '/out' });
  const a = plan.argv;
  assert.is(plan.dir, '/out/chan-1.live');
  assert.is(plan.playlist, '/out/chan-1.live/index.m3u8');
  assert.ok(a.indexOf('-re') >= 0 && a.indexOf('-re') < a.indexOf('-i'), '-re paces the input');
  assert.not.ok(a.slice(0, a.indexOf('-i')).includes('-t'), 'the lavfi source has no length');
  const opt = (name: string) => a[a.indexOf(name) + 1];
  assert.is(opt('-f'), 'lavfi');
  assert.is(a[a.lastIndexOf('-f') + 1], 'hls');
  assert.is(opt('-hls_time'), String(LIVE_SEGMENT_S));
  assert.is(opt('-hls_list_size'), String(LIVE_WINDOW_SEGMENTS));
  assert.match(opt('-hls_flags'), /delete_segments/);
  assert.is(opt('-hls_segment_type'), 'fmp4');
  assert.is(opt('-hls_segment_filename'), '/out/chan-1.live/seg-%06d.m4s');
  assert.is(a.at(-1), 'file:/out/chan-1.live/index.m3u8');
  assert.is(opt('-threads'), '2');
});

test('a file source loops at real time, and a batch encode or a probe never gets -re', () => {
  const s = validateEncodingSchema(channel({ input: { path: '/media/loop.mp4' } }), ctx);
  const a = compileLive(s, grant, { task_id: 'chan-2', output_dir: '/out' }).argv;
  const i = a.indexOf('-i');
  assert.equal(a.slice(a.indexOf('-re'), i + 2), ['-re', '-stream_loop', '-1', '-threads', '2', '-i', 'file:/media/loop.mp4']);
  const probe = compileComplexityProbe(validateEncodingSchema(channel(), ctx), grant);
  assert.not.ok(probe.includes('-re'));
  assert.not.ok(probe.includes('-t'), 'a live source has no length of its own');
  assert.is(probe[probe.indexOf('-frames:v') + 1], '12', 'the probe bounds a live source by its frame count');
  const task = validateEncodingSchema({ input: { synthetic: { source: 'testsrc2' }, resolution: '320x240', fps: 25, duration_s: 2 }, output: { codec: 'h264', rate_control: { mode: 'crf', crf: 28 } } }, ctx);
  assert.not.ok(compileEncode(task, grant, { task_id: 't', output_dir: '/out', passlog_prefix: '/tmp/p' }).passes[0].includes('-re'));
});

test('a live channel handed its directory and input writes and reads only through their descriptors', () => {
  const s = validateEncodingSchema(channel({ input: { path: '/media/loop.mp4' } }), ctx);
  const plan = compileLive(s, grant, { task_id: 'chan-3', output_dir: '/out', ffmpeg_dir: '/proc/self/fd/4', input: { path: '/proc/self/fd/3', format: 'mov,mp4,m4a,3gp,3g2,mj2' } });
  assert.is(plan.playlist, '/out/chan-3.live/index.m3u8', 'the plan names where the agent finds it');
  const opt = (name: string) => plan.argv[plan.argv.indexOf(name) + 1];
  assert.is(opt('-hls_segment_filename'), '/proc/self/fd/4/seg-%06d.m4s');
  assert.is(plan.argv.at(-1), 'file:/proc/self/fd/4/index.m3u8');
  assert.is(opt('-i'), 'file:/proc/self/fd/3');
  assert.is(opt('-format_whitelist'), 'mov,mp4,m4a,3gp,3g2,mj2');
});

test('an actor is never compiled as a batch encode, nor a task as a live channel', () => {
  const actor = validateEncodingSchema(channel(), ctx);
  assert.throws(() => compileEncode(actor, grant, { task_id: 't', output_dir: '/out', passlog_prefix: '/tmp/p' }), (e: unknown) => e instanceof UnsupportedEncodeError && e.field === 'kind');
  const task = validateEncodingSchema({ input: { synthetic: { source: 'testsrc2' }, resolution: '320x240', fps: 25, duration_s: 2 }, output: { codec: 'h264', rate_control: { mode: 'crf', crf: 28 } } }, ctx);
  assert.throws(() => compileLive(task, grant, { task_id: 't', output_dir: '/out' }), (e: unknown) => e instanceof UnsupportedEncodeError && e.field === 'kind');
});

// A predictor that needs `seconds` to encode the live window, to check the arithmetic exactly.
const fixed = (seconds: number): ResourcePredictor & { seen: EncodingSchema[] } => {
  const seen: EncodingSchema[] = [];
  const u = (k: number): ResourceUsage => ({ cpu_cores: 2 * k, gpu_percent: 0, memory_gb: 0.4 * k, bandwidth_mbps: 10 * k, duration_s: seconds * k });
  return { version: 'fixed', seen, predict: (s) => { seen.push(s); return { model_version: 'fixed', expected: u(1), upper: u(1.25), flags: [] } satisfies Prediction; } };
};

test('an actor\'s prediction is the steady state at real time: rates scaled by the encoder\'s busy share, memory kept, no duration', () => {
  const p = fixed(LIVE_WINDOW_S / 4);
  const s = validateEncodingSchema(channel(), ctx);
  const live = predictLive(p, s);
  assert.is(p.seen[0].input.duration_s, LIVE_WINDOW_S, 'the model is asked for one window of content');
  assert.equal(live.expected, { cpu_cores: 0.5, gpu_percent: 0, memory_gb: 0.4, bandwidth_mbps: 2.5, duration_s: 0 });
  // The bound takes the upper rate at the upper busy share (1.25 × 1.25 / 4).
  assert.ok(Math.abs(live.upper.cpu_cores - 2.5 * (1.25 * 15) / 60) < 1e-12, String(live.upper.cpu_cores));
  assert.is(live.upper.memory_gb, 0.5);
  assert.ok(live.flags!.some((f) => /live: steady state/.test(f)));
  assert.equal(predictWork(p, s), live);
});

test('an encoder slower than real time keeps its full figures and is flagged as unable to keep up', () => {
  const live = predictLive(fixed(2 * LIVE_WINDOW_S), validateEncodingSchema(channel(), ctx), { cores: 1 });
  assert.is(live.expected.cpu_cores, 2);
  assert.ok(live.flags!.some((f) => /cannot keep up with real time: 120\.0 s expected to encode 60 s on 1 core/.test(f)), live.flags!.join(' | '));
});

test('the shipped model predicts a light live channel below the same settings encoded flat out', () => {
  const model = loadModelFile();
  const s = validateEncodingSchema(channel({ input: { synthetic: { source: 'testsrc2' }, resolution: '320x240', fps: 25 } }), ctx);
  const live = predictLive(model, s, { cores: 2 });
  const flat = model.predict({ ...s, kind: undefined, input: { ...s.input, duration_s: LIVE_WINDOW_S } }, { cores: 2 });
  for (const k of ['cpu_cores', 'bandwidth_mbps'] as const) {
    assert.ok(Number.isFinite(live.expected[k]) && live.expected[k] > 0 && live.expected[k] <= flat.expected[k] + 1e-12, `${k}: live ${live.expected[k]} vs flat ${flat.expected[k]}`);
  }
  assert.is(live.expected.memory_gb, flat.expected.memory_gb);
  assert.is(live.expected.duration_s, 0);
});

const node = (id: string, cores: number): NodeCapacity => ({ node_id: id, address: '127.0.0.1:1', core_ids: Array.from({ length: cores }, (_, i) => i), memory_gb: 8, bandwidth_mbps: 1000, gpus: [], cpu_model: 'test' });
const T0 = Date.UTC(2026, 10, 25, 12);
function task(id: string, o: { actor?: boolean; state?: EncodingTask['state']; cpu?: number; upperCpu?: number } = {}): EncodingTask {
  const u = (cpu: number): ResourceUsage => ({ cpu_cores: cpu, gpu_percent: 0, memory_gb: 0.5, bandwidth_mbps: 5, duration_s: o.actor ? 0 : 60 });
  return {
    id, state: o.state ?? 'queued', submitted_at: T0, updated_at: T0, term: 1, attempts: 0, started_at: T0,
    schema: validateEncodingSchema(o.actor ? channel() : { input: { synthetic: { source: 'testsrc2' }, resolution: '320x240', fps: 25, duration_s: 2 }, output: { codec: 'h264', rate_control: { mode: 'crf', crf: 28 } } }, ctx),
    predicted: { model_version: 'm', expected: u(o.cpu ?? 1), upper: u(o.upperCpu ?? o.cpu ?? 1) },
    ...(o.state === 'running' ? { allocation: { node_id: 'n1', core_ids: [0, 1], gpu_ids: [], memory_gb: 0.5, bandwidth_mbps: 5, lease_expires_at: T0 + 60_000, term: 1 } } : {}),
  };
}
const demand = () => ({ cores: 2, gpus: 0, memory_gb: 0.5, bandwidth_mbps: 5 });

test('the queue estimate never frees a running actor\'s cores, and does free a running task\'s', () => {
  const waiting = task('waiting');
  const behindTask = estimateStarts(orderQueue([waiting]), [node('n1', 2)], [task('enc', { state: 'running' })], demand, T0);
  assert.is(behindTask.get('waiting')!.at, T0 + 60_000);
  const behindActor = estimateStarts(orderQueue([waiting]), [node('n1', 2)], [task('chan', { state: 'running', actor: true })], demand, T0);
  assert.is(behindActor.get('waiting')!.at, undefined);
  assert.match(behindActor.get('waiting')!.why, /not reached/);
});

test('an actor reserves the whole cores its bound needs, where a task reserves what it keeps busy', () => {
  const ledger = new Ledger(1, 60_000);
  ledger.upsertNode(node('n1', 4), T0);
  const snap = ledger.snapshot();
  assert.is(sizeRequest(task('t', { cpu: 1.2, upperCpu: 1.6 }), snap).cores, 1);
  assert.is(sizeRequest(task('a', { actor: true, cpu: 1.2, upperCpu: 1.6 }), snap).cores, 2);
  assert.is(sizeRequest(task('b', { actor: true, cpu: 0.3, upperCpu: 1.03 }), snap).cores, 1, 'a sliver over a core rounds down');
});

test.run();
