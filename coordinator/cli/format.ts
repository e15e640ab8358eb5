/** Human-readable renderings shared by CLI commands. */
import type { TaskEvent, TaskProgress, ResourceUsage } from '../../shared/index.js';

const n = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));

export function formatEvent(e: TaskEvent): string {
  const head = `${new Date(e.at).toISOString().slice(11, 23)} ${e.job_id} ${e.state}`;
  switch (e.state) {
    case 'queued': return `${head}: ${e.reason ?? ''}`;
    case 'placed': return `${head} on ${e.node_id} cores [${e.allocation?.core_ids.join(',')}] ${n(e.allocation?.memory_gb)} GB (term ${e.term}); predicted ${usage(e.predicted?.expected)}`
      + (e.predicted?.flags?.length ? ` [${e.predicted.flags.join('; ')}]` : '');
    case 'running': return `${head} on ${e.node_id}`;
    case 'succeeded': return `${head} on ${e.node_id}: actual ${usage(e.result?.actual)}; ${e.result?.output_bytes} bytes, PSNR ${n(e.result?.psnr_db)} dB, SSIM ${n(e.result?.ssim, 4)}`;
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
