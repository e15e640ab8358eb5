/**
 * Jobs that have not arrived yet. A burst node takes minutes to boot and install, so a launch
 * decided only on the queue as it is arrives after the jobs it was for: the decision also replays
 * the jobs expected within `horizon` (about a node's boot time) at the rate each SLA class has
 * been arriving over `window`.
 *
 *   per class:  rate = arrivals in (now − window, now] / window
 *               expected = ⌊rate × horizon⌋ jobs, at now + 1/rate, now + 2/rate, …
 *               each a copy of a recent arrival of that class (most recent first), so the
 *               forecast has the class's own mix of sizes, codecs and deadlines (a deadline keeps
 *               its slack from submission)
 *
 * Pure: the same arrivals and `now` give the same forecast. A class with fewer than one expected
 * arrival in the horizon forecasts nothing, so a trickle of jobs never launches anything.
 */
import { SLA_CLASSES, type EncodingTask, type SlaClass } from '../../shared/index.js';

export interface ForecastPolicy {
  /** How far back arrivals are counted. */
  window_ms: number;
  /** How far ahead arrivals are forecast (about what a burst node takes to join). */
  horizon_ms: number;
}

export interface ClassForecast {
  /** Arrivals per minute over the window. */
  rate_per_min: number;
  /** Jobs forecast to arrive within the horizon. */
  arriving: number;
}

export interface Forecast {
  classes: Record<SlaClass, ClassForecast>;
  /** The forecast jobs, queued, `submitted_at` being when each is expected. */
  jobs: EncodingTask[];
  /** When each forecast job arrives, by id. */
  arrives: Map<string, number>;
}

/** Forecast ids start with this, so they are never mistaken for real jobs. */
export const FORECAST_PREFIX = 'forecast:';

export const isForecast = (id: string) => id.startsWith(FORECAST_PREFIX);

export function forecastArrivals(arrivals: readonly EncodingTask[], now: number, p: ForecastPolicy): Forecast {
  const classes = {} as Record<SlaClass, ClassForecast>;
  const jobs: EncodingTask[] = [];
  const arrives = new Map<string, number>();
  for (const c of SLA_CLASSES) {
    const recent = arrivals
      .filter((t) => t.schema.priority === c && t.submitted_at > now - p.window_ms && t.submitted_at <= now && !isForecast(t.id))
      .sort((a, b) => b.submitted_at - a.submitted_at || (a.id < b.id ? -1 : 1));
    const perMs = recent.length / p.window_ms;
    const n = p.horizon_ms > 0 ? Math.floor(perMs * p.horizon_ms + 1e-9) : 0;
    classes[c] = { rate_per_min: perMs * 60_000, arriving: n };
    for (let i = 0; i < n; i++) {
      const template = recent[i % recent.length];
      const at = Math.round(now + (i + 1) / perMs);
      const id = `${FORECAST_PREFIX}${c}:${i}`;
      const deadline = template.schema.deadline === undefined ? undefined : new Date(at + (Date.parse(template.schema.deadline) - template.submitted_at)).toISOString();
      const { allocation: _a, started_at: _s, ...rest } = template;
      const { group: _g, ...schema } = template.schema; // a forecast job is no member of the template's group
      jobs.push({
        ...rest, id, state: 'queued', submitted_at: at, updated_at: at, attempts: 0,
        schema: { ...schema, ...(deadline !== undefined ? { deadline } : {}) },
      });
      arrives.set(id, at);
    }
  }
  return { classes, jobs, arrives };
}
