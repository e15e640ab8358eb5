/**
 * What `prescient plan` reads (issue 19): a workload (a mix of job templates, each arriving at
 * its own rate, in one SLA class, with a deadline) and a fleet (node types with their counts
 * and prices). Both YAML or JSON, checked with valibot: every problem is reported at once,
 * naming its key, before anything is simulated.
 *
 *   # workload.yaml                         # fleet.yaml
 *   duration: 2h                            nodes:
 *   jobs:                                     - type: c16
 *     - name: vod-1080p                          count: 10
 *       rate: 120/h                              cores: 16
 *       priority: standard                       memory_gb: 64
 *       deadline: 30m                            price_per_hour: 0.68
 *       job:                                   - type: g4
 *         input: { resolution: 1920x1080, fps: 30, duration_s: 60 }    count: 2
 *         output: { codec: h264, preset: medium, rate_control: { mode: crf, crf: 23 } }
 *                                                cores: 8
 *                                                memory_gb: 32
 *                                                gpus: [{ model: NVIDIA L4, sessions: 16 }]
 *                                                price_per_hour: 0.81
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { ConfigError, GROUP_PLACEMENTS, MAX_GROUP_SIZE, MEMBER_NAME, SLA_CLASSES, shortText, v, whyNotAll, type SlaClass } from '../../shared/index.js';

const SPAN = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)$/;
const SPAN_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** `90s`, `30m`, `2h`, `1d` in milliseconds. */
export function spanMs(text: string): number {
  const m = SPAN.exec(text.trim());
  return m ? Number(m[1]) * SPAN_MS[m[2] as keyof typeof SPAN_MS] : NaN;
}
const span = v.pipe(v.string(), v.regex(SPAN, 'a span such as 90s, 30m, 2h or 1d'), v.check((s) => spanMs(s) > 0, 'a span above 0'));
/** `120/h`, `2/m`, `0.5/s`: arrivals per unit of time. */
const RATE = /^(\d+(?:\.\d+)?)\s*\/\s*(s|m|h|d)$/;
const rate = v.pipe(v.string(), v.regex(RATE, 'a rate such as 120/h, 2/m or 0.5/s'));
const count = (min: number, max: number) => v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max));
const positive = v.pipe(v.number(), v.finite(), v.minValue(Number.MIN_VALUE));

const Template = v.strictObject({
  name: shortText,
  /** Poisson arrivals at this mean rate, over the workload's duration. */
  rate: v.optional(rate),
  /** Or exactly this many, all arriving at the start (a batch). */
  count: v.optional(count(1, 10_000_000)),
  /** 24 multipliers of the rate, one per hour of the day (UTC; a daily curve); the mean need not be 1. */
  daily: v.optional(v.pipe(
    v.array(v.pipe(v.number(), v.finite(), v.minValue(0))),
    v.check((a) => a.length === 24, (i) => `a list of 24 multipliers, one per hour of the day (it has ${(i.input as unknown[]).length})`),
  )),
  priority: v.optional(v.picklist(SLA_CLASSES)),
  /** Each job's deadline, after its arrival. */
  deadline: v.optional(span),
  /** An encoding job as `prescient submit` takes it (input and output; no input file is read). */
  job: v.looseObject({ input: v.record(v.string(), v.unknown()), output: v.record(v.string(), v.unknown()) }),
  /**
   * An ABR ladder: each arrival is one job per rung, its output the job's with the rung's settings
   * over it (e.g. `{ resolution: 1280x720, rate_control: { mode: bitrate, bitrate_kbps: 3000 } }`),
   * the rungs one group (placed all at once or not at all, as the leader places a group).
   */
  ladder: v.optional(v.pipe(v.array(v.record(v.string(), v.unknown())), v.minLength(2), v.maxLength(MAX_GROUP_SIZE))),
  /** A ladder's group placement: together (one node) or spread (each rung on its own node; the default). */
  placement: v.optional(v.picklist(GROUP_PLACEMENTS)),
});
const Workload = v.strictObject({
  /** How long arrivals go on (rate templates); the simulation runs until every job has ended. */
  duration: v.optional(span),
  jobs: v.pipe(v.array(Template), v.minLength(1), v.maxLength(1000)),
});

