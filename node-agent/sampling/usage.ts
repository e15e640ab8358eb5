/**
 * A run's UsageSummary, folded sample by sample so an hours-long encode keeps no sample list,
 * and the summaries of several passes merged into one.
 */
import type { EncodeSample, UsageSummary } from '../../shared/index.js';

type Summarised = Pick<EncodeSample, 'cpu_cores' | 'peak_rss_gb' | 'bandwidth_mbps' | 'on_reserved_cores' | 'gpus'>;

export class UsageTally {
  private samples = 0;
  private cpuSum = 0;
  private cpuPeak = 0;
  private memoryPeak = 0;
  private bandwidthSum = 0;
  private bandwidthPeak = 0;
  private gpuSamples = 0;
  private gpuSum = 0;
  private onCores = true;

  add(s: Summarised): void {
    this.samples++;
    this.cpuSum += s.cpu_cores;
    this.cpuPeak = Math.max(this.cpuPeak, s.cpu_cores);
    this.memoryPeak = Math.max(this.memoryPeak, s.peak_rss_gb);
    this.bandwidthSum += s.bandwidth_mbps;
    this.bandwidthPeak = Math.max(this.bandwidthPeak, s.bandwidth_mbps);
    // Percent of one GPU, like cpu_cores counts cores: the granted GPUs' utilisation added up.
    const utils = s.gpus.map((g) => g.util_percent).filter(Number.isFinite);
    if (utils.length) {
      this.gpuSamples++;
      this.gpuSum += utils.reduce((a, b) => a + b, 0);
    }
    this.noteCores(s.on_reserved_cores);
  }

  /** Placement seen outside a sample (the sampler's first look, before any interval has passed). */
  noteCores(on: boolean): void {
    this.onCores &&= on;
  }

  /** @param peak_gb a peak measured elsewhere, e.g. ffmpeg's -benchmark maxrss, which also sees spikes between samples. */
  summary(peak_gb = 0): UsageSummary {
    const n = this.samples;
    return {
      samples: n,
      cpu_cores_mean: n ? this.cpuSum / n : 0,
      cpu_cores_peak: this.cpuPeak,
      memory_gb_peak: Math.max(this.memoryPeak, peak_gb),
      bandwidth_mbps_mean: n ? this.bandwidthSum / n : 0,
      bandwidth_mbps_peak: this.bandwidthPeak,
      ...(this.gpuSamples > 0 && { gpu_percent_mean: this.gpuSum / this.gpuSamples }),
      stayed_on_cores: this.onCores,
    };
  }
}

/**
 * One summary for the passes of an encode: means weighted by each pass's samples, peaks the
 * highest. The GPU mean weighs passes by all their samples, which equals the exact figure unless a
 * pass had samples without a GPU reading.
 */
export function mergeUsage(parts: readonly UsageSummary[]): UsageSummary {
  const samples = parts.reduce((s, p) => s + p.samples, 0);
  const mean = (pick: (p: UsageSummary) => number, of = parts) => {
    const n = of.reduce((s, p) => s + p.samples, 0);
    return n ? of.reduce((s, p) => s + pick(p) * p.samples, 0) / n : 0;
  };
  const peak = (pick: (p: UsageSummary) => number) => Math.max(0, ...parts.map(pick));
  const withGpu = parts.filter((p) => p.gpu_percent_mean !== undefined);
  return {
    samples,
    cpu_cores_mean: mean((p) => p.cpu_cores_mean),
    cpu_cores_peak: peak((p) => p.cpu_cores_peak),
    memory_gb_peak: peak((p) => p.memory_gb_peak),
    bandwidth_mbps_mean: mean((p) => p.bandwidth_mbps_mean),
    bandwidth_mbps_peak: peak((p) => p.bandwidth_mbps_peak),
    ...(withGpu.length > 0 && { gpu_percent_mean: mean((p) => p.gpu_percent_mean!, withGpu) }),
    stayed_on_cores: parts.every((p) => p.stayed_on_cores),
  };
}
