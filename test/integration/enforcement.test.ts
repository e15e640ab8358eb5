/**
 * Enforcement on this machine, for real: detection, encodes through the Piscina runner inside
 * their own cgroups, an encode stopped by its memory limit, throttled reads, clean-up after
 * success, failure and cancellation, and the registration that carries it all to the leader.
 *
 * What to expect is decided by this file's own probe of the cgroup filesystem (mount table,
 * mkdir, one limit written), not by the code under test: where cgroups cannot be written, the
 * tests assert that detection says so and why.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseCpuList, validateEncodingSchema } from '../../shared/index.js';
import { createEncodeRunner, EncodeAbortedError, type EncodeJob } from '../../node-agent/runner/index.js';
import { describeEnforcement, detectEnforcement, releaseEnforcement, type EnforcementPlan } from '../../node-agent/enforce/index.js';
import { parsePidStat } from '../../node-agent/sampling/index.js';
import { agent, coordinator, startStack, waitFor } from '../helpers/cluster.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-enforce-test-'));
const runner = createEncodeRunner({ maxThreads: 1 });
const core = [parseCpuList(/^Cpus_allowed_list:\s*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1])[0]];
const NODE = `enftest-${process.pid}`;
const MIB = 2 ** 20;

// ── the test's own probe ─────────────────────────────────────────────────────────────────

interface Writable { version: 1 | 2; mount: string }

/** Where `controller` is mounted and whether a cgroup with a limit can be made there, judged from /proc/mounts and one mkdir. */
function probe(controller: 'memory' | 'blkio' | 'cpuset', limit: (cg: string, version: 1 | 2) => void): Writable | undefined {
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' '));
  let found: Writable | undefined;
  const v1 = mounts.find((m) => m[2] === 'cgroup' && m[3].split(',').includes(controller));
  if (v1) found = { version: 1, mount: v1[1] };
  else {
    const v2 = mounts.find((m) => m[2] === 'cgroup2');
    const offers = v2 ? readFileSync(path.join(v2[1], 'cgroup.controllers'), 'utf8').split(/\s+/) : [];
    if (v2 && offers.includes(controller === 'blkio' ? 'io' : controller)) found = { version: 2, mount: v2[1] };
  }
  if (!found) return undefined;
  const parent = path.join(found.mount, `prescient-testprobe-${process.pid}`);
  const child = path.join(parent, 'x');
  try {
    mkdirSync(parent);
    if (found.version === 2) writeFileSync(path.join(parent, 'cgroup.subtree_control'), controller === 'blkio' ? '+io' : `+${controller}`);
    // A v1 cpuset starts empty: it needs cores and memory nodes (its parent's) before a child takes any.
    if (found.version === 1 && controller === 'cpuset') for (const f of ['cpuset.cpus', 'cpuset.mems']) writeFileSync(path.join(parent, f), readFileSync(path.join(found.mount, f), 'utf8').trim());
    mkdirSync(child);
    limit(child, found.version);
    return found;
  } catch {
    return undefined;
  } finally {
    for (const d of [child, parent]) try { rmdirSync(d); } catch { /* not made */ }
  }
}

/** The whole disk holding `p` as major:minor, from findmnt and sysfs. */
function diskNumbers(p: string): string | undefined {
  const r = spawnSync('findmnt', ['-no', 'MAJ:MIN', '-T', p], { encoding: 'utf8' });
  const dev = r.stdout?.trim();
  if (!dev || dev.startsWith('0:') || !existsSync(`/sys/dev/block/${dev}`)) return undefined;
  return existsSync(`/sys/dev/block/${dev}/partition`) ? readFileSync(path.join(realpathSync(`/sys/dev/block/${dev}`), '..', 'dev'), 'utf8').trim() : dev;
}

const memoryCgroup = probe('memory', (cg, v) => writeFileSync(path.join(cg, v === 1 ? 'memory.limit_in_bytes' : 'memory.max'), String(100 * MIB)));
const disk = diskNumbers(dir);
const blkioCgroup = disk === undefined ? undefined
  : probe('blkio', (cg, v) => writeFileSync(path.join(cg, v === 1 ? 'blkio.throttle.read_bps_device' : 'io.max'), v === 1 ? `${disk} 1000000` : `${disk} rbps=1000000`));
