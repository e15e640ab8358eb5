/**
 * The NATS side of the feedback loop. Agents publish FeedbackReports to the PRESCIENT_FEEDBACK
 * stream; the leader (whoever leads: a durable consumer, so reports wait while none does) reads
 * them in order, applies each to the rolling figures (loop.ts), saves the changed records in the
 * `prescient_feedback` KV bucket and publishes the alerts on `prescient.alerts.model`, in the
 * log and, when configured, to a webhook. A new leader loads the records first, so figures,
 * corrections, margins and open alerts carry over a failover.
 */
import { AckPolicy, JSONCodec, RetentionPolicy, StorageType, nanos, type ConsumerMessages, type JetStreamClient, type JsMsg, type KV, type NatsConnection } from 'nats';
import {
  ALL_FEEDBACK, FEEDBACK_BUCKET, FEEDBACK_CONSUMER, FEEDBACK_STREAM, MODEL_ALERTS_SUBJECT, nodeOfSubject, redactText, redactUrl, requestTarget,
  retryUnavailable, truncate, type EncodingTask, type FeedbackReport, type FeedbackTarget, type ModelAlert,
} from '../../shared/index.js';
import { ensureStream, type TaskStore } from '../bus/index.js';
import {
  applyReport, emptyFeedbackState, feedbackSettings, groupKey, invalidFeedbackRecord, marginKey,
  type ErrorGroup, type FeedbackOverrides, type FeedbackSettings, type FeedbackState, type MarginRecord, type ReportContext,
} from './loop.js';
import type { CorrectionSource } from './predictor.js';
import type { Log, LineLevel } from '../../shared/log.js';

const json = JSONCodec();

/** Creates the feedback stream (reports and alerts, kept a week) and the leader's durable consumer, if missing. */
export async function ensureFeedbackStream(nc: NatsConnection): Promise<void> {
  const jsm = await nc.jetstreamManager();
  const cfg = {
    name: FEEDBACK_STREAM, subjects: [ALL_FEEDBACK, MODEL_ALERTS_SUBJECT], retention: RetentionPolicy.Limits, storage: StorageType.File,
    max_age: nanos(7 * 24 * 3600_000), duplicate_window: nanos(10 * 60_000),
  };
  // One made before reports went on per-node subjects takes the new ones.
  await ensureStream(jsm, cfg);
  const consumer = await jsm.consumers.info(FEEDBACK_STREAM, FEEDBACK_CONSUMER).catch(() => undefined);
  if (consumer && consumer.config.filter_subject !== ALL_FEEDBACK) await jsm.consumers.update(FEEDBACK_STREAM, FEEDBACK_CONSUMER, { filter_subject: ALL_FEEDBACK });
  if (!consumer) {
    await jsm.consumers.add(FEEDBACK_STREAM, {
      durable_name: FEEDBACK_CONSUMER, filter_subject: ALL_FEEDBACK, ack_policy: AckPolicy.Explicit, ack_wait: nanos(30_000), max_ack_pending: 1000,
    }).catch(() => undefined); // another coordinator added it first
  }
}

/** Where the rolling figures, corrections and margins are kept between leaders. */
export interface FeedbackStore {
  /** The saved records that pass `invalidFeedbackRecord` under `settings`; each other one is told to `onInvalid`. */
  load(settings?: FeedbackSettings, onInvalid?: (why: string) => void): Promise<{ groups: ErrorGroup[]; margins: MarginRecord[] }>;
  save(groups: ErrorGroup[], margins: MarginRecord[]): Promise<void>;
}

export class JetStreamFeedbackStore implements FeedbackStore {
  private constructor(private readonly kv: KV) {}
  static async open(js: JetStreamClient): Promise<JetStreamFeedbackStore> {
    return new JetStreamFeedbackStore(await js.views.kv(FEEDBACK_BUCKET, { history: 1, storage: StorageType.File }));
  }
  async load(settings?: FeedbackSettings, onInvalid: (why: string) => void = () => undefined): Promise<{ groups: ErrorGroup[]; margins: MarginRecord[] }> {
    // Keys first, then the values (see JetStreamTaskStore.listActive).
    const keys: string[] = [];
    for await (const k of await this.kv.keys()) keys.push(k);
    const groups: ErrorGroup[] = [], margins: MarginRecord[] = [];
    for (let i = 0; i < keys.length; i += 64) {
      await Promise.all(keys.slice(i, i + 64).map(async (k) => {
        const e = await this.kv.get(k);
        if (!e || e.operation !== 'PUT' || !e.value.length) return;
        let x: unknown;
        try { x = json.decode(e.value); } catch { x = undefined; }
        const why = invalidFeedbackRecord(k, x, settings);
        if (why) return onInvalid(`${FEEDBACK_BUCKET} ${k} ignored: ${why}`);
        if (k.startsWith('g.')) groups.push(x as ErrorGroup);
        else margins.push(x as MarginRecord);
      }));
    }
    return { groups, margins };
  }
  async save(groups: ErrorGroup[], margins: MarginRecord[]): Promise<void> {
    await Promise.all([
      ...groups.map((g) => this.kv.put(groupKey(g.model_version, g.target, g.codec, g.node), json.encode(g))),
      ...margins.map((m) => this.kv.put(marginKey(m.model_version, m.codec), json.encode(m))),
    ]);
  }
}

