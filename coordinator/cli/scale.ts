/**
 * `prescient scale status`: the burst controller's instances, its last decisions (inputs and
 * reasons) and the budget used this hour, read from the burst KV bucket, so it works from any
 * machine that reaches NATS, with or without a leader up. main.ts defines the command and loads
 * this module when it runs.
 */
import { cliBus } from './member.js';
import { loadEndpoints } from '../../shared/index.js';
import { connectBus } from '../bus/index.js';
import { BurstStore, spentThisHour, type BurstState, type DecisionRecord } from '../burst/index.js';
import { table } from './format.js';

const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());

/** What `scale status --json` prints. */
export function scaleView(state: BurstState | undefined, decisions: readonly DecisionRecord[], last: number, now = Date.now()) {
  if (!state) return { configured: false as const, instances: [], decisions: decisions.slice(-last), budget: null };
  const hourly = state.instances.reduce((a, x) => a + x.price_per_hour, 0);
  return {
    configured: true as const, cluster: state.cluster, provider: state.provider, region: state.region, dry_run: state.dry_run,
    leader: state.leader ?? null, updated_at: iso(state.updated_at), last_launch_at: iso(state.last_launch_at),
    instances: state.instances.map((x) => ({
      id: x.id, instance_type: x.instance_type, state: x.state, spot: x.spot, price_per_hour: x.price_per_hour, launched_at: iso(x.launched_at),
      joined: x.joined_at !== undefined, joined_at: iso(x.joined_at), draining: x.draining_since !== undefined, draining_since: iso(x.draining_since), idle_since: iso(x.idle_since),
    })),
    unjoined: state.unjoined,
    refusals: state.refusals.filter((r) => r.until > now),
    budget: { hourly_cost: hourly, spent_this_hour: spentThisHour([...state.instances, ...state.ended], now), budget_per_hour: decisions.at(-1)?.inputs.budget_per_hour ?? null },
    /** Arrivals per class as the last decision forecast them (null when the forecast is off). */
    forecast: decisions.at(-1)?.forecast ?? null,
    decisions: decisions.slice(-last),
  };
}

export async function scaleStatus(o: { json?: boolean; last: string }, stateDir: string): Promise<void> {
  const { nc } = await cliBus(stateDir);
  let view;
  try {
    const store = await BurstStore.open(nc.jetstream(), (why) => console.error(why));
    view = scaleView(await store.state(), await store.decisions(), Math.max(1, Number(o.last) || 10));
  } finally {
    await nc.drain();
  }
  if (o.json) { console.log(JSON.stringify(view, null, 2)); return; }
  if (!view.configured) { console.log('no burst state: no leader has run with --burst'); return; }
  const b = view.budget!;
  console.log(`burst on ${view.provider} ${view.region}, cluster ${view.cluster}${view.dry_run ? ' (dry run)' : ''}; leader ${view.leader ?? '-'}; updated ${view.updated_at}`);
  console.log(`budget: $${b.hourly_cost.toFixed(2)}/h running${b.budget_per_hour !== null ? ` of $${b.budget_per_hour.toFixed(2)}/h` : ''}, $${b.spent_this_hour.toFixed(2)} spent this hour`);
  if (view.forecast) {
    console.log(`arrivals forecast: ${Object.entries(view.forecast).map(([c, f]) => `${c} ${f.rate_per_min.toFixed(1)}/min (${f.arriving} in the horizon)`).join(', ')}`);
  }
  console.log('');
  if (view.instances.length) {
    console.log(table(['instance', 'type', 'state', 'spot', 'launched', 'joined', 'draining', 'idle since'], view.instances.map((x) => [
      x.id, x.instance_type, x.state, x.spot ? 'spot' : 'on-demand', (x.launched_at ?? '').slice(11, 19), x.joined ? (x.joined_at ?? '').slice(11, 19) : 'no',
      x.draining ? 'yes' : 'no', x.idle_since ? x.idle_since.slice(11, 19) : '-',
    ])));
  } else console.log('no burst instances');
  for (const u of view.unjoined ?? []) console.log(`never joined: ${u.id} (${u.instance_type}), terminated ${new Date(u.terminated_at).toISOString()}`);
  console.log('\nlast decisions');
  for (const d of view.decisions) console.log(`${new Date(d.at).toISOString().slice(11, 19)} ${d.dry_run ? '[dry run] ' : ''}${d.summary}\n           inputs ${JSON.stringify(d.inputs)}`);
}
