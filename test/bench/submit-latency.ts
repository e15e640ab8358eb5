/**
 * Submit to placed (issues 5 and 16): jobs published on NATS JetStream to a leader running as
 * its own `prescient coordinator` process with the default (predictive) reservation and the
 * shipped model, in phases on the same leader (PHASES): an unmeasured warm-up, 3,000 jobs paced
 * at 1,000/s, 10,000 at 5,000/s, and 10,000 published as fast as this process can (the highest
 * rate the leader sustains). Reported per phase: latency from each job's `submitted_at` to the
 * leader's `placed` event (its `at`, stamped when the leader decided) at p50/p99/max and in the
 * steady state (the last tenth of the jobs), the rate placed, the leader's CPU per job and what
 * that makes per leader core-second, and nats-server's CPU. Then Ray on the same machine, after
 * ours is down: 3,000 no-op tasks with `num_cpus=1` as fast as possible and paced at 1,000/s,
 * and 100 actors (peers/ray_tasks.py), printed beside ours as ratios.
 *
 * What the fleet is, and why. A placement needs free capacity in the ledger; if the fleet were
 * full, "submit to placed" would measure waiting for encodes to end, not the leader. Real
 * agents cannot provide that capacity here: every assignment a real agent accepts starts real
 * ffmpeg processes, and thousands of those a second cannot run on this machine's 2 cores; they
 * would also take the CPU from the leader being measured. So the fleet is a set of stand-in
 * nodes (test/helpers/bench-cluster.ts AcceptingFleet): they register through the leader's real
 * Register RPC, heartbeat, and serve the real Agent gRPC service, accepting every assignment and
 * holding its reservation without encoding. Between phases they report every job they hold as
 * finished through the real ReportStatus, which empties the ledger again. The fleet is sized
 * from the shipped model's own requests so that the largest phase fits at once. Everything the
 * leader does per job is real: the JetStream consumer, validation, prediction, queue ordering,
 * sizing, placement, the ledger commit, the KV task records, the JetStream events and the
 * AssignBatch RPC it waits for. Only the encoding is absent.
 *
 * Last, a full fleet on the same leader: as many more jobs as its free cores could take, plus
 * FULL_JOBS. The rest stay queued, and the figures show how the leader's admission rate changes
 * as its queue grows.
 *
 * Set PRESCIENT_BENCH_CPU_PROF=DIR to run the leader under `node --cpu-prof` (writing the
 * profile to DIR) and report where its CPU time went; PRESCIENT_BENCH_NO_RAY=1 to leave Ray out;
 * PRESCIENT_BENCH_LATENCY_PHASES=at 1,full to run only those phases (phasesToRun).
 *
 *   node dist/test/bench/submit-latency.js      prints the figures as JSON
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { StorageType, type JetStreamClient, type NatsConnection, type Subscription } from 'nats';
import { stackStatus } from '../../deploy/stack/index.js';
import { jsonCodec, publishSubmission } from '../../coordinator/bus/index.js';
import { loadModelFile } from '../../models/index.js';
import { ALL_JOB_EVENTS, TERMINAL_STATES, jobEventsSubject, newJobId, pkiDirOf, validateEncodingSchema, type TaskEvent } from '../../shared/index.js';
import { TEST_OWNER, startStack, type TestStack } from '../helpers/cluster.js';
import { rayTaskRates, type RayTaskRates } from './peers/ray-tasks.js';
import { AcceptingFleet, cpuSeconds, mean, quantile, round, spawnCoordinator, type CoordinatorProcess } from '../helpers/bench-cluster.js';
import { packingBatch } from './packing.js';

/**
 * The measures, in order, on one leader: paced at 1,000/s and at 5,000/s, then a backlog
 * published as fast as this process can (the highest rate the leader sustains). Between them
 * the fleet reports every job it holds as finished, which empties the ledger again.
 */
