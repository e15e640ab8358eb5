/**
 * The feedback loop's state and how one report changes it. Pure: the service
 * (coordinator/feedback/service.ts) reads reports from JetStream, calls `applyReport`, saves
 * the records it returns and publishes the alerts.
 *
 *   FeedbackReport ─► per target: window (MAPE, bias, coverage) ─► error alert / recovered
 *                                 model residual ─► Page-Hinkley ─► drift alert
 *                                                └► online correction (EWMA of log residual)
 *                     memory used / reserved ─► class margin ─► margin alert
 *
 * A group is one (model version, target, codec, node). Its window holds the errors of the
 * predictions the leader actually served (after correction): what the cluster suffers. The
 * drift test and the correction see the model's own residual, the served log error plus the
 * log factor that was applied, so a correction that is doing its job hides no drift and the
 * test fires once per shift of the model's error, not again while the correction catches up.
 */
import { describeValue, figure, finite, nonNegative, shortText, v, whyNot, type FeedbackReport, type FeedbackTarget, type ModelAlert, type ResourceUsage } from '../../shared/index.js';
import { DEFAULT_ALERTS, driftDue, judgeError, type AlertOptions } from './alerts.js';
import { DEFAULT_CORRECTION, DEFAULT_MARGIN, applyMemoryRatio, updateCorrection, type CorrectionOptions, type MarginOptions, type MarginState } from './correction.js';
import { DEFAULT_PAGE_HINKLEY, freshPageHinkley, pageHinkley, type PageHinkleyOptions, type PageHinkleyState } from './drift.js';
import { errorEntry, pushWindow, rollingFigures, type RollingFigures, type WindowEntry } from './window.js';

export interface FeedbackSettings {
  /** Runs in each rolling window. */
  window: number;
  alerts: AlertOptions;
  drift: PageHinkleyOptions;
  /** The online correction; `enabled: false` keeps the figures and alerts but corrects nothing. */
  correction: CorrectionOptions & { enabled: boolean };
  margin: MarginOptions;
}

export const DEFAULT_FEEDBACK: FeedbackSettings = {
  window: 20,
  alerts: DEFAULT_ALERTS,
  drift: DEFAULT_PAGE_HINKLEY,
  correction: { ...DEFAULT_CORRECTION, enabled: true },
  margin: DEFAULT_MARGIN,
};

/** Settings with any given parts over the defaults. */
export function feedbackSettings(o: FeedbackOverrides = {}): FeedbackSettings {
  const d = DEFAULT_FEEDBACK;
  return {
    window: o.window ?? d.window,
    alerts: { ...d.alerts, ...o.alerts, mape: { ...d.alerts.mape, ...o.alerts?.mape } },
    drift: { ...d.drift, ...o.drift },
    correction: { ...d.correction, ...o.correction },
    margin: { ...d.margin, ...o.margin },
  };
}

export interface FeedbackOverrides {
  window?: number;
  alerts?: Partial<Omit<AlertOptions, 'mape'>> & { mape?: Partial<AlertOptions['mape']> };
  drift?: Partial<PageHinkleyOptions>;
  correction?: Partial<FeedbackSettings['correction']>;
  margin?: Partial<MarginOptions>;
}

/** Rolling figures, drift test, correction and alert state of one (model version, target, codec, node). */
export interface ErrorGroup {
  model_version: string;
  target: FeedbackTarget;
  codec: string;
  node: string;
  hw_class?: string;
  /** Runs reported since the version went into service. */
  count: number;
  window: WindowEntry[];
  /** The window's figures, kept for readers (`prescient model status`). */
  figures: RollingFigures;
  /** Log factor applied to this node's predictions of this codec and target (0: none). */
  correction: number;
  drift: PageHinkleyState;
  /** An error alert is open (published, not yet recovered). */
  alert_open: boolean;
  last_drift_at?: number;
  updated_at: number;
}

/** The memory margin of one class (model version, codec). */
export interface MarginRecord extends MarginState {
  model_version: string;
  codec: string;
  raised_at?: number;
  updated_at: number;
}

export interface FeedbackState {
  groups: Map<string, ErrorGroup>;
  margins: Map<string, MarginRecord>;
  /** Jobs (id/attempt) whose memory overrun was counted already: their completion is not counted again. */
  overrun: Set<string>;
}

export const emptyFeedbackState = (): FeedbackState => ({ groups: new Map(), margins: new Map(), overrun: new Set() });

/** What the leader's task record adds to a report, when it is still there. */
export interface ReportContext {
  /** Log factors the served prediction carried (Prediction.feedback); undefined: not known. */
  applied?: Partial<Record<FeedbackTarget, number>>;
  /** The served prediction's upper bounds. */
  upper?: Partial<ResourceUsage>;
}

