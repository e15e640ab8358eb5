/**
 * `prescient nodes` and `prescient queue`: the fleet and the queue as the leader last saved
 * them (the ledger bucket and the task records in JetStream), so they work from any machine
 * that reaches NATS, with or without a leader up. main.ts defines the commands and loads this
 * module when one of them runs.
 */
import { cliBus } from './member.js';
import { loadEndpoints, type EncodingTask, type GpuCapacity, type GpuProfile, type ReservedResource } from '../../shared/index.js';
import { JetStreamTaskStore, connectBus, pendingSubmissions, type PendingSubmission } from '../bus/index.js';
import { JetStreamLedgerStore, Ledger, type GpuSlots, type LedgerState } from '../ledger/index.js';
import { estimateStarts, orderQueue } from '../queue/index.js';
import { sizeRequest } from '../sizing/index.js';
import { coreRanges, table } from './format.js';

const RESOURCES: ReservedResource[] = ['cpu', 'memory', 'gpu', 'bandwidth'];

/** The ledger and the active task records; with `pending`, the submissions no leader has taken yet. */
interface Fleet { ledger?: LedgerState; tasks: EncodingTask[]; pending?: PendingSubmission[] }

async function readFleet(stateDir: string, withPending = false): Promise<Fleet> {
  const { nc } = await cliBus(stateDir);
  try {
    const js = nc.jetstream();
    const [ledger, tasks, pending] = await Promise.all([
      JetStreamLedgerStore.open(js).then((s) => s.load()),
      JetStreamTaskStore.open(js).then((s) => s.listActive()),
      withPending ? pendingSubmissions(nc).then((p) => p.submissions) : undefined,
    ]);
    return { ledger, tasks, pending };
  } finally {
    await nc.drain();
  }
}

const fixed = (x: number, d = 1) => (Number.isInteger(x) ? String(x) : x.toFixed(d));
const ago = (t: number, now: number) => `${Math.max(0, Math.round((now - t) / 1000))} s ago`;

/**
 * One GPU of a node row: what its agent discovered and the ledger's sessions. `profile` says
 * where the engine counts and the session limit come from: the agent's model table (`known`),
 * its guess (`assumed`), or nowhere (`unreported`: an agent from before GPU discovery, whose
 * GPU gets the ledger's default sessions; driver and engines are then null).
 */
export function gpuView(cap: GpuCapacity, slots: GpuSlots) {
  const reported = !!cap.profile;
  return {
    id: cap.id, model: cap.name, memory_gb: cap.memory_gb, driver: cap.driver || null,
    nvenc_engines: reported ? cap.nvenc_engines ?? 0 : null, nvdec_engines: reported ? cap.nvdec_engines ?? 0 : null,
    sessions: slots.sessions, free_sessions: slots.free_sessions,
    profile: (reported ? cap.profile : 'unreported') as GpuProfile | 'unreported',
  };
}

type NodeRow = ReturnType<typeof nodesView>[number];

/** NVIDIA's prefix says nothing in a column of NVIDIA GPUs; long names are cut to `width`. */
function shortModel(name: string, width = 26): string {
  const s = name.replace(/^NVIDIA\s+/, '');
  return s.length > width ? `${s.slice(0, width - 1)}…` : s;
}

/** The human table of every node's GPUs, one row each; empty when no node has a GPU. */
export function gpuTable(rows: readonly NodeRow[]): string {
  const lines = rows.flatMap((r) => r.gpus.map((g) => [
    r.node_id, String(g.id), shortModel(g.model), fixed(g.memory_gb), g.driver ?? '-',
    g.nvenc_engines === null ? '-' : `${g.nvenc_engines}${g.profile === 'assumed' ? '?' : ''}`,
    g.nvdec_engines === null ? '-' : `${g.nvdec_engines}${g.profile === 'assumed' ? '?' : ''}`,
    g.sessions === 0 ? 'none: no NVENC' : `${g.free_sessions}/${g.sessions}${g.profile === 'known' ? '' : g.profile === 'assumed' ? ' assumed' : ' default'}`,
  ]));
  return lines.length ? table(['node', 'gpu', 'model', 'GB', 'driver', 'NVENC', 'NVDEC', 'sessions free'], lines) : '';
}

