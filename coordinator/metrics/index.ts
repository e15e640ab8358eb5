/**
 * A coordinator's Prometheus metrics (issue 20). State is read at scrape time from the leader
 * it runs, if it leads (a standby reports `prescient_leader 0` and its own health only); what
 * happens is counted from the records the leader writes (`recorded`), which is every state
 * change of every job, so nothing else in the leader knows about metrics.
 *
 *   prescient_leader, prescient_leader_term
 *   prescient_jobs{state,class}                      jobs this leader holds now (queued, placed, running)
 *   prescient_job_transitions_total{state,class}     jobs that entered each state under this coordinator
 *   prescient_submit_to_placed_seconds{class}        first placement after submission (JetStream's time)
 *   prescient_queue_depth{class}
 *   prescient_node_capacity{node,resource}, prescient_node_reserved{node,resource}
 *                                                    resource: cores, memory_gb, bandwidth_mbps, gpu_sessions
 *   prescient_overruns_total{resource}               memory-limit stops (re-queued at more memory), time-limit stops
 *   prescient_prediction_mape{target}, prescient_prediction_bound_coverage{target}, prescient_prediction_window_runs{target}
 *                                                    the feedback loop's rolling windows, pooled over codecs and nodes
 *   prescient_dependency_up{service}                 NATS, Consul, QuestDB
 * and the process's own (CPU, memory, event loop, GC).
 */
import { TERMINAL_STATES, type EncodingTask, type SlaClass, type TaskState } from '../../shared/index.js';
import { Counter, Gauge, Histogram, dependencyGauge, memberRegistry, type HealthCheck, type Registry } from '../../shared/metrics.js';
import { pooledFigures, type ErrorGroup } from '../feedback/index.js';

/** What the metrics read from a leading coordinator. */
export interface LeaderView {
  term: number;
  activeTasks(): Iterable<EncodingTask>;
  nodes(): Iterable<{ node_id: string; capacity: { core_ids: readonly number[]; memory_gb: number; bandwidth_mbps: number }; free_core_ids: readonly number[]; free_memory_gb: number; free_bandwidth_mbps: number; gpu_sessions: number; free_gpu_sessions: number }>;
}

export interface CoordinatorMetricsOptions {
  id: string;
  leader: () => LeaderView | undefined;
  /** The feedback loop's error groups (empty while it is not running). */
  errorGroups: () => readonly ErrorGroup[];
  checks: Record<string, HealthCheck>;
}

const ACTIVE: readonly TaskState[] = ['queued', 'placed', 'running'];
/** Tasks whose last state is remembered to count transitions: active ones, and the most recent that ended (a success's quality amendment is written after it). */
const REMEMBERED_MAX = 200_000;
const ENDED_KEPT = 10_000;

interface Seen { state: TaskState; memory_floor_gb?: number; time_limit_stop_at?: number }

export class CoordinatorMetrics {
  readonly registry: Registry;
  private readonly transitions: Counter<'state' | 'class'>;
  private readonly placedAfter: Histogram<'class'>;
  private readonly overruns: Counter<'resource'>;
  private readonly seen = new Map<string, Seen>();
  private readonly ended = new Map<string, Seen>();

