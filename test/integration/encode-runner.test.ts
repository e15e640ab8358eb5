/**
 * Real encodes through the Piscina runner and /usr/bin/ffmpeg (or PRESCIENT_FFMPEG), pinned to
 * the first one or two cores this process may run on. Needs taskset and setpriv.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { validateEncodingSchema, type EncodeResult } from '../../shared/index.js';
import { parseCpuList } from '../../shared/index.js';
import { measureQuality } from '../../node-agent/ffmpeg/probe.js';
import { createEncodeRunner, EncodeAbortedError, FfmpegExitError, UnsupportedEncodeError, type EncodeJob, type EncodeProgress } from '../../node-agent/runner/index.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-encode-test-'));
const runner = createEncodeRunner({ maxThreads: 2 });
/** Cores a cgroup or taskset around the test run allows; core 0 may not be among them. */
const allowed = [...parseCpuList(/^Cpus_allowed_list:\s*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1])];
const oneCore = allowed.slice(0, 1);
const twoCores = allowed.slice(0, 2);

function job(task_id: string, doc: { input: unknown; output: unknown }, core_ids = oneCore): EncodeJob {
  return { task_id, schema: validateEncodingSchema(doc, { allowedInputRoots: [dir] }), core_ids, gpu_ids: [], memory_gb: 1, output_dir: dir, input_roots: [dir] };
}
const testsrc = (duration_s: number, resolution = '320x240') => ({ synthetic: { source: 'testsrc2' }, resolution, fps: 25, duration_s });

/** Live processes whose command line mentions `needle` (zombies have none). */
function processesMentioning(needle: string): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((pid) => {
    try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle); } catch { return false; }
  }).map(Number);
}
/** A part file, or the work directory ffmpeg writes it in. */
function leftovers(task_id: string): string[] {
  return readdirSync(dir).filter((f) => f.startsWith(`${task_id}.part`) || f === `${task_id}.work`);
}
async function rejection(run: Promise<unknown>): Promise<unknown> {
  try {
    await run;
  } catch (e) {
    return e;
  }
  return assert.unreachable('expected the run to reject');
}
function assertSane(r: EncodeResult, maxCores: number): void {
  assert.ok(r.actual.duration_s > 0 && r.actual.duration_s < 30, `duration_s ${r.actual.duration_s}`);
  assert.ok(r.actual.cpu_cores > 0.1 && r.actual.cpu_cores <= maxCores * 1.1, `cpu_cores ${r.actual.cpu_cores}`);
  assert.ok(r.actual.memory_gb > 0.01 && r.actual.memory_gb < 4, `memory_gb ${r.actual.memory_gb}`);
  assert.ok(r.actual.bandwidth_mbps > 0, `bandwidth_mbps ${r.actual.bandwidth_mbps}`);
  assert.is(r.actual.gpu_percent, 0);
  assert.is(statSync(r.output_path).size, r.output_bytes);
}

test.after(async () => {
  await runner.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a one-second libx264 ultrafast encode pinned to one core yields an mp4 with its usage and quality', async () => {
  const progress: EncodeProgress[] = [];
  const r = await runner.run(job('x264', { input: testsrc(1), output: { codec: 'h264', preset: 'ultrafast', rate_control: { mode: 'crf', crf: 23 } } }), {
    onProgress: (p) => progress.push(p),
  });
  assert.is(r.output_path, path.join(dir, 'x264.mp4'));
  assert.equal(leftovers('x264'), []);
  assert.ok(r.pinned, `ffmpeg ran pinned to core ${oneCore}`);
  assert.is(r.frames, 25);
  assertSane(r, 1);
  assert.ok(r.psnr_db! > 35 && r.ssim! > 0.95, `psnr ${r.psnr_db} ssim ${r.ssim}`);
  assert.ok(progress.length > 0 && progress.every((p) => p.task_id === 'x264' && p.pass === 1));
  assert.is(progress.at(-1)!.frame, 25);
});

test('a lossless encode of a noisy synthetic source scores as identical to its regenerated reference', async () => {
  const r = await runner.run(job('lossless', {
    input: { synthetic: { source: 'testsrc2', noise: 30 }, resolution: '320x240', fps: 25, duration_s: 1 },
    output: { codec: 'h264', preset: 'ultrafast', rate_control: { mode: 'crf', crf: 0 } },
  }));
  assert.ok(r.psnr_db! >= 60, `PSNR ${r.psnr_db}`);
  assert.ok(r.ssim! > 0.999, `SSIM ${r.ssim}`);
});

test('a libvpx-vp9 encode at half size on two cores (where there are two) yields a webm measured at source geometry', async () => {
  const r = await runner.run(job('vp9', {
    input: testsrc(1, '640x360'),
    output: { codec: 'vp9', preset: '8', resolution: '320x180', rate_control: { mode: 'crf', crf: 35 } },
  }, twoCores));
  assert.is(r.output_path, path.join(dir, 'vp9.webm'));
  assert.ok(r.pinned);
  assertSane(r, twoCores.length);
  assert.ok(r.psnr_db! > 25 && r.ssim! > 0.8, `psnr ${r.psnr_db} ssim ${r.ssim}`);
});

