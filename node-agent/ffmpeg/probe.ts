/**
 * Content complexity of an encode's input: spatial and temporal information from ffmpeg's
 * `siti` filter over the first seconds, pinned to the encode's own cores. A model feature and a
 * column of every run row; an input ffmpeg cannot probe yields undefined, never a guess.
 */
import type { ContentComplexity, EncodingSchema } from '../../shared/index.js';
import { COMPLEXITY_PROBE_S, compileComplexityProbe, parseSiti, type Grant } from './args.js';
import { runFfmpeg } from './run.js';

export async function measureComplexity(schema: EncodingSchema, grant: Grant, signal?: AbortSignal): Promise<ContentComplexity | undefined> {
  const seconds = Math.min(COMPLEXITY_PROBE_S, schema.input.duration_s ?? COMPLEXITY_PROBE_S);
  try {
    const r = await runFfmpeg(compileComplexityProbe(schema, grant, seconds), { core_ids: grant.core_ids, signal });
    return parseSiti(r.stderr, seconds);
  } catch (e) {
    if (signal?.aborted) throw e;
    return undefined;
  }
}
