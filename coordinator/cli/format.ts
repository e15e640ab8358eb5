/** Human-readable renderings shared by CLI commands. */
import { effectiveOutput, knownInput, type EncodingSchema, type EncodingTask, type TaskEvent, type TaskProgress, type ResourceUsage } from '../../shared/index.js';

const n = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));

export function formatEvent(e: TaskEvent): string {
  const head = `${new Date(e.at).toISOString().slice(11, 23)} ${e.job_id} ${e.state}`;
  switch (e.state) {
    case 'queued': return `${head}: ${e.reason ?? ''}`;
    case 'placed': return `${head} on ${e.node_id} cores [${e.allocation?.core_ids.join(',')}] ${n(e.allocation?.memory_gb)} GB (term ${e.term}); predicted ${usage(e.predicted?.expected)}`
      + (e.predicted?.flags?.length ? ` [${e.predicted.flags.join('; ')}]` : '') + (e.reason ? `; ${e.reason}` : '');
    case 'running': return `${head} on ${e.node_id}`;
    case 'succeeded': return `${head} on ${e.node_id}: actual ${usage(e.result?.actual)}; ${e.result?.output_bytes} bytes, `
      + (e.result?.quality === 'pending' ? 'reservation released, quality being measured'
        : e.result?.quality === 'unavailable' ? 'quality could not be measured' : `PSNR ${n(e.result?.psnr_db)} dB, SSIM ${n(e.result?.ssim, 4)}`);
    default: return `${head}: ${e.reason ?? ''}`;
  }
}

export function usage(u: ResourceUsage | undefined): string {
  if (!u) return '-';
  return `${n(u.cpu_cores)} cores, ${n(u.memory_gb, 3)} GB, ${n(u.bandwidth_mbps, 1)} Mbps, ${n(u.duration_s)} s`;
}

/**
 * How wide a table may be: the terminal's width; where stdout is no terminal (a pipe, a file),
 * $COLUMNS when set, else 100.
 */
export function terminalWidth(stdout: { isTTY?: boolean; columns?: number } = process.stdout, env: NodeJS.ProcessEnv = process.env): number {
  if (stdout.isTTY && stdout.columns && stdout.columns > 0) return stdout.columns;
  const cols = Number(env.COLUMNS);
  return Number.isInteger(cols) && cols >= 20 ? cols : 100;
}

export interface TableOptions {
  /** Most characters a line may take (default: terminalWidth()). */
  width?: number;
  /**
   * Columns (by index) whose long cells wrap onto further lines, at spaces and commas where it
   * can; the other columns' long cells are cut with an ellipsis (`--json` has them whole).
   */
  wrap?: readonly number[];
  /** Columns never narrowed (the ids a user copies from a table; default: the first). */
  keep?: readonly number[];
}

const GAP = 2;
/** Narrowest a column is squeezed to: its header, but never under 6 characters unless its widest cell is. */
const MIN_COLUMN = 6;

/**
 * Column widths fitting `width`: each column its widest cell, and while the line is too wide the
 * widest column gives up a character, down to its header's width (at least MIN_COLUMN); the
 * columns in `keep` are never narrowed. A table that cannot be narrowed enough stays wider.
 */
export function fitColumns(header: readonly string[], rows: readonly (readonly string[])[], width: number, keep: readonly number[] = [0]): number[] {
  const natural = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const floor = header.map((h, i) => (keep.includes(i) ? natural[i] : Math.min(natural[i], Math.max(h.length, MIN_COLUMN))));
  const w = [...natural];
  let total = w.reduce((a, x) => a + x, 0) + GAP * Math.max(0, w.length - 1);
  while (total > width) {
    let widest = -1;
    for (let i = 0; i < w.length; i++) if (w[i] > floor[i] && (widest < 0 || w[i] > w[widest])) widest = i;
    if (widest < 0) break;
    w[widest]--;
    total--;
  }
  return w;
}

/** `text` cut to `width` characters, the last an ellipsis when it was cut. */
export function cut(text: string, width: number): string {
  return text.length <= width ? text : width <= 1 ? '…'.slice(0, width) : `${text.slice(0, width - 1)}…`;
}

/** `text` in lines of at most `width`: broken after a space or comma where one is near, else inside a word. */
export function wrapText(text: string, width: number): string[] {
  const lines: string[] = [];
  let rest = text;
  while (rest.length > width) {
    // A line ends before a space, or just after a comma, within its width.
    const at = Math.max(rest.lastIndexOf(' ', width), rest.lastIndexOf(',', width - 1) + 1);
    const end = at > width / 3 ? at : width;
    lines.push(rest.slice(0, end).trimEnd());
    rest = rest.slice(end).trimStart();
  }
  if (rest.length || !lines.length) lines.push(rest);
  return lines;
}

/** Fixed-width table that fits the terminal (TableOptions): long cells cut, or wrapped in the columns that wrap. */
export function table(header: string[], rows: string[][], o: TableOptions = {}): string {
  const w = fitColumns(header, rows, o.width ?? terminalWidth(), o.keep);
  const wraps = new Set(o.wrap ?? []);
  const lines = (r: readonly string[]): string[] => {
    const cells = w.map((width, i) => (wraps.has(i) ? wrapText(r[i] ?? '', width) : [cut(r[i] ?? '', width)]));
    const height = Math.max(...cells.map((c) => c.length));
    return Array.from({ length: height }, (_, k) => cells.map((c, i) => (c[k] ?? '').padEnd(w[i])).join(' '.repeat(GAP)).trimEnd());
  };
  return [...lines(header), w.map((x) => '-'.repeat(x)).join(' '.repeat(GAP)), ...rows.flatMap(lines)].join('\n');
}

