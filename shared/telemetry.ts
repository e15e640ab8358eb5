/**
 * What the agent measures while an encode runs, and the per-run summary derived from it.
 * Produced in the encode worker (node-agent/runner), stored by the telemetry sink
 * (node-agent/telemetry) in QuestDB, read back for training (models/).
 */

/** GPU figures from nvidia-smi for the GPUs granted to the encode; absent where there is none. */
export interface GpuSample {
  gpu_id: number;
  util_percent: number;
  memory_used_gb: number;
  encoder_sessions: number;
  encoder_util_percent: number;
}

/** One sample of a running encode, taken every `sample_interval_ms` (default 1000). */
export interface EncodeSample {
  /** Epoch milliseconds when the sample was taken; with job_id, the sample's identity. */
  ts_ms: number;
  job_id: string;
  /** 1, or 2 for the second pass of a two-pass encode. */
  pass: number;
  /** CPU cores the ffmpeg process tree used over the last interval (utime+stime delta / wall delta). */
  cpu_cores: number;
  /** Busy share (0–100) of each reserved core over the last interval, system-wide (/proc/stat). */
  core_busy_percent: Record<number, number>;
  /** Every thread of the tree last ran on a reserved core and its affinity is the reserved set. */
  on_reserved_cores: boolean;
  /** Resident memory of the whole ffmpeg process tree now, and the highest seen so far (GB, 1024³). */
  rss_gb: number;
  peak_rss_gb: number;
  /** Cumulative bytes the tree read and wrote (rchar / wchar of /proc/<pid>/io). */
  read_bytes: number;
  write_bytes: number;
  /** Cumulative bytes read from / written to storage (read_bytes / write_bytes of /proc/<pid>/io). */
  disk_read_bytes: number;
  disk_write_bytes: number;
  /** Node-wide network bytes since the encode started (/proc/net/dev, all interfaces but lo). */
  net_rx_bytes: number;
  net_tx_bytes: number;
  /** I/O bandwidth over the last interval in Mbit/s ((Δread + Δwrite) · 8 / Δt). */
  bandwidth_mbps: number;
  gpus: GpuSample[];
  /** Latest -progress report. */
  frame: number;
  fps: number;
  speed: number;
  out_bytes: number;
}

/** Summary of all samples of one run, stored in its run row. */
export interface UsageSummary {
  samples: number;
  cpu_cores_mean: number;
  cpu_cores_peak: number;
  memory_gb_peak: number;
  bandwidth_mbps_mean: number;
  bandwidth_mbps_peak: number;
  /** Mean GPU utilisation over the run; absent when no GPU was used. */
  gpu_percent_mean?: number;
  /** False if any sample found a thread off the reserved cores. */
  stayed_on_cores: boolean;
}

/** Content complexity of an input, from ffmpeg's `siti` filter on a short probe (ITU-T P.910). */
export interface ContentComplexity {
  si_mean: number;
  si_max: number;
  ti_mean: number;
  ti_max: number;
  probe_s: number;
}
