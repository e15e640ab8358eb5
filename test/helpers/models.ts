/**
 * Model test scaffolding: recorded runs made from the prior's labelled rows (each turned back
 * into a validated EncodingSchema, written through the real telemetry sink), and a TSV log of
 * the shape models/mappings/transcoding-measurements.yaml maps, with targets that follow a
 * known formula plus noise.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateEncodingSchema, type EncodingSchema } from '../../shared/index.js';
import { priorRows, seededRandom, type LabelledRow } from '../../models/index.js';
import { QuestDbTelemetrySink, type RunRecord } from '../../node-agent/telemetry/index.js';
import type { TestStack } from './cluster.js';
import { walApplied } from './telemetry.js';

/** The worked example mapping shipped with Prescient (the source tree's, not a copy). */
export const TRANSCODING_MAPPING = fileURLToPath(new URL('../../../models/mappings/transcoding-measurements.yaml', import.meta.url));

/** The EncodingSchema a prior row describes, validated as a submission would be. */
export function schemaOf(row: LabelledRow): EncodingSchema {
  const o = row.record.output, i = row.record.input;
  return validateEncodingSchema({
    input: { synthetic: { source: 'testsrc2', noise: row.record.content.noise ?? 0 }, resolution: `${i.width}x${i.height}`, fps: i.fps, duration_s: i.duration_s },
    output: {
      codec: o.codec, encoder: o.encoder, preset: o.preset, passes: o.passes,
      rate_control: o.rc_mode === 'bitrate' ? { mode: 'bitrate', bitrate_kbps: o.bitrate_kbps } : { mode: 'crf', crf: o.crf },
    },
    priority: 'batch',
    submitter: 'model-tests',
  }, { allowedInputRoots: ['/'] });
}

export interface PriorRunOptions {
  seed?: number;
  /** Start time of the first run (epoch ms) and the gap between runs. */
  t0?: number;
  stepMs?: number;
  node?: string;
  /** Prefix of the job ids, so batches never collide. */
  prefix?: string;
}

/**
 * `n` succeeded runs, each a prior row: its schema as schema_json and its settings as columns,
 * the prior's (noisy) targets as the actuals, its node's cores as the grant.
 */
export function priorRuns(n: number, o: PriorRunOptions = {}): RunRecord[] {
  const t0 = o.t0 ?? Date.UTC(2026, 0, 5), step = o.stepMs ?? 60_000;
  return priorRows(n, { seed: o.seed ?? 42 }).map((row, k): RunRecord => {
    const s = schemaOf(row), rc = s.output.rate_control, t = row.targets;
    const fps = s.input.kind === 'synthetic' ? s.input.fps : 30, duration = s.input.duration_s ?? 1;
    return {
      ts: t0 + k * step, node: o.node ?? 'enc-1', job_id: `${o.prefix ?? 'run'}-${k}`, codec: s.output.codec, encoder: s.output.encoder,
      preset: s.output.preset, status: 'succeeded', rc_mode: rc.mode, source: 'testsrc2', cpu_model: 'prior-cpu', schema_json: JSON.stringify(s),
      width: row.record.output.width, height: row.record.output.height, fps, input_duration_s: duration,
      crf: rc.mode === 'crf' ? rc.crf : undefined, bitrate_kbps: rc.mode === 'bitrate' ? rc.bitrate_kbps : undefined, passes: s.output.passes,
      total_frames: Math.round(fps * duration), hw_cores: 16, cores_granted: row.record.node.cores, gpus_granted: 0, memory_gb_granted: 4, attempt: 1,
      cpu_cores: t.cpu_cores, memory_gb: t.memory_gb, bandwidth_mbps: t.bandwidth_mbps, duration_s: t.duration_s, gpu_percent: 0,
      output_bytes: Math.round(((t.bandwidth_mbps ?? 1) * (t.duration_s ?? 1) * 1e6) / 8), frames: Math.round(fps * duration), pinned: true, stayed_on_cores: true,
    };
  });
}