const cpusetCgroup = probe('cpuset', (cg, v) => {
  if (v === 1) writeFileSync(path.join(cg, 'cpuset.mems'), readFileSync(path.join(path.dirname(cg), 'cpuset.mems'), 'utf8').trim());
  writeFileSync(path.join(cg, 'cpuset.cpus'), String(core[0]));
});
const nvidiaGpus = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' }).stdout?.split('\n').filter((l) => l.startsWith('GPU ')).length ?? 0;

let plan: EnforcementPlan;
const logs: string[] = [];

// ── helpers ──────────────────────────────────────────────────────────────────────────────

function job(task_id: string, output: Record<string, unknown>, input: Record<string, unknown>, extra: Partial<EncodeJob> = {}): EncodeJob {
  return {
    task_id, schema: validateEncodingSchema({ input, output }, { allowedInputRoots: [dir] }),
    core_ids: core, gpu_ids: [], memory_gb: 1, output_dir: dir, input_roots: [dir], enforcement: plan, ...extra,
  };
}
const testsrc = (duration_s: number, resolution = '320x240') => ({ synthetic: { source: 'testsrc2' }, resolution, fps: 25, duration_s });
const x264 = (preset = 'ultrafast') => ({ codec: 'h264', encoder: 'libx264', preset, rate_control: { mode: 'crf', crf: 23 } });

/** The task's cgroup directory in a hierarchy, as the agent names it. */
const taskDir = (h: Writable, task_id: string, node = NODE) => path.join(h.mount, `prescient-${node}`, `task-${task_id}`);

/** What was seen of the task's encoding ffmpeg while it ran: its cgroups, environment and limits. */
interface Seen { pid: number; cgroup: string; environ: string[]; limits: string; files: Record<string, string> }

/**
 * Polls /proc for the encoding ffmpeg (the one whose output is `<task_id>.part.`; the quality
 * pass reads that file but does not write it) and records what its first look found, with the
 * given files of its cgroup as they were at the last look it was still running.
 */
function watch(task_id: string, cgroupFiles: () => string[] = () => []): { seen(): Seen | undefined; stop(): void } {
  let seen: Seen | undefined;
  const encoding = (cmdline: string[]) => cmdline.at(-1)?.includes(`${task_id}.part.`) === true;
  const timer = setInterval(() => {
    if (seen) {
      try {
        if (readFileSync(`/proc/${seen.pid}/comm`, 'utf8').trim() !== 'ffmpeg') return;
        const files: Record<string, string> = {};
        for (const f of cgroupFiles()) files[f] = readFileSync(f, 'utf8');
        seen.files = files;
      } catch { /* exited */ }
      return;
    }
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'ffmpeg') continue;
        if (!encoding(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean))) continue;
        seen = {
          pid: Number(pid), cgroup: readFileSync(`/proc/${pid}/cgroup`, 'utf8'), environ: readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0'),
          limits: readFileSync(`/proc/${pid}/limits`, 'utf8'), files: {},
        };
        return;
      } catch { /* gone, or not ours */ }
    }
  }, 10);
  return { seen: () => seen, stop: () => clearInterval(timer) };
}

/** The path of `controller` (v1 name, '' for v2) in a /proc/<pid>/cgroup text. */
function cgroupOf(text: string, controller: string): string | undefined {
  for (const line of text.split('\n')) {
    const [, names, p] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    if (names !== undefined && (controller === '' ? names === '' : names.split(',').includes(controller))) return p;
  }
  return undefined;
}

async function rejection(run: Promise<unknown>): Promise<Error> {
  try {
    await run;
  } catch (e) {
    return e as Error;
  }
  return assert.unreachable('expected the run to reject') as never;
}

const partFiles = (task_id: string) => readdirSync(dir).filter((f) => f.startsWith(`${task_id}.part`));

test.before(async () => {
  // Network shaping has its own test (enforcement-network.test.ts, on a veth pair): the host's interfaces are left alone here.
  plan = await detectEnforcement({ node_id: NODE, gpu_count: nvidiaGpus, output_dir: dir, shape_interfaces: [], log: (m) => logs.push(m) });
});

test.after(async () => {
  await runner.close();
  await releaseEnforcement(plan);
  rmSync(dir, { recursive: true, force: true });
});

// ── detection ────────────────────────────────────────────────────────────────────────────

