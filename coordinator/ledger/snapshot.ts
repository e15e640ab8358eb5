/**
 * The node table behind `Ledger.snapshot()`: a two-level, copy-on-write array of immutable
 * NodeSnapshots, so that a snapshot costs O(1) to take and a change costs O(chunk) to make.
 *
 * Why: the leader takes a snapshot for every decision. Copying 10,000 node records (or even
 * 10,000 pointers) per decision would cost more than the decision itself. Instead:
 * - each node has a fixed slot; slots are grouped in chunks of 64;
 * - `freeze()` hands out the current chunk directory and bumps a generation counter;
 * - the first write to a chunk after a freeze copies that chunk and the directory
 *   (slots / 64 entries), then writes into the copies; later writes in the same generation
 *   write in place. A frozen view never sees a later write.
 * So a decision that changes two nodes copies two chunks and a 157-entry directory at 10,000
 * nodes, and a snapshot with no change since the last one is the same object.
 *
 * Why 64: a chunk copies 6 numbers or pointers per slot (five free columns and the node) and the
 * directory one per chunk, so the copy per change is least near √(nodes / 6) slots a chunk: 64
 * suits fleets of 1,000 to 25,000 nodes. At 128, chunk copies were nearly a third of what
 * `prescient plan` allocated at 1,000 nodes (17,600 → 20,200 jobs simulated per CPU second at 64).
 *
 * Beside its 64 node pointers, each chunk keeps its nodes' free amounts (cores, GPUs with a
 * free session, memory, bandwidth, GPU sessions) and their totals in plain arrays of numbers,
 * column by column; placement reads them as blocks (`blockFree`, `blockTotals`). A scan thus
 * reads numbers in sequence and opens a node object only once the node passes the filters:
 * following a pointer per node (V8 boxes double fields, so one more per amount) is a cache
 * miss each, and at a few hundred nodes per decision that dominated a decision's time. Totals
 * change only when a node joins, leaves or re-registers, so a copied chunk shares them.
 *
 * Each chunk also keeps, per free column, the largest amount any of its slots has, so a scan
 * for a request that none of a chunk's nodes can take now skips its 64 slots at once (a full
 * fleet, a queued request).
 *
 * Slots of removed nodes stay empty (amounts -0.5, which no request fits) until a new node
 * takes them, so a node keeps its slot; the id → slot index changes only when nodes join or
 * leave, and is copied on write too.
 */
import type { Column, FreeColumn, LedgerSnapshot, NodeSnapshot } from './types.js';

const BITS = 6;
const CHUNK = 1 << BITS;
const MASK = CHUNK - 1;
/** Free amounts and totals, 5 columns each (see `Column`). */
const COLUMNS = 5;

interface Chunk {
  nodes: Array<NodeSnapshot | undefined>;
  /**
   * Free amounts: column c of slot j at c * CHUNK + j. A plain array holding only numbers is
   * stored by V8 as unboxed doubles in one block on the heap, and copies faster than a typed
   * array (whose buffer lives off the heap).
   */
  free: number[];
  /** Per free column, the most any slot of the chunk has free: a scan skips chunks that cannot fit. */
  max: number[];
  /** Totals, laid out alike; they change only when a node joins, leaves or re-registers. */
  totals: number[];
  /** Generation `totals` was copied in: a copied chunk shares them until a capacity changes. */
  totalsGen: number;
}

function emptyColumns(): number[] {
  const a: number[] = [];
  for (let i = 0; i < COLUMNS * CHUNK; i++) a.push(-0.5);
  return a;
}

/** Writes one free amount and keeps the chunk's maximum of that column. */
function setFree(chunk: Chunk, column: number, j: number, v: number): void {
  const base = column * CHUNK;
  const old = chunk.free[base + j];
  chunk.free[base + j] = v;
  if (v >= chunk.max[column]) chunk.max[column] = v;
  else if (old >= chunk.max[column]) {
    // The maximum went down: recount (a chunk's numbers, and only when the fullest slot shrank).
    let m = -0.5;
    for (let k = base; k < base + CHUNK; k++) if (chunk.free[k] > m) m = chunk.free[k];
    chunk.max[column] = m;
  }
}

export class NodeTable {
  private dir: Chunk[] = [];
  /** Generation each chunk (and the directory, and the index) was last copied in. */
  private chunkGen: number[] = [];
  private dirGen = 0;
  private index = new Map<string, number>();
  private indexGen = 0;
  private gen = 0;
  private used = 0;
  private readonly holes: number[] = [];
  private live = 0;
  private maxCores = 0;
  private frozen?: LedgerSnapshot;

  get count(): number { return this.live; }
  slotOf(nodeId: string): number | undefined { return this.index.get(nodeId); }
  get(nodeId: string): NodeSnapshot | undefined {
    const s = this.index.get(nodeId);
    return s === undefined ? undefined : this.dir[s >> BITS].nodes[s & MASK];
  }
  /** Every node, in slot order (O(nodes); for bookkeeping, not for decisions). */
  *all(): IterableIterator<NodeSnapshot> {
    for (const chunk of this.dir) for (const n of chunk.nodes) if (n !== undefined) yield n;
  }