  constructor(private readonly o: CoordinatorMetricsOptions) {
    const r = this.registry = memberRegistry({ member: `coordinator/${o.id}` });
    const leader = o.leader;
    new Gauge({ name: 'prescient_leader', help: 'Whether this coordinator leads (1) or stands by (0)', registers: [r], collect() { this.set(leader() ? 1 : 0); } });
    new Gauge({ name: 'prescient_leader_term', help: 'The term this coordinator leads under (0 while standing by)', registers: [r], collect() { this.set(leader()?.term ?? 0); } });
    new Gauge({
      name: 'prescient_jobs', help: 'Jobs this leader holds now, by state and SLA class', labelNames: ['state', 'class'], registers: [r],
      collect() {
        this.reset();
        const l = leader();
        if (!l) return;
        const counts = new Map<string, number>();
        for (const t of l.activeTasks()) { const k = `${t.state}\0${t.schema.priority}`; counts.set(k, (counts.get(k) ?? 0) + 1); }
        for (const s of ACTIVE) for (const c of ['premium', 'standard', 'batch'] as SlaClass[]) this.set({ state: s, class: c }, counts.get(`${s}\0${c}`) ?? 0);
      },
    });
    new Gauge({
      name: 'prescient_queue_depth', help: 'Jobs waiting for resources, by SLA class', labelNames: ['class'], registers: [r],
      collect() {
        this.reset();
        const l = leader();
        if (!l) return;
        const counts: Record<string, number> = { premium: 0, standard: 0, batch: 0 };
        for (const t of l.activeTasks()) if (t.state === 'queued') counts[t.schema.priority] = (counts[t.schema.priority] ?? 0) + 1;
        for (const [c, n] of Object.entries(counts)) this.set({ class: c }, n);
      },
    });
    const perNode = (name: string, help: string, value: (n: ReturnType<LeaderView['nodes']> extends Iterable<infer N> ? N : never) => Record<string, number>) => new Gauge({
      name, help, labelNames: ['node', 'resource'], registers: [r],
      collect() {
        this.reset();
        const l = leader();
        if (!l) return;
        for (const n of l.nodes()) for (const [res, v] of Object.entries(value(n))) this.set({ node: n.node_id, resource: res }, v);
      },
    });
    perNode('prescient_node_capacity', 'What each node offers, per resource (cores, memory_gb, bandwidth_mbps, gpu_sessions)', (n) => ({
      cores: n.capacity.core_ids.length, memory_gb: n.capacity.memory_gb, bandwidth_mbps: n.capacity.bandwidth_mbps, gpu_sessions: n.gpu_sessions,
    }));
    perNode('prescient_node_reserved', 'What is reserved on each node now, per resource (the agents\' prescient_agent_used_* say what is used)', (n) => ({
      cores: n.capacity.core_ids.length - n.free_core_ids.length, memory_gb: round(n.capacity.memory_gb - n.free_memory_gb),
      bandwidth_mbps: round(n.capacity.bandwidth_mbps - n.free_bandwidth_mbps), gpu_sessions: n.gpu_sessions - n.free_gpu_sessions,
    }));
    const groups = o.errorGroups;
    const pooled = (name: string, help: string, pick: (f: ReturnType<typeof pooledFigures>[number]) => number) => new Gauge({
      name, help, labelNames: ['target'], registers: [r],
      collect() {
        this.reset();
        for (const f of pooledFigures(groups())) if (Number.isFinite(pick(f))) this.set({ target: f.target }, pick(f));
      },
    });
    pooled('prescient_prediction_mape', 'Rolling mean absolute percentage error of predictions, per target, over the feedback windows of every codec and node (%)', (f) => f.mape);
    pooled('prescient_prediction_bound_coverage', 'Share of recent runs that stayed under their predicted upper bound, per target', (f) => f.coverage);
    pooled('prescient_prediction_window_runs', 'Runs in the rolling error windows, per target', (f) => f.runs);
    this.transitions = new Counter({ name: 'prescient_job_transitions_total', help: 'Jobs that entered each state while this coordinator led, by SLA class', labelNames: ['state', 'class'], registers: [r] });
    this.placedAfter = new Histogram({
      name: 'prescient_submit_to_placed_seconds', help: 'From submission (JetStream\'s stored time) to first placement, by SLA class', labelNames: ['class'], registers: [r],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
    });
    this.overruns = new Counter({ name: 'prescient_overruns_total', help: 'Encodes stopped for going over their reservation: memory (stopped at its limit, run again with more) or duration (past its time limit)', labelNames: ['resource'], registers: [r] });
    dependencyGauge(r, o.checks);
  }

  /** A task's record as the leader writes it: counts its state change, first placement and overruns. */
  recorded(t: EncodingTask): void {
    const before = this.seen.get(t.id) ?? this.ended.get(t.id);
    if (before?.state !== t.state) {
      this.transitions.inc({ state: t.state, class: t.schema.priority });
      if (t.state === 'placed' && t.attempts <= 1 && !before?.memory_floor_gb && t.started_at) this.placedAfter.observe({ class: t.schema.priority }, Math.max(0, t.started_at - t.submitted_at) / 1000);
    }
    if ((t.memory_floor_gb ?? 0) > (before?.memory_floor_gb ?? 0)) this.overruns.inc({ resource: 'memory' });
    if (t.time_limit_stop_at && t.time_limit_stop_at !== before?.time_limit_stop_at) this.overruns.inc({ resource: 'duration' });
    const now: Seen = { state: t.state, memory_floor_gb: t.memory_floor_gb, time_limit_stop_at: t.time_limit_stop_at };
    if (TERMINAL_STATES.has(t.state)) {
      this.seen.delete(t.id);
      this.ended.delete(t.id);
      this.ended.set(t.id, now);
      if (this.ended.size > ENDED_KEPT) this.ended.delete(this.ended.keys().next().value!);
    } else if (this.seen.size < REMEMBERED_MAX || before) this.seen.set(t.id, now);
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;
