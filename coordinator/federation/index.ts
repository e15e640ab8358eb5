/**
 * The leader's side of federated learning (models/federated): collect the agents' weight
 * deltas for the current global version, refuse bad ones with the reason, merge a round when
 * it has enough, judge the merge on a held-out window against the model in service, promote
 * and publish it only if it is no worse, and record every decision.
 *
 *   deltas (JetStream, durable) ─► receive: validateDelta (form, shape, finite, base = current, norm)
 *        ─► pending round ─► merge when ≥ minDeltas and ≥ minSamples, or after maxWaitMs with one:
 *             screenRound (outlier norms) ─► held-out window (runs no node trains on: heldOutPart)
 *             ─► screenByHeldOut (a delta the merge is worse with than without is refused)
 *             ─► mergeDeltas (bounds recomputed on the calibration part) ─► judgeMerge
 *             ─► register; promote + publish (ModelChannel) if no worse; else log the figures
 *        ─► every delta of the round acknowledged; decisions in <registry>/federation.jsonl
 *
 * Only the leader runs rounds; a standby keeps its registry on the published version
 * (ModelFollower), so whoever leads next merges onto the same base.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { JsMsg, NatsConnection } from 'nats';
import {
  exportTrainingRuns, heldOutPart, judgeMerge, meanScaleError, mergeDeltas, runsToRows, screenByHeldOut, screenRound, validateDelta,
  type EvaluationReport, type LabelledRow, type Model, type ModelRegistry, type RejectionCode, type WeightDelta,
} from '../../models/index.js';
import { ModelChannel, ModelFollower, type VersionAnnouncement } from '../../models/federated/channel.js';
import { nodeOfSubject } from '../../shared/index.js';
import type { Log } from '../../shared/log.js';

export interface FederationOptions {
  /** Deltas a round waits for before merging (default 2). */
  minDeltas?: number;
  /** Runs (summed over the round's deltas) a round waits for (default 0). */
  minSamples?: number;
  /** A round with at least one accepted delta merges after this long even below the minimums (default 1 h). */
  maxWaitMs?: number;
  /** Largest delta norm as a multiple of the base weights' norm (default 0.5). */
  maxNormRatio?: number;
  /** A delta is refused when the round's merge is this much worse (relative) with it than without it on the held-out window (default 0.02). */
  deltaTolerance?: number;
  /** How far back the held-out window reaches in QuestDB (default 7 days). */
  windowMs?: number;
  /** The held-out rows (default: the window's succeeded runs from QuestDB that heldOutPart holds out). */
  heldOut?: () => Promise<LabelledRow[]>;
  /** How often the leader pulls deltas (default 1 s). */
  pollMs?: number;
}

export interface Rejection { at: string; delta: string; node: string; base_version: string; code: RejectionCode | 'merge-worse'; reason: string }

export interface RoundResult {
  at: string;
  base: string;
  /** The merged candidate's version (registered whether promoted or not), when one was made. */
  version?: string;
  promoted: boolean;
  reason: string;
  accepted: Array<{ id: string; node: string; samples: number }>;
  rejected: Rejection[];
  /** Mean scale error on the held-out evaluation rows, and per target. */
  figures?: { rows: number; calibration_rows: number; current: number; candidate: number; current_report: EvaluationReport; candidate_report: EvaluationReport };
  announcement?: VersionAnnouncement;
}

interface Pending { delta: WeightDelta; norm: number; msg?: JsMsg; at: number }

export class FederationLeader {
  private pending = new Map<string, Pending>();
  private readonly rejections_: Rejection[] = [];
  private readonly rounds_: RoundResult[] = [];
  private timer?: NodeJS.Timeout;
  private pulling = false;
  private merging?: Promise<RoundResult | undefined>;
  private stopped = false;
  private readonly journal: string;

  constructor(private readonly o: FederationOptions & {
    channel: ModelChannel;
    registry: ModelRegistry;
    questdbHttp?: string;
    isLeader: () => boolean;
    /** After a promotion (the local LiveModel refreshes). */
    onPromoted?: (version: string) => void;
    log: Log;
  }) {
    this.journal = path.join(o.registry.dir, 'federation.jsonl');
  }

