/**
 * When the rolling figures become an alert, without storms. Pure.
 *
 * An `error` alert opens when a target's rolling MAPE on one (version, node, codec) passes its
 * threshold with at least `minRuns` runs in the window, and stays open, silent, until the MAPE
 * is back at or under the threshold (`recovered` is published then). A `drift` alert (the
 * Page-Hinkley test) is published at most once per `driftCooldownMs` for the same group.
 */
import type { FeedbackTarget } from '../../shared/index.js';
import type { RollingFigures } from './window.js';

export interface AlertOptions {
  /** Rolling MAPE (%) above which a target's error alerts. */
  mape: Record<FeedbackTarget, number>;
  /** Runs the window must hold before its MAPE is judged. */
  minRuns: number;
  /** Least time between two drift alerts of one group. */
  driftCooldownMs: number;
}

export const DEFAULT_ALERTS: AlertOptions = {
  mape: { cpu_cores: 40, memory_gb: 40, bandwidth_mbps: 60, duration_s: 50, gpu_percent: 60 },
  minRuns: 3,
  driftCooldownMs: 10 * 60_000,
};

/** `fire` opens an error alert, `recover` closes the open one; undefined: nothing to say. */
export function judgeError(open: boolean, f: RollingFigures, threshold: number, minRuns: number): 'fire' | 'recover' | undefined {
  if (!Number.isFinite(f.mape)) return undefined;
  if (!open) return f.n >= minRuns && f.mape > threshold ? 'fire' : undefined;
  return f.mape <= threshold ? 'recover' : undefined;
}

/** Whether a drift alert may be published now, the last one having gone out at `lastAt`. */
export const driftDue = (lastAt: number | undefined, now: number, cooldownMs: number): boolean =>
  lastAt === undefined || now - lastAt >= cooldownMs;
