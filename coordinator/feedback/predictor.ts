/**
 * The leader's predictor with the feedback loop's quick fixes on top: a ResourcePredictor that
 * wraps the model in service (models/ is left as it is). Two changes, both recorded in the
 * prediction's `feedback` field and in its flags:
 * - on a known node (the dispatch prediction), each target's expected and upper figures are
 *   multiplied by that node's online correction for the codec (coordinator/feedback/correction.ts);
 * - the upper memory bound, which the reservation is made at, is multiplied by the codec's
 *   memory margin (at admission too, since sizing uses the admission prediction).
 * Corrections belong to the model version that made the prediction: when another version goes
 * into service its predictions find none, which is the reset.
 */
import type { EncodingSchema, FeedbackTarget, Prediction, ResourceUsage } from '../../shared/index.js';
import type { PredictContext, ResourcePredictor } from '../../models/index.js';
import { groupKey, marginKey } from './loop.js';

/** Where a prediction is for: the model's context, plus the node once placed. */
export type PlacementContext = PredictContext & { node?: string };

/** What the predictor asks the feedback loop. */
export interface CorrectionSource {
  /** Log factor for `version`'s predictions of `target` for `codec` on `node` (0: none). */
  correction(version: string, node: string, codec: string, target: FeedbackTarget): number;
  /** Multiplier of the upper memory bound for `codec` under `version` (1: none). */
  memoryMargin(version: string, codec: string): number;
  /** Moves whenever the answers above may have changed (the leader's event log notes a change). */
  readonly revision?: number;
  /** Every correction and margin in force, by groupKey / marginKey (for the event log). */
  corrections?(): CorrectionTable;
}

/** Corrections and margins as a table: [groupKey, log factor] and [marginKey, multiplier]. */
export interface CorrectionTable { groups: [string, number][]; margins: [string, number][] }

/** A CorrectionSource that answers from a table (a replay of logged corrections). */
export function tableSource(t: CorrectionTable): CorrectionSource {
  const groups = new Map(t.groups), margins = new Map(t.margins);
  return {
    correction: (v, node, codec, target) => groups.get(groupKey(v, target, codec, node)) ?? 0,
    memoryMargin: (v, codec) => margins.get(marginKey(v, codec)) ?? 1,
    corrections: () => t,
  };
}

const TARGETS: FeedbackTarget[] = ['cpu_cores', 'gpu_percent', 'memory_gb', 'bandwidth_mbps', 'duration_s'];

/** `p` with the source's corrections for `codec` on `node` (none when node is unknown) and its memory margin. Pure. */
export function correctPrediction(p: Prediction, codec: string, node: string | undefined, src: CorrectionSource): Prediction {
  const log_factors: Partial<Record<FeedbackTarget, number>> = {};
  const expected: ResourceUsage = { ...p.expected }, upper: ResourceUsage = { ...p.upper };
  if (node !== undefined) {
    for (const t of TARGETS) {
      const c = src.correction(p.model_version, node, codec, t);
      if (!c || !Number.isFinite(c)) continue;
      log_factors[t] = c;
      expected[t] *= Math.exp(c);
      upper[t] *= Math.exp(c);
    }
  }
  const margin = src.memoryMargin(p.model_version, codec);
  const marginUsed = Number.isFinite(margin) && margin > 1;
  if (marginUsed) upper.memory_gb *= margin;
  const targets = Object.keys(log_factors) as FeedbackTarget[];
  if (!targets.length && !marginUsed) return p;
  const flags = [...(p.flags ?? [])];
  if (targets.length) flags.push(`feedback correction on ${node}: ${targets.map((t) => `${t} ×${Math.exp(log_factors[t]!).toFixed(2)}`).join(', ')}`);
  if (marginUsed) flags.push(`memory margin ×${margin.toFixed(2)} for ${codec} after repeated under-reservation`);
  return { ...p, expected, upper, flags, feedback: { log_factors, ...(marginUsed ? { memory_margin: margin } : {}) } };
}

export class CorrectedPredictor implements ResourcePredictor {
  /** `source()` is asked on every prediction; undefined (no feedback loop running) changes nothing. */
  constructor(private readonly inner: ResourcePredictor, private readonly source: () => CorrectionSource | undefined) {}

  get version(): string { return this.inner.version; }

  /**
   * The corrections in force and a revision that moves when they change (undefined: none
   * applied), so the leader's event log can carry them and a replay predicts the same.
   */
  correctionState(): { revision: number; table: () => CorrectionTable } | undefined {
    const src = this.source();
    if (!src) return undefined;
    return { revision: src.revision ?? 0, table: () => src.corrections?.() ?? { groups: [], margins: [] } };
  }

  predict(schema: EncodingSchema, ctx?: PlacementContext): Prediction {
    const p = this.inner.predict(schema, ctx);
    const src = this.source();
    return src ? correctPrediction(p, schema.output.codec, ctx?.node, src) : p;
  }

  predictEach(schema: EncodingSchema, ctxs: readonly PlacementContext[]): Prediction[] {
    const ps = this.inner.predictEach ? this.inner.predictEach(schema, ctxs) : ctxs.map((c) => this.inner.predict(schema, c));
    const src = this.source();
    return src ? ps.map((p, i) => correctPrediction(p, schema.output.codec, ctxs[i].node, src)) : ps;
  }

  /**
   * `p`, this predictor's prediction made with no node, with `node`'s corrections added: what
   * predict() with that node gives, from the same model run (the leader sizes a reservation from
   * one prediction and hands its agent the same one, corrected for the node).
   */
  forNode(p: Prediction, codec: string, node: string): Prediction {
    const src = this.source();
    if (!src) return p;
    // The memory margin is in `p` already.
    const q = correctPrediction(p, codec, node, { correction: (v, n, c, t) => src.correction(v, n, c, t), memoryMargin: () => 1 });
    return q === p ? p : { ...q, feedback: { ...p.feedback, log_factors: q.feedback?.log_factors ?? {} } };
  }
}
