/**
 * A lookup table with back-off: the mean of a target over groups of encodes that share an
 * encoder, a hardware class, a preset, a resolution, a core count and a rate-control mode,
 * nested in that order. Each group's figure is shrunk towards its parent's,
 * (n · mean + K · parent) / (n + K), so a group seen a few times leans on the coarser group
 * around it, and a record whose group was never seen gets its deepest known ancestor's figure:
 * an unseen hardware class falls back to the encoder's figure, an unseen encoder to all rows'.
 *
 * This is the floor the model stands on (models/README.md): every target is first predicted by
 * the lookup, and the networks learn only what it misses (the residual), weighted by how much
 * that helped on sources held out in training. A lookup never extrapolates: its figures are
 * means of what was measured.
 */
import type { EncodeRecord } from './record.js';

/** The keys, coarsest first: each level adds one to the one before. */
export const LOOKUP_KEYS = ['encoder', 'hw_class', 'preset', 'resolution', 'cores', 'rc_mode'] as const;
export type LookupKey = (typeof LOOKUP_KEYS)[number];

/** Between the levels of a path (never in a key: keys are names and numbers). */
const SEP = '\u0001';

/** Small whole numbers as text, made once: a record's keys are read on every prediction. */
const NUMBER_NAMES = Array.from({ length: 257 }, (_, i) => String(i));
const numberName = (n: number) => (Number.isInteger(n) && n >= 0 && n < NUMBER_NAMES.length ? NUMBER_NAMES[n] : String(n));

/**
 * A record's value of each key, in LOOKUP_KEYS order: its path through the lookup. The
 * resolution is the output's pixel count to the nearest power of two (320x240 and 426x240 share
 * one, 1280x720 and 1920x1080 do not); the encoder falls back to the codec where a log names only
 * that. A value not known is ''.
 */
export function lookupValues(r: EncodeRecord): string[] {
  const o = r.output;
  const w = o.width ?? r.input.width, h = o.height ?? r.input.height;
  const px = w && h ? w * h : undefined;
  return [
    o.encoder ?? o.codec ?? '',
    r.node.hw_class ?? '',
    o.preset ?? '',
    px !== undefined && px > 0 ? numberName(Math.round(Math.log2(px))) : '',
    r.node.cores !== undefined ? numberName(r.node.cores) : '',
    o.rc_mode ?? '',
  ];
}

/** A fitted lookup: all rows' mean, and each group's shrunk figure by its path (its keys' values joined by SEP). */
export interface Lookup {
  /** Rows a group's own mean counts as much as its parent's figure (the shrinkage). */
  k: number;
  /** Levels used: the first `levels` keys of `order`. */
  levels: number;
  /** The keys by their index in LOOKUP_KEYS, coarsest first (absent: LOOKUP_KEYS' own order). */
  order?: number[];
  global: number;
  /** Path → shrunk figure, for every group with at least one row. */
  cells: Record<string, number>;
}

/**
 * Fits a lookup on each row's key values (`keys[i]`, lookupValues) and value `y[i]`, with
 * shrinkage `k`. `levels` limits the depth (a spread is fitted coarser than a mean).
 */
export function fitLookup(keys: ReadonlyArray<readonly string[]>, y: ArrayLike<number>, k: number, levels: number = LOOKUP_KEYS.length, order?: readonly number[]): Lookup {
  return fitLookupPaths(keys.map((v) => lookupPaths(v, order)), y, k, levels, order);
}

/** A record's group at each level of `order` (LOOKUP_KEYS' own by default), coarsest first: its key values joined by SEP. */
export function lookupPaths(keys: readonly string[], order?: readonly number[]): string[] {
  const out = new Array<string>(keys.length);
  let p = '';
  for (let l = 0; l < keys.length; l++) out[l] = p = l ? p + SEP + keys[order ? order[l] : l] : keys[order ? order[0] : 0];
  return out;
}

/** fitLookup on the rows' paths (lookupPaths in the same order), made once where many lookups read the same rows. */
export function fitLookupPaths(paths: ReadonlyArray<readonly string[]>, y: ArrayLike<number>, k: number, levels: number = LOOKUP_KEYS.length, order?: readonly number[]): Lookup {
  return lookupSums(paths, y, levels, order).shrunk(k);
}

/**
 * Each group's sum and count over the rows, from which a lookup at any shrinkage is a pass over
 * the groups alone (training tries several).
 */