export interface FeedbackServiceOptions {
  js: JetStreamClient;
  store: FeedbackStore;
  /** The task records: the served prediction's upper bounds and applied corrections. */
  tasks?: TaskStore;
  settings?: FeedbackOverrides;
  /** Alerts are also POSTed here as JSON (best effort, 3 s timeout). */
  webhook?: string;
  log: Log;
  now?: () => number;
}

/** A report that is not one is dropped: redelivering it would not help. */
function isReport(r: unknown): r is FeedbackReport {
  const x = r as FeedbackReport;
  return !!x && (x.kind === 'completion' || x.kind === 'overrun') && typeof x.job_id === 'string' && typeof x.node === 'string'
    && typeof x.model_version === 'string' && typeof x.codec === 'string' && typeof x.targets === 'object' && x.targets !== null;
}

export class FeedbackService implements CorrectionSource {
  readonly settings: FeedbackSettings;
  private state: FeedbackState = emptyFeedbackState();
  /** Bumped whenever the corrections or margins predictions read may have changed (the leader's event log notes it). */
  private changes = 0;
  private messages?: ConsumerMessages;
  private loop?: Promise<void>;
  private running = false;
  /** Records changed but not yet saved (a failed save is retried with the next report). */
  private readonly dirty = { groups: new Map<string, ErrorGroup>(), margins: new Map<string, MarginRecord>() };
  private readonly now: () => number;
  private readonly listeners = new Set<(a: ModelAlert) => void>();

  constructor(private readonly o: FeedbackServiceOptions) {
    this.settings = feedbackSettings(o.settings);
    this.now = o.now ?? Date.now;
  }

  /** Whether this process is running the loop (it leads). */
  get active(): boolean { return this.running; }

  /** Loads the saved records and starts reading reports. */
  async start(): Promise<void> {
    if (this.running) return;
    const saved = await retryUnavailable(() => this.o.store.load(this.settings, (why) => this.log(why, 'warn'))).catch((e: Error) => { this.log(`could not read the saved figures, starting empty: ${e.message}`, 'warn'); return { groups: [], margins: [] }; });
    this.state = emptyFeedbackState();
    this.changes++;
    for (const g of saved.groups) this.state.groups.set(groupKey(g.model_version, g.target, g.codec, g.node), g);
    for (const m of saved.margins) this.state.margins.set(marginKey(m.model_version, m.codec), m);
    this.running = true;
    this.log(`feedback loop running: ${saved.groups.length} error group(s), ${saved.margins.length} memory margin(s) resumed`);
    this.loop = this.consume();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.messages?.close().catch(() => undefined);
    await this.loop;
  }

  // Asked for on every prediction: a key is built only where there is something to find.
  correction(version: string, node: string, codec: string, target: FeedbackTarget): number {
    if (!this.state.groups.size) return 0;
    return this.state.groups.get(groupKey(version, target, codec, node))?.correction ?? 0;
  }

  memoryMargin(version: string, codec: string): number {
    if (!this.state.margins.size) return 1;
    return this.state.margins.get(marginKey(version, codec))?.margin ?? 1;
  }

  /** A count that moves whenever what correction() and memoryMargin() answer may have changed. */
  get revision(): number { return this.changes; }

  /** Every correction and margin in force, by the keys correction() and memoryMargin() look them up by. */
  corrections(): { groups: [string, number][]; margins: [string, number][] } {
    return {
      groups: [...this.state.groups].filter(([, g]) => g.correction).map(([k, g]) => [k, g.correction]),
      margins: [...this.state.margins].filter(([, m]) => m.margin !== 1).map(([k, m]) => [k, m.margin]),
    };
  }

  /** The current records (copies of the lists; the records themselves are replaced, not changed). */
  figures(): { groups: ErrorGroup[]; margins: MarginRecord[] } {
    return { groups: [...this.state.groups.values()], margins: [...this.state.margins.values()] };
  }

