/**
 * GPU readings from nvidia-smi for the GPUs granted to an encode. nvidia-smi takes tens of
 * milliseconds (more on a busy driver), so it runs asynchronously: each tick takes the reading
 * that arrived since the previous tick and starts the next query. A query that has not answered
 * within the interval is killed, and a tick without a fresh reading reports no GPUs — readings
 * are never carried over or invented.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import type { GpuSample } from '../../shared/index.js';

/** Field names as `nvidia-smi --help-query-gpu` documents them; memory.used is in MiB with nounits. */
export const GPU_QUERY = 'index,utilization.gpu,memory.used,encoder.stats.sessionCount,utilization.encoder';

/**
 * Parses `nvidia-smi --query-gpu=GPU_QUERY --format=csv,noheader,nounits`. A value nvidia-smi
 * cannot give (`[N/A]`, `[Not Supported]`, e.g. utilisation under MIG) becomes NaN, which the
 * telemetry stores as NULL; a line without a GPU index is dropped.
 */
export function parseGpuQuery(csv: string): GpuSample[] {
  return csv.split('\n').filter((l) => l.trim()).map((line) => {
    const f = line.split(',');
    const value = (i: number) => {
      const v = f[i]?.trim();
      return v && !v.startsWith('[') ? Number(v) : NaN;
    };
    return { gpu_id: value(0), util_percent: value(1), memory_used_gb: value(2) / 1024, encoder_sessions: value(3), encoder_util_percent: value(4) };
  }).filter((g) => Number.isInteger(g.gpu_id) && g.gpu_id >= 0);
}

let smiPresent: boolean | undefined;
/** Whether nvidia-smi is on PATH; looked up once per thread. */
export function hasNvidiaSmi(): boolean {
  smiPresent ??= (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).some((dir) => {
    try {
      accessSync(path.join(dir, 'nvidia-smi'), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  return smiPresent;
}

export class GpuPoller {
  private fresh?: GpuSample[];
  private querying = false;

  constructor(private readonly gpu_ids: readonly number[], private readonly timeout_ms: number) {}

  /** Starts a query unless one is still running. */
  poll(): void {
    if (this.querying) return;
    this.querying = true;
    execFile('nvidia-smi', [`--query-gpu=${GPU_QUERY}`, '--format=csv,noheader,nounits'], { timeout: this.timeout_ms }, (err, stdout) => {
      this.querying = false;
      this.fresh = err ? undefined : parseGpuQuery(stdout).filter((g) => this.gpu_ids.includes(g.gpu_id));
    });
  }

  /** The reading that arrived since the last take, else none. */
  take(): GpuSample[] {
    const out = this.fresh ?? [];
    this.fresh = undefined;
    return out;
  }
}