const Gpu = v.strictObject({ model: shortText, memory_gb: v.optional(positive), sessions: v.optional(count(0, 1024)) });
const NodeType = v.strictObject({
  type: v.pipe(v.string(), v.regex(MEMBER_NAME, 'a name of letters, digits, _ . -')),
  count: count(0, 100_000),
  cores: count(1, 1024),
  memory_gb: positive,
  gpus: v.optional(v.pipe(v.array(Gpu), v.maxLength(64))),
  /** The CPU model its hardware class comes from (default: the type's name). */
  cpu_model: v.optional(shortText),
  bandwidth_mbps: v.optional(positive),
  price_per_hour: v.optional(v.pipe(v.number(), v.finite(), v.minValue(0))),
});
const Fleet = v.strictObject({ nodes: v.pipe(v.array(NodeType), v.minLength(1), v.maxLength(1000)) });

export type TemplateSpec = v.InferOutput<typeof Template>;
export type NodeTypeSpec = v.InferOutput<typeof NodeType>;
/**
 * One recorded encode replayed: when it arrived (ms after the first), its template, what it used
 * on how many cores. A figure the log lacks (a third party's log through a mapping) is absent:
 * the simulation draws it from the model's spread, as for a template's job.
 */
export interface TraceEntry {
  at_ms: number; template: number;
  /**
   * When it was submitted (ms, as at_ms), where that was before it arrived at the leader (a file
   * input probed on a node first): its place in the queue counts from it, as the leader's does.
   */
  submitted_ms?: number;
  /** The cores it had, when recorded. */
  cores?: number;
  /** The CPU model (or hardware class) it ran on, when recorded. */
  cpu_model?: string;
  actual: { cpu_cores?: number; gpu_percent?: number; memory_gb?: number; bandwidth_mbps?: number; duration_s: number };
}
/** A workload: templates arriving by rate or count, or (`trace`) recorded encodes replayed with their actual use. */
export interface WorkloadSpec { duration_ms: number; jobs: TemplateSpec[]; trace?: TraceEntry[] }

/** What a recorded run must carry to be replayed (models/data TrainingRun: an export CSV, or QuestDB's encode_runs). */
export interface RecordedRun {
  ts: string; status: string; schema_json: string | null; cores_granted: number | null; cpu_model?: string | null;
  cpu_cores: number | null; memory_gb: number | null; bandwidth_mbps: number | null; duration_s: number | null; gpu_percent: number | null;
}

/**
 * A workload that replays recorded runs (issue 19: "the recorded actuals, when replaying a
 * log"): every succeeded run with its schema and its measured figures arrives when it started,
 * relative to the first, and uses what it used (its duration scaled by the model's speed-up when
 * it gets other cores than it had). Runs without a schema or a figure are left out and counted.
 * `partial`: only the duration is needed, and a figure the run lacks is the model's to draw
 * (a third party's log measures what it measures; Prescient's own runs record every figure).
 */
export function traceWorkload(runs: readonly RecordedRun[], opts: { partial?: boolean } = {}): { workload: WorkloadSpec; used: number; skipped: number } {
  const figure = (x: number | null) => typeof x === 'number' && Number.isFinite(x) && x >= 0;
  const optional = (x: number | null, otherwise: number | undefined) => (figure(x) ? x! : otherwise);
  const ok = runs.filter((r) => r.status === 'succeeded' && r.schema_json && Number.isFinite(Date.parse(r.ts))
    && (opts.partial ? [r.duration_s] : [r.duration_s, r.memory_gb, r.cpu_cores]).every(figure));
  const first = Math.min(...ok.map((r) => Date.parse(r.ts)));
  const templates = new Map<string, number>();
  const jobs: TemplateSpec[] = [];
  const trace: TraceEntry[] = [];
  for (const r of [...ok].sort((a, b) => Date.parse(a.ts) - Date.parse(b.ts))) {
    let k = templates.get(r.schema_json!);
    if (k === undefined) {
      let schema: { input?: Record<string, unknown>; output?: Record<string, unknown>; priority?: string };
      try { schema = JSON.parse(r.schema_json!) as typeof schema; } catch { continue; }
      if (!schema.input || !schema.output) continue;
      templates.set(r.schema_json!, (k = jobs.length));
      jobs.push({ name: `run-${jobs.length}`, count: 1, priority: (SLA_CLASSES as readonly string[]).includes(schema.priority ?? '') ? schema.priority as SlaClass : 'standard', job: { input: schema.input, output: schema.output } });
    }
    // Partial: what the run does not say (its cores, a figure) is left to the simulation.
    const cores = r.cores_granted ?? (opts.partial ? undefined : 1);
    trace.push({
      at_ms: Date.parse(r.ts) - first, template: k, ...(cores !== undefined ? { cores: Math.max(1, cores) } : {}), ...(r.cpu_model ? { cpu_model: r.cpu_model } : {}),
      actual: {
        cpu_cores: optional(r.cpu_cores, undefined), gpu_percent: optional(r.gpu_percent, opts.partial ? undefined : 0), memory_gb: optional(r.memory_gb, undefined),
        bandwidth_mbps: optional(r.bandwidth_mbps, opts.partial ? undefined : 0), duration_s: r.duration_s!,
      },
    });
  }
  return { workload: { duration_ms: trace.length ? trace[trace.length - 1].at_ms : 0, jobs, trace }, used: trace.length, skipped: runs.length - trace.length };
}
export interface FleetSpec { nodes: NodeTypeSpec[] }

