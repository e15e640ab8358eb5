/**
 * Sampling real encodes: /usr/bin/ffmpeg (or PRESCIENT_FFMPEG) through the Piscina runner, pinned
 * to the first two cores this process may run on, and a real shell's process tree.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseCpuList, validateEncodingSchema, type EncodeSample } from '../../shared/index.js';
import { createEncodeRunner, type EncodeJob, type MeasuredEncode } from '../../node-agent/runner/index.js';
import { runFfmpeg } from '../../node-agent/ffmpeg/index.js';
import { hasNvidiaSmi, ProcessTree, type TreeReading } from '../../node-agent/sampling/index.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-sampling-test-'));
const runner = createEncodeRunner({ maxThreads: 1 });
const allowed = parseCpuList(/^Cpus_allowed_list:\s*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
const cores = allowed.slice(0, 2);
const MB = 1e6 / 1024 ** 3;

/** 640x360 libx264 veryslow: about 3–4 s of encoding on two cores. */
function job(task_id: string, output: Record<string, unknown>, duration_s: number, gpu_ids: number[] = []): EncodeJob {
  const schema = validateEncodingSchema({
    input: { synthetic: { source: 'testsrc2' }, resolution: '640x360', fps: 25, duration_s },
    output: { codec: 'h264', preset: 'veryslow', ...output },
  }, { allowedInputRoots: [dir] });
  return { task_id, schema, core_ids: cores, gpu_ids, memory_gb: 1, output_dir: dir, sample_interval_ms: 250 };
}

async function sampled(j: EncodeJob): Promise<{ r: MeasuredEncode; samples: EncodeSample[] }> {
  const samples: EncodeSample[] = [];
  const r = await runner.run(j, { onSample: (s) => samples.push(s) });
  return { r, samples };
}

function nonDecreasing(xs: number[]): boolean {
  return xs.every((x, i) => i === 0 || x >= xs[i - 1]);
}

/** What every sample of a pinned CPU encode must satisfy, pass by pass. */
function assertCoherent(samples: EncodeSample[], job_id: string): void {
  const ts = samples.map((s) => s.ts_ms);
  assert.ok(ts.every((t, i) => i === 0 || t > ts[i - 1]), `timestamps strictly increase: ${ts}`);
  for (const [i, s] of samples.entries()) {
    assert.is(s.job_id, job_id);
    assert.ok(s.cpu_cores > 0 && s.cpu_cores <= cores.length * 1.2, `cpu_cores ${s.cpu_cores}`);
    assert.ok(s.on_reserved_cores, 'every thread on the reserved cores');
    // The first sample of a pass comes 100 ms in, while ffmpeg may still be starting up.
    assert.ok(s.rss_gb > (i === 0 || s.pass !== samples[i - 1].pass ? 1 : 10) * MB && s.peak_rss_gb >= s.rss_gb, `rss ${s.rss_gb} GB, peak ${s.peak_rss_gb} GB`);
    assert.equal(Object.keys(s.core_busy_percent).map(Number), cores);
    assert.ok(Object.values(s.core_busy_percent).every((p) => p >= 0 && p <= 100), JSON.stringify(s.core_busy_percent));
    assert.ok(s.bandwidth_mbps >= 0 && s.net_rx_bytes >= 0 && s.net_tx_bytes >= 0);
  }
  for (const pass of new Set(samples.map((s) => s.pass))) {
    const of = samples.filter((s) => s.pass === pass);
    for (const key of ['peak_rss_gb', 'frame', 'read_bytes', 'write_bytes', 'disk_read_bytes', 'disk_write_bytes', 'net_rx_bytes', 'net_tx_bytes'] as const) {
      assert.ok(nonDecreasing(of.map((s) => s[key])), `${key} of pass ${pass} never goes back: ${of.map((s) => s[key])}`);
    }
  }
}

test.after(async () => {
  await runner.close();
  rmSync(dir, { recursive: true, force: true });
});

test('an encode sampled every 250 ms yields coherent samples, all delivered before it resolves, that its summary agrees with', async () => {
  const { r, samples } = await sampled(job('sampled', { rate_control: { mode: 'crf', crf: 23 } }, 6));
  assert.ok(samples.length >= 8, `${samples.length} samples in ${r.actual.duration_s.toFixed(2)} s`);
  assertCoherent(samples, 'sampled');
  assert.ok(samples.every((s) => s.pass === 1 && s.gpus.length === 0));
  assert.ok(samples.at(-1)!.frame > 0 && samples.at(-1)!.read_bytes > 0 && samples.at(-1)!.write_bytes > 0);

  const u = r.usage;
  const cpu = samples.map((s) => s.cpu_cores);
  assert.is(u.samples, samples.length);
  assert.is(u.cpu_cores_peak, Math.max(...cpu));
  assert.ok(Math.abs(u.cpu_cores_mean - cpu.reduce((a, b) => a + b) / cpu.length) < 1e-9);
  assert.ok(u.cpu_cores_peak >= u.cpu_cores_mean && u.bandwidth_mbps_peak >= u.bandwidth_mbps_mean);
  assert.ok(u.memory_gb_peak >= Math.max(...samples.map((s) => s.peak_rss_gb)));
  assert.is(u.gpu_percent_mean, undefined);
  assert.ok(u.stayed_on_cores && r.pinned);
  assert.is(r.actual.memory_gb, u.memory_gb_peak, 'actual memory is the sampled peak or maxrss, whichever is higher');
});

