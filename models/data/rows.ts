/** Finished runs read back from QuestDB (`exportTrainingRuns`) as labelled training rows. */
import { validateEncodingSchema, type EncodingSchema } from '../../shared/index.js';
import { describeSchema, hardwareClass, sourceKey, type EncodeRecord, type LabelledRow, type NodeRecord, type TargetValues } from '../record.js';
// Type-only, so no import cycle at run time (index.ts re-exports this module).
import type { TrainingRun } from './index.js';

const finite = (v: number | null): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const label = (v: number | null): number | undefined => { const n = finite(v); return n !== undefined && n >= 0 ? n : undefined; };

/** One row per succeeded run; failed and cancelled runs say nothing about what an encode needs. */
export function runsToRows(runs: readonly TrainingRun[]): LabelledRow[] {
  return runs.filter((r) => r.status === 'succeeded').map((r) => {
    const node: NodeRecord = {
      cores: finite(r.cores_granted), gpus: finite(r.gpus_granted),
      hw_class: r.cpu_model ? hardwareClass(r.cpu_model, r.gpu_model ?? undefined) : r.gpu_model ?? undefined,
    };
    const schema = parseSchema(r.schema_json);
    const record = schema ? describeSchema(schema, node) : fromColumns(r, node);
    record.content = { ...record.content, si_mean: finite(r.si_mean), ti_mean: finite(r.ti_mean) };
    const targets: Partial<TargetValues> = {};
    const set = (k: keyof TargetValues, v: number | undefined) => { if (v !== undefined) targets[k] = v; };
    set('cpu_cores', label(r.cpu_cores));
    set('memory_gb', label(r.memory_gb));
    set('bandwidth_mbps', label(r.bandwidth_mbps));
    set('duration_s', label(r.duration_s));
    set('gpu_percent', (r.gpus_granted ?? 0) > 0 ? label(r.gpu_percent) : 0);
    const row: LabelledRow = { record, targets, key: `${r.job_id}#${r.attempt ?? 1}`, ts: Date.parse(r.ts) };
    if (schema) row.group = sourceKey(schema);
    return row;
  });
}

/**
 * The submitted schema says most about the encode. Any absolute input path is accepted: the
 * run already happened, and the roots it was checked against then may have changed since.
 */
function parseSchema(json: string | null): EncodingSchema | undefined {
  if (!json) return undefined;
  try {
    return validateEncodingSchema(JSON.parse(json), { allowedInputRoots: ['/'], allowedOutputRoots: ['/'] });
  } catch {
    return undefined; // an unparseable or since-invalid schema: the row's own columns still describe it
  }
}

function fromColumns(r: TrainingRun, node: NodeRecord): EncodeRecord {
  return {
    output: {
      codec: r.codec, encoder: r.encoder ?? undefined, preset: r.preset ?? undefined, rc_mode: r.rc_mode ?? undefined,
      width: finite(r.width), height: finite(r.height), fps: finite(r.fps), crf: finite(r.crf),
      bitrate_kbps: finite(r.bitrate_kbps), passes: finite(r.passes),
    },
    input: { duration_s: finite(r.input_duration_s), frames: finite(r.total_frames) },
    content: {},
    node,
    extra: {},
  };
}
