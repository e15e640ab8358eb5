/**
 * Where a coordinator's dashboard (coordinator/dashboard) takes its data: the same views
 * `prescient nodes`, `queue`, `model status` and `scale status` print, read from the cluster's
 * shared state over the coordinator's own NATS connection (so a standby shows what the leader
 * saved), the model registry on this host, and the model alerts published on NATS.
 */
import type { NatsConnection } from 'nats';
import { ConsulLeaderLookup, MODEL_ALERTS_SUBJECT, NO_OWNER, TERMINAL_STATES, type ModelAlert } from '../../shared/index.js';
import { JetStreamTaskStore, followAllJobs, jsonCodec, publishCancel } from '../bus/index.js';
import { JetStreamLedgerStore } from '../ledger/index.js';
import { BurstStore } from '../burst/index.js';
import { pooledFigures, readFeedback } from '../feedback/index.js';
import type { ModelRegistry } from '../../models/index.js';
import type { DashboardSource } from '../dashboard/index.js';
import { nodesView, queueView } from './fleet.js';
import { scaleView } from './scale.js';
import type { Log } from '../../shared/log.js';

const ALERTS_KEPT = 20;

export async function dashboardSource(o: { nc: NatsConnection; consulHttp: string; registry: ModelRegistry; log: Log }): Promise<DashboardSource & { close(): void }> {
  const js = o.nc.jetstream();
  const [ledgers, tasks, burst] = await Promise.all([JetStreamLedgerStore.open(js), JetStreamTaskStore.open(js), BurstStore.open(js, (why) => o.log(why, 'warn'))]);
  const lookup = new ConsulLeaderLookup(o.consulHttp);
  const alerts: ModelAlert[] = [];
  const sub = o.nc.subscribe(MODEL_ALERTS_SUBJECT, {
    callback: (err, m) => {
      if (err) return;
      try {
        const a = jsonCodec.decode(m.data) as ModelAlert;
        if (typeof a?.message === 'string' && typeof a.at === 'number') { alerts.push(a); if (alerts.length > ALERTS_KEPT) alerts.shift(); }
      } catch { /* not an alert: ignored */ }
    },
  });
  return {
    async snapshot() {
      const [ledger, active, leader, feedback, burstState, decisions] = await Promise.all([
        ledgers.load(), tasks.listActive(), lookup.currentLeader().catch(() => null), readFeedback(js).catch(() => ({ groups: [], margins: [] })), burst.state(), burst.decisions(),
      ]);
      let inService: string | null = null;
      try { inService = o.registry.currentVersion(); } catch { inService = null; }
      const bv = scaleView(burstState, decisions, 10);
      return {
        leader: leader ? { id: leader.id, address: leader.address } : null,
        nodes: nodesView(ledger),
        queue: queueView({ ledger, tasks: active }),
        models: {
          in_service: inService,
          versions: o.registry.list().slice(-10).reverse().map((v) => ({ version: v.version, created_at: v.created_at, current: !!v.current })),
          // The rolling windows of the version in service, pooled over codecs and nodes per target.
          targets: pooledFigures(feedback.groups, inService ?? undefined),
          alerts: alerts.slice().reverse().map((a) => ({ at: a.at, kind: a.kind, message: a.message })),
        },
        burst: { ...bv, decisions: bv.decisions.map((d) => ({ at: d.at, action: d.launch ? 'launch' : d.terminate.length ? 'terminate' : d.drain.length ? 'drain' : 'none', summary: d.summary })) },
      };
    },
    follow: (since, onEvent) => followAllJobs(js, since, onEvent, o.log),
    async cancel(id) {
      const t = await tasks.get(id);
      if (!t) return { ok: false, message: `no job ${id} is recorded (it may still be waiting in JetStream for a leader)` };
      if (TERMINAL_STATES.has(t.state)) return { ok: false, message: `${id} is already ${t.state}` };
      await publishCancel(js, t.owner ?? NO_OWNER, { job_id: id, requested_at: Date.now() });
      return { ok: true, message: `${t.schema.kind === 'actor' ? 'stop' : 'cancellation'} of ${id} requested` };
    },
    close: () => sub.unsubscribe(),
  };
}