/** Node rows: capacity, free, reservations and how each resource is held to its reservation. */
export function nodesView(state: LedgerState | undefined, now = Date.now()) {
  if (!state) return [];
  const ledger = Ledger.fromState(state, state.term, Number.MAX_SAFE_INTEGER, now);
  const snap = ledger.snapshot();
  return state.nodes.map((r) => {
    const n = snap.node(r.capacity.node_id)!;
    const enforcement = Object.fromEntries(RESOURCES.map((res) => {
      const e = r.capacity.enforcement?.find((x) => x.resource === res);
      // Older agents say nothing: that is not enforcement, so it is shown as accounted-only.
      return [res, e ? { mode: e.mode, detail: e.detail } : { mode: 'accounted-only', detail: 'the agent did not report enforcement' }];
    }));
    return {
      node_id: r.capacity.node_id, address: r.capacity.address, cpu_model: r.capacity.cpu_model, last_seen: r.last_seen,
      cores: { total: r.capacity.core_ids.length, free: n.free_core_ids.length, free_ids: n.free_core_ids },
      memory_gb: { total: r.capacity.memory_gb, free: n.free_memory_gb },
      bandwidth_mbps: { total: r.capacity.bandwidth_mbps, free: n.free_bandwidth_mbps },
      gpus: n.gpus.map((g) => gpuView(r.capacity.gpus.find((c) => c.id === g.id)!, g)),
      reservations: r.reservations.map((x) => x.task_id),
      enforcement,
    };
  });
}

/**
 * Queue rows in order, with class, reason and estimated start; then the submissions still
 * waiting in JetStream for a leader (`waiting_for_leader`), oldest first: no leader has
 * recorded them, so they have no place in the order yet.
 */
export function queueView(f: Fleet, now = Date.now()) {
  const order = orderQueue(f.tasks);
  const ledger = f.ledger ? Ledger.fromState(f.ledger, f.ledger.term, Number.MAX_SAFE_INTEGER, now) : undefined;
  const snap = ledger?.snapshot();
  const nodes = f.ledger?.nodes.map((n) => n.capacity) ?? [];
  const running = f.tasks.filter((t) => t.allocation && (t.state === 'placed' || t.state === 'running'));
  const est = estimateStarts(order, nodes, running, (t) => {
    const r = snap ? sizeRequest(t, snap) : { cores: 1, gpus: 0, memory_gb: 0, bandwidth_mbps: 0 };
    return { cores: r.cores, gpus: r.gpus, memory_gb: r.memory_gb, bandwidth_mbps: r.bandwidth_mbps };
  }, now);
  const rows = order.map((e) => ({
    position: e.position, job_id: e.task.id, class: e.task.schema.priority, submitter: e.task.schema.submitter,
    waiting_s: Math.round((now - e.task.submitted_at) / 1000), reason: e.task.reason ?? '',
    ...(e.task.schema.deadline ? { deadline: e.task.schema.deadline, deadline_missed: now > Date.parse(e.task.schema.deadline) } : {}),
    ...(e.latest_start !== undefined ? { latest_start: new Date(e.latest_start).toISOString(), deadline_at_risk: now > e.latest_start } : {}),
    estimated_start: est.get(e.task.id)?.at !== undefined ? new Date(est.get(e.task.id)!.at!).toISOString() : null,
    estimate: est.get(e.task.id)?.why ?? '',
    waiting_for_leader: false,
  }));
  const recorded = new Set(f.tasks.map((t) => t.id));
  const waiting = (f.pending ?? []).filter((p) => !recorded.has(p.job_id)).map((p, i) => {
    const s = (p.schema && typeof p.schema === 'object' ? p.schema : {}) as Record<string, unknown>;
    return {
      position: order.length + i + 1, job_id: p.job_id, class: typeof s.priority === 'string' ? s.priority : 'standard', submitter: typeof s.submitter === 'string' ? s.submitter : p.owner,
      waiting_s: Math.max(0, Math.round((now - p.stored_at) / 1000)), reason: 'submitted, waiting for a leader (kept in JetStream)',
      estimated_start: null, estimate: 'once a leader takes it', waiting_for_leader: true,
    };
  });
  return [...rows, ...waiting];
}

