/** Cloud burst decisions (coordinator/burst/decide.ts), its configuration and the burst node's user data. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, type EncodingTask, type NodeCapacity, type SlaClass } from '../../shared/index.js';
import { Ledger } from '../../coordinator/ledger/index.js';
import { estimateStarts, orderQueue } from '../../coordinator/queue/index.js';
import {
  ProviderError, decide, forecastArrivals, validateBurstConfig, verifyProvider,
  type BurstInputs, type BurstInstance, type BurstPolicy, type CloudProvider, type InstanceType,
} from '../../coordinator/burst/index.js';

const NOW = Date.UTC(2026, 10, 25, 12);
const MIN = 60_000;

const SMALL: InstanceType = { name: 'c-small', vcpus: 8, memory_gb: 16, gpus: 0, bandwidth_mbps: 10_000, price_per_hour: 0.34, spot_price_per_hour: 0.12 };
const LARGE: InstanceType = { name: 'c-large', vcpus: 16, memory_gb: 32, gpus: 0, bandwidth_mbps: 10_000, price_per_hour: 0.70 };
const GPU: InstanceType = { name: 'g-gpu', vcpus: 8, memory_gb: 32, gpus: 1, gpu_model: 'Tesla T4', bandwidth_mbps: 10_000, price_per_hour: 1.2 };

const POLICY: BurstPolicy = {
  catalogue: [GPU, LARGE, SMALL], max_instances: 5, budget_per_hour: 5, spot: false,
  cooldown_ms: 2 * MIN, idle_period_ms: 10 * MIN, join_timeout_ms: 5 * MIN,
  max_wait_ms: { premium: 1 * MIN, standard: 10 * MIN, batch: 60 * MIN },
};

const cap = (id: string, cores: number, memory_gb = 8): NodeCapacity => ({
  node_id: id, address: `${id}:1`, cpu_model: 'test', memory_gb, bandwidth_mbps: 1000, gpus: [], core_ids: Array.from({ length: cores }, (_, i) => i),
});

let seq = 0;
function task(o: { cls?: SlaClass; cores?: number; memory_gb?: number; seconds?: number; deadline?: number; at?: number; running_on?: { node: string; cores: number[] } } = {}): EncodingTask {
  const s = o.seconds ?? 600, cores = o.cores ?? 2, mem = o.memory_gb ?? 1;
  const usage = (d: number) => ({ cpu_cores: cores, gpu_percent: 0, memory_gb: mem, bandwidth_mbps: 10, duration_s: d });
  const t: EncodingTask = {
    id: `t${String(seq++).padStart(4, '0')}`,
    schema: {
      input: { kind: 'synthetic', source: 'testsrc2', noise: 0, resolution: { width: 1920, height: 1080 }, fps: 25, duration_s: 60 },
      output: { codec: 'h264', encoder: 'libx264', preset: 'medium', rate_control: { mode: 'crf', crf: 23 }, passes: 1 },
      priority: o.cls ?? 'standard', submitter: 'alice',
      ...(o.deadline !== undefined ? { deadline: new Date(o.deadline).toISOString() } : {}),
    } as EncodingTask['schema'],
    state: 'queued', submitted_at: o.at ?? NOW, updated_at: o.at ?? NOW, term: 1, attempts: 0,
    predicted: { model_version: 'm', expected: usage(s), upper: usage(s * 1.5) },
  };
  if (o.running_on) {
    t.state = 'running';
    t.started_at = o.at ?? NOW;
    t.allocation = { node_id: o.running_on.node, core_ids: o.running_on.cores, gpu_ids: [], memory_gb: mem, bandwidth_mbps: 10, lease_expires_at: NOW + 3_600_000, term: 1 };
  }
  return t;
}

/** A ledger holding `nodes` and the reservations of the running tasks among `tasks`. */
function fleet(nodes: NodeCapacity[], tasks: EncodingTask[]) {
  const l = new Ledger(1, 3_600_000);
  for (const n of nodes) l.upsertNode(n, NOW - MIN);
  for (const t of tasks) if (t.allocation) assert.ok(l.adopt(t.id, t.allocation, NOW - MIN).ok, `reservation of ${t.id}`);
  return l.snapshot();
}