  /** Calls `fn` with every alert this service publishes (tests, the dev command). */
  onAlert(fn: (a: ModelAlert) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private async consume(): Promise<void> {
    while (this.running) {
      try {
        const consumer = await this.o.js.consumers.get(FEEDBACK_STREAM, FEEDBACK_CONSUMER);
        this.messages = await consumer.consume({ max_messages: 64, expires: 5000 });
        if (!this.running) break;
        for await (const m of this.messages) {
          // A report that breaks the loop would come back forever: it is logged and dropped.
          await this.handle(m).catch((e: Error) => { this.log(`dropped a feedback report that could not be applied: ${e.message}`, 'warn'); m.term(); });
        }
      } catch (e) {
        if (this.running) this.log(`feedback consumer failed, retrying: ${(e as Error).message}`, 'warn');
      }
      if (this.running) await new Promise((r) => setTimeout(r, 500));
    }
  }

  private async handle(m: JsMsg): Promise<void> {
    let r: unknown;
    try { r = json.decode(m.data); } catch { r = undefined; }
    if (!isReport(r)) { this.log('dropped a feedback report that is not one', 'warn'); m.ack(); return; }
    // A node publishes on its own subject only (NATS permissions): a report about another node,
    // or about a job given to another node, is a forgery, not a figure.
    const sender = nodeOfSubject(m.subject);
    const task = await this.o.tasks?.get(r.job_id).catch(() => undefined);
    const ranOn = task?.allocation?.node_id;
    if (r.node !== sender || (ranOn !== undefined && ranOn !== sender)) {
      this.log(`dropped a feedback report from ${truncate(sender, 80)} about ${truncate(String(r.node), 80)}${ranOn !== undefined && ranOn !== sender ? ` (job ${r.job_id} ran on ${ranOn})` : ''}`, 'warn');
      m.term();
      return;
    }
    const out = applyReport(this.state, r, this.context(r, task), this.settings, this.now());
    if (out.groups.length || out.margins.length) this.changes++;
    for (const g of out.groups) this.dirty.groups.set(groupKey(g.model_version, g.target, g.codec, g.node), g);
    for (const x of out.margins) this.dirty.margins.set(marginKey(x.model_version, x.codec), x);
    if (r.kind === 'overrun' && r.overrun) this.log(`${r.job_id} on ${r.node}: ${r.overrun.target} ${r.overrun.observed.toFixed(3)} over its reservation of ${r.overrun.reserved.toFixed(3)}${r.overrun.reason ? ` (${r.overrun.reason})` : ''}`, 'warn');
    await this.flush();
    for (const a of out.alerts) await this.alert(a);
    m.ack();
  }

  /** The served prediction of the report's job, from its task record, when it is of the same model version. */
  private context(r: FeedbackReport, t: EncodingTask | undefined): ReportContext {
    const p = t?.predicted;
    if (!p || p.model_version !== r.model_version) return {};
    return { applied: p.feedback?.log_factors ?? {}, upper: p.upper };
  }

  private async flush(): Promise<void> {
    const groups = [...this.dirty.groups.values()], margins = [...this.dirty.margins.values()];
    if (!groups.length && !margins.length) return;
    try {
      await this.o.store.save(groups, margins);
      this.dirty.groups.clear();
      this.dirty.margins.clear();
    } catch (e) {
      this.log(`could not save the feedback figures (will retry with the next report): ${(e as Error).message}`, 'warn');
    }
  }

  private async alert(a: ModelAlert): Promise<void> {
    this.log(`model alert (${a.kind}): ${a.message}`, 'warn');
    for (const fn of this.listeners) fn(a);
    await this.o.js.publish(MODEL_ALERTS_SUBJECT, json.encode(a)).catch((e: Error) => this.log(`could not publish the alert: ${e.message}`, 'warn'));
    if (this.o.webhook) await postAlert(this.o.webhook, a, (m, level) => this.log(m, level));
  }

  private log(m: string, level?: LineLevel) { this.o.log(`[feedback] ${m}`, level); }
}

/** The saved figures and margins, for readers without a coordinator (`prescient model status`). */
export async function readFeedback(js: JetStreamClient): Promise<{ groups: ErrorGroup[]; margins: MarginRecord[] }> {
  return (await JetStreamFeedbackStore.open(js)).load();
}

/**
 * POSTs an alert to a webhook, its userinfo sent as an Authorization header. What is logged of
 * the URL is its scheme and host: a webhook's path and query often are its credential.
 */
export async function postAlert(webhook: string, a: ModelAlert, log: Log): Promise<void> {
  const where = redactUrl(webhook);
  let target: ReturnType<typeof requestTarget>;
  try { target = requestTarget(webhook); } catch { log(`alert webhook ${where} is not a URL`, 'error'); return; }
  await fetch(target.url, { method: 'POST', headers: { 'content-type': 'application/json', ...target.headers }, body: JSON.stringify(a), signal: AbortSignal.timeout(3000) })
    .then((res) => { if (!res.ok) log(`alert webhook ${where} answered ${res.status}`, 'warn'); }, (e: Error) => log(`alert webhook ${where} failed: ${redactText(e.message)}`, 'warn'));
}
