/**
 * How deltas and model versions travel, over NATS JetStream:
 *
 *   agent ──WeightDelta──► prescient.models.delta.<node>  ┐ stream PRESCIENT_MODELS (file, 7 days):
 *   leader ◄── durable consumer prescient-federation ─────┘ a delta waits there until a leader judged it
 *   leader ──model file──► Object Store prescient_models/<version>
 *   leader ──VersionAnnouncement──► prescient.models.versions (the last ones kept)
 *   agents, standby coordinators ◄── ModelFollower: fetch the file, check it, register + promote
 *                                    it in the local registry, where LiveModel swaps it in
 *
 * A follower acts on the latest announcement, whether it hears it live or finds it when it
 * starts or polls, so a node that was away when a version was published catches up.
 */
import { AckPolicy, DeliverPolicy, JSONCodec, RetentionPolicy, StorageType, nanos, type JetStreamClient, type JsMsg, type NatsConnection, type ObjectStore, type Subscription } from 'nats';
import { ALL_MODEL_DELTAS, MODELS_BUCKET, MODELS_STREAM, MODEL_DELTAS_CONSUMER, MODEL_VERSIONS_SUBJECT, modelDeltaSubject } from '../../shared/index.js';
import { Model } from '../model.js';
import { RegistryError, type ModelRegistry } from '../registry.js';
import type { WeightDelta } from './index.js';
import type { Log } from '../../shared/log.js';

const json = JSONCodec();

/** What the leader says when it puts a merged version in service. */
export interface VersionAnnouncement {
  version: string;
  /** The version it replaced (the deltas' base). */
  parent: string;
  checksum: string;
  promoted_at: string;
  /** Why it was promoted, with the held-out figures. */
  reason: string;
  /** The deltas merged into it. */
  deltas: Array<{ id: string; node: string; samples: number }>;
}

export class ModelChannel {
  private constructor(readonly nc: NatsConnection, private readonly js: JetStreamClient, private readonly store: ObjectStore) {}

  /**
   * Creates the stream, the leader's durable consumer and the object store bucket if missing;
   * with `manage: false` (a node agent, which NATS lets read and publish its deltas only) opens
   * what a coordinator made.
   */
  static async open(nc: NatsConnection, o: { manage?: boolean } = {}): Promise<ModelChannel> {
    if (o.manage === false) {
      const js = nc.jetstream();
      return new ModelChannel(nc, js, await js.views.os(MODELS_BUCKET));
    }
    const jsm = await nc.jetstreamManager();
    const cfg = {
      name: MODELS_STREAM, subjects: [ALL_MODEL_DELTAS, MODEL_VERSIONS_SUBJECT], retention: RetentionPolicy.Limits, storage: StorageType.File,
      max_age: nanos(7 * 24 * 3600_000), max_msgs_per_subject: 1000, duplicate_window: nanos(10 * 60_000),
    };
    if (!(await jsm.streams.info(MODELS_STREAM).then(() => true, () => false))) {
      await jsm.streams.add(cfg).catch(async (e) => {
        if (!(await jsm.streams.info(MODELS_STREAM).then(() => true, () => false))) throw e;
      });
    }
    await jsm.consumers.add(MODELS_STREAM, {
      durable_name: MODEL_DELTAS_CONSUMER, filter_subject: ALL_MODEL_DELTAS, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All,
      // A delta accepted into a round is acknowledged when the round is decided; a leader that
      // dies first leaves it to be redelivered to the next one.
      ack_wait: nanos(10 * 60_000), max_ack_pending: 10_000,
    }).catch(() => undefined); // exists already
    const js = nc.jetstream();
    const store = await js.views.os(MODELS_BUCKET, { storage: StorageType.File });
    return new ModelChannel(nc, js, store);
  }

  /** Sends a delta; a re-sent delta id within ten minutes is deduplicated. */
  async publishDelta(d: WeightDelta): Promise<void> {
    await this.js.publish(modelDeltaSubject(d.node), json.encode(d), { msgID: d.id });
  }

  /** Up to `max` deltas waiting for the leader (each to be acked or left for redelivery), within `expiresMs`. */
  async fetchDeltas(max = 32, expiresMs = 1000 /* nats.js refuses less */): Promise<JsMsg[]> {
    const consumer = await this.js.consumers.get(MODELS_STREAM, MODEL_DELTAS_CONSUMER);
    const out: JsMsg[] = [];
    for await (const m of await consumer.fetch({ max_messages: max, expires: expiresMs })) out.push(m);
    return out;
  }

