/**
 * The model's error signal: what an agent reports after each encode (predicted against actual,
 * per target) or as soon as an encode uses more than it reserved, and the alerts the
 * coordinator raises from the rolling figures. Both travel on NATS JetStream (shared/subjects.ts).
 */
import type { ResourceUsage } from './task.js';

/** A predicted figure the feedback loop follows: one of ResourceUsage's. */
export type FeedbackTarget = keyof ResourceUsage;

/** One target of one encode: what was predicted, what it used, and what was held for it. */
export interface TargetFeedback {
  /** The expected figure the leader sent with the assignment (after any feedback correction). */
  predicted: number;
  actual: number;
  /** What the allocation held for it, where it holds this target (memory, bandwidth, cores). */
  reserved?: number;
}

/**
 * - `completion`: a finished encode, every measured target (a batch task; live channels are not
 *   reported this way, see node-agent/feedback.ts).
 * - `overrun`: during a run (or as it was stopped), usage above the reservation: sent at once,
 *   once per job, attempt and target.
 */
export type FeedbackKind = 'completion' | 'overrun';

export interface FeedbackReport {
  kind: FeedbackKind;
  job_id: string;
  attempt: number;
  node: string;
  /** The model version that made the prediction (its record's `model_version`). */
  model_version: string;
  codec: string;
  encoder: string;
  /** The node's hardware class (models hardwareClass: CPU model, plus the GPU's when one was granted). */
  hw_class?: string;
  /** `actor` for a live channel (only its overruns are reported). */
  work: 'task' | 'actor';
  targets: Partial<Record<FeedbackTarget, TargetFeedback>>;
  overrun?: { target: FeedbackTarget; reserved: number; observed: number; after_s: number; reason?: string };
  /** Epoch ms the report was made. */
  at: number;
}

/**
 * - `error`: a target's rolling MAPE on one node and codec passed its threshold (one alert until it recovers).
 * - `drift`: the Page-Hinkley test on the model's log residuals fired (a shift up or down; cooldown between two).
 * - `recovered`: an `error` alert's MAPE is back under its threshold.
 * - `margin`: sustained memory under-reservation raised a class's memory margin.
 */
export type ModelAlertKind = 'error' | 'drift' | 'recovered' | 'margin';

export interface ModelAlert {
  kind: ModelAlertKind;
  model_version: string;
  target: FeedbackTarget;
  node?: string;
  codec: string;
  /** error/recovered: rolling MAPE in %; drift: the Page-Hinkley statistic (log units); margin: the new multiplier. */
  magnitude: number;
  /** The threshold it was judged against (MAPE %, λ, or the previous margin). */
  threshold: number;
  /** drift: `up` when actuals moved above predictions, `down` below. */
  direction?: 'up' | 'down';
  /** Runs in the window behind the figure. */
  runs: number;
  message: string;
  at: number;
}