test('a two-pass libx265 bitrate encode reports both passes and cleans up its pass logs', async () => {
  const passes = new Set<number>();
  const r = await runner.run(job('x265', { input: testsrc(1), output: { codec: 'hevc', preset: 'ultrafast', passes: 2, rate_control: { mode: 'bitrate', bitrate_kbps: 300 } } }), {
    onProgress: (p) => passes.add(p.pass),
  });
  assert.equal([...passes], [1, 2]);
  assertSane(r, 1);
  assert.ok(r.psnr_db! > 25, `psnr ${r.psnr_db}`);
  // The pass logs were in the task's work directory, which goes with them.
  assert.equal(leftovers('x265'), []);
});

test('a file input is encoded and compared against that file', async () => {
  const input = path.join(dir, 'x264.mp4');
  const r = await runner.run(job('from-file', { input: { path: input }, output: { codec: 'h264', preset: 'ultrafast', resolution: '160x120', rate_control: { mode: 'crf', crf: 23 } } }));
  assertSane(r, 1);
  const moved = (r.actual.bandwidth_mbps * 1e6 * r.actual.duration_s) / 8;
  assert.ok(moved >= statSync(input).size + r.output_bytes - 1, `bandwidth covers the input read and the output written (${moved} bytes)`);
  assert.ok(r.psnr_db! > 25 && r.ssim! > 0.8, `psnr ${r.psnr_db} ssim ${r.ssim}`);
});

test('a cancelled long encode leaves no ffmpeg process and no .part file', async () => {
  const abort = new AbortController();
  const long = job('cancelled', { input: testsrc(600, '1280x720'), output: { codec: 'h264', preset: 'medium', rate_control: { mode: 'crf', crf: 23 } } });
  let cancelledAt = 0;
  const run = runner.run(long, {
    signal: abort.signal,
    onProgress: (p) => { if (p.frame > 0 && !cancelledAt) { cancelledAt = Date.now(); abort.abort(); } },
  });
  assert.instance(await rejection(run), EncodeAbortedError);
  assert.ok(cancelledAt > 0, 'the encode had started');
  assert.ok(Date.now() - cancelledAt < 3000, 'ffmpeg exited within the SIGTERM grace');
  assert.equal(processesMentioning('cancelled.part'), []);
  assert.equal(leftovers('cancelled'), []);
  assert.not.ok(existsSync(path.join(dir, 'cancelled.mp4')));
});

test('closing the runner cancels a running encode and leaves no ffmpeg process', async () => {
  const local = createEncodeRunner({ maxThreads: 1 });
  let started!: () => void;
  const running = new Promise<void>((resolve) => { started = resolve; });
  const outcome = rejection(local.run(job('closed', { input: testsrc(600, '1280x720'), output: { codec: 'h264', preset: 'medium', rate_control: { mode: 'crf', crf: 23 } } }), {
    onProgress: () => started(),
  }));
  await running;
  await local.close();
  assert.instance(await outcome, EncodeAbortedError);
  assert.equal(processesMentioning('closed.part'), []);
  assert.equal(leftovers('closed'), []);
});

test('an encode of a missing input file is refused naming input.path and why', async () => {
  const missing = path.join(dir, 'does-not-exist.mp4');
  const run = runner.run(job('missing', { input: { path: missing }, output: { codec: 'h264', rate_control: { mode: 'crf', crf: 23 } } }));
  const e = await rejection(run);
  assert.instance(e, UnsupportedEncodeError);
  assert.is((e as UnsupportedEncodeError).field, 'input.path');
  assert.match((e as UnsupportedEncodeError).message, `${missing} cannot be opened on this node (ENOENT)`);
  assert.equal(leftovers('missing'), []);
});

test('a file that is not media fails with ffprobe\'s reason before any encode starts', async () => {
  const junk = path.join(dir, 'junk.mp4');
  writeFileSync(junk, Buffer.alloc(4096, 7));
  const e = await rejection(runner.run(job('junk', { input: { path: junk }, output: { codec: 'h264', rate_control: { mode: 'crf', crf: 23 } } })));
  assert.instance(e, FfmpegExitError);
  assert.match((e as FfmpegExitError).message, 'Invalid data found when processing input');
  assert.equal(leftovers('junk'), []);
});

test('quality measured on three sampled segments of a longer encode agrees with the whole output\'s, at nice 19', async () => {
  const j = job('sampled', { input: { synthetic: { source: 'testsrc2', noise: 30 }, resolution: '320x240', fps: 25, duration_s: 10 }, output: { codec: 'h264', preset: 'ultrafast', rate_control: { mode: 'crf', crf: 35 } } });
  const r = await runner.run({ ...j, quality: false });
  assert.is(r.psnr_db, undefined, 'no quality pass inside the encode when asked for none');
  const grant = { core_ids: twoCores, gpu_ids: [] };
  const whole = await measureQuality(j.schema, r.output_path, grant, { idle: true });
  const sampled = await measureQuality(j.schema, r.output_path, grant, { idle: true, length_s: 10 });
  assert.match(whole.method, /whole output/);
  assert.match(sampled.method, /3 segments of 2 s/);
  assert.ok(whole.psnr_db! > 20 && whole.psnr_db! < 50, `whole PSNR ${whole.psnr_db}`);
  assert.ok(Math.abs(sampled.psnr_db! - whole.psnr_db!) < 1.5, `sampled ${sampled.psnr_db} vs whole ${whole.psnr_db}`);
  assert.ok(Math.abs(sampled.ssim! - whole.ssim!) < 0.02, `sampled ${sampled.ssim} vs whole ${whole.ssim}`);
});

test.run();