  decode(m: JsMsg): unknown {
    try { return json.decode(m.data); } catch { return undefined; }
  }

  /** Stores the model file, then announces the version. */
  async publishVersion(model: Model, a: Omit<VersionAnnouncement, 'version' | 'checksum'>): Promise<VersionAnnouncement> {
    await this.store.putBlob({ name: model.version }, new TextEncoder().encode(JSON.stringify(model.file)));
    const announcement: VersionAnnouncement = { ...a, version: model.version, checksum: model.file.checksum };
    await this.js.publish(MODEL_VERSIONS_SUBJECT, json.encode(announcement), { msgID: `version-${model.version}` });
    return announcement;
  }

  /** The latest announcement, if any version was ever published. */
  async latestVersion(): Promise<VersionAnnouncement | undefined> {
    const jsm = await this.nc.jetstreamManager();
    try {
      const m = await jsm.streams.getMessage(MODELS_STREAM, { last_by_subj: MODEL_VERSIONS_SUBJECT });
      return json.decode(m.data) as VersionAnnouncement;
    } catch {
      return undefined; // none published yet
    }
  }

  /** A published model file, checked (Model.fromFile); throws with the reason. */
  async fetchModel(version: string): Promise<Model> {
    const data = await this.store.getBlob(version);
    if (!data) throw new Error(`model ${version} is not in the ${MODELS_BUCKET} object store`);
    return Model.fromFile(JSON.parse(new TextDecoder().decode(data)), { source: `${MODELS_BUCKET}/${version}` });
  }

  /** Calls `fn` for every announcement as it is published (core NATS; `ModelFollower` polls as well). */
  onVersion(fn: (a: VersionAnnouncement) => void): Subscription {
    return this.nc.subscribe(MODEL_VERSIONS_SUBJECT, { callback: (err, m) => { if (!err) { try { fn(json.decode(m.data) as VersionAnnouncement); } catch { /* not an announcement */ } } } });
  }
}

/**
 * Keeps a local model registry on the published global version: on each announcement (and every
 * `pollMs`, and at start) it fetches a version it does not have, checks it against the
 * announced checksum, registers and promotes it; `onChange` then lets a LiveModel swap it in.
 * A file that does not load is refused with the reason and the local model stays.
 */
export class ModelFollower {
  private sub?: Subscription;
  private timer?: NodeJS.Timeout;
  private syncing?: Promise<boolean>;

  constructor(private readonly o: {
    channel: ModelChannel; registry: ModelRegistry; pollMs?: number; onChange?: (version: string) => void; log: Log; who?: string;
    /** True while this process publishes versions itself (the leader): it follows nobody then. */
    publishing?: () => boolean;
  }) {}

  start(): this {
    this.sub = this.o.channel.onVersion(() => void this.sync());
    this.timer = setInterval(() => void this.sync(), this.o.pollMs ?? 5000);
    this.timer.unref();
    void this.sync();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.sub?.unsubscribe();
  }

  /** Brings the local registry to the latest announced version; true when it changed. */
  sync(): Promise<boolean> {
    this.syncing ??= this.syncOnce().finally(() => { this.syncing = undefined; });
    return this.syncing;
  }

  private async syncOnce(): Promise<boolean> {
    const { registry, log } = this.o;
    let a: VersionAnnouncement | undefined;
    if (this.o.publishing?.()) return false;
    try {
      a = await this.o.channel.latestVersion();
      const before = registry.currentVersion();
      if (!a || before === a.version) return false;
      if (!this.has(a.version)) {
        const model = await this.o.channel.fetchModel(a.version);
        if (model.file.checksum !== a.checksum) throw new Error(`its checksum ${model.file.checksum.slice(0, 12)} is not the announced ${a.checksum.slice(0, 12)}`);
        registry.register(model, `published by the leader: ${a.reason}`);
      }
      registry.promote(a.version, `published by the leader (from ${a.parent}, ${a.deltas.length} deltas): ${a.reason}`);
      log(`${this.o.who ?? 'follower'}: global model ${a.version} fetched and in service locally (was ${before})`);
      this.o.onChange?.(a.version);
      return true;
    } catch (e) {
      log(`${this.o.who ?? 'follower'}: published model ${a?.version ?? '(latest)'} not taken, the local model stays: ${(e as Error).message}`, 'warn');
      return false;
    }
  }

  private has(version: string): boolean {
    try { this.o.registry.pathOf(version); return true; } catch (e) { if (e instanceof RegistryError) return false; throw e; }
  }
}