const PHASES: readonly { label: string; rate: number; jobs: number; unmeasured?: boolean; actors?: boolean }[] = [
  // As Ray's side warms up before it is measured (peers/ray_tasks.py): the leader's first jobs
  // pay for compiling its code and opening its connections.
  { label: 'warm-up', rate: 1000, jobs: 1000, unmeasured: true },
  { label: 'at 1,000/s', rate: 1000, jobs: 3000 },
  { label: 'at 5,000/s', rate: 5000, jobs: 10_000 },
  // Live channels submitted at once, as Ray's side creates its actors: placed and handed to a
  // stand-in (no ffmpeg is started), against Ray's creation to first ping (a worker process each).
  { label: 'live channels (actors)', rate: Infinity, jobs: 100, actors: true },
  { label: 'as fast as possible', rate: Infinity, jobs: 10_000 },
];
/** Stop waiting once nothing has happened for this long (the leader has stalled or is done). */
const QUIET_MS = 15_000;
/** And in any case this long after the last submission. */
const MAX_WAIT_MS = 100_000;
/** The last phase, onto a fleet that fills up after a few hundred of them. */
const FULL_JOBS = 1000;
const FULL_RATE = 5000;
const FULL_MAX_WAIT_MS = 40_000;
const CORES_PER_NODE = 256;
/** Room the fleet has beyond the largest phase's jobs; the full-fleet phase's jobs beyond it stay queued. */
const SPARE_JOBS = 200;

/**
 * PRESCIENT_BENCH_LATENCY_PHASES=a,b: only the phases whose labels start with these (the warm-up
 * always runs; `full fleet` names the last), for a profile of one rate. Unset: all of them.
 */
function phasesToRun(): { phases: typeof PHASES; fullFleet: boolean } {
  const wanted = process.env.PRESCIENT_BENCH_LATENCY_PHASES?.split(',').map((w) => w.trim()).filter(Boolean);
  if (!wanted?.length) return { phases: PHASES, fullFleet: true };
  const phases = PHASES.filter((p) => p.unmeasured || wanted.some((w) => p.label.startsWith(w)));
  const fullFleet = wanted.some((w) => 'full fleet'.startsWith(w));
  if (!fullFleet && phases.every((p) => p.unmeasured)) throw new Error(`PRESCIENT_BENCH_LATENCY_PHASES names no phase (${[...PHASES.map((p) => p.label), 'full fleet'].join('; ')})`);
  return { phases, fullFleet };
}