test('memory is detected as enforced by a cgroup exactly where a test cgroup can be written, else the fallback says why', () => {
  const memory = describeEnforcement(plan).find((e) => e.resource === 'memory')!;
  if (memoryCgroup) {
    assert.equal(plan.memory, { kind: 'cgroup', cgroup: { ...memoryCgroup, dir: path.join(memoryCgroup.mount, `prescient-${NODE}`) } });
    assert.is(memory.mode, 'enforced');
    assert.match(memory.detail, memoryCgroup.version === 1 ? 'cgroup v1' : 'cgroup v2');
    assert.ok(existsSync(path.join(memoryCgroup.mount, `prescient-${NODE}`)), 'the node\'s cgroup directory is made at detection');
  } else {
    // No memory cgroup here: prlimit's RLIMIT_DATA backstop, or nothing, and either way the reason.
    assert.ok(plan.memory.kind !== 'cgroup');
    assert.match(memory.detail, /cgroup/);
    assert.ok(memory.mode === 'accounted-only' || /RLIMIT_DATA/.test(memory.detail), memory.detail);
  }
});

test('bandwidth is detected as enforced by an I/O cgroup where a throttle can be written for the output disk, else accounted-only with a reason', () => {
  const bandwidth = describeEnforcement(plan).find((e) => e.resource === 'bandwidth')!;
  if (blkioCgroup) {
    assert.is(plan.bandwidth.kind, 'cgroup');
    assert.is(bandwidth.mode, 'enforced');
    assert.match(bandwidth.detail, blkioCgroup.version === 1 ? 'blkio.throttle' : 'io.max');
  } else {
    assert.is(bandwidth.mode, 'accounted-only');
    assert.ok(bandwidth.detail.length > 10, bandwidth.detail);
  }
});

test('CPU is held by a cpuset cgroup per task where a test cpuset can be written, else by affinity alone, saying why', () => {
  const cpu = describeEnforcement(plan).find((e) => e.resource === 'cpu')!;
  assert.is(cpu.mode, 'enforced');
  if (cpusetCgroup) {
    assert.equal(plan.cpu, { kind: 'cpuset', cgroup: { ...cpusetCgroup, dir: path.join(cpusetCgroup.mount, `prescient-${NODE}`) } });
    assert.match(cpu.detail, `cgroup v${cpusetCgroup.version} cpuset per task`);
  } else {
    assert.is(plan.cpu.kind, 'affinity');
    assert.match(cpu.detail, /no cpuset \(.+\)/);
  }
});

/**
 * Every thread of the encoding ffmpeg, polled while it runs: the CPUs each may run on
 * (Cpus_allowed_list) and the CPU each last ran on, as sets over the whole encode.
 */
function watchThreads(task_id: string): { stop(): { allowed: Set<string>; ran_on: Set<number>; threads: number } } {
  const allowed = new Set<string>(), ran_on = new Set<number>(), tids = new Set<string>();
  let pid: string | undefined;
  const timer = setInterval(() => {
    if (!pid) {
      pid = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).find((p) => {
        try {
          return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'ffmpeg' && readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean).at(-1)?.includes(`${task_id}.part.`);
        } catch { return false; }
      });
      if (!pid) return;
    }
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        tids.add(tid);
        allowed.add(/^Cpus_allowed_list:\s*(.*)$/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))![1]);
        ran_on.add(parsePidStat(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')).processor);
      }
    } catch { /* a thread or the process ended between the listing and the read */ }
  }, 5);
  return { stop: () => { clearInterval(timer); return { allowed, ran_on, threads: tids.size }; } };
}

// The encoders the job schema offers on CPU (librav1e is in this ffmpeg too, but no job can ask for it).
for (const [encoder, codec, preset] of [['libx264', 'h264', 'ultrafast'], ['libx265', 'hevc', 'ultrafast'], ['libvpx-vp9', 'vp9', '7'], ['libsvtav1', 'av1', '12'], ['libaom-av1', 'av1', '7']] as const) {
  test(`every thread of a ${encoder} encode stays on its one reserved core${encoder === 'libx265' ? ' (libx265 sets its own threads\' affinity)' : ''}, held there by its cpuset where the node has one`, async () => {
    const id = `pin-${encoder}`;
    const w = watchThreads(id);
    const r = await runner.run(job(id, { codec, encoder, preset, rate_control: { mode: 'crf', crf: 30 } }, testsrc(2, '640x360')));
    const seen = w.stop();
    assert.ok(seen.threads > 0, 'ffmpeg\'s threads were seen');
    const cpu = r.enforcement.applied.find((e) => e.resource === 'cpu')!;
    if (cpusetCgroup) {
      assert.match(cpu.detail, `cpuset.cpus = ${core[0]}`);
      assert.equal([...seen.allowed], [String(core[0])], `${seen.threads} threads may run only on core ${core[0]}`);
      assert.equal([...seen.ran_on], [core[0]], `${seen.threads} threads ran only on core ${core[0]}`);
      assert.ok(r.pinned, 'the run says it stayed on its cores');
      assert.not.ok(existsSync(taskDir(cpusetCgroup, id)), 'task cpuset removed');
    } else {
      // Affinity alone: what the run saw is what it says.
      assert.match(cpu.detail, 'taskset');
      assert.is(r.pinned, [...seen.allowed].every((a) => a === String(core[0])) && [...seen.ran_on].every((c) => c === core[0]));
    }
  });
}

