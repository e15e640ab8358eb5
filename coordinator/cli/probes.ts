/**
 * What a submitter measures of its jobs before they go out (`prescient submit`, the demo): each
 * input it can read is probed (node-agent/ffmpeg/probe.ts), and each probed job test-encoded.
 */
import os from 'node:os';
import type { EncodingSchema } from '../../shared/index.js';

/**
 * Pilots run at once: half this machine's cores. Each is one thread; the other half is left to
 * whatever else runs here, so a pilot's CPU time is measured much as the calibration runs' (one
 * at a time) were.
 */
export const pilotsAtOnce = (cores: number) => Math.max(1, Math.floor(cores / 2));

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
    if (s.input.probe) continue;
    const probe = await probeInput(s.input, { by: 'submitter', cache });
    if (probe) s.input.probe = probe;
    else if (s.input.kind === 'file') o.log(`${s.input.path}: not readable here; a node will probe it before the job is predicted`);
  }
  // Jobs of the same input and settings share one pilot; the others are piloted pilotsAtOnce() at a time.
  const alike = new Map<string, EncodingSchema[]>();
  for (const s of schemas) {
    if (!o.pilot || !s.input.probe || s.input.probe.pilot || s.kind === 'actor') continue;
    const key = JSON.stringify([s.input, s.output]);
    alike.set(key, [...(alike.get(key) ?? []), s]);
  }
  const groups = [...alike.values()];
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(pilotsAtOnce(cores.length), groups.length) }, async () => {
    for (let g = next++; g < groups.length; g = next++) {
      const [first] = groups[g];
      const pilot = await pilotFor(first, { core_ids: cores, gpu_ids: [] }, { cache });
      if (pilot) for (const s of groups[g]) s.input.probe = { ...s.input.probe!, pilot };
      else o.log(`${first.input.kind === 'file' ? first.input.path : first.input.source}: the test encode of its first frames did not finish; ${groups[g].length > 1 ? 'these jobs are' : 'the job is'} predicted without it`);
    }
  }));
  try {
    cache.save();
  } catch (e) {
    o.log(`probe cache not saved: ${(e as Error).message}`);
  }
}
