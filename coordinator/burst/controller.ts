/**
 * The burst controller: runs on the leader only, every few seconds. It reads the leader's queue
 * and ledger, asks `decide` (pure) what to do, and does it through the provider — or, in
 * dry-run mode, only logs what it would do. What it launched is kept in the `prescient_burst`
 * KV bucket, so a new leader knows what is running and `prescient scale status` can show it.
 *
 *   tick ─► describe tracked instances ─► leader.burstView() ─► decide ─► log ─► drain marks on the leader
 *                                                                         └─► terminate / launch (provider)
 *                                                                         └─► save state + decision (KV)
 *
 * A provider failure is logged and the next tick tries again; placement never waits on it (the
 * controller runs beside the leader's own loop and holds none of its locks), so no queued job
 * is lost or blocked by a cloud that refuses or does not answer.
 */
import { StorageType, type JetStreamClient, type KV } from 'nats';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BURST_BUCKET, canIssue, forget, issue, shortText, v, whyNot, type StackEndpoints } from '../../shared/index.js';
import { jsonCodec } from '../bus/index.js';
import type { LedgerSnapshot } from '../ledger/index.js';
import type { QueuePolicy } from '../queue/index.js';
import type { ReservationPolicy } from '../sizing/index.js';
import type { BurstConfig } from './config.js';
import { decide, spentThisHour, type BurstDecision, type BurstInstance, type Refusal } from './decide.js';
import { CLUSTER_TAG, ProviderError, type CloudInstance, type CloudProvider } from './providers/types.js';
import { burstTemplate, renderUserData } from './userdata.js';
import type { EncodingTask } from '../../shared/index.js';
import type { Log } from '../../shared/log.js';

/** What the controller needs from the leader (coordinator/leader implements it). */
export interface BurstLeaderView {
  burstView(): { tasks: readonly EncodingTask[]; arrivals?: readonly EncodingTask[]; snap: LedgerSnapshot; queuePolicy?: QueuePolicy; reservation?: ReservationPolicy };
  setDraining(ids: Iterable<string>): void;
}

/** An instance that has ended, kept for an hour or two for the budget used this hour. */
export interface EndedInstance { id: string; instance_type: string; price_per_hour: number; launched_at: number; ended_at: number; why: string }

/** The `state` entry of the burst bucket. */
export interface BurstState {
  cluster: string;
  provider: string;
  region: string;
  dry_run: boolean;
  instances: BurstInstance[];
  ended: EndedInstance[];
  last_launch_at?: number;
  refusals: Refusal[];
  /** Instances that never joined, reported (the last few). */
  unjoined: Array<{ id: string; instance_type: string; launched_at: number; terminated_at: number }>;
  updated_at: number;
  leader?: string;
  /**
   * Each launch's enrolment, by the name of the one-time certificate its user data carried: the
   * instances launched with it may each be issued a node certificate once, until it expires.
   */
  enrolments?: Record<string, Enrolment>;
}

export interface Enrolment { instances: string[]; enrolled: string[]; expires_at: number }

/** One decision as recorded: what `decide` said, and what came of carrying it out. */
export interface DecisionRecord extends Omit<BurstDecision, 'instances' | 'launch'> {
  dry_run: boolean;
  launch?: { instance_type: string; count: number; spot: boolean; price_per_hour: number };
  /** What was done: instance ids launched and terminated, errors in words. */
  outcome: { launched: string[]; terminated: string[]; errors: string[] };
  /** The line logged, e.g. `would launch 2 × c6i.2xlarge because …`. */
  summary: string;
}

export interface BurstControllerOptions {
  config: BurstConfig;
  provider: CloudProvider;
  js: JetStreamClient;
  /** The leader while this coordinator leads (the controller does nothing otherwise). */
  leader: () => BurstLeaderView | undefined;
  /** Endpoints burst nodes are given (config.endpoints wins). */
  endpoints: StackEndpoints;
  /** Extra `prescient agent` arguments for burst nodes (default: the configuration's agent_args). */
  agentArgs?: string[];
  /**
   * The cluster's certificates on this host. Burst nodes enrol through the leader, which signs
   * their node certificates: without the CA key here, launches carry no enrolment and their
   * agents cannot join (each launch says so).
   */
  pkiDir?: string;
  /** User data template (default deploy/cloud-init/burst-node.yaml). */
  template?: string;
  leaderId?: string;
  log: Log;
  now?: () => number;
}