/** Arrivals per millisecond from a rate text (`120/h`); NaN when it is none. */
export function ratePerMs(text: string): number {
  const m = RATE.exec(text.trim());
  return m ? Number(m[1]) / SPAN_MS[m[2] as keyof typeof SPAN_MS] : NaN;
}

function readDoc(file: string, flag: string): unknown {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) { throw new ConfigError(flag, `cannot read ${file}: ${(e as Error).message}`); }
  try { return YAML.parse(text) ?? {}; } catch (e) { throw new ConfigError(flag, `${file} is not YAML or JSON: ${(e as Error).message.split('\n')[0]}`); }
}

function checkDoc<S extends v.GenericSchema>(schema: S, doc: unknown, flag: string, file: string): v.InferOutput<S> {
  const problems = whyNotAll(schema, doc);
  if (problems.length) throw new ConfigError(flag, `${file}: ${problems.length} problem${problems.length > 1 ? 's' : ''}: ${problems.join('; ')}`);
  return doc as v.InferOutput<S>;
}

/** A workload document, checked; `file` names it in errors. */
export function parseWorkload(doc: unknown, file = 'workload'): WorkloadSpec {
  const w = checkDoc(Workload, doc, '--workload', file);
  const problems = w.jobs.flatMap((t, i) => [
    ...(t.rate === undefined) === (t.count === undefined) ? [`jobs.${i} (${t.name}) needs exactly one of rate and count`] : [],
    // A curve that would be ignored, or that no job ever gets through, is a mistake rather than a workload.
    ...t.daily && t.count !== undefined ? [`jobs.${i}.daily (${t.name}) shapes a rate, but this template is a count, all arriving at the start`] : [],
    ...t.daily && t.daily.every((x) => x === 0) ? [`jobs.${i}.daily (${t.name}) is 0 at every hour: no job would arrive`] : [],
    ...t.placement !== undefined && !t.ladder ? [`jobs.${i}.placement (${t.name}) is a ladder's group placement, but this template has no ladder`] : [],
    ...t.ladder && (t.job as { group?: unknown }).group !== undefined ? [`jobs.${i}.job.group (${t.name}): a ladder makes each arrival's group itself`] : [],
  ]);
  if (w.jobs.some((t) => t.rate !== undefined) && w.duration === undefined) problems.push('duration is missing: rate templates arrive over it');
  if (problems.length) throw new ConfigError('--workload', `${file}: ${problems.join('; ')}`);
  return { duration_ms: w.duration ? spanMs(w.duration) : 0, jobs: w.jobs };
}

export function parseFleet(doc: unknown, file = 'fleet'): FleetSpec {
  const f = checkDoc(Fleet, doc, '--fleet', file);
  const seen = new Set<string>();
  const dup = f.nodes.filter((n) => seen.has(n.type) || !seen.add(n.type)).map((n) => n.type);
  if (dup.length) throw new ConfigError('--fleet', `${file}: node type ${dup[0]} is given twice`);
  if (!f.nodes.some((n) => n.count > 0)) throw new ConfigError('--fleet', `${file}: no node: every count is 0`);
  return f;
}

export const readWorkload = (file: string) => parseWorkload(readDoc(file, '--workload'), file);
export const readFleet = (file: string) => parseFleet(readDoc(file, '--fleet'), file);
export type { SlaClass };