export async function nodes(o: { json?: boolean }, stateDir: string): Promise<void> {
  const f = await readFleet(stateDir);
  const rows = nodesView(f.ledger);
  if (o.json) { console.log(JSON.stringify({ term: f.ledger?.term ?? null, nodes: rows }, null, 2)); return; }
  if (!rows.length) { console.log('no nodes in the ledger (no leader has saved one yet, or no agent has registered)'); return; }
  const now = Date.now();
  console.log(table(['node', 'cores free', 'memory GB free', 'Mbps free', 'GPU sessions free', 'tasks', 'last seen'], rows.map((r) => [
    r.node_id, `${r.cores.free}/${r.cores.total}${r.cores.free ? ` [${coreRanges(r.cores.free_ids)}]` : ''}`, `${fixed(r.memory_gb.free, 2)}/${fixed(r.memory_gb.total, 2)}`,
    `${fixed(r.bandwidth_mbps.free)}/${fixed(r.bandwidth_mbps.total)}`, r.gpus.length ? r.gpus.map((g) => `${g.id}:${g.free_sessions}/${g.sessions}`).join(' ') : '-',
    String(r.reservations.length), ago(r.last_seen, now),
  ])));
  const gpus = gpuTable(rows);
  if (gpus) console.log(`\ngpus (? and "assumed": the agent's model table does not know the model or its driver)\n${gpus}`);
  console.log('\nenforcement');
  // One line per node and resource: the details are sentences, wrapped to the terminal's width.
  console.log(table(['node', 'resource', 'mode', 'detail'], rows.flatMap((r) => RESOURCES.map((res) => [r.node_id, res, r.enforcement[res].mode, r.enforcement[res].detail])), { wrap: [3] }));
}

export async function queue(o: { json?: boolean }, stateDir: string): Promise<void> {
  const rows = queueView(await readFleet(stateDir, true));
  if (o.json) { console.log(JSON.stringify({ queue: rows }, null, 2)); return; }
  if (!rows.length) { console.log('the queue is empty'); return; }
  console.log(table(['#', 'job', 'class', 'submitter', 'waiting', 'estimated start', 'reason'], rows.map((r) => [
    r.waiting_for_leader ? '-' : String(r.position), r.job_id, r.class + ('deadline_missed' in r && r.deadline_missed ? ' (deadline missed)' : 'deadline_at_risk' in r && r.deadline_at_risk ? ' (deadline at risk)' : ''), r.submitter, `${r.waiting_s} s`,
    r.estimated_start ? r.estimated_start.slice(11, 19) : r.estimate, r.reason,
  ]), { keep: [1, 2], wrap: [5, 6] }));
}

/** `prescient plan job.yaml`: what the leader would do with the job now (coordinator/plan/live.ts), nothing submitted. */
export async function planLive(schema: unknown, o: { json?: boolean; model?: string; reservation?: string; placement?: string }, stateDir: string, validation: import('../../shared/index.js').ValidationContext): Promise<void> {
  const [{ planJob }, { DEFAULT_MODEL_PATH, loadModelFile }, { cliMember }] = await Promise.all([import('../plan/live.js'), import('../../models/index.js'), import('./member.js')]);
  const f = await readFleet(stateDir);
  const r = planJob({
    schema, owner: cliMember().name, ledger: f.ledger, tasks: f.tasks, predictor: loadModelFile(o.model ?? DEFAULT_MODEL_PATH), validation, now: Date.now(),
    reservation: o.reservation, placement: o.placement as never,
  });
  if (o.json) { console.log(JSON.stringify(r, null, 2)); return; }
  const p = r.prediction;
  const lines = [
    r.outcome === 'placed' ? `would be placed on ${r.node_id}: ${r.allocation!.core_ids.length} core(s) [${r.allocation!.core_ids.join(',')}], ${fixed(r.allocation!.memory_gb, 2)} GB${r.allocation!.gpu_ids.length ? `, GPU ${r.allocation!.gpu_ids.join(',')}` : ''}`
      : r.outcome === 'queued' ? `would wait: ${r.reason ?? ''}; estimated start ${r.estimated_start ?? 'unknown'}${r.estimate ? ` (${r.estimate})` : ''}`
        : `would be refused: ${r.reason ?? ''}`,
    ...(r.outcome === 'placed' && r.reason ? [`  ${r.reason}`] : []),
    ...(p ? [`predicted (${p.model_version}, bound at ${((p.coverage ?? 0.95) * 100).toFixed(0)} %): ${fixed(p.expected.duration_s, 1)} s (≤ ${fixed(p.upper.duration_s, 1)}), ${fixed(p.expected.memory_gb, 2)} GB (≤ ${fixed(p.upper.memory_gb, 2)}), ${fixed(p.expected.cpu_cores, 2)} cores (≤ ${fixed(p.upper.cpu_cores, 2)})${p.flags?.length ? `; ${p.flags.join('; ')}` : ''}`] : []),
    ...(r.silent_nodes.length ? [`left out, their agents silent: ${r.silent_nodes.join(', ')}`] : []),
    'nothing was submitted',
  ];
  console.log(lines.join('\n'));
}
