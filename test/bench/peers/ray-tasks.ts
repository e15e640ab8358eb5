/**
 * Ray's task and actor scheduling rates on this machine (issue 16's peer for "submit to
 * placed"): peers/ray_tasks.py on a local `ray.init(num_cpus=2)`, so the leader's placement rate
 * can be printed beside Ray's as a ratio. Three measures, each after an unmeasured warm-up:
 * - burst: `tasks` no-op tasks with Ray's default `num_cpus=1` (at most two run at once, as in
 *   the issue's "3,000 tasks ... num_cpus=1") submitted at once; rate = tasks ÷ (last start −
 *   first submission), latency = a task's start − its submission;
 * - paced: the same tasks submitted at `ratePerS`; the rate achieved and the latency, the
 *   steady state's (second half) on its own;
 * - actors: `actors` zero-CPU actors created, each pinged once; actors/s until the last ping is
 *   answered, and creation → first ping.
 *
 * Needs the bench venv (peers/venv.ts) with `ray`; where it cannot be had, resolves to why.
 * Ray's daemons and workers outlive its driver by seconds: this resolves only once every process
 * of the run is gone (killed after 30 s), so whatever is measured next runs on a quiet machine.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchPython, runCommand } from './venv.js';

/** In the source tree: the compiled module sits in dist/, the script is not compiled. */
const SCRIPT = path.join(fileURLToPath(new URL('../../../../', import.meta.url)), 'test/bench/peers/ray_tasks.py');
/** Ray's CPUs: the machine's two cores, as the packing bench gives it. */
const RAY_CPUS = 2;
/** Init, warm-up, 2 × 3,000 tasks and 100 actors take about a minute here; shutdown a few seconds. */
const TIMEOUT_MS = 300_000;
/** The environment variable that marks every process of one run (Ray's workers retitle themselves, hiding their command line). */
const MARK = 'PRESCIENT_RAY_TASKS_RUN';

export interface LatencyMs { p50: number; p99: number; max: number }

/** As ray_tasks.py reports them: rates per second, spans in seconds, latencies in ms. */
export interface RayTaskRates {
  ray_version: string;
  num_cpus: number;
  /** ray.init's own time. */
  init_s: number;
  burst: { tasks: number; rate_per_s: number; span_s: number; submit_s: number; all_results_s: number; latency_ms: LatencyMs };
  paced: { tasks: number; target_rate_per_s: number; submit_rate_per_s: number; rate_per_s: number; span_s: number; latency_ms: LatencyMs; steady_p50_ms: number };
  actors: { actors: number; rate_per_s: number; span_s: number; latency_ms: LatencyMs };
  /** The script's, from before ray.init to before shutdown. */
  wall_s: number;
}

type Shape = { [k: string]: 'number' | 'string' | Shape };
const LATENCY: Shape = { p50: 'number', p99: 'number', max: 'number' };
const SHAPE: Shape = {
  ray_version: 'string', num_cpus: 'number', init_s: 'number', wall_s: 'number',
  burst: { tasks: 'number', rate_per_s: 'number', span_s: 'number', submit_s: 'number', all_results_s: 'number', latency_ms: LATENCY },
  paced: { tasks: 'number', target_rate_per_s: 'number', submit_rate_per_s: 'number', rate_per_s: 'number', span_s: 'number', latency_ms: LATENCY, steady_p50_ms: 'number' },
  actors: { actors: 'number', rate_per_s: 'number', span_s: 'number', latency_ms: LATENCY },
};

/** `v`'s fields named in `shape` (and only those), or throws naming the first that is missing or not finite. */
function pick(v: unknown, shape: Shape, at = 'out'): Record<string, unknown> {
  if (typeof v !== 'object' || v === null) throw new Error(`${at} is not an object`);
  const o = v as Record<string, unknown>;
  return Object.fromEntries(Object.entries(shape).map(([k, want]) => {
    const x = o[k];
    if (typeof want === 'object') return [k, pick(x, want, `${at}.${k}`)];
    if (want === 'number' ? typeof x !== 'number' || !Number.isFinite(x) : typeof x !== 'string') throw new Error(`${at}.${k} is ${JSON.stringify(x)}, not a ${want === 'number' ? 'finite number' : want}`);
    return [k, x];
  }));
}

/** The pids whose environment carries this run's mark, or whose command line names its directory (Ray's daemons). */
function runPids(dir: string): number[] {
  const mark = `${MARK}=${dir}`;
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid).map(Number).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(mark) || readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir);
    } catch { return false; } // gone, or not ours to read
  });
}

/** Waits up to 30 s for the run's processes to exit, then SIGKILLs what is left (by pid); resolves to how many it killed. */
async function reap(dir: string): Promise<number> {
  const until = Date.now() + 30_000;
  let left = runPids(dir);
  while (left.length && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 250));
    left = runPids(dir);
  }
  for (const pid of left) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  // A killed process is gone once reaped by its parent (or init): give it a moment.
  for (let i = 0; i < 20 && left.length && runPids(dir).length; i++) await new Promise((r) => setTimeout(r, 100));
  return left.length;
}

/**
 * Ray's rates for `tasks` tasks (default 3,000) as fast as it takes them and at `ratePerS`
 * (default 1,000/s), and for `actors` actors (default 100); or why there are none.
 */
export async function rayTaskRates(opts: { tasks?: number; ratePerS?: number; actors?: number; log?: (m: string) => void } = {}): Promise<RayTaskRates | { skipped: string }> {
  const { tasks = 3000, ratePerS = 1000, actors = 100, log = () => undefined } = opts;
  const py = await benchPython(['ray'], log);
  if ('skipped' in py) return { skipped: py.skipped };
  // A short path: Ray's socket paths, under its temp dir, must stay within 107 characters.
  const dir = mkdtempSync(path.join(os.tmpdir().length <= 30 ? os.tmpdir() : '/tmp', 'prt-'));
  try {
    const inFile = path.join(dir, 'in.json'), outFile = path.join(dir, 'out.json');
    writeFileSync(inFile, JSON.stringify({ num_cpus: RAY_CPUS, tasks, rate_per_s: ratePerS, actors, temp_dir: path.join(dir, 'ray') }));
    log(`ray: ${tasks} tasks at once and at ${ratePerS}/s, ${actors} actors`);
    const res = await runCommand(py.python, [SCRIPT, inFile, outFile], TIMEOUT_MS, { ...process.env, [MARK]: dir });
    const killed = await reap(dir);
    if (killed) log(`ray: killed ${killed} process(es) left 30 s after the run`);
    if (!res.ok) return { skipped: `peers/ray_tasks.py failed (${res.out})` };
    try {
      return pick(JSON.parse(readFileSync(outFile, 'utf8')), SHAPE) as unknown as RayTaskRates;
    } catch (e) {
      return { skipped: `peers/ray_tasks.py wrote no usable result (${(e as Error).message})` };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
