/**
 * Reconciliation, the pure half: compare what the ledger holds with what agents report they
 * run, and sort every task into a named bucket. `Ledger.reconcile` then applies the buckets.
 *
 * The agents are the truth about what runs; the ledger is the truth about what is live. So a
 * reported task of a live job is reserved exactly as reported, a reservation of a task that is
 * no longer live is released, and a reported task that is not live is left for its agent to stop.
 */
import type { ResourceAllocation } from '../../shared/index.js';
import { sameResources } from './node.js';
import type { AgentReport, ReconcileEntry } from './types.js';

export interface ReconcileDiff {
  /** Reported as reserved. */
  confirm: ReconcileEntry[];
  /** Reported, live, not reserved. */
  adopt: Array<ReconcileEntry & { allocation: ResourceAllocation }>;
  /** Reported with other resources, or on another node, than reserved. */
  replace: Array<ReconcileEntry & { allocation: ResourceAllocation }>;
  /** Reserved, not live. */
  drop: ReconcileEntry[];
  /** Reported, not live (or reported a second time by another node). */
  ignore: ReconcileEntry[];
  /** Reserved and live, but not in any report. */
  unreported: ReconcileEntry[];
}

const list = (x: number[]) => `[${[...x].sort((a, b) => a - b).join(',')}]`;

export function compareReports(
  reserved: ReadonlyMap<string, ResourceAllocation>, reports: readonly AgentReport[], isLive: (taskId: string) => boolean,
): ReconcileDiff {
  const out: ReconcileDiff = { confirm: [], adopt: [], replace: [], drop: [], ignore: [], unreported: [] };
  const reportedOn = new Map<string, string>();
  const reporting = new Set(reports.map((r) => r.node_id));
  for (const rep of reports) {
    for (const r of rep.running) {
      const node_id = rep.node_id, task_id = r.task_id;
      // The report's node is authoritative; an allocation relayed over gRPC may carry no node id.
      const allocation = { ...r.allocation, node_id };
      const first = reportedOn.get(task_id);
      if (first !== undefined) {
        out.ignore.push({ task_id, node_id, reason: `also reported by ${first}, whose report stands` });
        continue;
      }
      reportedOn.set(task_id, node_id);
      if (!isLive(task_id)) {
        out.ignore.push({ task_id, node_id, reason: 'reported running, but the task is not live; its agent should stop it' });
        continue;
      }
      const held = reserved.get(task_id);
      if (!held) out.adopt.push({ task_id, node_id, allocation, reason: `reported running on ${node_id} without a reservation` });
      else if (sameResources(held, allocation)) out.confirm.push({ task_id, node_id, reason: 'reported running as reserved' });
      else if (held.node_id !== node_id) out.replace.push({ task_id, node_id, allocation, reason: `reserved on ${held.node_id}, but running on ${node_id}` });
      else out.replace.push({ task_id, node_id, allocation, reason: `reserved with cores ${list(held.core_ids)} and GPUs ${list(held.gpu_ids)}, but running with cores ${list(allocation.core_ids)} and GPUs ${list(allocation.gpu_ids)}` });
    }
  }
  for (const [task_id, a] of reserved) {
    if (!isLive(task_id)) out.drop.push({ task_id, node_id: a.node_id, reason: 'the task is no longer live' });
    else if (!reportedOn.has(task_id)) {
      out.unreported.push({ task_id, node_id: a.node_id, reason: reporting.has(a.node_id) ? `${a.node_id} reported without it (it may still be starting)` : `${a.node_id} has not reported` });
    }
  }
  return out;
}
