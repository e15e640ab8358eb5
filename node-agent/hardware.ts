/**
 * What this node really has: the cores this process may run on (its affinity mask, or the
 * subset it was granted), memory, GPUs reported by nvidia-smi (none when it is absent — never
 * invented), and the CPU model.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { promisify } from 'node:util';
import { ConfigError, parseCpuList } from '../shared/index.js';

export { parseCpuList };

const run = promisify(execFile);

/** Cores the scheduler lets this process use. */
export function allowedCores(): number[] {
  try {
    const m = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return parseCpuList(m[1]);
  } catch { /* not Linux: fall through */ }
  return os.cpus().map((_, i) => i);
}

export interface GpuInfo { id: number; name: string; memory_gb: number }

/** Parses `nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits`. */
export function parseNvidiaSmiGpus(stdout: string): GpuInfo[] {
  return stdout.trim().split('\n').filter(Boolean).map((line) => {
    const [index, name, mem] = line.split(',').map((s) => s.trim());
    return { id: Number(index), name, memory_gb: Number(mem) / 1024 };
  }).filter((g) => Number.isInteger(g.id) && g.id >= 0 && Number.isFinite(g.memory_gb));
}

/** GPUs from nvidia-smi; an empty list where it is missing or fails. */
export async function detectGpus(): Promise<GpuInfo[]> {
  try {
    const { stdout } = await run('nvidia-smi', ['--query-gpu=index,name,memory.total', '--format=csv,noheader,nounits'], { timeout: 10_000 });
    return parseNvidiaSmiGpus(stdout);
  } catch {
    return [];
  }
}

export interface GrantOptions {
  /** CPU list granted to this agent (default: every core it may run on). */
  cores?: string;
  /** Memory granted in GB (default: the machine's total). */
  memoryGb?: number;
  bandwidthMbps?: number;
}

export interface Hardware {
  core_ids: number[];
  memory_gb: number;
  bandwidth_mbps: number;
  gpus: GpuInfo[];
  cpu_model: string;
}

/** Real capacity, narrowed to what was granted; a grant beyond the real machine is refused. */
export async function detectHardware(g: GrantOptions = {}): Promise<Hardware> {
  const allowed = allowedCores();
  const core_ids = g.cores ? parseCpuList(g.cores, '--cores') : allowed;
  const outside = core_ids.filter((c) => !allowed.includes(c));
  if (outside.length) throw new ConfigError('--cores', `cores ${outside.join(',')} are not available here (this process may use ${allowed.join(',')})`);
  const total = os.totalmem() / 1024 ** 3;
  if (g.memoryGb !== undefined && !(g.memoryGb > 0 && g.memoryGb <= total)) throw new ConfigError('--memory-gb', `must be between 0 and ${total.toFixed(1)} (this machine's memory), got ${g.memoryGb}`);
  if (g.bandwidthMbps !== undefined && !(g.bandwidthMbps > 0)) throw new ConfigError('--bandwidth-mbps', `must be positive, got ${g.bandwidthMbps}`);
  return {
    core_ids,
    memory_gb: g.memoryGb ?? total,
    bandwidth_mbps: g.bandwidthMbps ?? 1000,
    gpus: await detectGpus(),
    cpu_model: os.cpus()[0]?.model.trim() ?? 'unknown',
  };
}
