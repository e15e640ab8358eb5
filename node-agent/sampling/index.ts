/**
 * Public API of `node-agent/sampling/`: measuring a running encode from /proc (and nvidia-smi)
 * every interval, and summarising what it used. Linux only.
 */
export {
  Sampler, strictClock, checkSampleInterval, DEFAULT_SAMPLE_INTERVAL_MS, MIN_SAMPLE_INTERVAL_MS,
  type ResourceSample, type SamplerContext, type SamplingOptions,
} from './sampler.js';
export { UsageTally, mergeUsage } from './usage.js';
export { ProcessTree, allocatedBetween, type TreeReading } from './tree.js';
export { GPU_QUERY, hasNvidiaSmi, parseGpuQuery } from './gpu.js';
export {
  parsePidStat, procField, kbField, parseCpuTimes, coreBusyPercent, parseNetDev, netSince, type PidStat, type CpuTimes,
} from './proc.js';
