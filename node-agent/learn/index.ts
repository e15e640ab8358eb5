/**
 * The node's side of federated learning (models/federated): keep this node's own recent runs
 * (settings and what they actually used), and every `everyRuns` runs — or on demand — fine-tune
 * the current global model on them and publish the weight delta over JetStream, where it waits
 * for a leader. No run leaves the node, only the change of the weights.
 *
 *   succeeded run ─► runRow ─► LocalLearner.observe ─(every N runs)─► learnNow:
 *        global model (local registry, kept current by ModelFollower) ─► fineTune ─► weightDelta ─► publishDelta
 *
 * Runs the leader holds out (models/federated heldOutPart) are never learned from here, so the
 * leader can judge and calibrate merges on them.
 */
import type { NatsConnection } from 'nats';
import {
  MIN_FINE_TUNE_ROWS, ModelRegistry, describeSchema, exportTrainingRuns, fineTune, hardwareClass, heldOutPart, runsToRows, weightDelta,
  type FineTuneOptions, type LabelledRow, type TargetValues, type WeightDelta,
} from '../../models/index.js';
import { ModelChannel, ModelFollower } from '../../models/federated/channel.js';
import type { ContentComplexity, EncodingSchema, ResourceUsage } from '../../shared/index.js';
import type { Log } from '../../shared/log.js';

export interface LearnOptions {
  /** Fine-tune and send a delta after this many new runs (default 50; 0: only on demand). */
  everyRuns?: number;
  /** Most recent runs kept (default 500). */
  maxRows?: number;
  /** Fewer kept runs than this and no delta is made (default 20). */
  minRows?: number;
  fineTune?: FineTuneOptions;
}

/** One finished run of this node as a labelled row, keyed as QuestDB's rows are (`job#attempt`). */
export function runRow(o: {
  task_id: string; attempt: number; schema: EncodingSchema; cores: number; gpus: number; cpu_model: string; gpu_model?: string;
  actual: ResourceUsage; complexity?: ContentComplexity; ts?: number;
}): LabelledRow {
  const record = describeSchema(o.schema, { cores: o.cores, gpus: o.gpus, hw_class: hardwareClass(o.cpu_model, o.gpu_model) });
  record.content = { ...record.content, si_mean: o.complexity?.si_mean, ti_mean: o.complexity?.ti_mean };
  const a = o.actual;
  const targets: Partial<TargetValues> = { cpu_cores: a.cpu_cores, memory_gb: a.memory_gb, bandwidth_mbps: a.bandwidth_mbps, duration_s: a.duration_s, gpu_percent: o.gpus > 0 ? a.gpu_percent : 0 };
  return { record, targets, key: `${o.task_id}#${o.attempt}`, ts: o.ts ?? Date.now() };
}

export class LocalLearner {
  private rows: LabelledRow[] = [];
  private sinceLast = 0;
  private learning?: Promise<WeightDelta | undefined>;
  private sent = 0;

  constructor(private readonly o: LearnOptions & { nodeId: string; channel: ModelChannel; registry: ModelRegistry; log: Log }) {}

  /** Runs kept now. */
  size(): number { return this.rows.length; }
  /** Deltas published by this learner. */
  deltasSent(): number { return this.sent; }

  /**
   * Keeps a run (unless the leader holds it out); every `everyRuns` kept runs starts a round of
   * local learning in the background.
   */
  observe(row: LabelledRow): void {
    if (heldOutPart(row.key)) return;
    this.rows = this.rows.filter((r) => r.key !== row.key);
    this.rows.push(row);
    if (this.rows.length > (this.o.maxRows ?? 500)) this.rows.splice(0, this.rows.length - (this.o.maxRows ?? 500));
    this.sinceLast++;
    const every = this.o.everyRuns ?? 50;
    if (every > 0 && this.sinceLast >= every && this.rows.length >= (this.o.minRows ?? 20)) void this.learnNow();
  }

  /** This node's recent succeeded runs from QuestDB (after a restart), kept as if observed, without learning. */
  async loadRecent(questdbHttp: string, windowMs = 7 * 86_400_000): Promise<number> {
    const to = Date.now();
    const rows = runsToRows(await exportTrainingRuns({ httpBase: questdbHttp, from: to - windowMs, to, node: this.o.nodeId, status: 'succeeded' }));
    for (const r of rows) if (!heldOutPart(r.key) && !this.rows.some((x) => x.key === r.key)) this.rows.push(r);
    this.rows.sort((a, b) => (a.ts ?? 0) - (b.ts ?? 0));
    this.rows.splice(0, Math.max(0, this.rows.length - (this.o.maxRows ?? 500)));
    return rows.length;
  }

  /** Fine-tunes the current global model on the kept runs and publishes the delta (one at a time). */
  learnNow(): Promise<WeightDelta | undefined> {
    this.learning ??= this.learnOnce().finally(() => { this.learning = undefined; });
    return this.learning;
  }

  private async learnOnce(): Promise<WeightDelta | undefined> {
    const { log, nodeId } = this.o;
    const rows = [...this.rows];
    if (rows.length < Math.max(this.o.minRows ?? 20, MIN_FINE_TUNE_ROWS)) {
      log(`learn: ${rows.length} runs kept, fewer than ${Math.max(this.o.minRows ?? 20, MIN_FINE_TUNE_ROWS)}; no delta yet`, 'debug');
      return undefined;
    }
    this.sinceLast = 0;
    try {
      const base = this.o.registry.load();
      const tuned = fineTune(base, rows, { seed: rows.length, ...this.o.fineTune, version: `${base.version}.${nodeId}`.slice(0, 64).replace(/[^A-Za-z0-9._-]/g, '_') });
      const delta = weightDelta(base, tuned, { node: nodeId });
      await this.o.channel.publishDelta(delta);
      this.sent++;
      log(`learn: delta ${delta.id} on ${base.version} sent (${delta.samples} runs, local validation error ${delta.validation.base.toPrecision(3)} → ${delta.validation.tuned.toPrecision(3)} on ${delta.validation.rows})`);
      return delta;
    } catch (e) {
      log(`learn: no delta this time: ${(e as Error).message}`, 'warn');
      return undefined;
    }
  }
}

/** A node's learning, started by the agent: a follower keeping `modelDir` on the global version, and the learner. */
export interface Learning { learner: LocalLearner; follower: ModelFollower; registry: ModelRegistry; stop(): void }

export async function startLearning(nc: NatsConnection, o: LearnOptions & { nodeId: string; modelDir: string; questdbHttp?: string; log: Log }): Promise<Learning> {
  const channel = await ModelChannel.open(nc, { manage: false });
  const registry = new ModelRegistry(o.modelDir);
  const follower = new ModelFollower({ channel, registry, log: o.log, who: 'learn' }).start();
  const learner = new LocalLearner({ ...o, channel, registry });
  if (o.questdbHttp) {
    learner.loadRecent(o.questdbHttp).then((n) => n && o.log(`learn: ${n} recent runs of this node loaded from QuestDB`))
      .catch((e) => o.log(`learn: recent runs not loaded from QuestDB: ${(e as Error).message}`, 'warn'));
  }
  return { learner, follower, registry, stop: () => follower.stop() };
}