/** One local 4-core node busy for the next 30 minutes with one 4-core encode. */
function busyLocal() {
  return task({ cores: 4, seconds: 1800, running_on: { node: 'local', cores: [0, 1, 2, 3] } });
}

function inputs(tasks: EncodingTask[], o: Partial<BurstInputs> & { nodes?: NodeCapacity[] } = {}): BurstInputs {
  return { now: NOW, tasks, snap: fleet(o.nodes ?? [cap('local', 4)], tasks), instances: [], policy: POLICY, ...o };
}

const burstNode = (id: string, o: Partial<BurstInstance> = {}): BurstInstance =>
  ({ id, instance_type: 'c-small', spot: false, state: 'running', launched_at: NOW - 30 * MIN, price_per_hour: 0.34, ...o });

test('no burst when every class is within its bound', () => {
  const d = decide(inputs([task(), task({ cls: 'premium' })]));
  assert.is(d.launch, undefined);
  assert.equal([d.drain, d.terminate], [[], []]);
  assert.equal(d.waits.premium.max_wait_ms, 0);
  assert.match(d.reason, /every class within its bound/);
  assert.equal(d.inputs.queued, 2);
});

test('a premium deadline that would be missed bursts with the cheapest fitting type and the right count', () => {
  // Three premium jobs of 4 cores that must start within 5 minutes; the only node is busy for 30.
  const jobs = [0, 1, 2].map(() => task({ cls: 'premium', cores: 4, memory_gb: 2, seconds: 600, deadline: NOW + 20 * MIN }));
  const d = decide(inputs([busyLocal(), ...jobs]));
  assert.equal(d.waits.premium.deadline_misses, jobs.map((j) => j.id));
  assert.equal(d.shortfall, { cores: 12, gpus: 0, memory_gb: 6, bandwidth_mbps: 30 });
  // 2 × c-small ($0.68/h) hold the three (two on one); 1 × c-large would cost $0.70/h, 2 × g-gpu $2.40/h.
  assert.ok(d.launch);
  assert.equal([d.launch!.instance_type.name, d.launch!.count, d.launch!.spot, d.launch!.price_per_hour], ['c-small', 2, false, 0.34]);
  assert.match(d.reason, /premium: 3 job\(s\) would miss their deadline/);
  assert.match(d.reason, /launch 2 × c-small .* cheapest that fits the largest late job \(4 cores/);
  assert.match(d.reason, /next: 1 × c-large \$0\.70\/h/);
});

test('a class waiting past its configured bound bursts even without deadlines', () => {
  const d = decide(inputs([busyLocal(), task({ cls: 'premium', cores: 2 })]));
  assert.equal(d.waits.premium.over_bound.length, 1);
  assert.match(d.reason, /premium: 1 job\(s\) would wait up to 30 min against a bound of 1 min/);
  assert.is(d.launch?.count, 1);
  // Batch work waiting 30 minutes is within its 60-minute bound.
  assert.is(decide(inputs([busyLocal(), task({ cls: 'batch', cores: 2 })])).launch, undefined);
});

test('the largest job decides the minimum type: a job needing 16 cores never gets 8-core instances', () => {
  const d = decide(inputs([busyLocal(), task({ cores: 16 }), task({ cls: 'batch', cores: 2 })]));
  assert.is(d.launch?.instance_type.name, 'c-large');
  assert.is(d.launch?.count, 1);
  assert.match(d.reason, /fits the largest late job \(16 cores.*which g-gpu, c-small cannot hold/);
});

test('the instance count stays within max_instances, counting instances already running', () => {
  const jobs = Array.from({ length: 20 }, () => task({ cls: 'premium', cores: 4 }));
  const running = [burstNode('i-1', { joined_at: NOW - 20 * MIN }), burstNode('i-2', { joined_at: NOW - 20 * MIN })];
  const busy = [busyLocal(), task({ cores: 8, seconds: 1800, running_on: { node: 'i-1', cores: [0, 1, 2, 3, 4, 5, 6, 7] } }), task({ cores: 8, seconds: 1800, running_on: { node: 'i-2', cores: [0, 1, 2, 3, 4, 5, 6, 7] } })];
  const d = decide(inputs([...busy, ...jobs], { nodes: [cap('local', 4), cap('i-1', 8, 16), cap('i-2', 8, 16)], instances: running }));
  assert.is(d.launch?.count, 3, '5 at most, 2 already running');
  assert.match(d.reason, /not enough to clear it: max_instances 5 leaves 3/);
});

test('the instance count stays within the hourly budget', () => {
  const jobs = Array.from({ length: 20 }, () => task({ cls: 'premium', cores: 4 }));
  const d = decide(inputs([busyLocal(), ...jobs], { policy: { ...POLICY, budget_per_hour: 1 } }));
  assert.equal([d.launch?.instance_type.name, d.launch?.count], ['c-small', 2], '2 × $0.34 fit in $1/h, 3 do not');
  assert.match(d.reason, /the budget of \$1\.00\/h \(\$0\.00\/h in use\) allows 2/);
  const spent = decide(inputs([busyLocal(), ...jobs], { policy: { ...POLICY, budget_per_hour: 1 }, instances: [burstNode('i-1', { launched_at: NOW - MIN }), burstNode('i-2', { launched_at: NOW - MIN })] }));
  assert.is(spent.launch, undefined);
  assert.match(spent.reason, /no launch: the hourly budget \$1\.00\/h is used/);
});

test('no new launch within the cooldown of the last', () => {
  const tasks = [busyLocal(), task({ cls: 'premium' })];
  const d = decide(inputs(tasks, { last_launch_at: NOW - MIN }));
  assert.is(d.launch, undefined);
  assert.match(d.reason, /within the cooldown/);
  assert.ok(decide(inputs(tasks, { last_launch_at: NOW - 3 * MIN })).launch);
});

test('alternating ticks never flap: one launch, then pending instances count as capacity, and nothing is drained before the idle period', () => {
  let instances: BurstInstance[] = [], last: number | undefined;
  let launches = 0, drains = 0, terminations = 0;
  const busy = busyLocal(), job = task({ cls: 'premium', cores: 4, seconds: 3600 });
  for (let k = 0; k < 12; k++) {
    const now = NOW + k * 5000;
    // Every other tick the queue is empty (as if the job was placed), then back.
    const tasks = k % 2 ? [busy] : [busy, job];
    const d = decide({ now, tasks, snap: fleet([cap('local', 4)], tasks), instances, last_launch_at: last, policy: POLICY });
    instances = d.instances;
    if (d.launch) {
      launches++;
      last = now;
      for (let n = 0; n < d.launch.count; n++) instances.push(burstNode(`i-${k}-${n}`, { state: 'pending', launched_at: now }));
    }
    drains += d.drain.length;
    terminations += d.terminate.length;
  }
  assert.equal([launches, drains, terminations], [1, 0, 0]);
});

test('a burst node is drained only after the idle period, then terminated once empty', () => {
  const nodes = [cap('local', 4), cap('i-1', 8, 16)];
  const early = decide(inputs([], { nodes, instances: [burstNode('i-1', { joined_at: NOW - 20 * MIN, idle_since: NOW - 9 * MIN })] }));
  assert.equal([early.drain, early.terminate], [[], []]);
  const late = decide(inputs([], { nodes, instances: [burstNode('i-1', { joined_at: NOW - 20 * MIN, idle_since: NOW - 10 * MIN - 1 })] }));
  assert.equal(late.drain.map((x) => x.id), ['i-1']);
  assert.equal(late.terminate, [], 'drained first, not terminated in the same decision');
  assert.is(late.instances[0].draining_since, NOW);
  const next = decide(inputs([], { nodes, now: NOW + 5000, instances: late.instances }));
  assert.equal(next.terminate.map((x) => x.id), ['i-1']);
  assert.match(next.terminate[0].why, /drained and empty/);
});

test('an idle burst node is not drained while the queue needs it', () => {
  const nodes = [cap('local', 4), cap('i-1', 8, 16)];
  const tasks = [busyLocal(), task({ cls: 'premium', cores: 8, at: NOW })];
  // The job fits i-1 now (the leader will place it there): no drain.
  const d = decide(inputs(tasks, { nodes, instances: [burstNode('i-1', { joined_at: NOW - 20 * MIN, idle_since: NOW - 30 * MIN })] }));
  assert.equal(d.drain, []);
  assert.match(d.reason, /i-1 idle but kept/);
});

test('a draining node that holds a reservation is not terminated', () => {
  const nodes = [cap('local', 4), cap('i-1', 8, 16)];
  const holding = task({ cores: 2, running_on: { node: 'i-1', cores: [0, 1] } });
  const d = decide(inputs([holding], { nodes, instances: [burstNode('i-1', { joined_at: NOW - 20 * MIN, draining_since: NOW - MIN })] }));
  assert.equal(d.terminate, []);
  assert.ok(d.instances[0].draining_since, 'still draining');
  assert.is(d.instances[0].idle_since, undefined);
  assert.match(d.reason, /i-1 draining: still holds 1 reservation/);
});

test('demand coming back puts draining nodes back in service instead of launching', () => {
  const nodes = [cap('local', 4), cap('i-1', 8, 16)];
  const tasks = [busyLocal(), task({ cls: 'premium', cores: 4 })];
  const d = decide(inputs(tasks, { nodes, instances: [burstNode('i-1', { joined_at: NOW - 20 * MIN, draining_since: NOW - MIN, idle_since: NOW - 12 * MIN })] }));
  assert.equal(d.undrain.map((x) => x.id), ['i-1']);
  assert.is(d.launch, undefined);
  assert.is(d.instances[0].draining_since, undefined);
});

test('an instance whose agent has not joined within join_timeout is terminated and reported', () => {
  const waiting = burstNode('i-new', { state: 'pending', launched_at: NOW - 4 * MIN });
  assert.equal(decide(inputs([], { instances: [waiting] })).terminate, []);
  const stale = burstNode('i-stale', { launched_at: NOW - 5 * MIN - 1 });
  const d = decide(inputs([], { instances: [waiting, stale] }));
  assert.equal(d.terminate.map((x) => x.id), ['i-stale']);
  assert.equal(d.unjoined, ['i-stale']);
  assert.equal(d.instances.map((x) => x.id), ['i-new']);
  assert.match(d.reason, /terminate i-stale: never joined within 5 min/);
});

test('an instance that joined and then left the ledger is terminated', () => {
  const d = decide(inputs([], { instances: [burstNode('i-lost', { joined_at: NOW - 20 * MIN, idle_since: NOW - MIN })] }));
  assert.equal(d.terminate.map((x) => [x.id, x.why]), [['i-lost', 'it joined, then its agent was lost from the ledger']]);
  assert.equal(d.unjoined, []);
});

test('an instance stopped outside Prescient is terminated (it runs nothing and its disk is billed), even if it had joined', () => {
  const d = decide(inputs([], { nodes: [cap('local', 4), cap('i-stopped', 8, 16)], instances: [burstNode('i-stopped', { state: 'stopped', joined_at: NOW - 20 * MIN }), burstNode('i-ok', { state: 'pending', launched_at: NOW - MIN })] }));
  assert.equal(d.terminate.map((x) => x.id), ['i-stopped']);
  assert.match(d.terminate[0].why, /reports it stopped/);
  assert.equal(d.instances.map((x) => x.id), ['i-ok']);
  assert.match(d.reason, /terminate i-stopped: the provider reports it stopped/);
});

test('a joined instance is marked joined with the time it was first seen in the ledger', () => {
  const d = decide(inputs([], { nodes: [cap('local', 4), cap('i-1', 8, 16)], instances: [burstNode('i-1', { launched_at: NOW - 2 * MIN })] }));
  assert.is(d.instances[0].joined_at, NOW);
  assert.is(d.instances[0].idle_since, NOW);
});

test('spot capacity is used where configured, and on-demand after a capacity refusal', () => {
  const tasks = [busyLocal(), task({ cls: 'premium', cores: 4 })];
  const spot = decide(inputs(tasks, { policy: { ...POLICY, spot: true } }));
  assert.equal([spot.launch?.instance_type.name, spot.launch?.spot, spot.launch?.price_per_hour], ['c-small', true, 0.12]);
  const after = decide(inputs(tasks, { policy: { ...POLICY, spot: true }, refusals: [{ instance_type: 'c-small', spot: true, until: NOW + 30 * MIN }] }));
  assert.equal([after.launch?.instance_type.name, after.launch?.spot, after.launch?.price_per_hour], ['c-small', false, 0.34]);
  assert.match(after.reason, /on-demand after a spot capacity refusal/);
  // A refusal that has expired no longer counts.
  const expired = decide(inputs(tasks, { policy: { ...POLICY, spot: true }, refusals: [{ instance_type: 'c-small', spot: true, until: NOW - 1 }] }));
  assert.is(expired.launch?.spot, true);
});

test('a type refused on-demand too gives way to the next cheapest that fits', () => {
  const tasks = [busyLocal(), task({ cls: 'premium', cores: 4 })];
  const d = decide(inputs(tasks, { refusals: [{ instance_type: 'c-small', spot: false, until: NOW + MIN }] }));
  assert.is(d.launch?.instance_type.name, 'c-large');
  assert.match(d.reason, /c-small refused for capacity/);
});

test('the same inputs give the same decision (dry run and real runs decide alike)', () => {
  const tasks = [busyLocal(), task({ cls: 'premium', cores: 4 })];
  assert.equal(decide(inputs(tasks)), decide(inputs(tasks)));
});

// ── forecast of arrivals ────────────────────────────────────────────────────────────────

const FORECAST = { window_ms: 15 * MIN, horizon_ms: 5 * MIN };

/** `n` jobs of a class submitted evenly over the last 15 minutes (finished or not: arrivals). */
function arrived(n: number, o: Parameters<typeof task>[0] = {}): EncodingTask[] {
  return Array.from({ length: n }, (_, k) => task({ ...o, at: NOW - 15 * MIN + ((k + 1) * 15 * MIN) / n }));
}

test('the forecast replays each class at its recent rate over the horizon, copying its most recent jobs', () => {
  const premium = arrived(6, { cls: 'premium', cores: 2, deadline: NOW + 10 * MIN });
  const f = forecastArrivals([...premium, ...arrived(2, { cls: 'batch' }), task({ cls: 'standard', at: NOW - 16 * MIN })], NOW, FORECAST);
  assert.equal(f.classes.premium, { rate_per_min: 0.4, arriving: 2 });
  assert.equal(f.classes.batch.arriving, 0, 'under one job per horizon forecasts nothing');
  assert.equal(f.classes.standard, { rate_per_min: 0, arriving: 0 }, 'arrivals before the window do not count');
  assert.equal(f.jobs.map((j) => [j.id, j.submitted_at, j.state]), [['forecast:premium:0', NOW + 2.5 * MIN, 'queued'], ['forecast:premium:1', NOW + 5 * MIN, 'queued']]);
  assert.equal(f.jobs[0].predicted, premium[5].predicted, 'a copy of the most recent arrival');
  // Its deadline keeps the slack the template had from its submission.
  assert.is(Date.parse(f.jobs[0].schema.deadline!) - f.jobs[0].submitted_at, NOW + 10 * MIN - premium[5].submitted_at);
  assert.equal(f.arrives.get('forecast:premium:1'), NOW + 5 * MIN);
});

test('a forecast job starts no earlier than it arrives, even on an idle node', () => {
  const later = { ...task({ cores: 1, at: NOW + 10 * MIN }), id: 'forecast:standard:0' };
  const est = estimateStarts(orderQueue([later]), [cap('n', 4)], [], () => ({ cores: 1, gpus: 0, memory_gb: 1, bandwidth_mbps: 0 }), NOW, undefined, (t) => t.submitted_at);
  assert.equal(est.get(later.id), { at: NOW + 10 * MIN, why: 'fits when it arrives' });
});

test('steady arrivals that will outrun the fleet within the boot time burst before the queue itself is late', () => {
  // 4-core, 10-minute jobs have come every 75 s; the node is busy for 8 more minutes; one waits.
  const running = task({ cores: 4, seconds: 600, at: NOW - 2 * MIN, running_on: { node: 'local', cores: [0, 1, 2, 3] } });
  const policy = { ...POLICY, max_wait_ms: { premium: MIN, standard: 10 * MIN, batch: 60 * MIN } };
  const history = arrived(12, { cores: 4, seconds: 600 });
  const without = decide(inputs([running], { policy }));
  assert.is(without.launch, undefined, 'nothing queued: no burst without a forecast');
  const d = decide(inputs([running], { policy: { ...policy, forecast: FORECAST }, arrivals: history }));
  assert.equal(d.forecast?.standard, { rate_per_min: 0.8, arriving: 4 });
  assert.ok(d.waits.standard.forecast_late.length > 0);
  assert.equal([d.waits.standard.queued, d.waits.standard.over_bound], [0, []], 'the real queue is fine');
  assert.ok(d.launch, d.reason);
  assert.match(d.reason, /standard: \d of the 4 job\(s\) forecast in the next 5 min \(0\.8\/min\) would be late/);
  assert.equal(d.inputs.forecast_jobs, 4);
  assert.equal(d.inputs.queued, 0);
});

test('a trickle of arrivals forecasts nothing and launches nothing', () => {
  const d = decide(inputs([busyLocal()], { policy: { ...POLICY, forecast: FORECAST }, arrivals: arrived(2, { cls: 'premium', cores: 4 }) }));
  assert.is(d.launch, undefined);
  assert.equal(d.inputs.forecast_jobs, 0);
});

test('an idle burst node is kept while the forecast says arrivals will need it, and drained once they stop', () => {
  const nodes = [cap('local', 4), cap('i-1', 8, 16)];
  const idle = burstNode('i-1', { joined_at: NOW - 30 * MIN, idle_since: NOW - 15 * MIN });
  const running = task({ cores: 4, seconds: 1800, running_on: { node: 'local', cores: [0, 1, 2, 3] } });
  const policy = { ...POLICY, forecast: FORECAST };
  // Two 4-core premium jobs expected within 5 minutes: both fit the idle 8-core node, neither the busy one.
  const busy = decide(inputs([running], { nodes, instances: [idle], policy, arrivals: arrived(8, { cls: 'premium', cores: 4, seconds: 600 }) }));
  assert.equal(busy.forecast?.premium.arriving, 2);
  assert.equal([busy.drain, busy.launch], [[], undefined]);
  assert.match(busy.reason, /i-1 idle but kept: without it the queue would be late/);
  const quiet = decide(inputs([running], { nodes, instances: [idle], policy, arrivals: [] }));
  assert.equal(quiet.drain.map((x) => x.id), ['i-1']);
});

// ── configuration ──────────────────────────────────────────────────────────────────────

const RAW = {
  provider: 'aws', provider_options: { region: 'eu-west-1', image_id: 'ami-0abc' }, cluster: 'prod',
  catalogue: [{ name: 'c6i.2xlarge', vcpus: 8, memory_gb: 16, gpus: 0, bandwidth_mbps: 12500, price_per_hour: 0.34, spot_price_per_hour: 0.13 }],
  max_instances: 4, budget_per_hour: 2, spot: true, cooldown: '2m', idle_period: '10m', join_timeout: '5m', max_wait: { premium: '1m' },
  install: { source: 'git', url: 'https://git.example.com/prescient.git', ref: 'v0.4.0' },
};

function refused(over: Record<string, unknown>, field: string, reason: RegExp) {
  try {
    validateBurstConfig({ ...RAW, ...over });
  } catch (e) {
    assert.instance(e, ConfigError);
    assert.is((e as ConfigError).setting, field);
    assert.match((e as Error).message, reason);
    return;
  }
  assert.unreachable(`${JSON.stringify(over)} was accepted`);
}

test('a valid configuration gets its defaults and durations in milliseconds', () => {
  const c = validateBurstConfig(RAW);
  assert.equal([c.cooldown_ms, c.idle_period_ms, c.join_timeout_ms, c.tick_ms, c.dry_run], [120_000, 600_000, 300_000, 5000, false]);
  assert.equal(c.max_wait_ms, { premium: 60_000, standard: 600_000, batch: 3_600_000 });
  assert.equal([c.install, c.agent_port, c.metadata_url], [RAW.install, 7070, 'http://169.254.169.254']);
  assert.equal(c.forecast, { window_ms: 15 * MIN, horizon_ms: 5 * MIN }, 'the forecast is on by default');
  assert.equal([c.agent_args, validateBurstConfig({ ...RAW, agent_args: ['--accounted-only', 'bandwidth'] }).agent_args], [[], ['--accounted-only', 'bandwidth']]);
  assert.is(validateBurstConfig({ ...RAW, forecast: false }).forecast, undefined);
  assert.equal(validateBurstConfig({ ...RAW, forecast: { window: '30m', horizon: '8m' } }).forecast, { window_ms: 30 * MIN, horizon_ms: 8 * MIN });
  assert.equal(validateBurstConfig({ ...RAW, install: { source: 'image' }, agent_port: 7443, metadata_url: 'http://[fd00:ec2::254]/' }).metadata_url, 'http://[fd00:ec2::254]');
  assert.equal(validateBurstConfig({ ...RAW, install: { source: 'tarball', url: 'https://a.example.com/p.tgz', sha256: 'AB'.repeat(32) } }).install,
    { source: 'tarball', url: 'https://a.example.com/p.tgz', sha256: 'ab'.repeat(32) });
});

test('configuration errors name the field', () => {
  refused({ instance_types: ['c6i.2xlarge', 'm9.huge'] }, 'instance_types[1]', /unknown instance type "m9.huge" \(not in the catalogue: c6i.2xlarge\)/);
  refused({ budget_per_hour: 0 }, 'budget_per_hour', /greater than 0, got 0/);
  refused({ budget_per_hour: -5 }, 'budget_per_hour', /greater than 0/);
  refused({ budget_per_hour: 0.1 }, 'budget_per_hour', /does not pay for one instance/);
  refused({ max_instances: 0 }, 'max_instances', /at least 1/);
  refused({ provider_options: undefined }, 'provider_options', /missing: aws needs region/);
  refused({ provider_options: { image_id: 'ami-0abc' } }, 'provider_options.region', /missing/);
  refused({ provider_options: { region: 'eu-west-1' } }, 'provider_options.image_id', /image_id or launch_template/);
  refused({ provider: 'gcp', provider_options: { project: 'p' } }, 'provider_options.zone', /missing: gcp needs it/);
  refused({ provider: 'digitalocean' }, 'provider', /one of aws, gcp, azure/);
  refused({ cooldown: 'soon' }, 'cooldown', /duration/);
  refused({ max_wait: { gold: '1m' } }, 'max_wait.gold', /unknown SLA class/);
  refused({ catalogue: [{ ...RAW.catalogue[0], vcpus: 0 }] }, 'catalogue[0].vcpus', /at least 1/);
  refused({ budget: 3 }, 'budget', /unknown setting/);
});

test('where burst nodes get Prescient is required, and every part of it is checked', () => {
  refused({ install: undefined }, 'install', /missing: burst nodes need to know where Prescient comes from: \{ source: image \}/);
  refused({ install: 'git' }, 'install', /must be \{ source: image \}/);
  refused({ install: { source: 'ftp' } }, 'install.source', /must be image, git or tarball, got "ftp"/);
  refused({ install: { source: 'image', url: 'https://x' } }, 'install.url', /not a setting of install source image/);
  refused({ install: { source: 'git', url: 'file:///srv/prescient', ref: 'v1' } }, 'install.url', /https:\/\/, ssh:\/\/ or user@host:path/);
  refused({ install: { source: 'git', url: 'https://git.example.com/p.git; rm -rf /', ref: 'v1' } }, 'install.url', /git URL/);
  refused({ install: { source: 'git', url: 'https://git.example.com/p.git' } }, 'install.ref', /must be a tag, branch or commit/);
  refused({ install: { source: 'git', url: 'https://git.example.com/p.git', ref: '-c core.sshCommand=x' } }, 'install.ref', /tag, branch or commit/);
  refused({ install: { source: 'git', url: 'https://git.example.com/p.git', ref: 'a/../b' } }, 'install.ref', /tag, branch or commit/);
  refused({ install: { source: 'tarball', url: 'https://a.example.com/p.tgz' } }, 'install.sha256', /64 hex digits/);
  refused({ install: { source: 'tarball', url: 'ftp://a.example.com/p.tgz', sha256: 'ab'.repeat(32) } }, 'install.url', /must be a https or http URL/);
  refused({ forecast: 'yes' }, 'forecast', /must be false, or \{ window, horizon \}/);
  refused({ forecast: { window: '10s' } }, 'forecast.window', /at least 1m/);
  refused({ forecast: { window: '2h' } }, 'forecast.window', /at most 1h/);
  refused({ forecast: { horizon: 'soon' } }, 'forecast.horizon', /duration/);
  refused({ forecast: { lookahead: '5m' } }, 'forecast.lookahead', /unknown setting/);
  refused({ agent_args: '--cores 0-3' }, 'agent_args', /must be a list/);
  refused({ agent_args: ['--cores', '0-3', '--grpc-port=9'] }, 'agent_args[2]', /set by the burst node's boot script/);
  refused({ agent_args: ['a\nb'] }, 'agent_args[0]', /one line/);
  refused({ agent_port: 70000 }, 'agent_port', /TCP port/);
  refused({ agent_port: 0 }, 'agent_port', /at least 1/);
  refused({ metadata_url: 'https://169.254.169.254' }, 'metadata_url', /must be a http URL/);
  refused({ metadata_url: 'http://169.254.169.254/$(reboot)' }, 'metadata_url', /must not contain/);
});

const provider = (err?: ProviderError): CloudProvider => ({
  name: 'aws', region: 'eu-west-1',
  verify: async () => { if (err) throw err; }, launch: async () => ({ instances: [] }), describe: async () => [], list: async () => [], terminate: async () => undefined,
});

test('no credentials or a region that does not exist refuse the start; a transient failure does not', async () => {
  for (const [kind, text] of [['auth', /no usable credentials/], ['invalid', /invalid configuration/]] as const) {
    try {
      await verifyProvider(provider(new ProviderError('aws', 'verify', kind, 'refused')));
      assert.unreachable(kind);
    } catch (e) {
      assert.instance(e, ConfigError);
      assert.match((e as Error).message, /^burst provider aws \(eu-west-1\): /);
      assert.match((e as Error).message, text);
    }
  }
  const logs: string[] = [];
  await verifyProvider(provider(new ProviderError('aws', 'verify', 'transient', 'throttled')), [], (m) => logs.push(m));
  assert.match(logs[0], /could not be verified at start, going on/);
});

test.run();