export function lookupSums(paths: ReadonlyArray<readonly string[]>, y: ArrayLike<number>, levels: number = LOOKUP_KEYS.length, order?: readonly number[]): {
  shrunk(k: number): Lookup;
  /** The lookup at shrinkage k as a function of a row's paths (lookupPaths in this order): what CompiledLookup.value gives, without building it. */
  reader(k: number): (paths: readonly string[]) => number;
} {
  const n = y.length;
  let global = 0;
  for (let i = 0; i < n; i++) global += y[i] / n;
  const sums = new Map<string, [number, number]>();
  for (let i = 0; i < n; i++) {
    for (let l = 0; l < levels; l++) {
      const p = paths[i][l];
      const s = sums.get(p);
      if (s) { s[0] += y[i]; s[1]++; } else sums.set(p, [y[i], 1]);
    }
  }
  // Parents before children: a path's parent is the path without its last level.
  const byDepth = [...sums.keys()].sort((a, b) => depth(a) - depth(b));
  const cellsAt = (k: number) => {
    const cells = new Map<string, number>();
    for (const p of byDepth) {
      const [sum, count] = sums.get(p)!;
      const cut = p.lastIndexOf(SEP);
      const parent = cut < 0 ? global : cells.get(p.slice(0, cut))!;
      cells.set(p, (sum + k * parent) / (count + k));
    }
    return cells;
  };
  return {
    // Object.fromEntries defines each path as an own property: a value such as "__proto__" is a key like any other.
    shrunk: (k) => ({ k, levels, global, cells: Object.fromEntries(cellsAt(k)), ...(order ? { order: [...order] } : {}) }),
    reader(k) {
      const cells = cellsAt(k);
      return (paths) => {
        for (let d = Math.min(levels, paths.length) - 1; d >= 0; d--) {
          const v = cells.get(paths[d]);
          if (v !== undefined) return v;
        }
        return global;
      };
    },
  };
}

const depth = (p: string) => {
  let d = 0;
  for (let i = p.indexOf(SEP); i >= 0; i = p.indexOf(SEP, i + 1)) d++;
  return d;
};

interface TrieNode { value?: number; children?: Map<string, TrieNode> }

/**
 * A lookup ready to read: its cells as a tree of Maps, one level per key, so a record's figure
 * takes one Map read per level on its own short values (no path is built per prediction), and an
 * object's inherited keys never answer.
 */
export class CompiledLookup {
  private readonly root: TrieNode = {};
  readonly levels: number;
  readonly global: number;
  private readonly order: Int32Array;
  constructor(l: Lookup) {
    this.levels = l.levels;
    this.global = l.global;
    this.order = Int32Array.from(l.order ?? LOOKUP_KEYS.map((_, i) => i));
    for (const [path, v] of Object.entries(l.cells)) {
      let node = this.root;
      for (const key of path.split(SEP)) {
        const children = (node.children ??= new Map());
        let next = children.get(key);
        if (!next) children.set(key, (next = {}));
        node = next;
      }
      node.value = v;
    }
  }

  /** The figure of the deepest group of the record's key values (lookupValues, read in the lookup's order) it knows; all rows' mean when none. */
  value(keys: readonly string[]): number {
    let node: TrieNode | undefined = this.root, best = this.global;
    const levels = this.levels < keys.length ? this.levels : keys.length;
    for (let d = 0; d < levels; d++) {
      node = node.children?.get(keys[this.order[d]]);
      if (node === undefined) break;
      if (node.value !== undefined) best = node.value;
    }
    return best;
  }
}

/** What is wrong with a stored lookup, or undefined. */
export function checkLookup(l: Lookup | undefined, where: string): string | undefined {
  if (!l || typeof l !== 'object') return `${where} is missing`;
  if (!(l.k >= 0) || !Number.isInteger(l.levels) || l.levels < 1 || l.levels > LOOKUP_KEYS.length || !Number.isFinite(l.global)) return `${where} is not a lookup`;
  if (!l.cells || typeof l.cells !== 'object') return `${where}.cells is missing`;
  if (l.order !== undefined && (!Array.isArray(l.order) || l.order.length !== LOOKUP_KEYS.length || [...l.order].sort().some((v, i) => v !== i))) return `${where}.order is not an order of the ${LOOKUP_KEYS.length} keys`;
  for (const [p, v] of Object.entries(l.cells)) {
    if (!Number.isFinite(v)) return `${where}.cells[${JSON.stringify(p)}] is not a finite number`;
    if (depth(p) >= l.levels) return `${where}.cells[${JSON.stringify(p)}] is deeper than its ${l.levels} levels`;
  }
  return undefined;
}
