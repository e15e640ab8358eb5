/**
 * Samples one running encode every interval: its process tree's CPU, memory, I/O and placement,
 * the reserved cores' load, the node's network traffic and the granted GPUs, and folds the
 * samples into the run's UsageSummary.
 *
 * Per tick and per process of the tree it reads stat, status, io and each thread's stat, plus
 * /proc/stat and /proc/net/dev once, all synchronously from one buffer (see proc.ts); the
 * interval deltas come from the previous tick, the network figures from the first look.
 */
import type { EncodeSample, UsageSummary } from '../../shared/index.js';
import { GpuPoller, hasNvidiaSmi } from './gpu.js';
import { clockTicks, coreBusyPercent, netSince, parseCpuTimes, parseNetDev, ProcFile, type CpuTimes } from './proc.js';
import { ProcessTree, type TreeReading } from './tree.js';
import { UsageTally } from './usage.js';

/** What the sampler measures; the runner adds job, pass and the latest progress to make an EncodeSample. */
export type ResourceSample = Omit<EncodeSample, 'job_id' | 'pass' | 'frame' | 'fps' | 'speed' | 'out_bytes'>;

export const DEFAULT_SAMPLE_INTERVAL_MS = 1000;
/** CPU time comes in 10 ms ticks (USER_HZ 100): much shorter intervals would measure mostly rounding. */
export const MIN_SAMPLE_INTERVAL_MS = 100;

export interface SamplingOptions {
  /** Default DEFAULT_SAMPLE_INTERVAL_MS. */
  interval_ms?: number;
  /** Stamps ts_ms. Give every run of one job the same strictClock: a job's samples must never share a timestamp. */
  clock?: () => number;
  onSample?: (s: ResourceSample) => void;
}

export interface SamplerContext extends SamplingOptions {
  /** The cores the encode was pinned to. */
  core_ids: readonly number[];
  /** GPUs granted to it; nvidia-smi is only asked when there are some. */
  gpu_ids: readonly number[];
}

/** Returns `ms` if it is a usable sample interval; throws RangeError otherwise. */
export function checkSampleInterval(ms: number): number {
  if (!(ms >= MIN_SAMPLE_INTERVAL_MS && ms < 2 ** 31)) throw new RangeError(`sample_interval_ms must be between ${MIN_SAMPLE_INTERVAL_MS} and 2^31-1 ms, got ${ms}`);
  return ms;
}

/** Epoch milliseconds that only ever increase, by at least 1 per call. */
export function strictClock(now: () => number = Date.now): () => number {
  let last = 0;
  return () => (last = Math.max(now(), last + 1));
}

const KB_PER_GB = 1024 ** 2;
const BYTES_PER_GB = 1024 ** 3;

interface Look {
  tree: TreeReading;
  cpus: Map<number, CpuTimes>;
  at_ms: number;
}

/** Delay of the first sample (at most one interval). */
const FIRST_SAMPLE_MS = 100;

export class Sampler {
  private timer?: NodeJS.Timeout;
  private readonly tally = new UsageTally();
  private latest?: ResourceSample;
  private started = false;
  /** What start() opened and halt() closes. */
  private files: { close(): void }[] = [];

  /**
   * Takes a first look at the process (its placement counts towards stayed_on_cores), then
   * samples every interval until stop() or until the process has exited. False if the process
   * was gone before that first look.
   */
  start(pid: number, ctx: SamplerContext): boolean {
    if (this.started) throw new Error('a Sampler samples one process once; use a new one');
    this.started = true;
    const interval = checkSampleInterval(ctx.interval_ms ?? DEFAULT_SAMPLE_INTERVAL_MS);
    const clock = ctx.clock ?? strictClock();
    const hz = clockTicks();
    const procStat = new ProcFile('/proc/stat'), netDev = new ProcFile('/proc/net/dev');
    this.files = [procStat, netDev];
    let tree: ProcessTree;
    try {
      tree = new ProcessTree(pid, ctx.core_ids);
    } catch {
      this.halt();
      return false;
    }
    this.files.push(tree);
    const look = (): Look | undefined => {
      const reading = tree.read();
      return reading && { tree: reading, cpus: parseCpuTimes(procStat.read()), at_ms: performance.now() };
    };
    const gpu = ctx.gpu_ids.length > 0 && hasNvidiaSmi() ? new GpuPoller(ctx.gpu_ids, interval) : undefined;
    const net0 = parseNetDev(netDev.read());
    const first = look();
    if (!first) {
      this.halt();
      return false;
    }
    let prev = first;
    this.tally.noteCores(prev.tree.on_cores);
    gpu?.poll();
    let peakKb = 0;

    const tick = () => {
      const now = look();
      if (!now) return this.halt(); // exited; the caller's stop() is on its way
      const dt = (now.at_ms - prev.at_ms) / 1000;
      const net = netSince(net0, parseNetDev(netDev.read()));
      const t = now.tree, p = prev.tree;
      peakKb = Math.max(peakKb, t.rss_kb, t.hwm_kb);
      const s: ResourceSample = {
        ts_ms: clock(),
        cpu_cores: (t.cpu_ticks - p.cpu_ticks) / hz / dt,
        core_busy_percent: coreBusyPercent(prev.cpus, now.cpus, ctx.core_ids),
        on_reserved_cores: t.on_cores,
        rss_gb: t.rss_kb / KB_PER_GB,
        peak_rss_gb: peakKb / KB_PER_GB,
        read_bytes: t.rchar,
        write_bytes: t.wchar,
        disk_read_bytes: t.read_bytes,
        disk_write_bytes: t.write_bytes,
        net_rx_bytes: net.rx,
        net_tx_bytes: net.tx,
        bandwidth_mbps: ((t.rchar - p.rchar + t.wchar - p.wchar) * 8) / dt / 1e6,
        gpus: gpu?.take() ?? [],
      };
      gpu?.poll();
      prev = now;
      this.latest = s;
      this.tally.add(s);
      ctx.onSample?.(s);
    };
    // The first sample comes early, so an encode shorter than the interval still gets one.
    this.timer = setTimeout(() => {
      if (!this.files.length) return;
      tick();
      if (!this.files.length) return;
      this.timer = setInterval(tick, interval);
      this.timer.unref();
    }, Math.min(interval, FIRST_SAMPLE_MS));
    this.timer.unref();
    return true;
  }

  /**
   * Stops sampling and summarises the samples.
   * @param peak_rss_kb a peak measured elsewhere (ffmpeg's -benchmark maxrss), which sees spikes between samples.
   */
  stop(peak_rss_kb = 0): UsageSummary {
    this.halt();
    return this.tally.summary((peak_rss_kb * 1024) / BYTES_PER_GB);
  }

  /** The latest sample: cumulative byte counts as of the last tick. */
  get last(): ResourceSample | undefined {
    return this.latest;
  }

  /** Stops the timer and closes the /proc files; safe to call again. */
  private halt(): void {
    clearTimeout(this.timer);
    clearInterval(this.timer);
    for (const f of this.files) f.close();
    this.files = [];
  }
}