/** Core numbers as ranges: [0,1,2,3,6] is "0-3,6". */
export function coreRanges(ids: readonly number[]): string {
  const sorted = [...ids].sort((a, b) => a - b), parts: string[] = [];
  for (let i = 0; i < sorted.length; i++) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(j > i ? `${sorted[i]}-${sorted[j]}` : String(sorted[i]));
    i = j;
  }
  return parts.join(',');
}

export function formatProgress(p: TaskProgress): string {
  const of = p.total_frames ? `/${p.total_frames} (${Math.min(100, (100 * p.frame) / p.total_frames).toFixed(0)}%)` : '';
  const pass = p.passes > 1 ? ` pass ${p.pass}/${p.passes}` : '';
  return `             ${p.job_id} encoding on ${p.node_id}${pass}: frame ${p.frame}${of}, ${n(p.fps, 1)} fps, ${n(p.speed, 2)}x, ${p.out_bytes} bytes`;
}

/**
 * What is known of a job's input, and where it came from: "input /media/a.mkv: 1920x1080 at 25 fps,
 * 30.0 s (750 frames), hevc, 8000 kbit/s, SI 52 TI 11, pilot 12 frames in 0.41 s CPU, 96 kB (probed by the submitter)".
 */
export function formatInput(s: EncodingSchema): string {
  const inp = s.input, p = inp.probe, k = knownInput(s), out = effectiveOutput(s);
  const what = inp.kind === 'file' ? inp.path : `${inp.source}${inp.noise ? ` + noise ${inp.noise}` : ''}`;
  const fps = out.fps, frames = fps && k.duration_s ? Math.max(1, Math.round(fps * k.duration_s)) : undefined;
  const parts = [
    `${k.resolution ? `${k.resolution.width}x${k.resolution.height}` : 'size unknown'} ${k.fps ? `at ${n(k.fps, 3).replace(/\.?0+$/, '')} fps` : 'rate unknown'}`,
    k.duration_s ? `${n(k.duration_s, 1)} s${frames ? ` (${frames} frames out)` : ''}` : 'length unknown',
    ...(inp.kind === 'file' && (inp.codec ?? p?.codec) ? [inp.codec ?? p!.codec!] : []),
    ...(inp.kind === 'file' && (inp.bitrate_kbps ?? p?.bitrate_kbps) ? [`${Math.round(inp.bitrate_kbps ?? p!.bitrate_kbps!)} kbit/s`] : []),
    ...(p?.si_mean !== undefined && p.ti_mean !== undefined ? [`SI ${n(p.si_mean, 0)} TI ${n(p.ti_mean, 0)}`] : []),
    ...(p?.pilot ? [`pilot ${p.pilot.frames} frames in ${n(p.pilot.cpu_s, 2)} s CPU${p.pilot.video_kb !== undefined ? `, ${p.pilot.video_kb} kB` : ''}`] : []),
  ];
  const origin = p ? `probed by ${p.by === 'node' ? 'a node' : 'the submitter'}` : inp.kind === 'file' ? 'not probed' : 'its own settings';
  return `input ${what}: ${parts.join(', ')} (${origin})`;
}

/**
 * Where a job's output is, for `status`: the file (or HLS playlist) as its node wrote it, and for
 * a group whose members have all succeeded, every rendition and the master playlist; before the
 * job has succeeded, where it will go (`output.path` as a template, or the node's output dir).
 */
export function formatOutputs(t: Pick<EncodingTask, 'schema' | 'result' | 'state'>): string[] {
  const out = t.schema.output, audio = out.audio?.mode ?? 'auto';
  const how = `${out.format === 'hls' ? 'HLS' : 'file'}, audio ${audio}${out.audio && 'bitrate_kbps' in out.audio ? ` ${out.audio.bitrate_kbps} kbit/s` : ''}`;
  if (!t.result?.output_path) return [`  output (${how}): ${out.path ?? "the node's output directory"}${t.state === 'succeeded' ? '' : ' (when it succeeds)'}`];
  const lines = [`  output (${how}): ${t.result.output_path}`];
  const g = t.result.group_outputs;
  if (!g) return t.schema.group ? [...lines, `  group ${t.schema.group.id}: outputs listed once all ${t.schema.group.size} have succeeded`] : lines;
  lines.push(`  group ${g.group}: ${g.renditions.length} renditions`);
  for (const r of g.renditions) lines.push(`    ${r.rendition ?? r.job_id}  ${r.output_path}${r.node_id ? `  (${r.node_id})` : ''}`);
  lines.push(g.master === 'written' ? `  master playlist: ${g.master_playlist}`
    : g.master === 'writing' ? `  master playlist: ${g.master_playlist} (being written)`
      : `  master playlist: none (${g.reason ?? g.master})`);
  return lines;
}
