/**
 * Predictions for actors (live channels). A batch model predicts an encode run as fast as its
 * cores allow; a live channel is paced at real time and never ends. So the model is asked for a
 * window of LIVE_WINDOW_S seconds of the channel's content, and the figures become a steady
 * state: an encoder that needs D seconds for W seconds of content is busy D/W of the time at
 * real time, so CPU, GPU and bandwidth scale by min(1, D/W), while memory (a working set, not a
 * rate) stays. D > W means it cannot keep up with real time on those cores: flagged, and the
 * full figures are kept (the channel will run behind). Duration is 0: it runs until stopped.
 */
import { isActor, type EncodingSchema, type Prediction, type ResourceUsage } from '../shared/index.js';
import type { PredictContext, ResourcePredictor } from './model.js';

/** Seconds of content the steady state is predicted from. */
export const LIVE_WINDOW_S = 60;

/** What a task or an actor needs: the model's prediction, or its steady state for an actor. */
export function predictWork(p: ResourcePredictor, schema: EncodingSchema, ctx?: PredictContext): Prediction {
  return isActor(schema) ? predictLive(p, schema, ctx) : p.predict(schema, ctx);
}

/** predictWork for each context: one batch where the predictor has predictEach (live channels are predicted one by one). */
export function predictWorkEach(p: ResourcePredictor, schema: EncodingSchema, ctxs: readonly PredictContext[]): Prediction[] {
  if (isActor(schema) || !p.predictEach) return ctxs.map((ctx) => predictWork(p, schema, ctx));
  return p.predictEach(schema, ctxs);
}

export function predictLive(p: ResourcePredictor, schema: EncodingSchema, ctx?: PredictContext): Prediction {
  const window: EncodingSchema = { ...schema, input: { ...schema.input, duration_s: LIVE_WINDOW_S } };
  const base = p.predict(window, ctx);
  const steady = (u: ResourceUsage, busy: number): ResourceUsage => ({
    cpu_cores: u.cpu_cores * busy,
    gpu_percent: u.gpu_percent * busy,
    memory_gb: u.memory_gb,
    bandwidth_mbps: u.bandwidth_mbps * busy,
    duration_s: 0,
  });
  const busy = (d: number) => (Number.isFinite(d) && d > 0 ? Math.min(1, d / LIVE_WINDOW_S) : 1);
  const flags = [...(base.flags ?? []), `live: steady state at real time, predicted from ${LIVE_WINDOW_S} s of content; runs until stopped`];
  if (base.expected.duration_s > LIVE_WINDOW_S) {
    flags.push(`cannot keep up with real time: ${base.expected.duration_s.toFixed(1)} s expected to encode ${LIVE_WINDOW_S} s${ctx?.cores ? ` on ${ctx.cores} core(s)` : ''}`);
  }
  return {
    ...base,
    expected: steady(base.expected, busy(base.expected.duration_s)),
    // The bound keeps the slower encoder's share of real time: the upper CPU rate at the upper busy share.
    upper: steady(base.upper, busy(base.upper.duration_s)),
    flags,
  };
}