test('GPUs are hidden where the node has some, and on a node without GPUs detection says there is nothing to restrict', () => {
  const gpu = describeEnforcement(plan).find((e) => e.resource === 'gpu')!;
  if (nvidiaGpus > 0) assert.equal([gpu.mode, plan.gpu.kind], ['enforced', 'visible-devices']);
  else assert.equal(gpu, { resource: 'gpu', mode: 'accounted-only', detail: 'no GPU on this node (nvidia-smi lists none)' });
  assert.equal(describeEnforcement(plan)[0], { resource: 'cpu', mode: 'enforced', detail: describeEnforcement(plan)[0].detail });
});

// ── memory ───────────────────────────────────────────────────────────────────────────────

test('an encode with a generous reservation runs in its own memory cgroup at the reservation plus headroom, and the cgroup is gone afterwards', async () => {
  const id = 'roomy';
  const limitFile = memoryCgroup && path.join(taskDir(memoryCgroup, id), memoryCgroup.version === 1 ? 'memory.limit_in_bytes' : 'memory.max');
  const w = watch(id, () => (limitFile ? [limitFile] : []));
  const r = await runner.run(job(id, x264('medium'), testsrc(3)));
  w.stop();
  const seen = w.seen();
  assert.ok(seen, 'ffmpeg was seen running');
  assert.ok(existsSync(r.output_path));
  const memory = r.enforcement.applied.find((e) => e.resource === 'memory')!;
  assert.is(memory.mode, 'enforced');
  assert.equal(r.enforcement.shortfalls, []);
  if (memoryCgroup) {
    assert.is(cgroupOf(seen.cgroup, memoryCgroup.version === 1 ? 'memory' : ''), `/prescient-${NODE}/task-${id}`);
    assert.is(Number(seen.files[limitFile!]), 2 ** 30 + 32 * MIB);
    assert.not.ok(existsSync(taskDir(memoryCgroup, id)), 'task cgroup removed');
  } else {
    // The backstop: ffmpeg's own data limit, four times the reservation plus the headroom.
    assert.match(seen.limits, new RegExp(`Max data size\\s+${4 * 2 ** 30 + 32 * MIB}\\s`));
  }
});

test('an encode that outgrows a 40 MB reservation is stopped, fails saying it exceeded that reservation, and leaves no .part file or cgroup', async () => {
  const id = 'cramped';
  const e = await rejection(runner.run(job(id, x264('medium'), testsrc(2, '1920x1080'), { memory_gb: 0.04 })));
  if (plan.memory.kind === 'none') {
    return assert.unreachable(`memory is not enforced here (${plan.memory.why}), so the encode should have succeeded: ${e.message}`);
  }
  assert.match(e.message, 'encode exceeded its memory reservation of 0.04 GB');
  assert.match(e.message, plan.memory.kind === 'cgroup' ? /OOM killer stopped ffmpeg at its cgroup v[12] memory limit of 73 MiB/ : /RLIMIT_DATA/);
  assert.equal(partFiles(id), []);
  if (memoryCgroup) assert.not.ok(existsSync(taskDir(memoryCgroup, id)), 'task cgroup removed');
});

test('with only the RLIMIT_DATA backstop, an encode that outgrows its reservation fails naming the reservation too', async () => {
  const rlimit: EnforcementPlan = { ...plan, memory: { kind: 'rlimit', why_not_cgroup: 'no memory cgroup in this test' } };
  const e = await rejection(runner.run(job('backstop', x264('medium'), testsrc(2, '1920x1080'), { memory_gb: 0.04, enforcement: rlimit })));
  assert.match(e.message, 'encode exceeded its memory reservation of 0.04 GB: ffmpeg was refused an allocation by its RLIMIT_DATA of 196 MiB');
  assert.equal(partFiles('backstop'), []);
});

