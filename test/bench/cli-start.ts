/**
 * The CLI starts fast (issue 15): CPU (user + system) of one `prescient` process from start to
 * exit, the median of RUNS runs, for `--help` (target < 300 ms), `submit` of one job to a real
 * local stack without --wait (< 300 ms) and `status` of that job (< 400 ms). A leader runs in
 * this process so the job has a record for `status` to read (queued: there are no agents). The
 * job's input is synthetic: its complexity probe (an ffmpeg process of its own, never counted)
 * runs in the warm-up, and the runs measured find it in the state directory's probe cache.
 *
 * Each CLI process is spawned with helpers/cpu-at-exit.ts preloaded, which writes its own
 * `process.cpuUsage()` as it exits.
 *
 *   node dist/test/bench/cli-start.js      prints the figures as JSON
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import YAML from 'yaml';
import { JetStreamTaskStore } from '../../coordinator/bus/index.js';
import { CLI, coordinator, smallJob, startStack, waitFor } from '../helpers/cluster.js';
import { quantile } from '../helpers/bench-cluster.js';

const RUNS = 5;
const PRELOAD = new URL('../helpers/cpu-at-exit.js', import.meta.url).href;

interface CliRun { code: number | null; stdout: string; stderr: string; cpu_ms: number }

/** Runs `prescient ARGS` to completion and reads the CPU it spent. */
async function cliCpu(stateDir: string, args: string[]): Promise<CliRun> {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'prescient-cpu-'));
  const file = path.join(scratch, 'cpu.json');
  try {
    const r = await new Promise<Omit<CliRun, 'cpu_ms'>>((resolve) => {
      const p = spawn(process.execPath, ['--import', PRELOAD, CLI, '--state-dir', stateDir, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PRESCIENT_CPU_FILE: file },
      });
      let stdout = '', stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      p.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    const u = JSON.parse(readFileSync(file, 'utf8')) as { user_us: number; system_us: number };
    return { ...r, cpu_ms: (u.user_us + u.system_us) / 1000 };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** One warm-up run (file cache), then the median CPU of RUNS; each run must succeed. */
async function median(stateDir: string, args: () => string[]): Promise<number> {
  const cpu: number[] = [];
  for (let i = 0; i <= RUNS; i++) {
    const r = await cliCpu(stateDir, args());
    if (r.code !== 0) throw new Error(`prescient ${args().join(' ')} exited ${r.code}: ${r.stderr}`);
    if (i > 0) cpu.push(r.cpu_ms);
  }
  return quantile(cpu, 0.5);
}

const verdict = (ms: number, target: number) => `${ms.toFixed(0)} ms (target < ${target} ms: ${ms < target ? 'met' : 'MISSED'})`;

export async function benchCliStart(): Promise<Record<string, number | string>> {
  const s = await startStack('cli-start');
  const leader = await coordinator(s, 'cli-start-leader');
  try {
    const job = path.join(s.dir, 'job.yaml');
    writeFileSync(job, YAML.stringify(smallJob()));
    const help = await median(s.dir, () => ['--help']);
    const submit = await median(s.dir, () => ['submit', job, '--json']);
    const r = await cliCpu(s.dir, ['submit', job, '--json']);
    const id = (JSON.parse(r.stdout) as { jobs: string[] }).jobs[0];
    const tasks = await JetStreamTaskStore.open(s.nc.jetstream());
    await waitFor(`the leader to record job ${id}`, () => tasks.get(id));
    const status = await median(s.dir, () => ['status', id]);
    return {
      'CPU, user + system': `median of ${RUNS} runs after one warm-up`,
      'prescient --help': verdict(help, 300),
      'prescient submit (1 job, no --wait)': verdict(submit, 300),
      'prescient status (a queued job)': verdict(status, 400),
    };
  } finally {
    await leader.stop();
    await s.down();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) console.log(JSON.stringify(await benchCliStart(), null, 2));
