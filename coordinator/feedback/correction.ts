/**
 * The two quick fixes the feedback loop makes before any retraining. Pure.
 *
 * **Online residual correction.** Per (model version, node, codec, target) an exponentially
 * weighted mean of the model's log residual ln(actual / model prediction), kept in log space
 * and applied as a factor exp(c) to the expected and upper figures of predictions for that node
 * (coordinator/feedback/predictor.ts). A node slowed by a competing load, or a codec the model
 * predicts badly there, is corrected within a few runs. Bounded twice, so one bad run cannot do
 * damage: each residual is clipped to the bounds before it is averaged in (its weight α then
 * caps how far it moves the factor), and the factor itself stays within [min, max]. It belongs
 * to one model version: a new version starts from no correction.
 *
 * **Memory margin.** Memory is not elastic: an encode over its reservation is stopped (or, where
 * memory is only accounted, crowds its neighbours). Per class, the upper memory bound is
 * multiplied by a margin, raised at once when the class is under-reserved repeatedly: at least
 * `under` of its last `of` memory figures above what was reserved. The class is the output
 * codec: sizing happens at admission, before a node (and so a hardware class) is known, and an
 * encode's working set comes from its codec's reference frames and look-ahead rather than from
 * the CPU it runs on. The margin only grows within a model version (the evidence it answered
 * does not go away); a new version, trained on those runs, starts again at 1.
 */

export interface CorrectionOptions {
  /** Weight of the newest residual in the moving average (0–1). */
  alpha: number;
  /** Bounds of the factor, e.g. 0.2 and 5. */
  min: number;
  max: number;
}

export const DEFAULT_CORRECTION: CorrectionOptions = { alpha: 0.5, min: 0.2, max: 5 };

const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

/**
 * The log correction after one more run whose model residual (ln(actual / model prediction),
 * before any correction) is `residual`.
 */
export function updateCorrection(current: number, residual: number, o: CorrectionOptions = DEFAULT_CORRECTION): number {
  if (!Number.isFinite(residual)) return current;
  const lo = Math.log(o.min), hi = Math.log(o.max);
  return clamp((1 - o.alpha) * current + o.alpha * clamp(residual, lo, hi), lo, hi);
}

export interface MarginOptions {
  /** Under-reservations among the last `of` memory figures that raise the margin. */
  under: number;
  of: number;
  /** Extra room on top of the worst ratio seen. */
  headroom: number;
  /** The margin never exceeds this. */
  max: number;
}

export const DEFAULT_MARGIN: MarginOptions = { under: 2, of: 5, headroom: 1.1, max: 4 };

export interface MarginState {
  margin: number;
  /** actual / reserved memory of the class's latest runs since the last raise, oldest first. */
  recent: number[];
}

export interface MarginStep {
  state: MarginState;
  raised?: { from: number; to: number };
}

/**
 * One more memory figure of the class: `ratio` = used / reserved (reserved already includes
 * the margin). Raises the margin by the worst ratio of the window times the headroom when the
 * window holds `under` figures above 1, then starts a new window (judged at the new margin).
 */
export function applyMemoryRatio(s: MarginState, ratio: number, o: MarginOptions = DEFAULT_MARGIN): MarginStep {
  if (!(Number.isFinite(ratio) && ratio > 0)) return { state: s };
  const recent = [...s.recent, ratio].slice(-o.of);
  const over = recent.filter((r) => r > 1);
  if (over.length < o.under) return { state: { margin: s.margin, recent } };
  const to = Math.min(o.max, s.margin * Math.max(...over) * o.headroom);
  if (!(to > s.margin)) return { state: { margin: s.margin, recent: [] } };
  return { state: { margin: to, recent: [] }, raised: { from: s.margin, to } };
}
