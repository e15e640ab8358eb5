/** Human-readable renderings shared by CLI commands. */
import { effectiveOutput, knownInput, type EncodingSchema, type TaskEvent, type TaskProgress, type ResourceUsage } from '../../shared/index.js';

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

/** Plain fixed-width table. */
export function table(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (c ?? '').padEnd(w[i])).join('  ').trimEnd();
  return [line(header), line(w.map((x) => '-'.repeat(x))), ...rows.map(line)].join('\n');
}

export function formatProgress(p: TaskProgress): string {
  const of = p.total_frames ? `/${p.total_frames} (${Math.min(100, (100 * p.frame) / p.total_frames).toFixed(0)}%)` : '';
  const pass = p.passes > 1 ? ` pass ${p.pass}/${p.passes}` : '';
  return `             ${p.job_id} encoding on ${p.node_id}${pass}: frame ${p.frame}${of}, ${n(p.fps, 1)} fps, ${n(p.speed, 2)}x, ${p.out_bytes} bytes`;
}

/**
 * What is known of a job's input, and where it came from: "input /media/a.mkv: 1920x1080 at 25 fps,
 * 30.0 s (750 frames), hevc, 8000 kbit/s, SI 52 TI 11 (probed by the submitter)".
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
  ];
  const origin = p ? `probed by ${p.by === 'node' ? 'a node' : 'the submitter'}` : inp.kind === 'file' ? 'not probed' : 'its own settings';
  return `input ${what}: ${parts.join(', ')} (${origin})`;
}