  start(): this {
    this.timer = setInterval(() => void this.tick(), this.o.pollMs ?? 1000);
    this.timer.unref();
    return this;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /** Every delta refused so far (this process), oldest first. */
  rejections(): readonly Rejection[] { return this.rejections_; }
  /** Every round decided so far (this process), oldest first. */
  rounds(): readonly RoundResult[] { return this.rounds_; }
  /** Deltas accepted into the round now open. */
  pendingDeltas(): WeightDelta[] { return [...this.pending.values()].map((p) => p.delta); }

  /** Pulls waiting deltas, then merges if the round is ready. */
  async tick(): Promise<void> {
    if (this.stopped || this.pulling || !this.o.isLeader()) return;
    this.pulling = true;
    try {
      for (const m of await this.o.channel.fetchDeltas(64, 1000)) this.receive(this.o.channel.decode(m), m);
      if (this.ready()) await this.mergeNow();
    } catch (e) {
      if (!this.stopped) this.o.log(`federation: could not read deltas, will retry: ${(e as Error).message}`, 'warn');
    } finally {
      this.pulling = false;
    }
  }

  /** Judges one delta on arrival: refused (and acknowledged) with the reason, or held for the round. */
  receive(raw: unknown, msg?: JsMsg): { ok: true } | Rejection {
    const d = raw as WeightDelta;
    let base: Model;
    try {
      base = this.o.registry.load();
    } catch (e) {
      this.o.log(`federation: the current model does not load, delta left for later: ${(e as Error).message}`, 'error');
      msg?.nak(5000);
      return { at: new Date().toISOString(), delta: String(d?.id), node: String(d?.node), base_version: String(d?.base_version), code: 'malformed', reason: 'current model does not load' };
    }
    // The subject names the node that sent it (NATS lets each node publish on its own only).
    const sender = msg && nodeOfSubject(msg.subject);
    const v = sender !== undefined && d?.node !== sender
      ? { ok: false as const, code: 'forged-node' as const, reason: `published by node ${sender}, about node ${String(d?.node).slice(0, 80)}` }
      : validateDelta(d, base, { known: (x) => this.known(x), maxNormRatio: this.o.maxNormRatio });
    if (!v.ok) {
      msg?.ack();
      return this.reject(d, v.code, v.reason);
    }
    const old = this.pending.get(d.id);
    // A redelivery of a delta already held: keep the newest handle, so the round's ack reaches it.
    this.pending.set(d.id, { delta: d, norm: v.norm, msg: msg ?? old?.msg, at: old?.at ?? Date.now() });
    if (!old) this.o.log(`federation: delta ${d.id} from ${d.node} accepted into the round on ${d.base_version} (${d.samples} runs, local validation error ${fmt(d.validation.base)} → ${fmt(d.validation.tuned)}, norm ${v.norm.toPrecision(3)})`);
    return { ok: true };
  }

  private ready(): boolean {
    const ps = [...this.pending.values()];
    if (!ps.length) return false;
    const samples = ps.reduce((s, p) => s + p.delta.samples, 0);
    if (ps.length >= (this.o.minDeltas ?? 2) && samples >= (this.o.minSamples ?? 0)) return true;
    return Date.now() - Math.min(...ps.map((p) => p.at)) >= (this.o.maxWaitMs ?? 3_600_000);
  }

  /** Decides the open round now (with whatever it holds). */
  mergeNow(): Promise<RoundResult | undefined> {
    this.merging ??= this.round().finally(() => { this.merging = undefined; });
    return this.merging;
  }

  private async round(): Promise<RoundResult | undefined> {
    const round = [...this.pending.values()];
    if (!round.length) return undefined;
    const { registry, log } = this.o;
    const at = new Date().toISOString();
    const base = registry.load();
    const rejected: Rejection[] = [];
    const settle = (r: RoundResult) => {
      for (const p of round) { p.msg?.ack(); this.pending.delete(p.delta.id); }
      this.rounds_.push(r);
      this.record({ kind: 'round', ...r, figures: r.figures && { rows: r.figures.rows, calibration_rows: r.figures.calibration_rows, current: r.figures.current, candidate: r.figures.candidate } });
      return r;
    };
    // The base moved under the round (a promotion or rollback elsewhere): every delta is stale.
    const stale = round.filter((p) => p.delta.base_version !== base.version || p.delta.base_checksum !== base.file.checksum);
    for (const p of stale) rejected.push(this.reject(p.delta, 'stale-base', `made from ${p.delta.base_version}, the global model is now ${base.version}`));
    let live = round.filter((p) => !stale.includes(p));

    const rows = await this.heldOut();
    const evaluation = rows.filter((r) => heldOutPart(r.key) === 'evaluation');
    const calibration = rows.filter((r) => heldOutPart(r.key) === 'calibration');
    for (const [id, reason] of screenRound(live)) {
      const p = live.find((x) => x.delta.id === id)!;
      rejected.push(this.reject(p.delta, 'outlier', reason));
    }
    live = live.filter((p) => !rejected.some((r) => r.delta === p.delta.id));
    if (evaluation.length) {
      const screened = screenByHeldOut(base, live.map((p) => p.delta), evaluation, this.o.deltaTolerance ?? 0.02);
      for (const r of screened.refused) rejected.push(this.reject(r.delta, 'worsens-held-out', r.reason));
      live = live.filter((p) => screened.kept.includes(p.delta));
    }
    const accepted = live.map((p) => ({ id: p.delta.id, node: p.delta.node, samples: p.delta.samples }));
    if (!live.length) {
      const reason = `no delta of the round is usable (${rejected.length} refused); ${base.version} stays`;
      log(`federation: ${reason}`, 'warn');
      return settle({ at, base: base.version, promoted: false, reason, accepted, rejected });
    }
    if (!evaluation.length) {
      const reason = `no held-out runs to judge a merge on; ${base.version} stays and the round's ${live.length} deltas are dropped`;
      log(`federation: ${reason}`, 'warn');
      return settle({ at, base: base.version, promoted: false, reason, accepted, rejected });
    }
    const version = registry.newVersion();
    const merged = mergeDeltas(base, live.map((p) => p.delta), { version, calibration });
    const j = judgeMerge(merged, base, evaluation);
    const figures = {
      rows: evaluation.length, calibration_rows: merged.file.federated?.calibration_rows ?? 0,
      current: meanScaleError(j.current), candidate: meanScaleError(j.candidate), current_report: j.current, candidate_report: j.candidate,
    };
    const what = `${live.length} deltas (${accepted.map((a) => `${a.id} from ${a.node}, ${a.samples} runs`).join('; ')}) merged onto ${base.version}`;
    const detail = `${what}; held-out mean scale error ${fmt(figures.candidate)} vs ${fmt(figures.current)} on ${evaluation.length} runs (${perTarget(j.candidate, j.current)}); bounds recalibrated on ${figures.calibration_rows} runs`;
    registry.register(merged, `federated: ${detail}; ${j.accept ? 'promoted' : 'not promoted'}: ${j.reason}`);
    if (!j.accept) {
      log(`federation: merged ${version} not promoted, ${base.version} stays: ${j.reason}; ${detail}`);
      for (const p of live) rejected.push({ at, delta: p.delta.id, node: p.delta.node, base_version: p.delta.base_version, code: 'merge-worse', reason: j.reason });
      return settle({ at, base: base.version, version, promoted: false, reason: j.reason, accepted, rejected, figures });
    }
    registry.promote(version, `federated: ${j.reason}`);
    log(`federation: ${version} promoted over ${base.version}: ${j.reason}; ${detail}`);
    this.o.onPromoted?.(version);
    let announcement: VersionAnnouncement | undefined;
    try {
      announcement = await this.o.channel.publishVersion(merged, { parent: base.version, promoted_at: new Date().toISOString(), reason: `${j.reason}; ${detail}`, deltas: accepted });
    } catch (e) {
      log(`federation: ${version} is in service here but could not be published yet: ${(e as Error).message}`, 'warn');
    }
    return settle({ at, base: base.version, version, promoted: true, reason: j.reason, accepted, rejected, figures, announcement });
  }

  private async heldOut(): Promise<LabelledRow[]> {
    if (this.o.heldOut) return this.o.heldOut();
    if (!this.o.questdbHttp) return [];
    const to = Date.now(), from = to - (this.o.windowMs ?? 7 * 86_400_000);
    try {
      return runsToRows(await exportTrainingRuns({ httpBase: this.o.questdbHttp, from, to, status: 'succeeded' })).filter((r) => heldOutPart(r.key));
    } catch (e) {
      this.o.log(`federation: held-out runs not readable from QuestDB: ${(e as Error).message}`, 'warn');
      return [];
    }
  }

  private known(version: string): boolean {
    try { this.o.registry.pathOf(version); return true; } catch { return false; }
  }

  private reject(d: WeightDelta | undefined, code: Rejection['code'], reason: string): Rejection {
    const r: Rejection = { at: new Date().toISOString(), delta: String(d?.id ?? '(none)'), node: String(d?.node ?? '(unknown)'), base_version: String(d?.base_version ?? '(none)'), code, reason };
    this.rejections_.push(r);
    this.record({ kind: 'rejection', ...r });
    this.o.log(`federation: delta ${r.delta} from ${r.node} refused (${code}): ${reason}`, 'warn');
    return r;
  }

  private record(entry: object): void {
    try {
      mkdirSync(this.o.registry.dir, { recursive: true });
      appendFileSync(this.journal, `${JSON.stringify(entry)}\n`);
    } catch (e) {
      this.o.log(`federation: could not write ${this.journal}: ${(e as Error).message}`, 'error');
    }
  }
}

const fmt = (x: number) => (Number.isFinite(x) ? x.toPrecision(3) : String(x));
const perTarget = (c: EvaluationReport, k: EvaluationReport) => Object.keys(c)
  .map((t) => `${t} MAPE ${c[t as keyof EvaluationReport]!.mape.toFixed(1)} % vs ${k[t as keyof EvaluationReport]?.mape.toFixed(1)} %`).join(', ');

/** A coordinator's federation: the round-runner (acting while it leads) and a follower of published versions (while it stands by). */
export interface Federation { leader: FederationLeader; follower: ModelFollower; channel: ModelChannel; stop(): void }

export async function startFederation(nc: NatsConnection, o: FederationOptions & {
  registry: ModelRegistry; questdbHttp?: string; isLeader: () => boolean; onModel?: (version: string) => void; log: Log;
}): Promise<Federation> {
  const channel = await ModelChannel.open(nc);
  const leader = new FederationLeader({ ...o, channel, onPromoted: o.onModel }).start();
  const follower = new ModelFollower({ channel, registry: o.registry, log: o.log, who: 'coordinator', publishing: o.isLeader, onChange: o.onModel }).start();
  return { leader, follower, channel, stop: () => { leader.stop(); follower.stop(); } };
}
