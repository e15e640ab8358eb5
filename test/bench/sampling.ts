/**
 * What sampling costs this process: 8 real ffmpeg encodes, real-time paced (-re) and niced so
 * they run through the whole measurement and leave the CPU to it, spread over the cores this
 * process may use; then this process's CPU time over windows with nothing to do, alternating with
 * equal windows with one Sampler per encode at 1 Hz. The difference of the medians is the
 * samplers' cost.
 *
 *   node dist/test/bench/sampling.js      prints the figures as JSON
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { parseCpuList } from '../../shared/index.js';
import { ffmpegPath } from '../../node-agent/ffmpeg/index.js';
import { Sampler } from '../../node-agent/sampling/index.js';

const ENCODES = 8;
const WINDOW_MS = 10_000;
/** Idle and sampling windows alternate this many times; medians shrug off a one-off GC in one of them. */
const ROUNDS = 3;
const INTERVAL_MS = 1000;

export async function benchSampling(): Promise<Record<string, number | string>> {
  const cores = parseCpuList(/^Cpus_allowed_list:\s*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
  const encodes: { child: ChildProcess; core: number }[] = [];
  try {
    for (let i = 0; i < ENCODES; i++) {
      const core = cores[i % cores.length];
      const child = spawn('setpriv', [
        '--pdeathsig', 'KILL', '--', 'nice', '-n', '19', 'taskset', '-c', String(core), ffmpegPath(),
        '-hide_banner', '-nostdin', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25',
        '-t', String(((2 * ROUNDS + 2) * WINDOW_MS) / 1000), '-c:v', 'libx264', '-preset', 'veryfast', '-threads', '1', '-f', 'null', '-',
      ], { stdio: 'ignore' });
      encodes.push({ child, core });
    }
    // Past setpriv, nice and taskset and encoding; and past this process's start-up work (V8 runs
    // a memory-reducing GC of some 40 ms several seconds after start).
    await sleep(WINDOW_MS);
    const dead = encodes.filter((e) => e.child.exitCode !== null || e.child.signalCode !== null);
    if (dead.length) throw new Error(`${dead.length} of the ffmpeg encodes exited early; is ${ffmpegPath()} working?`);

    const idle: number[] = [], busy: number[] = [], cpuMeans: number[] = [];
    let samples = 0, offCores = 0;
    for (let round = 0; round < ROUNDS; round++) {
      idle.push(await cpuOver(WINDOW_MS));
      const samplers = encodes.map(({ child, core }) => {
        const s = new Sampler();
        s.start(child.pid!, {
          core_ids: [core], gpu_ids: [], interval_ms: INTERVAL_MS,
          onSample: (x) => { samples++; if (!x.on_reserved_cores) offCores++; },
        });
        return s;
      });
      busy.push(await cpuOver(WINDOW_MS));
      cpuMeans.push(...samplers.map((s) => s.stop().cpu_cores_mean));
    }
    const costUs = median(busy) - median(idle);
    const samplesPerWindow = samples / ROUNDS;
    return {
      encodes: ENCODES,
      interval_ms: INTERVAL_MS,
      window_ms: WINDOW_MS,
      rounds: ROUNDS,
      samples,
      samples_off_cores: offCores,
      mean_encode_cpu_cores: round(cpuMeans.reduce((a, b) => a + b, 0) / cpuMeans.length, 3),
      idle_cpu_ms: idle.map((us) => round(us / 1000, 1)).join(' '),
      sampling_cpu_ms: busy.map((us) => round(us / 1000, 1)).join(' '),
      sampler_cost_percent_of_one_core: round((costUs / (WINDOW_MS * 1000)) * 100, 3),
      sampler_cost_us_per_sample: round(costUs / Math.max(1, samplesPerWindow), 1),
    };
  } finally {
    for (const { child } of encodes) child.kill('SIGKILL');
  }
}

/** This process's CPU time (user + system, all threads) in µs over `ms` of waiting. */
async function cpuOver(ms: number): Promise<number> {
  const cpu0 = process.cpuUsage();
  await sleep(ms);
  const cpu = process.cpuUsage(cpu0);
  return cpu.user + cpu.system;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function round(x: number, digits: number): number {
  return Number(x.toFixed(digits));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchSampling(), null, 2));
}