export async function benchSubmitLatency(): Promise<Record<string, number | string>> {
  const profDir = process.env.PRESCIENT_BENCH_CPU_PROF;
  const run = phasesToRun();
  const s = await startStack('latency');
  let leader: CoordinatorProcess | undefined;
  let fleet: AcceptingFleet | undefined;
  const out: Record<string, number | string> = {};
  const ours: Record<string, PhaseFigures> = {};
  try {
    if (profDir) mkdirSync(profDir, { recursive: true });
    leader = await spawnCoordinator(s, 'latency-leader', [], profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir] : []);

    // The jobs: the packing batch's varied real schemas, cycled. The fleet is sized from what
    // the shipped model makes the leader ask for (its upper bounds, as coordinator/sizing does):
    // cores for the largest phase plus about SPARE_JOBS more; memory and bandwidth never the limit.
    const schemas = packingBatch();
    const model = loadModelFile();
    const asks = schemas.map((raw) => model.predict(validateEncodingSchema(raw, s.validation)).upper);
    const cores = asks.map((u) => Math.min(CORES_PER_NODE, Math.max(1, Math.ceil(u.cpu_cores - 1e-6))));
    const coresPerJob = mean(cores);
    const most = Math.max(...PHASES.map((p) => p.jobs));
    const nodes = Math.ceil(((most + SPARE_JOBS) * coresPerJob) / CORES_PER_NODE);
    const mostPerNode = Math.floor(CORES_PER_NODE / Math.min(...cores));
    fleet = await AcceptingFleet.start({
      consulHttp: s.endpoints.consul_http, pkiDir: pkiDirOf(s.endpoints), nodes, coresPerNode: CORES_PER_NODE,
      memoryGbPerNode: Math.ceil(mostPerNode * Math.max(...asks.map((u) => u.memory_gb)) * 1.1 + 1),
      bandwidthMbpsPerNode: Math.ceil(mostPerNode * Math.max(...asks.map((u) => u.bandwidth_mbps)) * 1.1 + 1),
    });
    out.fleet = `${nodes} stand-in nodes × ${CORES_PER_NODE} cores; jobs ask ${Math.min(...cores)}-${Math.max(...cores)} cores (mean ${round(coresPerJob, 2)}): room for about ${Math.floor((nodes * CORES_PER_NODE) / coresPerJob)} jobs`;

    // Events as any client sees them: the events stream's subjects on core NATS.
    const seen = new EventLog(s.nc);
    await s.nc.flush();
    for (const [i, phase] of run.phases.entries()) {
      if (i > 0) {
        // Empty the fleet: every job held is reported finished, and the leader releases it.
        const held = [...fleet.accepted.keys()];
        const failed = await fleet.finishAll();
        await seen.settle(held, 'ended');
        if (failed) out[`${phase.label}: reports of finished jobs refused before it`] = failed;
      }
      const f = await measurePhase(s, leader, seen, phase.actors ? [ACTOR] : schemas, phase);
      if (phase.unmeasured) continue;
      ours[phase.label] = f;
      for (const [k, v] of Object.entries(f.figures)) out[`${phase.label}: ${k}`] = v;
    }
    out['model predicting the reservations'] = [...seen.models].join(', ');
    out['stand-in heartbeats refused or failed'] = fleet.heartbeatFailures;

    if (run.fullFleet) await fullFleet(s, fleet, seen, nodes, schemas, out);
    seen.close();

    Object.assign(out, await roundTrips(s.nc.jetstream()));
  } finally {
    await fleet?.stop().catch(() => undefined);
    await leader?.stop().catch(() => undefined);
    await s.down();
  }
  if (profDir) Object.assign(out, summariseProfile(profDir));
  // Ray on the same machine, once ours is down: its no-op tasks and actors (peers/ray-tasks.ts).
  if (process.env.PRESCIENT_BENCH_NO_RAY) out.ray = 'skipped: PRESCIENT_BENCH_NO_RAY is set';
  else Object.assign(out, besideRay(ours, await rayTaskRates({ tasks: 3000, ratePerS: 1000, actors: 100, log: (m) => console.error(m) })));
  return out;
}

async function fullFleet(s: TestStack, fleet: AcceptingFleet, seen: EventLog, nodes: number, schemas: readonly Record<string, unknown>[], out: Record<string, number | string>): Promise<void> {
  // A full fleet: the same leader, its fleet holding the last phase's jobs, gets as many more
  // as its free cores could take at one core each, plus FULL_JOBS, at FULL_RATE. The ones
  // that find no room stay queued, and every later admission (and the leader's
  // once-a-second tick) tries the whole queue again.
  const free = nodes * CORES_PER_NODE - seen.coresHeld();
  const full = await submit(s.nc.jetstream(), free + FULL_JOBS, schemas, FULL_RATE);
  await seen.settle(full.ids, 'admitted', FULL_MAX_WAIT_MS);
  const waiting = full.ids.filter((id) => seen.queued.has(id) && !seen.placed.has(id));
  const admittedAt = waiting.map((id) => seen.queued.get(id)!.at).sort((a, b) => a - b);
  out['full fleet: jobs submitted (free cores + FULL_JOBS)'] = `${free + FULL_JOBS} (${free} + ${FULL_JOBS})`;
  out['full fleet: placed / left queued / not yet admitted'] = `${full.ids.filter((id) => seen.placed.has(id)).length} / ${waiting.length} / ${full.ids.filter((id) => !seen.queued.has(id) && !seen.placed.has(id)).length}`;
  if (admittedAt.length > 20) {
    const q = Math.floor(admittedAt.length / 4);
    const arate = (a: number, b: number) => round((b - a) / ((admittedAt[b] - admittedAt[a]) / 1000), 1);
    out['full fleet: admission rate with the queue at 0-25% / 75-100% of its final length (jobs/s)'] = `${arate(0, q)} / ${arate(admittedAt.length - 1 - q, admittedAt.length - 1)}`;
    const qlat = waiting.map((id) => seen.queued.get(id)!.at - full.at.get(id)!);
    out['full fleet: submit → queued p50 / p99 (ms)'] = `${round(quantile(qlat, 0.5), 1)} / ${round(quantile(qlat, 0.99), 1)}`;
  }
  out['full fleet: queued jobs re-recorded (extra queued events)'] = full.ids.reduce((n, id) => n + Math.max(0, (seen.queuedEvents.get(id) ?? 0) - 1), 0);
  out['full fleet: stand-in heartbeats refused or failed'] = fleet.heartbeatFailures;
}

