/**
 * How long one burst decision takes (issue 7): the controller decides every tick (default 5 s) on
 * the leader, so `decide()` must stay far below that with a long queue. A 50-node fleet busy with
 * running work, 2,000 queued jobs of mixed sizes and classes that are late (so the launch search
 * replays the queue once per type and count it tries), with the forecast off and then on (3,000
 * arrivals in the last 15 minutes: 1,000 more jobs replayed). Seeded: both runs decide alike.
 */
import { performance } from 'node:perf_hooks';
import { Ledger } from '../../coordinator/ledger/index.js';
import { decide, type BurstInputs, type BurstPolicy, type InstanceType } from '../../coordinator/burst/index.js';
import { SLA_CLASSES, type EncodingTask, type NodeCapacity } from '../../shared/index.js';
import { seededRandom } from '../../models/index.js';

const NOW = Date.UTC(2026, 11, 1, 12);
const MIN = 60_000;
const ROUNDS = 7;

const CATALOGUE: InstanceType[] = [
  { name: 'c-8', vcpus: 8, memory_gb: 16, gpus: 0, bandwidth_mbps: 12_500, price_per_hour: 0.34, spot_price_per_hour: 0.13 },
  { name: 'c-16', vcpus: 16, memory_gb: 32, gpus: 0, bandwidth_mbps: 12_500, price_per_hour: 0.68 },
  { name: 'c-32', vcpus: 32, memory_gb: 64, gpus: 0, bandwidth_mbps: 25_000, price_per_hour: 1.36 },
];

function job(r: () => number, id: string, at: number): EncodingTask {
  const cores = [1, 2, 4, 8][Math.floor(r() * 4)], seconds = 60 + Math.floor(r() * 1200);
  const usage = (d: number) => ({ cpu_cores: cores, gpu_percent: 0, memory_gb: cores / 2, bandwidth_mbps: 20, duration_s: d });
  return {
    id, state: 'queued', submitted_at: at, updated_at: at, term: 1, attempts: 0,
    schema: {
      input: { kind: 'synthetic', source: 'testsrc2', noise: 0, resolution: { width: 1920, height: 1080 }, fps: 25, duration_s: 60 },
      output: { codec: 'h264', encoder: 'libx264', preset: 'medium', rate_control: { mode: 'crf', crf: 23 }, passes: 1 },
      priority: SLA_CLASSES[Math.floor(r() * 3)], submitter: `user-${Math.floor(r() * 20)}`,
    } as EncodingTask['schema'],
    predicted: { model_version: 'bench', expected: usage(seconds), upper: usage(seconds * 1.3) },
  };
}

export async function benchBurst(): Promise<Record<string, number | string>> {
  const r = seededRandom(7);
  const nodes: NodeCapacity[] = Array.from({ length: 50 }, (_, i) => ({
    node_id: `n${i}`, address: `10.0.0.${i}:7000`, cpu_model: 'bench', memory_gb: 64, bandwidth_mbps: 10_000, gpus: [], core_ids: Array.from({ length: 16 }, (_, c) => c),
  }));
  const ledger = new Ledger(1, 3_600_000);
  for (const n of nodes) ledger.upsertNode(n, NOW - MIN);
  // Each node busy with two 8-core encodes for up to 20 more minutes.
  const running: EncodingTask[] = nodes.flatMap((n, i) => [0, 1].map((k) => {
    const t = job(r, `run-${i}-${k}`, NOW - 10 * MIN);
    t.state = 'running';
    t.started_at = NOW - Math.floor(r() * 10) * MIN;
    t.allocation = { node_id: n.node_id, core_ids: Array.from({ length: 8 }, (_, c) => c + 8 * k), gpu_ids: [], memory_gb: 4, bandwidth_mbps: 20, lease_expires_at: NOW + 3_600_000, term: 1 };
    ledger.adopt(t.id, t.allocation, NOW - MIN);
    return t;
  }));
  const queued = Array.from({ length: 2000 }, (_, i) => job(r, `q-${i}`, NOW - Math.floor(r() * 30) * MIN));
  const arrivals = Array.from({ length: 3000 }, (_, i) => job(r, `a-${i}`, NOW - 15 * MIN + ((i + 1) * 15 * MIN) / 3000));
  const policy: BurstPolicy = {
    catalogue: CATALOGUE, max_instances: 40, budget_per_hour: 50, spot: true, cooldown_ms: 2 * MIN, idle_period_ms: 10 * MIN, join_timeout_ms: 5 * MIN,
    max_wait_ms: { premium: MIN, standard: 10 * MIN, batch: 60 * MIN },
  };
  const inputs = (forecast: boolean): BurstInputs => ({
    now: NOW, tasks: [...running, ...queued], snap: ledger.snapshot(), instances: [],
    policy: forecast ? { ...policy, forecast: { window_ms: 15 * MIN, horizon_ms: 5 * MIN } } : policy, arrivals,
  });
  const time = (forecast: boolean) => {
    const ms: number[] = [];
    let last;
    for (let k = 0; k < ROUNDS; k++) {
      const i = inputs(forecast);
      const t0 = performance.now();
      last = decide(i);
      ms.push(performance.now() - t0);
    }
    ms.sort((a, b) => a - b);
    return { median: ms[Math.floor(ms.length / 2)], d: last! };
  };
  time(false); // warm-up
  const off = time(false), on = time(true);
  const what = (d: typeof off.d) => (d.launch ? `${d.launch.count} × ${d.launch.instance_type.name}` : 'none');
  return {
    'queued / running / nodes': `${queued.length} / ${running.length} / ${nodes.length}`,
    'decide, forecast off (median ms)': off.median,
    'decide, forecast on (median ms)': on.median,
    'forecast jobs replayed': on.d.inputs.forecast_jobs,
    'ratio on / off': on.median / off.median,
    'launch, forecast off': what(off.d),
    'launch, forecast on': what(on.d),
    'share of a 5 s tick, forecast on': on.median / 5000,
  };
}