const HOUR = 3_600_000;
/** An enrolment outlives its launch's join timeout by this much (a node that enrols late is still refused then). */
const ENROL_GRACE_MS = 10 * 60_000;

// The burst bucket's entries as saved. What the controller acts on (instances to drain or
// terminate, launch times, refusals, enrolments) is checked field by field; a decision's
// figures are for people, so only what is shown of it is.
const at = v.pipe(v.number(), v.finite(), v.minValue(0));
const ids = v.pipe(v.array(shortText), v.maxLength(100_000));
const StoredState = v.object({
  cluster: shortText, provider: v.string(), region: v.string(), dry_run: v.boolean(),
  instances: v.pipe(v.array(v.object({
    id: shortText, instance_type: shortText, spot: v.boolean(), state: v.picklist(['pending', 'running', 'stopping', 'stopped', 'terminated', 'unknown']),
    launched_at: at, price_per_hour: v.pipe(v.number(), v.finite(), v.minValue(0)), joined_at: v.optional(at), idle_since: v.optional(at), draining_since: v.optional(at),
  })), v.maxLength(100_000)),
  ended: v.pipe(v.array(v.object({ id: shortText, instance_type: v.string(), price_per_hour: v.pipe(v.number(), v.finite(), v.minValue(0)), launched_at: at, ended_at: at, why: v.string() })), v.maxLength(100_000)),
  last_launch_at: v.optional(at),
  refusals: v.pipe(v.array(v.object({ instance_type: shortText, spot: v.boolean(), until: at })), v.maxLength(10_000)),
  unjoined: v.pipe(v.array(v.object({ id: shortText, instance_type: v.string(), launched_at: at, terminated_at: at })), v.maxLength(100_000)),
  updated_at: at, leader: v.optional(v.string()),
  enrolments: v.optional(v.record(shortText, v.object({ instances: ids, enrolled: ids, expires_at: at }))),
});
const StoredDecisions = v.pipe(v.array(v.looseObject({
  at, dry_run: v.boolean(), summary: v.string(), reason: v.string(), inputs: v.looseObject({}),
  outcome: v.object({ launched: ids, terminated: ids, errors: v.array(v.string()) }),
})), v.maxLength(10_000));

/** The burst bucket: the controller's state and its last decisions. */
export class BurstStore {
  /** `onInvalid`: told of an entry that is not what the controller saves (it then reads as absent). */
  private constructor(private readonly kv: KV, private readonly onInvalid: (why: string) => void) {}
  static async open(js: JetStreamClient, onInvalid: (why: string) => void = () => undefined): Promise<BurstStore> {
    return new BurstStore(await js.views.kv(BURST_BUCKET, { history: 1, storage: StorageType.File }), onInvalid);
  }
  async state(): Promise<BurstState | undefined> {
    return this.read('state', StoredState) as Promise<BurstState | undefined>;
  }
  async decisions(): Promise<DecisionRecord[]> {
    return ((await this.read('decisions', StoredDecisions)) ?? []) as DecisionRecord[];
  }
  private async read(key: string, schema: v.GenericSchema): Promise<unknown> {
    const e = await this.kv.get(key);
    if (!e || !e.value.length) return undefined;
    let x: unknown;
    try { x = jsonCodec.decode(e.value); } catch { x = undefined; }
    const why = whyNot(schema, x);
    if (!why) return x;
    this.onInvalid(`burst: ${BURST_BUCKET} ${key} ignored: ${why}`);
    return undefined;
  }
  async save(state: BurstState, decisions?: DecisionRecord[]): Promise<void> {
    await this.kv.put('state', jsonCodec.encode(state));
    if (decisions) await this.kv.put('decisions', jsonCodec.encode(decisions));
  }
}

export class BurstController {
  private state!: BurstState;
  private decisions: DecisionRecord[] = [];
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private lastSummary = '';
  private readonly now: () => number;
  private readonly template: string;