/** A live channel: encoded at real time until stopped (the leader reserves its steady state). */
const ACTOR: Record<string, unknown> = {
  kind: 'actor', input: { synthetic: { source: 'testsrc2' }, resolution: '640x360', fps: 25 },
  output: { codec: 'h264', preset: 'veryfast', rate_control: { mode: 'crf', crf: 26 } }, submitter: 'bench-live',
};

/** One phase's figures, and the numbers the comparison with Ray reads. */
interface PhaseFigures {
  figures: Record<string, number | string>;
  rate: number;
  p50: number;
  p99: number;
  steadyP50: number;
  cpuMsPerJob: number;
}

/** Submits a phase's jobs to the leader and measures how they were placed. */
async function measurePhase(s: TestStack, leader: CoordinatorProcess, seen: EventLog, schemas: readonly Record<string, unknown>[], phase: { rate: number; jobs: number }): Promise<PhaseFigures> {
  const out: Record<string, number | string> = {};
  const cpu0 = { leader: cpuSeconds(leader.pid), nats: cpuSeconds(await natsPid(s.dir)) };
  const sub = await submit(s.nc.jetstream(), phase.jobs, schemas, phase.rate);
  out['jobs submitted'] = phase.jobs;
  out['achieved submit rate (jobs/s)'] = round(phase.jobs / (sub.ackedMs / 1000), 1);
  out['publish ack p50 / p99 (ms)'] = `${round(quantile(sub.ackMs, 0.5), 2)} / ${round(quantile(sub.ackMs, 0.99), 2)}`;
  const placedBySubmitEnd = sub.ids.filter((id) => seen.placed.has(id)).length;
  await seen.settle(sub.ids, 'placed');
  const cpu1 = { leader: cpuSeconds(leader.pid), nats: cpuSeconds(await natsPid(s.dir)) };

  const placed = sub.ids.filter((id) => seen.placed.has(id));
  const lat = placed.map((id) => seen.placed.get(id)!.at - sub.at.get(id)!);
  out.placed = placed.length;
  out['placed by the end of submission'] = placedBySubmitEnd;
  out.rejected = sub.ids.filter((id) => seen.rejected.has(id)).length;
  out['submit → placed p50 / p99 / max (ms)'] = `${round(quantile(lat, 0.5), 1)} / ${round(quantile(lat, 0.99), 1)} / ${round(Math.max(...lat), 1)}`;
  out['submit → placed mean (ms)'] = round(mean(lat), 1);
  // Where a job waits: before the leader admits it (JetStream, behind earlier jobs), or
  // between admission (`queued`) and placement. A job placed in its admission batch has no
  // `queued` event (the leader records it once, as placed).
  const admitted = placed.filter((id) => seen.queued.has(id));
  out['placed without waiting in the queue'] = placed.length - admitted.length;
  if (admitted.length) out['queued → placed p50 / p99 (ms)'] = `${round(quantile(admitted.map((id) => seen.placed.get(id)!.at - seen.queued.get(id)!.at), 0.5), 2)} / ${round(quantile(admitted.map((id) => seen.placed.get(id)!.at - seen.queued.get(id)!.at), 0.99), 2)}`;
  // If the leader falls behind, latency grows with each job's place in line: show the trend.
  // The last tenth is the steady state, once the first jobs' start-up (JIT, connections) is past.
  const tenth = Math.floor(phase.jobs / 10);
  const p50Of = (ids: string[]) => round(quantile(ids.filter((id) => seen.placed.has(id)).map((id) => seen.placed.get(id)!.at - sub.at.get(id)!), 0.5), 1);
  const steadyP50 = p50Of(sub.ids.slice(-tenth));
  out[`p50 of the first ${tenth} / last ${tenth} submitted (ms)`] = `${p50Of(sub.ids.slice(0, tenth))} / ${steadyP50}`;
  out['event seen by a subscriber after placed, p50 (ms)'] = round(quantile(placed.map((id) => seen.placed.get(id)!.seen - seen.placed.get(id)!.at), 0.5), 1);
  const times = placed.map((id) => seen.placed.get(id)!.at).sort((a, b) => a - b);
  const span = (times.at(-1)! - sub.wall0) / 1000;
  const rate = placed.length / span;
  out['placement rate (jobs/s, first submit → last placed)'] = round(rate, 1);
  const k = Math.floor(times.length / 3);
  // Jobs placed within the same millisecond have no rate to show.
  const rateOf = (a: number, b: number) => (times[b] > times[a] ? round((b - a) / ((times[b] - times[a]) / 1000), 1) : '-');
  out['placement rate, first / last third of the jobs (jobs/s)'] = `${rateOf(0, k)} / ${rateOf(times.length - 1 - k, times.length - 1)}`;
  const leaderCpu = cpu1.leader - cpu0.leader, natsCpu = cpu1.nats - cpu0.nats;
  const cpuMsPerJob = (1000 * leaderCpu) / Math.max(1, placed.length);
  out['leader CPU (s) / per placed job (ms)'] = `${round(leaderCpu, 2)} / ${round(cpuMsPerJob, 3)}`;
  // What one core would place if it did nothing else: the target is per leader core.
  out['placements per leader core-second (1000 ÷ CPU ms per job)'] = round(1000 / cpuMsPerJob, 0);
  out['leader CPU use while placing (cores)'] = round(leaderCpu / span, 2);
  out['nats-server CPU (s) / cores while placing'] = `${round(natsCpu, 2)} / ${round(natsCpu / span, 2)}`;
  return { figures: out, rate, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), steadyP50, cpuMsPerJob };
}