test('a two-pass encode is sampled in both passes under one rising clock, and a GPU grant without nvidia-smi reads no GPUs', async () => {
  const { r, samples } = await sampled(job('two-pass', { passes: 2, rate_control: { mode: 'bitrate', bitrate_kbps: 500 } }, 4, [0]));
  assert.equal([...new Set(samples.map((s) => s.pass))], [1, 2]);
  assertCoherent(samples, 'two-pass');
  if (!hasNvidiaSmi()) assert.ok(samples.every((s) => s.gpus.length === 0), 'no GPU readings are invented');
  assert.is(r.usage.samples, samples.length);
  assert.ok(r.usage.cpu_cores_peak >= r.usage.cpu_cores_mean);
});

test('a small encode\'s peak memory is its own, not the RSS the process that spawned it held', async () => {
  // The kernel carries a process's peak RSS across fork and exec: ffmpeg's -benchmark maxrss
  // starts at this process's RSS. Hold 600 MB here, then encode something that needs ~50 MB.
  const ballast = Buffer.alloc(600 * 2 ** 20, 1);
  const held = process.memoryUsage().rss / 1024 ** 3;
  const small = validateEncodingSchema({
    input: { synthetic: { source: 'testsrc2' }, resolution: '320x240', fps: 25, duration_s: 1 },
    output: { codec: 'h264', preset: 'ultrafast', rate_control: { mode: 'crf', crf: 30 } },
  }, { allowedInputRoots: [dir] });
  const r = await runFfmpeg(['-hide_banner', '-nostdin', '-nostats', '-benchmark', '-progress', 'pipe:1', '-f', 'lavfi', '-t', '1', '-i', 'testsrc2=size=320x240:rate=25', '-c:v', 'libx264', '-preset', 'ultrafast', '-f', 'null', '-'], { core_ids: cores });
  assert.ok(held > 0.5, `this process holds ${held.toFixed(2)} GB`);
  assert.ok(r.usage.memory_gb_peak > 0 && r.usage.memory_gb_peak < 0.25, `peak ${r.usage.memory_gb_peak.toFixed(3)} GB for a 320x240 encode while this process held ${held.toFixed(2)} GB`);
  // And through the runner, as the agent measures a job.
  const measured = await runner.run({ task_id: 'small', schema: small, core_ids: cores, gpu_ids: [], memory_gb: 1, output_dir: dir, quality: false });
  assert.ok(measured.actual.memory_gb < 0.25, `the job's memory ${measured.actual.memory_gb.toFixed(3)} GB`);
  assert.ok(ballast.length > 0);
});

test('a sample interval under 100 ms is refused before anything runs', async () => {
  try {
    await runner.run({ ...job('too-fast', { rate_control: { mode: 'crf', crf: 23 } }, 1), sample_interval_ms: 10 });
    assert.unreachable('expected a RangeError');
  } catch (e) {
    assert.instance(e, RangeError);
  }
});

test('a child process joins the tree, and its CPU time and bytes read still count after it exited', async () => {
  // The subshell burns CPU and reads 20 MB through head, then exits and is reaped by the root.
  // 600,000 iterations are about 0.6 s of CPU here: three times the 20 ticks asserted (200,000
  // once gave 19 ticks in CI).
  const sh = spawn('sh', ['-c', 'sleep 0.3; (head -c 20000000 /dev/zero > /dev/null; i=0; while [ $i -lt 600000 ]; do i=$((i+1)); done) & wait; sleep 0.6'], { stdio: 'ignore' });
  const exited = new Promise((resolve) => sh.on('exit', resolve));
  const tree = new ProcessTree(sh.pid!, allowed);
  try {
    const readings: TreeReading[] = [];
    for (let r = tree.read(); r; r = tree.read()) {
      readings.push(r);
      await sleep(50);
    }
    // The last readings are of the root alone, sleeping after the subshell was reaped.
    const last = readings.at(-1)!;
    assert.ok(readings.length >= 10, `${readings.length} readings`);
    assert.ok(last.cpu_ticks >= 20, `the subshell's CPU counts: ${last.cpu_ticks} ticks`);
    assert.ok(last.rchar >= 20_000_000, `head's reads count: ${last.rchar}`);
    for (const key of ['cpu_ticks', 'rchar', 'wchar', 'read_bytes', 'write_bytes'] as const) {
      assert.ok(nonDecreasing(readings.map((r) => r[key])), `${key} never goes back`);
    }
    assert.ok(readings.every((r) => r.on_cores && r.rss_kb > 0));
  } finally {
    tree.close();
    sh.kill('SIGKILL');
    await exited;
  }
});

test.run();
