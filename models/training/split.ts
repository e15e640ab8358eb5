/**
 * Held-out splits. Each row's bucket comes from a hash of its key, so the same row always lands
 * in the same part — `prescient model evaluate` later finds exactly the rows training held out —
 * whatever order a source returns rows in. `time` holds out the most recent runs instead, which
 * is how a retrained model is judged: on the window after the data it learned from. `none`
 * holds nothing out: every row trains, and the figures are cross-validated by source. Nothing
 * is set aside for the bounds in any mode: they come from the cross-validation (training/index.ts).
 */
import type { LabelledRow } from '../record.js';

export type SplitMode = 'hash' | 'time' | 'none';

/**
 * `fit` trains the model (and, folded by source, calibrates its bounds); `test` is only ever
 * evaluated on. `calibration` is always empty (kept for readers of the older split).
 */
export interface Split { fit: LabelledRow[]; calibration: LabelledRow[]; test: LabelledRow[] }

export const TEST_SHARE = 0.2;

/**
 * FNV-1a of the key, finished with murmur3's fmix32 so that keys differing only in their last
 * characters (job-1, job-2, …) spread over the whole range; as a number in [0, 1).
 */
export function keyBucket(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

export function splitRows(rows: readonly LabelledRow[], mode: SplitMode = 'hash'): Split {
  const out: Split = { fit: [], calibration: [], test: [] };
  if (mode === 'none') return { fit: [...rows], calibration: [], test: [] };
  let rest: readonly LabelledRow[] = rows;
  if (mode === 'time') {
    // Rows without a time cannot be placed in the window: they train.
    const timed = rows.filter((r) => r.ts !== undefined).sort((a, b) => a.ts! - b.ts! || (a.key < b.key ? -1 : 1));
    const cut = timed.length - Math.round(timed.length * TEST_SHARE);
    out.test = timed.slice(cut);
    const held = new Set(out.test);
    rest = rows.filter((r) => !held.has(r));
  }
  for (const r of rest) (mode === 'hash' && keyBucket(r.key) < TEST_SHARE ? out.test : out.fit).push(r);
  return out;
}