/** KV keys: the tuple, base64url-encoded (node ids and versions may hold characters keys may not). */
const b64 = (parts: string[]) => Buffer.from(JSON.stringify(parts)).toString('base64url');
export const groupKey = (version: string, target: string, codec: string, node: string) => `g.${b64([version, target, codec, node])}`;
export const marginKey = (version: string, codec: string) => `m.${b64([version, codec])}`;

// What the feedback bucket holds, as saved: JSON wrote NaN figures as null.
const TARGET_NAMES = Object.keys(DEFAULT_ALERTS.mape) as FeedbackTarget[];
const StoredGroup = v.object({
  model_version: shortText, target: v.picklist(TARGET_NAMES), codec: shortText, node: shortText, hw_class: v.optional(v.string()),
  count: nonNegative,
  window: v.pipe(v.array(v.object({ ape: figure, log: figure, covered: v.optional(v.boolean()) })), v.maxLength(10_000)),
  figures: v.object({ n: nonNegative, mape: figure, bias: figure, coverage: figure }),
  correction: finite,
  drift: v.object({ n: nonNegative, mean: figure, up: figure, upMin: figure, down: figure, downMax: figure }),
  alert_open: v.boolean(), last_drift_at: v.optional(finite), updated_at: finite,
});
const StoredMargin = v.object({
  model_version: shortText, codec: shortText, margin: finite, recent: v.pipe(v.array(figure), v.maxLength(10_000)), raised_at: v.optional(finite), updated_at: finite,
});

/**
 * Why a record read from the feedback bucket under `key` is not one this loop could have saved
 * (undefined when it is): its shape, its key, and a correction or margin within the bounds the
 * loop keeps them to. A leader loads only records that pass, so nothing written around the loop
 * moves every later prediction (a margin of ×4 on a codec did, once).
 */
export function invalidFeedbackRecord(key: string, x: unknown, s: FeedbackSettings = DEFAULT_FEEDBACK): string | undefined {
  if (key.startsWith('g.')) {
    const why = whyNot(StoredGroup, x);
    if (why) return why;
    const g = x as ErrorGroup;
    if (groupKey(g.model_version, g.target, g.codec, g.node) !== key) return 'its key is not the one its model version, target, codec and node make';
    const lo = Math.log(s.correction.min), hi = Math.log(s.correction.max);
    if (g.correction < lo - 1e-9 || g.correction > hi + 1e-9) return `correction ${describeValue(g.correction)} is outside the loop's bounds [ln ${s.correction.min}, ln ${s.correction.max}]`;
    return undefined;
  }
  if (key.startsWith('m.')) {
    const why = whyNot(StoredMargin, x);
    if (why) return why;
    const m = x as MarginRecord;
    if (marginKey(m.model_version, m.codec) !== key) return 'its key is not the one its model version and codec make';
    if (m.margin < 1 || m.margin > s.margin.max + 1e-9) return `margin ${describeValue(m.margin)} is outside the loop's bounds [1, ${s.margin.max}]`;
    return undefined;
  }
  return 'its key is neither an error group\'s nor a margin\'s';
}

export interface ReportOutcome {
  groups: ErrorGroup[];
  margins: MarginRecord[];
  alerts: ModelAlert[];
}

const pct = (x: number) => `${x.toFixed(1)}%`;