  /** Puts a node in its slot, or in a free slot when it is new. */
  set(n: NodeSnapshot): void {
    let slot = this.index.get(n.node_id);
    if (slot === undefined) {
      slot = this.holes.pop() ?? this.used++;
      this.writableIndex().set(n.node_id, slot);
      this.live++;
    }
    if (n.capacity.core_ids.length > this.maxCores) this.maxCores = n.capacity.core_ids.length;
    this.write(slot, n);
  }

  delete(nodeId: string): boolean {
    const slot = this.index.get(nodeId);
    if (slot === undefined) return false;
    const gone = this.dir[slot >> BITS].nodes[slot & MASK]!;
    this.writableIndex().delete(nodeId);
    this.write(slot, undefined);
    this.holes.push(slot);
    this.live--;
    // Rare (a node leaving), so a rescan is fine.
    if (gone.capacity.core_ids.length >= this.maxCores) {
      this.maxCores = 0;
      for (const m of this.all()) this.maxCores = Math.max(this.maxCores, m.capacity.core_ids.length);
    }
    return true;
  }

  /** An immutable view of the table as it is now; O(1). */
  freeze(version: number, term: number): LedgerSnapshot {
    if (this.frozen) return this.frozen; // nothing changed since
    this.frozen = new FrozenLedger(version, term, this.dir, this.index, this.used, this.live, this.maxCores);
    this.gen++;
    return this.frozen;
  }

  private write(slot: number, n: NodeSnapshot | undefined): void {
    this.frozen = undefined;
    const c = slot >> BITS;
    if (this.dirGen !== this.gen) {
      this.dir = this.dir.slice();
      this.dirGen = this.gen;
    }
    let chunk = this.dir[c];
    if (!chunk) {
      chunk = { nodes: new Array<NodeSnapshot | undefined>(CHUNK).fill(undefined), free: emptyColumns(), max: [-0.5, -0.5, -0.5, -0.5, -0.5], totals: emptyColumns(), totalsGen: this.gen };
      this.dir[c] = chunk;
      this.chunkGen[c] = this.gen;
    } else if (this.chunkGen[c] !== this.gen) {
      chunk = { nodes: chunk.nodes.slice(), free: chunk.free.slice(), max: chunk.max.slice(), totals: chunk.totals, totalsGen: chunk.totalsGen };
      this.dir[c] = chunk;
      this.chunkGen[c] = this.gen;
    }
    const j = slot & MASK;
    setFree(chunk, 0, j, n ? n.free_core_ids.length : -0.5);
    setFree(chunk, 1, j, n ? n.free_gpu_ids.length : -0.5);
    setFree(chunk, 2, j, n ? n.free_memory_gb : -0.5);
    setFree(chunk, 3, j, n ? n.free_bandwidth_mbps : -0.5);
    setFree(chunk, 4, j, n ? n.free_gpu_sessions : -0.5);
    const before = chunk.nodes[j];
    chunk.nodes[j] = n;
    if (before?.capacity === n?.capacity) return;
    if (chunk.totalsGen !== this.gen) {
      chunk.totals = chunk.totals.slice();
      chunk.totalsGen = this.gen;
    }
    const t = chunk.totals;
    t[j] = n ? n.capacity.core_ids.length : -0.5;
    // Every GPU runs at least one session, so an idle node offers one per GPU.
    t[CHUNK + j] = n ? n.gpus.filter((g) => g.sessions > 0).length : -0.5;
    t[2 * CHUNK + j] = n ? n.capacity.memory_gb : -0.5;
    t[3 * CHUNK + j] = n ? n.capacity.bandwidth_mbps : -0.5;
    t[4 * CHUNK + j] = n ? n.gpu_sessions : -0.5;
  }

  private writableIndex(): Map<string, number> {
    if (this.indexGen !== this.gen) {
      this.index = new Map(this.index);
      this.indexGen = this.gen;
    }
    return this.index;
  }
}

class FrozenLedger implements LedgerSnapshot {
  private list?: readonly NodeSnapshot[];
  constructor(
    readonly version: number, readonly term: number, private readonly dir: readonly Chunk[],
    private readonly index: ReadonlyMap<string, number>, readonly slots: number, readonly count: number, readonly max_cores: number,
  ) {}

  at(i: number): NodeSnapshot | undefined {
    return this.dir[i >> BITS].nodes[i & MASK];
  }

  amount(i: number, column: Column): number {
    const chunk = this.dir[i >> BITS];
    return column < COLUMNS ? chunk.free[column * CHUNK + (i & MASK)] : chunk.totals[(column - COLUMNS) * CHUNK + (i & MASK)];
  }

  readonly blockSize = CHUNK;

  blockFree(b: number): readonly number[] {
    return this.dir[b].free;
  }

  blockTotals(b: number): readonly number[] {
    return this.dir[b].totals;
  }

  blockMax(b: number, column: FreeColumn): number {
    return this.dir[b].max[column];
  }

  node(nodeId: string): NodeSnapshot | undefined {
    const s = this.index.get(nodeId);
    return s === undefined ? undefined : this.at(s);
  }

  get nodes(): readonly NodeSnapshot[] {
    if (!this.list) {
      const out: NodeSnapshot[] = [];
      for (let i = 0; i < this.slots; i++) {
        const n = this.at(i);
        if (n !== undefined) out.push(n);
      }
      this.list = Object.freeze(out);
    }
    return this.list;
  }
}