  private constructor(private readonly o: BurstControllerOptions, private readonly store: BurstStore) {
    this.now = o.now ?? Date.now;
    this.template = o.template ?? burstTemplate();
  }

  static async open(o: BurstControllerOptions): Promise<BurstController> {
    return new BurstController(o, await BurstStore.open(o.js, (why) => o.log(why, 'warn')));
  }

  /** Resumes the saved state, adopts this cluster's instances the provider lists, and ticks every `tick_ms`. */
  async start(): Promise<this> {
    const c = this.o.config, now = this.now();
    let saved = await this.store.state().catch(() => undefined);
    if (saved && saved.cluster !== c.cluster) {
      this.o.log(`burst: the saved state is cluster ${saved.cluster}'s, not ${c.cluster}'s: starting from what the provider lists`, 'warn');
      saved = undefined;
    }
    this.decisions = await this.store.decisions().catch(() => []);
    this.state = {
      cluster: c.cluster, provider: this.o.provider.name, region: this.o.provider.region, dry_run: c.dry_run,
      instances: saved?.instances ?? [], ended: saved?.ended ?? [], last_launch_at: saved?.last_launch_at,
      refusals: saved?.refusals ?? [], unjoined: saved?.unjoined ?? [], updated_at: now, leader: this.o.leaderId,
      enrolments: saved?.enrolments ?? {},
    };
    await this.adopt().catch((e) => this.o.log(`burst: could not list ${c.cluster}'s instances at start, will describe them on the next tick (${(e as Error).message})`, 'warn'));
    this.timer = setInterval(() => { void this.tick(); }, c.tick_ms);
    this.o.log(`burst: controller started (${this.o.provider.name} ${this.o.provider.region}, cluster ${c.cluster}${c.dry_run ? ', dry run' : ''}): tracking ${this.state.instances.length} instance(s)`);
    return this;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Instances tagged as this cluster's that the saved state does not know (launched by a leader that died before saving). */
  private async adopt(): Promise<void> {
    const listed = await this.o.provider.list(this.o.config.cluster);
    const known = new Set(this.state.instances.map((x) => x.id));
    const price = (x: CloudInstance) => {
      const t = this.o.config.catalogue.find((c) => c.name === x.instance_type);
      return (x.spot ? t?.spot_price_per_hour : undefined) ?? t?.price_per_hour ?? 0;
    };
    for (const x of listed) {
      if (known.has(x.id) || x.state === 'terminated') continue;
      this.state.instances.push({ id: x.id, instance_type: x.instance_type, spot: x.spot, state: x.state, launched_at: x.launched_at, price_per_hour: price(x) });
      this.o.log(`burst: adopted ${x.id} (${x.instance_type}, ${x.state}), tagged ${CLUSTER_TAG}=${this.o.config.cluster}`);
    }
  }

  /** One round; overlapping calls share the one in progress. */
  tick(): Promise<void> {
    this.running ??= this.round().catch((e) => this.o.log(`burst: tick failed, retrying next tick: ${(e as Error).stack ?? e}`, 'error')).finally(() => { this.running = undefined; });
    return this.running;
  }

  private async round(): Promise<void> {
    const leader = this.o.leader();
    if (!leader) return;
    const c = this.o.config;
    const errors: string[] = [];
    await this.refresh(errors);
    let now = this.now();
    let d = this.decide(leader, now);
    const launched: string[] = [], terminated: string[] = [];
    if (!c.dry_run) {
      const failed = new Set<string>();
      if (d.terminate.length) {
        try {
          await this.o.provider.terminate(d.terminate.map((t) => t.id));
          terminated.push(...d.terminate.map((t) => t.id));
        } catch (e) {
          errors.push(`terminate ${d.terminate.map((t) => t.id).join(', ')}: ${(e as Error).message}`);
          for (const t of d.terminate) failed.add(t.id);
        }
      }
      this.apply(d, failed, now);
      if (d.launch) {
        const first = await this.launch(d, errors);
        launched.push(...first.ids);
        if (first.refused) {
          // Capacity refused (all of it, or the rest of a partial launch): decide again at once with
          // the refusal known and what was accepted counted as booting (on-demand, or another type).
          // The cooldown is for the next decision, not for finishing this one.
          now = this.now();
          const again = this.decide(leader, now, { afterRefusal: true });
          if (again.launch) {
            const what = `${d.launch.instance_type.name}${d.launch.spot ? ' spot' : ''}`;
            d = { ...d, launch: again.launch, reason: `${d.reason}; after ${what} was refused${first.ids.length ? ` (${first.ids.length} of ${d.launch.count} accepted)` : ''}: ${again.reason}` };
            launched.push(...(await this.launch(again, errors)).ids);
          }
        }
      }
      // Draining nodes, and terminated ones until their agent has left the ledger: placement leaves them out.
      const snap = leader.burstView().snap;
      leader.setDraining([
        ...this.state.instances.filter((x) => x.draining_since !== undefined).map((x) => x.id),
        ...this.state.ended.filter((x) => snap.node(x.id)).map((x) => x.id),
      ]);
    } else {
      // Dry run: nothing is executed; join and idle marks are kept, nothing is drained or dropped.
      const prev = new Map(this.state.instances.map((x) => [x.id, x]));
      this.state.instances = this.state.instances.map((x) => ({ ...x, ...pickMarks(d.instances.find((y) => y.id === x.id)), draining_since: prev.get(x.id)?.draining_since }));
      if (d.launch) this.state.last_launch_at = now;
    }
    this.record(d, { launched, terminated, errors }, now);
    await this.store.save(this.state, this.decisions).catch((e) => this.o.log(`burst: could not save its state, will retry next tick: ${(e as Error).message}`, 'warn'));
  }

  private decide(leader: BurstLeaderView, now: number, o: { afterRefusal?: boolean } = {}): BurstDecision {
    const v = leader.burstView();
    return decide({
      now, tasks: v.tasks, arrivals: v.arrivals, snap: v.snap, queuePolicy: v.queuePolicy, reservation: v.reservation,
      instances: this.state.instances, last_launch_at: o.afterRefusal ? undefined : this.state.last_launch_at, refusals: this.state.refusals, policy: this.o.config,
    });
  }

  /** Updates tracked instances from the provider; ones it says are terminated leave the state. */
  private async refresh(errors: string[]): Promise<void> {
    if (!this.state.instances.length) return;
    let described: CloudInstance[];
    try {
      described = await this.o.provider.describe(this.state.instances.map((x) => x.id));
    } catch (e) {
      errors.push(`describe: ${(e as Error).message}`);
      return;
    }
    const byId = new Map(described.map((x) => [x.id, x]));
    const now = this.now();
    const keep: BurstInstance[] = [];
    for (const x of this.state.instances) {
      const seen = byId.get(x.id);
      if (!seen) { keep.push(x); continue; }
      if (seen.state === 'terminated') { this.end(x, now, 'the provider reports it terminated'); continue; }
      keep.push({ ...x, state: seen.state });
    }
    this.state.instances = keep;
  }

  /** Takes the decision's view of the instances; ones it terminated (and whose termination did not fail) end. */
  private apply(d: BurstDecision, failed: ReadonlySet<string>, now: number): void {
    const prev = new Map(this.state.instances.map((x) => [x.id, x]));
    const next = [...d.instances];
    const kept = new Set([...next.map((x) => x.id), ...d.terminate.map((t) => t.id)]);
    for (const x of this.state.instances) if (!kept.has(x.id)) this.end(x, now, `the provider reports it ${x.state}`);
    for (const t of d.terminate) {
      const x = prev.get(t.id);
      if (!x) continue;
      if (failed.has(t.id)) { next.push(x); continue; }
      this.end(x, now, t.why);
      if (d.unjoined.includes(t.id)) {
        this.state.unjoined = [...this.state.unjoined, { id: x.id, instance_type: x.instance_type, launched_at: x.launched_at, terminated_at: now }].slice(-20);
        this.o.log(`burst: ${x.id} (${x.instance_type}) never joined within ${Math.round(this.o.config.join_timeout_ms / 1000)} s of launch: terminated`, 'warn');
      }
    }
    this.state.instances = next;
  }

  /**
   * A one-time enrolment certificate for one launch, bundled for its user data with the CA
   * certificate (base64 JSON): its instances show it to ask the leader for their own node
   * certificates (`enrol`). Undefined, with an error said, when this host cannot issue.
   */
  private enrolmentBundle(now: number, errors: string[]): { name: string; bundle: string } | undefined {
    const dir = this.o.pkiDir;
    if (!dir || !canIssue(dir)) {
      errors.push(`launch: no cluster CA key on this coordinator's host${dir ? ` (${dir})` : ''}: the instances carry no enrolment and their agents cannot get node certificates`);
      return undefined;
    }
    const name = `${this.o.config.cluster}-${now}`.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
    const m = { role: 'enrol' as const, name };
    const files = issue(dir, m, [], 1);
    const bundle = Buffer.from(JSON.stringify({
      ca: readFileSync(path.join(dir, 'ca.crt'), 'utf8'), cert: readFileSync(files.cert_file, 'utf8'), key: readFileSync(files.key_file, 'utf8'),
    })).toString('base64');
    forget(dir, m); // it lives in the user data only; the enrolment record is what the leader checks
    return { name, bundle };
  }

  /**
   * Whether the holder of enrolment `name` may have a node certificate for `nodeId`: an instance
   * that launch started, still tracked, not enrolled before, before the enrolment expires. A
   * yes is recorded at once, so a second ask is refused.
   */
  async mayEnrol(name: string, nodeId: string): Promise<string | undefined> {
    const e = this.state.enrolments?.[name], now = this.now();
    if (!e) return `enrolment ${name} is not one this cluster launched`;
    if (now > e.expires_at) return `enrolment ${name} expired`;
    if (!e.instances.includes(nodeId)) return `${nodeId} was not launched with enrolment ${name}`;
    if (e.enrolled.includes(nodeId)) return `${nodeId} has enrolled already`;
    if (!this.state.instances.some((x) => x.id === nodeId)) return `${nodeId} is no longer tracked (terminated?)`;
    e.enrolled.push(nodeId);
    await this.store.save(this.state);
    this.o.log(`burst: ${nodeId} enrolled (enrolment ${name})`);
    return undefined;
  }

  /** Gives an enrolment back to an instance whose certificate could not be signed after all. */
  undoEnrol(name: string, nodeId: string): void {
    const e = this.state.enrolments?.[name];
    if (e) e.enrolled = e.enrolled.filter((x) => x !== nodeId);
  }

  private end(x: BurstInstance, now: number, why: string): void {
    this.state.ended = [...this.state.ended.filter((e) => now - e.ended_at < 2 * HOUR), { id: x.id, instance_type: x.instance_type, price_per_hour: x.price_per_hour, launched_at: x.launched_at, ended_at: now, why }];
  }

  /**
   * Launches what `d` says. A capacity refusal, of the whole launch or of the rest of a partial
   * one, is remembered for `refusal_ms` (default 30 min) and reported as `refused`.
   */
  private async launch(d: BurstDecision, errors: string[]): Promise<{ ids: string[]; refused: boolean }> {
    const l = d.launch!, c = this.o.config, now = this.now();
    const enrol = this.enrolmentBundle(now, errors);
    const user_data = renderUserData(this.template, {
      provider: c.provider, cluster: c.cluster, endpoints: c.endpoints ?? this.o.endpoints, agent_args: this.o.agentArgs ?? c.agent_args,
      install: c.install, metadata_url: c.metadata_url, agent_port: c.agent_port, enrol_bundle: enrol?.bundle,
    });
    try {
      const got = await this.o.provider.launch({
        instance_type: l.instance_type.name, count: l.count, spot: l.spot, user_data,
        tags: { [CLUSTER_TAG]: c.cluster, 'prescient-role': 'burst-node' },
        client_token: `${c.cluster}-${now}-${l.instance_type.name}-${l.spot ? 'spot' : 'od'}`.slice(0, 64),
      });
      this.state.last_launch_at = now;
      for (const x of got.instances) {
        this.state.instances.push({ id: x.id, instance_type: x.instance_type, spot: x.spot, state: x.state, launched_at: x.launched_at || now, price_per_hour: l.price_per_hour });
      }
      const ids = got.instances.map((x) => x.id);
      if (enrol) {
        const all = (this.state.enrolments ??= {});
        for (const [k, e] of Object.entries(all)) if (now > e.expires_at) delete all[k]; // expired ones are refused anyway
        all[enrol.name] = { instances: ids, enrolled: [], expires_at: now + c.join_timeout_ms + ENROL_GRACE_MS };
      }
      if (got.refused) errors.push(`launch ${l.count} × ${l.instance_type.name}${l.spot ? ' (spot)' : ''}: ${ids.length} accepted (${ids.join(', ')}), the rest refused: ${got.refused.message}`);
      return { ids, refused: this.refused(got.refused, now, d) };
    } catch (e) {
      errors.push(`launch ${l.count} × ${l.instance_type.name}${l.spot ? ' (spot)' : ''}: ${(e as Error).message}`);
      return { ids: [], refused: this.refused(e, now, d) };
    }
  }

  /** Remembers a capacity refusal of `d`'s type (spot or on-demand); true when `e` is one. */
  private refused(e: unknown, now: number, d: BurstDecision): boolean {
    if (!(e instanceof ProviderError && e.kind === 'capacity')) return false;
    const l = d.launch!;
    this.state.refusals = [...this.state.refusals.filter((r) => r.until > now), { instance_type: l.instance_type.name, spot: l.spot, until: now + (this.o.config.refusal_ms ?? 30 * 60_000) }];
    return true;
  }

  private record(d: BurstDecision, outcome: DecisionRecord['outcome'], now: number): void {
    const c = this.o.config;
    const l = d.launch;
    const act = l ? `${c.dry_run ? 'would launch' : outcome.launched.length ? 'launched' : 'tried to launch'} ${l.count} × ${l.instance_type.name}${l.spot ? ' (spot)' : ''}` : '';
    const others = [
      ...d.drain.map((x) => `${c.dry_run ? 'would drain' : 'drain'} ${x.id}`),
      ...d.undrain.map((x) => `${c.dry_run ? 'would undrain' : 'undrain'} ${x.id}`),
      ...d.terminate.map((x) => `${c.dry_run ? 'would terminate' : 'terminate'} ${x.id}`),
    ];
    const doing = [act, ...others].filter(Boolean).join(', ') || 'no change';
    const summary = `${doing} because ${d.reason}${outcome.errors.length ? ` — errors (retried next tick): ${outcome.errors.join('; ')}` : ''}`;
    // Every decision is recorded; the log gets a line when what it says changes (not every few seconds).
    const key = summary.replace(/\d+(\.\d+)? (s|min)\b/g, '#');
    if (key !== this.lastSummary || outcome.errors.length || outcome.launched.length || outcome.terminated.length) {
      this.o.log(`burst: ${summary} | inputs ${JSON.stringify(d.inputs)}`, outcome.errors.length ? 'warn' : 'info');
      this.lastSummary = key;
    }
    const { instances: _i, launch: _l, ...rest } = d;
    this.decisions = [...this.decisions, {
      ...rest, dry_run: c.dry_run, outcome, summary,
      ...(l ? { launch: { instance_type: l.instance_type.name, count: l.count, spot: l.spot, price_per_hour: l.price_per_hour } } : {}),
    }].slice(-c.keep_decisions);
    this.state.updated_at = now;
    this.state.dry_run = c.dry_run;
    this.state.leader = this.o.leaderId;
  }

  /** For tests and `scale status`: the state as it is now. */
  snapshot(): { state: BurstState; decisions: DecisionRecord[]; spent_this_hour: number } {
    const now = this.now();
    return { state: this.state, decisions: this.decisions, spent_this_hour: spentThisHour([...this.state.instances, ...this.state.ended], now) };
  }
}

const pickMarks = (x: BurstInstance | undefined) => (x ? { joined_at: x.joined_at, idle_since: x.idle_since } : {});