/** Ray's figures beside ours, with the ratios the issue sets targets on. */
function besideRay(ours: Record<string, PhaseFigures>, ray: RayTaskRates | { skipped: string }): Record<string, number | string> {
  if ('skipped' in ray) return { ray: `skipped: ${ray.skipped}` };
  const out: Record<string, number | string> = {};
  out.ray = `ray ${ray.ray_version}, num_cpus=${ray.num_cpus}, no-op tasks with num_cpus=1 (peers/ray_tasks.py)`;
  out['ray: as fast as possible, tasks/s (start − submit p50 / p99 ms)'] = `${round(ray.burst.rate_per_s, 1)} (${round(ray.burst.latency_ms.p50, 1)} / ${round(ray.burst.latency_ms.p99, 1)})`;
  out[`ray: paced at ${ray.paced.target_rate_per_s}/s, p50 / p99 / steady p50 (ms)`] = `${round(ray.paced.latency_ms.p50, 2)} / ${round(ray.paced.latency_ms.p99, 1)} / ${round(ray.paced.steady_p50_ms, 2)}`;
  out['ray: actors created per second (creation → first ping p50 ms)'] = `${round(ray.actors.rate_per_s, 2)} (${round(ray.actors.latency_ms.p50, 0)})`;
  const fast = ours['as fast as possible'], paced = ours['at 1,000/s'], actors = ours['live channels (actors)'];
  if (actors) out['ratio: live channels placed per second ÷ Ray\'s actors created per second (ours start no ffmpeg here)'] = round(actors.rate / ray.actors.rate_per_s, 1);
  if (fast) out['ratio: placement rate as fast as possible, Prescient ÷ Ray (target ≥ 2)'] = round(fast.rate / ray.burst.rate_per_s, 2);
  if (paced) {
    out['ratio: p99 at 1,000/s, Prescient ÷ Ray'] = round(paced.p99 / ray.paced.latency_ms.p99, 2);
    out['ratio: steady-state p50 at 1,000/s, Prescient ÷ Ray'] = round(paced.steadyP50 / ray.paced.steady_p50_ms, 2);
  }
  return out;
}

