/**
 * `npm run bench`: speed and overhead figures with the machine they were measured on. These
 * machines are shared and noisy, so each benchmark compares within one run where it can.
 */
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { benchSampling } from './sampling.js';
import { benchIngest } from './ingest.js';
import { benchModel } from './model.js';
import { benchPacking } from './packing.js';
import { benchSubmitLatency } from './submit-latency.js';
import { benchPlacement } from './placement.js';
import { benchBurst } from './burst.js';
import { benchAccuracy } from './accuracy.js';
import { benchCliStart } from './cli-start.js';
import { benchPoison } from './poison.js';
import { benchFailover } from './failover.js';
import { benchPlan } from './plan.js';

function machine(): Record<string, string | number> {
  const ffmpeg = (() => { try { return /ffmpeg version (\S+)/.exec(execFileSync('ffmpeg', ['-version'], { encoding: 'utf8' }))?.[1] ?? '?'; } catch { return 'absent'; } })();
  return {
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown', cores: os.availableParallelism(), memory_gb: +(os.totalmem() / 1024 ** 3).toFixed(1),
    kernel: os.release(), node: process.version, ffmpeg, load_avg_1m: +os.loadavg()[0].toFixed(2),
  };
}

const only = process.argv.slice(2);
const benches: Record<string, () => Promise<Record<string, number | string>>> = {
  'sampling overhead (issue 3: < 1% of one core at 1 Hz, 8 concurrent encodes)': benchSampling,
  'telemetry ingestion (issue 3: >= 200,000 rows/s into local QuestDB)': benchIngest,
  'prediction model (issue 4: one < 20 µs, 10,000 < 50 ms, 100,000 rows trained < 2 min)': benchModel,
  'packing (issues 5, 15: predictive vs Ray, one core per job and fixed slots on real encodes; makespan <= 0.9x Ray with 0 memory overruns, <= 0.9x one-core, <= 0.85x fixed-slots; reservation held <= 1.1x the encode; QuestDB < 5 % and agent < 2 % of a core)': benchPacking,
  'submit to placed (issue 16: ≥ 5,000 jobs/s on one leader core, p99 < 50 ms and steady p50 < 3 ms at 1,000/s, ≥ 2× Ray)': benchSubmitLatency,
  'placement (issue 5: >= 20,000 decisions/s on one core, p99 < 1 ms, 10,000 nodes)': benchPlacement,
  'burst decision (issue 7: decide() far below its 5 s tick with 2,000 queued jobs, forecast off and on)': benchBurst,
  'accuracy (issue 14: on held-out sources, duration and memory MAPE at or below the best peer; 95 % bound covers >= 93 % with slack < 30 %; demo batch inside its memory bound)': benchAccuracy,
  'poison (issue 17: 1,000 poison submissions, then a valid job placed within 1 s of them clearing; leader RSS back within 10 %)': benchPoison,
  'failover (issue 17: a standby leading and placing within 10 s of kill -9 of the leader, 10 runs)': benchFailover,
  'fleet plan (issue 19: 500 mixed nodes simulated with the real core; predictive ≥ 1.25× the best fixed-slot throughput, ≥ 0.9× oracle, ≤ 1 % of jobs over memory; 1,000,000 jobs at 1,000 nodes < 60 s)': benchPlan,
  'cli-start (issue 15: CPU to start and finish `prescient --help` and `submit` < 300 ms, `status` < 400 ms)': benchCliStart,
};

console.log('machine:', JSON.stringify(machine()));
let failed = false;
for (const [name, run] of Object.entries(benches)) {
  if (only.length && !only.some((o) => name.includes(o))) continue;
  const started = Date.now();
  try {
    const figures = await run();
    console.log(`\n${name}  [${((Date.now() - started) / 1000).toFixed(1)} s]`);
    for (const [k, v] of Object.entries(figures)) console.log(`  ${k.padEnd(36)} ${typeof v === 'number' ? +v.toFixed(4) : v}`);
  } catch (e) {
    failed = true;
    console.log(`\n${name}: FAILED ${(e as Error).stack ?? e}`);
  }
}
process.exit(failed ? 1 : 0);