test('an encode whose memory cgroup cannot be created still runs, and its result says memory was not enforced as planned', async () => {
  const missing = path.join(dir, 'no-such-cgroup-hierarchy');
  const broken: EnforcementPlan = { ...plan, memory: { kind: 'cgroup', cgroup: { version: 1, mount: missing, dir: path.join(missing, `prescient-${NODE}`) } } };
  const r = await runner.run(job('uncaged', x264(), testsrc(1), { enforcement: broken }));
  assert.ok(existsSync(r.output_path));
  assert.is(r.enforcement.shortfalls.length, 1);
  assert.match(r.enforcement.shortfalls[0], /^memory not enforced as planned: its memory cgroup could not be set up \(ENOENT/);
  assert.match(r.enforcement.applied.find((e) => e.resource === 'memory')!.detail, 'RLIMIT_DATA');
});

test('a cancelled encode leaves no ffmpeg, no .part file and no cgroup behind', async () => {
  const id = 'cancelled';
  const abort = new AbortController();
  const w = watch(id);
  const run = runner.run(job(id, x264('veryslow'), testsrc(120, '640x360')), { signal: abort.signal });
  await waitFor('ffmpeg to start', () => w.seen(), 20_000, 20);
  abort.abort();
  const e = await rejection(run);
  w.stop();
  assert.instance(e, EncodeAbortedError);
  assert.equal(partFiles(id), []);
  assert.not.ok(existsSync(`/proc/${w.seen()!.pid}/cmdline`) && readFileSync(`/proc/${w.seen()!.pid}/cmdline`, 'utf8').includes(id), 'ffmpeg is gone');
  if (memoryCgroup) {
    assert.is(cgroupOf(w.seen()!.cgroup, memoryCgroup.version === 1 ? 'memory' : ''), `/prescient-${NODE}/task-${id}`);
    assert.not.ok(existsSync(taskDir(memoryCgroup, id)), 'task cgroup removed');
  }
  if (blkioCgroup) assert.not.ok(existsSync(taskDir(blkioCgroup, id)), 'I/O task cgroup removed');
});

test('stale task cgroups of a crashed agent are removed when it starts again, and one with a live process in it is left alone', async () => {
  if (!memoryCgroup) return assert.ok(plan.memory.kind !== 'cgroup', 'no memory cgroup here, so none can be stale');
  const node = `enftest-stale-${process.pid}`;
  const nodeDir = path.join(memoryCgroup.mount, `prescient-${node}`);
  mkdirSync(nodeDir);
  if (memoryCgroup.version === 2) writeFileSync(path.join(nodeDir, 'cgroup.subtree_control'), '+memory');
  mkdirSync(path.join(nodeDir, 'task-stale'));
  mkdirSync(path.join(nodeDir, 'task-live'));
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
  const gone = new Promise((r) => sleeper.once('close', r));
  writeFileSync(path.join(nodeDir, 'task-live', 'cgroup.procs'), String(sleeper.pid));
  let again: EnforcementPlan | undefined;
  try {
    const seen: string[] = [];
    again = await detectEnforcement({ node_id: node, gpu_count: 0, output_dir: dir, accounted_only: ['bandwidth'], log: (m) => seen.push(m) });
    assert.not.ok(existsSync(path.join(nodeDir, 'task-stale')), 'stale cgroup removed');
    assert.ok(existsSync(path.join(nodeDir, 'task-live')), 'occupied cgroup kept');
    assert.ok(seen.some((m) => m.includes('removed 1 stale task cgroup')), seen.join('\n'));
    assert.ok(seen.some((m) => m.includes('still in use') && m.includes('task-live')), seen.join('\n'));
  } finally {
    sleeper.kill('SIGKILL');
    await gone;
    if (again) await releaseEnforcement(again);
  }
  assert.not.ok(existsSync(nodeDir), 'the node directory goes once nothing runs in it');
});

// ── bandwidth and GPUs ───────────────────────────────────────────────────────────────────

test('an encode reading an uncached input file is held to its reserved bandwidth', async () => {
  const id = 'throttled';
  const input = path.join(dir, 'raw.nut');
  const made = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25', '-t', '2', '-c:v', 'rawvideo', '-f', 'nut', input]);
  assert.is(made.status, 0, String(made.stderr));
  const fd = openSync(input, 'r+');
  fsyncSync(fd);
  closeSync(fd);
  const bytes = statSync(input).size;
  const mbps = 24; // 3 MB/s: the ~5.8 MB input takes about 2 s to read, against well under 0.5 s unthrottled
  const readFile = blkioCgroup && path.join(taskDir(blkioCgroup, id), blkioCgroup.version === 1 ? 'blkio.throttle.read_bps_device' : 'io.max');
  const w = watch(id, () => (readFile ? [readFile] : []));
  // Drops the file's clean pages from the page cache, so ffmpeg's reads reach the disk.
  assert.is(spawnSync('dd', [`if=${input}`, 'iflag=nocache', 'count=0', 'status=none']).status, 0);
  const r = await runner.run(job(id, x264(), { path: input }, { bandwidth_mbps: mbps }));
  w.stop();
  const bandwidth = r.enforcement.applied.find((e) => e.resource === 'bandwidth')!;
  if (!blkioCgroup) {
    assert.is(bandwidth.mode, 'accounted-only');
    return assert.ok(bandwidth.detail.length > 10, bandwidth.detail);
  }
  assert.is(bandwidth.mode, 'enforced');
  assert.match(bandwidth.detail, `on disk ${disk}`);
  const seen = w.seen()!;
  assert.is(cgroupOf(seen.cgroup, blkioCgroup.version === 1 ? 'blkio' : ''), `/prescient-${NODE}/task-${id}`);
  assert.match(seen.files[readFile!], `${disk} ${blkioCgroup.version === 1 ? '' : 'rbps='}3000000`);
  const floor = (bytes / 3e6) * 0.7;
  assert.ok(r.actual.duration_s >= floor, `read ${bytes} bytes in ${r.actual.duration_s.toFixed(2)} s, faster than ${mbps} Mbit/s allows (${floor.toFixed(2)} s)`);
  assert.not.ok(existsSync(taskDir(blkioCgroup, id)), 'task cgroup removed');
});

test('ffmpeg\'s environment shows it only the GPUs reserved for it, in nvidia-smi\'s order', async () => {
  const id = 'gpu-view';
  const w = watch(id);
  const visible: EnforcementPlan = { ...plan, gpu: { kind: 'visible-devices' } };
  // libx264 never opens a GPU; what is checked is the environment ffmpeg was given.
  const r = await runner.run(job(id, x264('medium'), testsrc(3), { enforcement: visible }));
  w.stop();
  const env = w.seen()!.environ;
  assert.ok(env.includes('CUDA_VISIBLE_DEVICES='), env.filter((v) => v.startsWith('CUDA')).join(' '));
  assert.ok(env.includes('CUDA_DEVICE_ORDER=PCI_BUS_ID'));
  assert.equal(r.enforcement.applied.find((e) => e.resource === 'gpu'), { resource: 'gpu', mode: 'enforced', detail: 'CUDA_VISIBLE_DEVICES= (no GPU reserved: none visible)' });
});

// ── the agent ────────────────────────────────────────────────────────────────────────────

test('an agent registers what it enforces with the leader, and removes its cgroup directories when it stops', async () => {
  const s = await startStack('enforce');
  const node = `enftest-agent-${process.pid}`;
  try {
    const c = await coordinator(s, 'c1');
    const a = await agent(s, node, String(core[0]));
    try {
      assert.equal(a.enforcement.map((e) => e.resource), ['cpu', 'memory', 'gpu', 'bandwidth']);
      assert.is(a.enforcement[1].mode, plan.memory.kind === 'none' ? 'accounted-only' : 'enforced');
      const registered = await waitFor('the node in the leader\'s ledger', () => c.leader()?.ledger.snapshot().nodes.find((n) => n.capacity.node_id === node), 30_000);
      assert.equal(registered.capacity.enforcement, a.enforcement);
      if (memoryCgroup) assert.ok(existsSync(path.join(memoryCgroup.mount, `prescient-${node}`)));
    } finally {
      await a.stop();
      await c.stop();
    }
    if (memoryCgroup) assert.not.ok(existsSync(path.join(memoryCgroup.mount, `prescient-${node}`)), 'node cgroup removed at stop');
  } finally {
    await s.down();
  }
});

test.run();