/** Writes runs through the telemetry sink (its own spool dir) and waits until QuestDB has applied them. */
export async function recordRuns(s: TestStack, runs: readonly RunRecord[], spool: string): Promise<void> {
  const sink = new QuestDbTelemetrySink(s.endpoints.questdb_http, path.join(s.dir, 'spool', spool), s.log);
  try {
    for (const r of runs) await sink.recordRun(r);
    await sink.flush();
  } finally {
    await sink.close();
  }
  await walApplied(s.endpoints.questdb_http);
}

export const TRANSCODING_COLUMNS = [
  'id', 'duration', 'codec', 'width', 'height', 'bitrate', 'framerate', 'i', 'p', 'b', 'frames', 'i_size', 'p_size', 'b_size',
  'size', 'o_codec', 'o_bitrate', 'o_framerate', 'o_width', 'o_height', 'umem', 'utime',
] as const;

/** Seconds of transcoding per output megapixel-frame, and memory (KB) per output megapixel, by output codec. */
const TIME_PER_MP_FRAME: Record<string, number> = { mpeg4: 0.004, h264: 0.012, vp8: 0.016, flv: 0.003 };
const MEM_KB_PER_MP: Record<string, number> = { mpeg4: 60_000, h264: 250_000, vp8: 180_000, flv: 40_000 };

/** The noise-free targets of one transcode of the log: transcoding seconds and memory in KB. */
export function transcodingTruth(r: { duration: number; o_framerate: number; o_width: number; o_height: number; o_codec: string; width: number; height: number }): { utime: number; umem: number } {
  const mp = (r.o_width * r.o_height) / 1e6, inMp = (r.width * r.height) / 1e6;
  return {
    utime: 0.05 + r.duration * r.o_framerate * mp * TIME_PER_MP_FRAME[r.o_codec],
    umem: 20_000 + mp * MEM_KB_PER_MP[r.o_codec] + inMp * 10_000,
  };
}

/**
 * `n` lines of a transcoding-measurement log (tab-separated, header first) whose utime and umem
 * follow `transcodingTruth` with log-normal noise (σ 0.03 in log10). `drop` leaves columns out.
 */
export function transcodingTsv(n: number, o: { seed?: number; drop?: readonly string[] } = {}): string {
  const r = seededRandom(o.seed ?? 5);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const gauss = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const codecs = ['mpeg4', 'h264', 'vp8', 'flv'];
  const sizes = [[176, 144], [320, 240], [480, 360], [640, 480], [1280, 720], [1920, 1080]];
  const cols = TRANSCODING_COLUMNS.filter((c) => !o.drop?.includes(c));
  const lines = [cols.join('\t')];
  for (let k = 0; k < n; k++) {
    const [width, height] = pick(sizes), [o_width, o_height] = pick(sizes);
    const duration = pick([2, 5, 10, 30, 60, 120]), framerate = pick([15, 24, 25, 30]);
    const frames = Math.round(duration * framerate), i = Math.ceil(frames / 30);
    const codec = pick(codecs), b = codec === 'h264' ? Math.floor(frames * 0.3) : 0, p = frames - i - b;
    const bitrate = pick([100_000, 300_000, 800_000, 2_000_000, 5_000_000]);
    const row = {
      id: `vid${k % 50}`, duration, codec, width, height, bitrate, framerate, i, p, b, frames,
      i_size: i * 20_000, p_size: p * 4_000, b_size: b * 1_500, size: Math.round((bitrate * duration) / 8),
      o_codec: pick(codecs), o_bitrate: pick([56_000, 109_000, 242_000, 539_000, 820_000, 3_000_000]), o_framerate: pick([12, 15, 24, 25, 29.97]),
      o_width, o_height,
    };
    const truth = transcodingTruth(row);
    const all: Record<string, string | number> = {
      ...row, umem: Math.round(truth.umem * 10 ** (0.03 * gauss())), utime: +(truth.utime * 10 ** (0.03 * gauss())).toFixed(4),
    };
    lines.push(cols.map((c) => String(all[c])).join('\t'));
  }
  return lines.join('\n') + '\n';
}

export function writeTranscodingTsv(file: string, n: number, o: { seed?: number; drop?: readonly string[]; extraLines?: string[] } = {}): void {
  writeFileSync(file, transcodingTsv(n, o) + (o.extraLines ?? []).map((l) => `${l}\n`).join(''));
}
