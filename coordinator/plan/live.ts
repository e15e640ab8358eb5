/**
 * `prescient plan job.yaml` (issue 19), Nomad's `job plan`: what the leader would do with this
 * job now, with nothing submitted. A fresh core is started from what the leader keeps durable
 * (the saved ledger and the active tasks' records), its nodes heard from as their agents last
 * were, and the job is submitted to it: the decision is the core's own, so the node it names
 * is the one the leader picks for the same job on the same state. Pure: the caller reads the
 * state and the clock.
 */
import { toAllocationMsg, type EncodingTask, type Prediction, type ResourceAllocation } from '../../shared/index.js';
import type { ResourcePredictor } from '../../models/index.js';
import { LeaderCore, type Effect } from '../core/index.js';
import type { LedgerState } from '../ledger/index.js';
import { POLICIES } from '../placement/index.js';
import { DEFAULT_QUEUE_POLICY, estimateStarts, orderQueue } from '../queue/index.js';
import { parseReservationPolicy, sizeRequest } from '../sizing/index.js';
import type { ValidationContext } from '../../shared/index.js';

export interface LivePlanInput {
  schema: unknown;
  /** Who would submit it (the job's owner). */
  owner: string;
  ledger?: LedgerState;
  tasks: EncodingTask[];
  predictor: ResourcePredictor;
  validation: ValidationContext;
  now: number;
  /** A node silent longer than this is left out, as the leader would soon declare it lost. */
  leaseMs?: number;
  reservation?: string;
  placement?: keyof typeof POLICIES;
}

export interface LivePlan {
  outcome: 'placed' | 'queued' | 'rejected';
  /** The node it would go to and what it would reserve there. */
  node_id?: string;
  allocation?: ResourceAllocation;
  /** Why it would wait, or be refused, or how it was sized, as the core says. */
  reason?: string;
  prediction?: Prediction;
  /** For a queued job: when the queue's replay expects it to start (ISO), and why. */
  estimated_start?: string | null;
  estimate?: string;
  /** Nodes left out because their agents have been silent past the lease. */
  silent_nodes: string[];
}

const PLAN_ID = 'plan-dry-run';

export function planJob(o: LivePlanInput): LivePlan {
  const leaseMs = o.leaseMs ?? 15_000;
  const core = new LeaderCore({
    predictor: o.predictor, validation: o.validation, leaseMs, reservation: parseReservationPolicy(o.reservation ?? 'predictive'),
    policy: POLICIES[o.placement ?? 'best-fit'], queuePolicy: DEFAULT_QUEUE_POLICY,
  });
  const effects: Effect[] = [];
  const apply = (...events: Parameters<LeaderCore['apply']>[0]) => effects.push(...core.apply(events).effects);
  apply({ kind: 'ModelChanged', at: o.now, version: o.predictor.version }, { kind: 'Started', at: o.now, term: (o.ledger?.term ?? 0) + 1, leader_id: 'plan', tasks: o.tasks.map((t) => structuredClone(t)), saved: o.ledger });
  // Every node whose agent was heard within the lease reports what it runs, as after a failover.
  const silent: string[] = [];
  for (const n of o.ledger?.nodes ?? []) {
    if (o.now - n.last_seen > leaseMs) { silent.push(n.capacity.node_id); continue; }
    apply({ kind: 'Heartbeat', at: o.now, node_id: n.capacity.node_id, running: n.reservations.map((r) => ({ task_id: r.task_id, allocation: toAllocationMsg(r.allocation) })) });
  }
  effects.length = 0;
  apply({ kind: 'Submitted', at: o.now, submissions: [{ envelope: { job_id: PLAN_ID, submitted_at: o.now, schema: o.schema }, owner: o.owner, stored_at: o.now }] });
  const assign = effects.find((e): e is Extract<Effect, { kind: 'Assign' }> => e.kind === 'Assign' && e.assignment.task_id === PLAN_ID);
  const record = [...effects].reverse().find((e): e is Extract<Effect, { kind: 'Record' }> => e.kind === 'Record' && e.task.id === PLAN_ID);
  const t = record?.task;
  if (assign && t) return { outcome: 'placed', node_id: assign.node_id, allocation: t.allocation, reason: t.reason, prediction: t.predicted, silent_nodes: silent };
  if (!t || t.state === 'rejected') return { outcome: 'rejected', reason: t?.reason ?? 'refused', silent_nodes: silent };
  // Waiting: where it would stand in the queue, and when the replay of the queue starts it.
  const active = [...core.active.values()];
  const snap = core.ledger.snapshot();
  const est = estimateStarts(orderQueue(active.filter((x) => x.state === 'queued')), (o.ledger?.nodes ?? []).filter((n) => !silent.includes(n.capacity.node_id)).map((n) => n.capacity),
    active.filter((x) => x.allocation && (x.state === 'placed' || x.state === 'running')), (x) => { const r = sizeRequest(x, snap); return { cores: r.cores, gpus: r.gpus, memory_gb: r.memory_gb, bandwidth_mbps: r.bandwidth_mbps }; }, o.now).get(PLAN_ID);
  return {
    outcome: 'queued', reason: t.reason, prediction: t.predicted, silent_nodes: silent,
    estimated_start: est?.at !== undefined ? new Date(est.at).toISOString() : null, estimate: est?.why ?? '',
  };
}
