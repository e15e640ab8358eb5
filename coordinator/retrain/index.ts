/**
 * Scheduled retraining. On each tick of the schedule (weekly, monthly, daily or a cron
 * expression) the leader — only the leader — reads the training window from QuestDB, trains a
 * candidate and promotes it if it is no worse than the model in service on the most recent
 * runs (models/training/retrain.ts). A tick that finds the previous run still going is skipped.
 */
import { Cron } from 'croner';
import { ConfigError } from '../../shared/index.js';
import { exportTrainingRuns, retrain, runsToRows, type ModelRegistry, type RetrainResult } from '../../models/index.js';
import type { Log } from '../../shared/log.js';

/** Named schedules: 03:00 every Sunday, on the 1st of the month, every day. */
const NAMED: Record<string, string> = { weekly: '0 3 * * 0', monthly: '0 3 1 * *', daily: '0 3 * * *' };

/** Checks a schedule (a name above or a 5/6-field cron expression) and returns its cron form. */
export function parseSchedule(value: string, setting = '--retrain'): string {
  const expr = NAMED[value.trim().toLowerCase()] ?? value.trim();
  try {
    new Cron(expr, { paused: true }).stop();
  } catch (e) {
    throw new ConfigError(setting, `${JSON.stringify(value)} is not weekly, monthly, daily or a cron expression (${(e as Error).message})`);
  }
  return expr;
}

/** Parses a window such as 30d, 12h, 2w or 90m into milliseconds. */
export function parseWindow(value: string, setting = '--retrain-window'): number {
  const m = /^(\d+(?:\.\d+)?)\s*(m|h|d|w)$/.exec(value.trim());
  if (!m || Number(m[1]) <= 0) throw new ConfigError(setting, `${JSON.stringify(value)} is not a window like 30d, 12h, 2w or 90m`);
  return Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[m[2] as 'm' | 'h' | 'd' | 'w'];
}

export interface RetrainScheduleOptions {
  schedule: string;
  /** How far back the training rows go. */
  windowMs: number;
  questdbHttp: string;
  registry: ModelRegistry;
  coverage?: number;
  /** Fewer succeeded runs than this in the window and the tick does nothing. */
  minRows?: number;
  /** Whether this process leads now: followers let the tick pass. */
  isLeader: () => boolean;
  /** Called after each retraining (the live model refreshes from the registry). */
  onResult?: (r: RetrainResult) => void;
  log: Log;
  now?: () => number;
}

export class RetrainScheduler {
  private readonly pattern: string;
  /** Created by start(): croner arms a timer even when paused, which would keep the process alive. */
  private job?: Cron;
  private last?: { at: string; result?: RetrainResult; error?: string; skipped?: string };

  constructor(private readonly o: RetrainScheduleOptions) {
    this.pattern = parseSchedule(o.schedule);
  }

  start(): this {
    this.job ??= new Cron(this.pattern, { protect: true }, () => this.runOnce().then(() => undefined));
    this.o.log(`retraining on schedule ${this.pattern}, next at ${this.nextRun()?.toISOString() ?? 'never'}`);
    return this;
  }

  stop(): void {
    this.job?.stop();
  }

  nextRun(): Date | null {
    return this.job?.nextRun() ?? null;
  }

  /** What the last tick did. */
  lastRun() {
    return this.last;
  }

  /** One retraining now (a tick, or on demand). Never throws: failures are logged and kept. */
  async runOnce(): Promise<RetrainResult | undefined> {
    const at = new Date((this.o.now ?? Date.now)()).toISOString();
    if (!this.o.isLeader()) return undefined;
    try {
      const to = (this.o.now ?? Date.now)(), from = to - this.o.windowMs;
      const rows = runsToRows(await exportTrainingRuns({ httpBase: this.o.questdbHttp, from, to, status: 'succeeded' }));
      const min = this.o.minRows ?? 50;
      if (rows.length < min) {
        const skipped = `${rows.length} succeeded runs since ${new Date(from).toISOString()}, fewer than ${min}`;
        this.o.log(`retraining skipped: ${skipped}`);
        this.last = { at, skipped };
        return undefined;
      }
      const result = await retrain({
        registry: this.o.registry, rows, promote: 'if-better', split: 'time', coverage: this.o.coverage,
        source: `QuestDB encode_runs ${new Date(from).toISOString()} .. ${new Date(to).toISOString()}`, log: this.o.log,
      });
      this.last = { at, result };
      this.o.onResult?.(result);
      return result;
    } catch (e) {
      this.o.log(`retraining failed: ${(e as Error).message}`, 'error');
      this.last = { at, error: (e as Error).message };
      return undefined;
    }
  }
}
