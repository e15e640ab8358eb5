/**
 * What a submitter measures of its jobs before they go out (`prescient submit`, the demo): each
 * input it can read is probed (node-agent/ffmpeg/probe.ts), and each probed job test-encoded.
 */
import os from 'node:os';
import type { EncodingSchema } from '../../shared/index.js';

export interface AttachOptions {
  /** Where probes are kept between runs (by path, size and modification time). */
  cacheFile: string;
  log: (m: string) => void;
  /** Test-encode each probed job's first frames with its own settings (measurePilot). */
  pilot: boolean;
}

/**
 * Probes each job's input that this machine can read, and attaches what it found. A file it
 * cannot read is left to be probed by a node of the cluster before the job is predicted. With
 * `pilot`, each job whose input could be read is also test-encoded (its first frames, its own
 * settings, one thread), kept in the same cache by input and output settings.
 */
export async function attachProbes(schemas: EncodingSchema[], o: AttachOptions): Promise<void> {
  // The probe's own module, not node-agent/index.js, which brings the whole agent.
  const { ProbeCache, probeInput, pilotFor } = await import('../../node-agent/ffmpeg/probe.js');
  const cache = new ProbeCache(o.cacheFile);
  const cores = Array.from({ length: os.availableParallelism() }, (_, i) => i);
  for (const s of schemas) {
    if (!s.input.probe) {
      const probe = await probeInput(s.input, { by: 'submitter', cache });
      if (probe) s.input.probe = probe;
      else if (s.input.kind === 'file') o.log(`${s.input.path}: not readable here; a node will probe it before the job is predicted`);
    }
    if (!o.pilot || !s.input.probe || s.input.probe.pilot || s.kind === 'actor') continue;
    const pilot = await pilotFor(s, { core_ids: cores, gpu_ids: [] }, { cache });
    if (pilot) s.input.probe = { ...s.input.probe, pilot };
    else o.log(`${s.input.kind === 'file' ? s.input.path : s.input.source}: the test encode of its first frames did not finish; the job is predicted without it`);
  }
  try {
    cache.save();
  } catch (e) {
    o.log(`probe cache not saved: ${(e as Error).message}`);
  }
}
