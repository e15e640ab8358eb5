/**
 * An agent's Prometheus metrics (issue 20): what this node has, what is reserved on it and what
 * its encodes use now, read at scrape time; reports by outcome counted as they are made.
 *
 *   prescient_agent_capacity{resource}      cores, memory_gb (what this agent was granted)
 *   prescient_agent_reserved{resource}      cores, memory_gb, bandwidth_mbps, gpus of the encodes running
 *   prescient_agent_used{resource}          cores, memory_gb: the running encodes' last samples
 *   prescient_agent_encodes_running
 *   prescient_agent_reports_total{state}    succeeded, failed, ... as sent to the leader
 *   prescient_agent_reports_undelivered     waiting on disk for a leader
 *   prescient_agent_telemetry_pending_rows  spooled, not yet taken by QuestDB
 *   prescient_agent_leader_connected, prescient_agent_draining
 *   prescient_dependency_up{service}        NATS, Consul, QuestDB
 * and the process's own (CPU, memory, event loop, GC).
 */
import type { EncodeSample, ResourceAllocation } from '../shared/index.js';
import { Counter, Gauge, dependencyGauge, memberRegistry, type HealthCheck, type Registry } from '../shared/metrics.js';
import type { TelemetrySink } from './telemetry/index.js';

export interface AgentView {
  capacity: { cores: number; memory_gb: number };
  running(): Iterable<{ task_id: string; allocation: ResourceAllocation }>;
  undelivered(): number;
  telemetryPending(): number;
  leaderConnected(): boolean;
  draining(): boolean;
}

export class AgentMetrics {
  readonly registry: Registry;
  private readonly reports: Counter<'state'>;
  /** Each running encode's last sample: what it uses now. */
  private readonly last = new Map<string, { cpu_cores: number; rss_gb: number }>();

  constructor(nodeId: string, view: AgentView, checks: Record<string, HealthCheck>) {
    const r = this.registry = memberRegistry({ member: `node/${nodeId}` });
    const last = this.last;
    new Gauge({ name: 'prescient_agent_capacity', help: 'What this agent was granted, per resource (cores, memory_gb)', labelNames: ['resource'], registers: [r], collect() {
      this.set({ resource: 'cores' }, view.capacity.cores);
      this.set({ resource: 'memory_gb' }, view.capacity.memory_gb);
    } });
    new Gauge({ name: 'prescient_agent_reserved', help: 'What the encodes running here reserved, per resource (cores, memory_gb, bandwidth_mbps, gpus)', labelNames: ['resource'], registers: [r], collect() {
      const sum = { cores: 0, memory_gb: 0, bandwidth_mbps: 0, gpus: 0 };
      for (const { allocation: a } of view.running()) {
        sum.cores += a.core_ids.length; sum.memory_gb += a.memory_gb; sum.bandwidth_mbps += a.bandwidth_mbps; sum.gpus += a.gpu_ids.length;
      }
      for (const [k, v] of Object.entries(sum)) this.set({ resource: k }, v);
    } });
    new Gauge({ name: 'prescient_agent_used', help: 'What the encodes running here use now, per resource (cores, memory_gb), from their last samples', labelNames: ['resource'], registers: [r], collect() {
      const live = new Set([...view.running()].map((x) => x.task_id));
      let cores = 0, mem = 0;
      for (const [id, s] of last) {
        if (!live.has(id)) { last.delete(id); continue; }
        cores += s.cpu_cores; mem += s.rss_gb;
      }
      this.set({ resource: 'cores' }, cores);
      this.set({ resource: 'memory_gb' }, mem);
    } });
    new Gauge({ name: 'prescient_agent_encodes_running', help: 'Encodes running here now', registers: [r], collect() { let n = 0; for (const _ of view.running()) n++; this.set(n); } });
    new Gauge({ name: 'prescient_agent_reports_undelivered', help: 'Finished encodes\' reports waiting on disk for a leader', registers: [r], collect() { this.set(view.undelivered()); } });
    new Gauge({ name: 'prescient_agent_telemetry_pending_rows', help: 'Telemetry rows spooled and not yet taken by QuestDB', registers: [r], collect() { this.set(view.telemetryPending()); } });
    new Gauge({ name: 'prescient_agent_leader_connected', help: 'Whether this agent is registered with a leader (1) or looking for one (0)', registers: [r], collect() { this.set(view.leaderConnected() ? 1 : 0); } });
    new Gauge({ name: 'prescient_agent_draining', help: 'Whether this agent is draining (1): it takes no new work', registers: [r], collect() { this.set(view.draining() ? 1 : 0); } });
    this.reports = new Counter({ name: 'prescient_agent_reports_total', help: 'Encode outcomes this agent reported, by state', labelNames: ['state'], registers: [r] });
    dependencyGauge(r, checks);
  }

  /** A report made to the leader (a quality amendment is not a second outcome). */
  reported(state: string, amend: boolean): void {
    if (!amend) this.reports.inc({ state });
  }

  /** `sink`, with every sample also kept as its encode's latest use. */
  watch(sink: TelemetrySink): TelemetrySink {
    const last = this.last;
    return {
      recordRun: (run) => sink.recordRun(run),
      recordSamples(samples: readonly EncodeSample[], ctx) {
        const s = samples[samples.length - 1];
        if (s) last.set(s.job_id, { cpu_cores: s.cpu_cores, rss_gb: s.rss_gb });
        return sink.recordSamples(samples, ctx);
      },
      pending: () => sink.pending(),
      flush: () => sink.flush(),
      close: () => sink.close(),
    };
  }
}
