/**
 * What this node really has: the cores this process may run on (its affinity mask, or the
 * subset it was granted), memory, GPUs reported by nvidia-smi (none when it is absent — never
 * invented) with their video engines and encoder sessions (gpu-models.ts), and the CPU model.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { promisify } from 'node:util';
import { ConfigError, parseCpuList, type GpuCapacity } from '../shared/index.js';
import { describeGpuModel, type GpuVideo } from './gpu-models.js';

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

/** One GPU as nvidia-smi lists it. */
export interface SmiGpu {
  /** nvidia-smi's index (PCI bus order: enforce/ sets CUDA_DEVICE_ORDER=PCI_BUS_ID to match). */
  id: number;
  name: string;
  memory_gb: number;
  /** Driver version ("550.54.15"); '' when nvidia-smi did not give a readable one. */
  driver: string;
  /** PCI address ("00000000:01:00.0"); '' when unreadable. */
  pci_bus_id: string;
  /** "GPU-" and a UUID, stable across reboots and index changes; '' when unreadable. */
  uuid: string;
}

/** A GPU of this node: what nvidia-smi says, and what the model table makes of it. */
export type GpuInfo = SmiGpu & GpuVideo;

/**
 * The columns asked of nvidia-smi, in order. `name` comes last: nvidia-smi's CSV quotes
 * nothing, so a comma in a name could only shift the columns after it, and there are none.
 */
export const GPU_QUERY = ['index', 'uuid', 'pci.bus_id', 'driver_version', 'memory.total', 'name'] as const;

const VERSION = /^\d+(\.\d+)*$/;
const PCI = /^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/i;
const UUID = /^(GPU|MIG)-[0-9a-f-]{8,}$/i;

/** The first `n - 1` comma-separated fields of a line, and the rest of it as the n-th. */
function splitFields(line: string, n: number): string[] | undefined {
  const out: string[] = [];
  let from = 0;
  for (let i = 0; i < n - 1; i++) {
    const at = line.indexOf(',', from);
    if (at < 0) return undefined;
    out.push(line.slice(from, at).trim());
    from = at + 1;
  }
  out.push(line.slice(from).trim());
  return out;
}

/**
 * Parses `nvidia-smi --query-gpu=<GPU_QUERY> --format=csv,noheader,nounits` (memory.total in
 * MiB). A line that is not a GPU (too few columns, no numeric index, memory or name, an index
 * already seen) is dropped: a GPU is never invented. Unreadable driver, PCI address or UUID
 * fields ("[N/A]") become ''.
 */
export function parseNvidiaSmiGpus(stdout: string): SmiGpu[] {
  const out: SmiGpu[] = [];
  for (const line of stdout.split(/\r?\n/)) {
    const f = splitFields(line.trim(), GPU_QUERY.length);
    if (!f) continue;
    const [index, uuid, pci, driver, mem, name] = f;
    const memory = mem === '' ? NaN : Number(mem);
    if (!/^\d+$/.test(index) || !Number.isFinite(memory) || memory < 0 || !name) continue;
    const id = Number(index);
    if (out.some((g) => g.id === id)) continue;
    out.push({
      id, name, memory_gb: memory / 1024,
      driver: VERSION.test(driver) ? driver : '', pci_bus_id: PCI.test(pci) ? pci : '', uuid: UUID.test(uuid) ? uuid : '',
    });
  }
  return out;
}

/** A listed GPU with its engines and encoder sessions from the model table (gpu-models.ts). */
export function describeGpu(g: SmiGpu): GpuInfo {
  return { ...g, ...describeGpuModel(g.name, g.driver) };
}

/** What the agent registers of a GPU (shared/task.ts GpuCapacity; proto message Gpu). */
export function gpuCapacity(g: GpuInfo): GpuCapacity {
  return { id: g.id, name: g.name, memory_gb: g.memory_gb, sessions: g.sessions, driver: g.driver, nvenc_engines: g.nvenc_engines, nvdec_engines: g.nvdec_engines, profile: g.profile };
}

/** GPUs from nvidia-smi, described; an empty list where it is missing or fails. */
export async function detectGpus(): Promise<GpuInfo[]> {
  try {
    const { stdout } = await run('nvidia-smi', [`--query-gpu=${GPU_QUERY.join(',')}`, '--format=csv,noheader,nounits'], { timeout: 10_000 });
    return parseNvidiaSmiGpus(stdout).map(describeGpu);
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