/** Applies one report to `state` (its maps are updated) and returns what changed and what to publish. */
export function applyReport(state: FeedbackState, r: FeedbackReport, ctx: ReportContext, s: FeedbackSettings, now: number): ReportOutcome {
  const out: ReportOutcome = { groups: [], margins: [], alerts: [] };
  const jobKey = `${r.job_id}/${r.attempt}`;
  if (r.kind === 'overrun') {
    const o = r.overrun;
    if (o?.target === 'memory_gb' && o.reserved > 0 && !state.overrun.has(jobKey)) {
      state.overrun.add(jobKey);
      if (state.overrun.size > 10_000) state.overrun.delete(state.overrun.values().next().value!);
      memory(state, r, o.observed / o.reserved, s, now, out);
    }
    return out;
  }
  for (const [target, f] of Object.entries(r.targets) as Array<[FeedbackTarget, NonNullable<FeedbackReport['targets'][FeedbackTarget]>]>) {
    const entry = errorEntry(f.predicted, f.actual, ctx.upper?.[target] ?? f.reserved);
    if (!entry) continue;
    const key = groupKey(r.model_version, target, r.codec, r.node);
    const prev = state.groups.get(key);
    const g: ErrorGroup = prev ? { ...prev } : {
      model_version: r.model_version, target, codec: r.codec, node: r.node, count: 0, window: [], figures: rollingFigures([]),
      correction: 0, drift: freshPageHinkley(), alert_open: false, updated_at: now,
    };
    g.hw_class = r.hw_class ?? g.hw_class;
    const applied = ctx.applied ? ctx.applied[target] ?? 0 : g.correction;
    const residual = entry.log + applied;
    g.count += 1;
    g.window = pushWindow(g.window, entry, s.window);
    g.figures = rollingFigures(g.window);
    g.correction = s.correction.enabled ? updateCorrection(g.correction, residual, s.correction) : 0;
    g.updated_at = now;
    const where = `${target} of ${r.codec} on node ${r.node} (model ${r.model_version})`;
    const base = { model_version: r.model_version, target, node: r.node, codec: r.codec, runs: g.figures.n, at: now };
    const step = pageHinkley(g.drift, residual, s.drift);
    g.drift = step.state;
    if (step.fired && driftDue(g.last_drift_at, now, s.alerts.driftCooldownMs)) {
      g.last_drift_at = now;
      out.alerts.push({
        ...base, kind: 'drift', magnitude: step.fired.statistic, threshold: s.drift.lambda, direction: step.fired.direction,
        message: `drift in ${where}: Page-Hinkley ${step.fired.statistic.toFixed(2)} > ${s.drift.lambda} (log residuals moved ${step.fired.direction}; latest actual/predicted ${Math.exp(residual).toFixed(2)})`,
      });
    }
    const threshold = s.alerts.mape[target];
    const verdict = judgeError(g.alert_open, g.figures, threshold, s.alerts.minRuns);
    if (verdict === 'fire') {
      g.alert_open = true;
      out.alerts.push({ ...base, kind: 'error', magnitude: g.figures.mape, threshold, message: `${where}: rolling MAPE ${pct(g.figures.mape)} over ${g.figures.n} runs passed ${pct(threshold)} (bias ×${Math.exp(g.figures.bias).toFixed(2)})` });
    } else if (verdict === 'recover') {
      g.alert_open = false;
      out.alerts.push({ ...base, kind: 'recovered', magnitude: g.figures.mape, threshold, message: `${where}: rolling MAPE ${pct(g.figures.mape)} over ${g.figures.n} runs is back under ${pct(threshold)}` });
    }
    state.groups.set(key, g);
    out.groups.push(g);
    if (target === 'memory_gb' && f.reserved && f.reserved > 0 && !state.overrun.has(jobKey)) memory(state, r, f.actual / f.reserved, s, now, out);
  }
  return out;
}

function memory(state: FeedbackState, r: FeedbackReport, ratio: number, s: FeedbackSettings, now: number, out: ReportOutcome): void {
  const key = marginKey(r.model_version, r.codec);
  const prev = state.margins.get(key) ?? { model_version: r.model_version, codec: r.codec, margin: 1, recent: [], updated_at: now };
  const step = applyMemoryRatio(prev, ratio, s.margin);
  const next: MarginRecord = { ...prev, ...step.state, updated_at: now };
  if (step.raised) {
    next.raised_at = now;
    out.alerts.push({
      kind: 'margin', model_version: r.model_version, target: 'memory_gb', node: r.node, codec: r.codec, magnitude: step.raised.to, threshold: step.raised.from,
      runs: s.margin.of, at: now,
      message: `memory of ${r.codec} under-reserved repeatedly (latest on node ${r.node}: ${ratio.toFixed(2)}× the reservation): margin raised from ×${step.raised.from.toFixed(2)} to ×${step.raised.to.toFixed(2)} for model ${r.model_version}`,
    });
  }
  state.margins.set(key, next);
  out.margins.push(next);
}

/** Each target's rolling figures pooled over codecs and nodes (weighted by runs), for one version or all: what the dashboard and the metrics show. */
export function pooledFigures(groups: readonly ErrorGroup[], version?: string): Array<{ target: FeedbackTarget; mape: number; coverage: number; runs: number }> {
  const by = new Map<FeedbackTarget, { mape: number; mapeN: number; cov: number; covN: number; runs: number }>();
  for (const g of groups) {
    const f = g.figures;
    if ((version && g.model_version !== version) || !f.n) continue;
    const t = by.get(g.target) ?? { mape: 0, mapeN: 0, cov: 0, covN: 0, runs: 0 };
    if (Number.isFinite(f.mape)) { t.mape += f.mape * f.n; t.mapeN += f.n; }
    if (Number.isFinite(f.coverage)) { t.cov += f.coverage * f.n; t.covN += f.n; }
    t.runs += f.n;
    by.set(g.target, t);
  }
  return [...by].map(([target, t]) => ({ target, mape: t.mapeN ? t.mape / t.mapeN : NaN, coverage: t.covN ? t.cov / t.covN : NaN, runs: t.runs }));
}