interface Submitted {
  ids: string[];
  /** submitted_at of each job. */
  at: Map<string, number>;
  /** Publish → JetStream acknowledgement, per job. */
  ackMs: number[];
  wall0: number;
  /** From the first publish: the last publish issued, and the last acknowledged. */
  sentMs: number;
  ackedMs: number;
}

/**
 * Publishes `n` jobs paced at `rate` per second: at each tick, as many as should have gone by
 * now (all at once for an infinite rate). They are not awaited one by one, so a slow
 * acknowledgement does not slow the pace.
 */
async function submit(js: JetStreamClient, n: number, schemas: readonly Record<string, unknown>[], rate: number): Promise<Submitted> {
  const ids: string[] = [], at = new Map<string, number>(), ackMs: number[] = [], inFlight: Promise<void>[] = [];
  const t0 = performance.now(), wall0 = Date.now();
  while (ids.length < n) {
    const due = Math.min(n, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
    while (ids.length < due) {
      const id = newJobId(), submitted_at = Date.now(), t = performance.now();
      ids.push(id);
      at.set(id, submitted_at);
      inFlight.push(publishSubmission(js, TEST_OWNER, { job_id: id, submitted_at, schema: schemas[ids.length % schemas.length] }).then(() => { ackMs.push(performance.now() - t); }));
    }
    if (ids.length < n) await sleep(1);
  }
  const sentMs = performance.now() - t0;
  await Promise.all(inFlight);
  return { ids, at, ackMs, wall0, sentMs, ackedMs: performance.now() - t0 };
}

/** Every job event published while it is open: the first `queued` and `placed` of each job, with the leader's time and ours. */
class EventLog {
  readonly queued = new Map<string, { at: number; seen: number }>();
  readonly placed = new Map<string, { at: number; seen: number }>();
  readonly rejected = new Set<string>();
  readonly ended = new Set<string>();
  /** Cores reserved by each job placed and not yet ended. */
  private readonly cores = new Map<string, number>();
  readonly queuedEvents = new Map<string, number>();
  readonly models = new Set<string>();
  private last = Date.now();
  private readonly sub: Subscription;

  constructor(nc: NatsConnection) {
    this.sub = nc.subscribe(ALL_JOB_EVENTS, {
      callback: (_e, m) => {
        const ev = jsonCodec.decode(m.data) as TaskEvent;
        const now = (this.last = Date.now());
        if (ev.state === 'rejected') this.rejected.add(ev.job_id);
        if (TERMINAL_STATES.has(ev.state)) { this.ended.add(ev.job_id); this.cores.delete(ev.job_id); }
        if (ev.state === 'placed' && ev.allocation) this.cores.set(ev.job_id, ev.allocation.core_ids.length);
        if (ev.state === 'placed') this.models.add(ev.predicted?.model_version ?? 'none');
        if (ev.state === 'queued') this.queuedEvents.set(ev.job_id, (this.queuedEvents.get(ev.job_id) ?? 0) + 1);
        const first = ev.state === 'queued' ? this.queued : ev.state === 'placed' ? this.placed : undefined;
        if (first && !first.has(ev.job_id)) first.set(ev.job_id, { at: ev.at, seen: now });
      },
    });
  }

  /** Waits until every job in `ids` has reached `state`, nothing has arrived for QUIET_MS, or `maxMs` has passed. */
  async settle(ids: readonly string[], state: 'admitted' | 'placed' | 'ended', maxMs = MAX_WAIT_MS): Promise<void> {
    const has = (id: string) => (state === 'admitted' ? this.queued.has(id) || this.placed.has(id) : state === 'placed' ? this.placed.has(id) : this.ended.has(id));
    const until = Date.now() + maxMs;
    while (ids.some((id) => !has(id)) && Date.now() < until && Date.now() - this.last < QUIET_MS) await sleep(100);
  }

  /** Cores held by the jobs placed and not ended. */
  coresHeld(): number {
    let n = 0;
    for (const c of this.cores.values()) n += c;
    return n;
  }

  close(): void { this.sub.unsubscribe(); }
}

async function natsPid(dir: string): Promise<number | undefined> {
  return (await stackStatus({ stateDir: dir })).services.find((x) => x.name === 'nats')?.pid;
}

/**
 * The JetStream round trips a placement waits on, each measured alone and in sequence on this
 * stack while the leader is idle: a KV put (the job's record; its first is a create) and then its
 * event's publish. A KV get is paid only where a job's first write finds a record (a duplicate).
 */
async function roundTrips(js: JetStreamClient): Promise<Record<string, number | string>> {
  const kv = await js.views.kv('bench_scratch', { history: 1, storage: StorageType.File });
  const value = jsonCodec.encode({ ...packingBatch()[0], padding: 'x'.repeat(1500) }); // about a task record's size
  const time = async (fn: (i: number) => Promise<unknown>) => {
    const ms: number[] = [];
    for (let i = 0; i < 300; i++) { const t = performance.now(); await fn(i); ms.push(performance.now() - t); }
    return quantile(ms, 0.5);
  };
  const get = await time((i) => kv.get(`missing-${i}`));
  const put = await time((i) => kv.put(`k${i}`, value));
  const pub = await time((i) => js.publish(jobEventsSubject(TEST_OWNER, `benchscratch${i % 10}`), value));
  return {
    'round trip, KV get (ms, median)': round(get, 3),
    'round trip, KV put (ms, median)': round(put, 3),
    'round trip, event publish (ms, median)': round(pub, 3),
    'put, then publish, per placement (ms)': round(put + pub, 3),
  };
}

/** The last two parts of a script's path (`leader/index.js`), or the whole of a `node:` one. */
const shortUrl = (url: string) => (url.includes('/') ? url.split('/').slice(-2).join('/') : url);

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

/** Where the leader's CPU went: self time by function and by area, and time inside key leader steps. */
function summariseProfile(dir: string): Record<string, string> {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort();
  if (!files.length) return { 'cpu profile': `none written to ${dir}` };
  const file = path.join(dir, files.at(-1)!);
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>(), area = new Map<string, number>(), inside = new Map<string, number>();
  const STEPS = ['consume', 'admit', 'schedule', 'record', 'queue', 'orderQueue', 'place', 'sizeRequest', 'snapshot', 'commit', 'predict', 'validateEncodingSchema', 'put', 'publish', 'assign', 'register', 'heartbeat'];
  let busy = 0;
  const where = (url: string) =>
    url.includes('/dist/coordinator/') ? 'coordinator' : url.includes('/dist/models/') ? 'model' : url.includes('/dist/shared/') ? 'shared'
      : url.includes('/nats/') ? 'nats client' : url.includes('@grpc') || url.includes('protobuf') ? 'grpc' : url.startsWith('node:') ? 'node internals' : url ? 'other js' : 'native';
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i])!;
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    const fn = n.callFrame.functionName || '(anonymous)';
    if (fn === '(idle)') continue;
    busy += dt;
    const key = `${fn} ${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    const a = !n.callFrame.url && fn.startsWith('(') ? fn : where(n.callFrame.url); // (program), (garbage collector)
    area.set(a, (area.get(a) ?? 0) + dt);
    const on = new Set<string>();
    for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame;
      if (STEPS.includes(f.functionName) && (f.url.includes('/dist/coordinator/') || f.url.includes('/dist/models/') || f.url.includes('/dist/shared/'))) on.add(`${f.functionName} (${shortUrl(f.url)})`);
    }
    for (const k of on) inside.set(k, (inside.get(k) ?? 0) + dt);
  }
  const pct = (ms: number) => `${(100 * ms / busy).toFixed(1)}%`;
  const top = (m: Map<string, number>, k: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, k).map(([n, ms]) => `${n} ${pct(ms)}`).join('; ');
  return {
    'cpu profile': file,
    'leader busy CPU in profile (s)': (busy / 1000).toFixed(2),
    'leader CPU by area': top(area, 8),
    'leader CPU by function (self)': top(self, 12),
    'leader CPU inside (synchronous part)': top(inside, 12),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) console.log(JSON.stringify(await benchSubmitLatency(), null, 2));
