/**
 * Where the ledger is kept between leaders. `LedgerStore` says what a store does; the JetStream
 * KV implementation keeps one entry per node (its capacity and its reservations) and a `meta`
 * entry, so a save writes only the nodes that changed, and no entry comes near NATS's 1 MB
 * message limit however large the fleet.
 *
 * Fencing: every value carries the term of the leader that wrote it, and every write is a
 * compare-and-set on the entry's KV revision (`kv.update(key, value, revision)`). When the
 * revision moved on, the store reads the entry: if a later term wrote it, the write is refused
 * with StaleLedgerWriteError (this leader has been deposed); if an earlier term did (a deposed
 * leader's last write), it is overwritten. Each save writes `meta` first, so the first save of
 * a new leader fences every older one out before any node entry is touched. Removed nodes are
 * written as tombstones rather than KV deletes, so that they carry a term too.
 */
import { StorageType, type JetStreamClient, type KV } from 'nats';
import { LEDGER_BUCKET, shortText, v, whyNot } from '../../shared/index.js';
import type { LedgerChanges, LedgerState, NodeRecord } from './types.js';
import type { Log } from '../../shared/log.js';

export interface LedgerStore {
  /** The saved ledger, or undefined when nothing was saved yet. */
  load(): Promise<LedgerState | undefined>;
  /**
   * Writes a whole state (nodes saved before but absent from it are removed) or the changes
   * since the last save. Rejects with StaleLedgerWriteError when a leader of a later term has
   * written since this store last read or wrote; nothing of a refused save reaches `meta`.
   */
  save(state: LedgerState | LedgerChanges): Promise<void>;
}

/** A write of the ledger was refused because a leader of a later term has written it. */
export class StaleLedgerWriteError extends Error {
  constructor(readonly term: number, readonly storedTerm: number, readonly key: string) {
    super(`ledger write by term ${term} refused: ${key} was written by term ${storedTerm}`);
    this.name = 'StaleLedgerWriteError';
  }
}

interface MetaValue { format: 1; term: number; version: number }
/** A node entry; `record` is absent in a tombstone. */
interface NodeValue { term: number; record?: NodeRecord }

const META = 'meta';
const SAFE_ID = /^[A-Za-z0-9_-]{1,200}$/;
/** KV keys allow few characters; ids outside them are base64url-encoded under another prefix. */
const keyOf = (nodeId: string) => (SAFE_ID.test(nodeId) ? `node.${nodeId}` : `node64.${Buffer.from(nodeId).toString('base64url')}`);
const BATCH = 256;

// The bucket's entries as this store writes them.
const count = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
const amount = v.pipe(v.number(), v.finite(), v.minValue(0));
const ids = v.pipe(v.array(count), v.maxLength(4096));
const StoredMeta = v.object({ format: v.literal(1), term: count, version: count });
const StoredNode = v.object({
  term: count,
  record: v.optional(v.object({
    capacity: v.looseObject({
      node_id: shortText, address: v.string(), core_ids: ids, memory_gb: amount, bandwidth_mbps: amount, cpu_model: v.string(),
      // driver, engines and profile come from agents with GPU discovery (shared/task.ts GpuCapacity),
      // '' and 0 from older ones. `profile` is any string, as an agent may send: a value this
      // version does not know still marks `sessions` as the agent's own figure (node.ts sessionsOf).
      gpus: v.pipe(v.array(v.looseObject({
        id: count, name: v.string(), memory_gb: amount, sessions: v.optional(count),
        driver: v.optional(v.string()), nvenc_engines: v.optional(count), nvdec_engines: v.optional(count), profile: v.optional(v.string()),
      })), v.maxLength(256)),
    }),
    last_seen: v.pipe(v.number(), v.finite()), version: count,
    reservations: v.pipe(v.array(v.object({
      task_id: shortText,
      allocation: v.object({ node_id: shortText, core_ids: ids, gpu_ids: ids, memory_gb: amount, bandwidth_mbps: amount, lease_expires_at: v.pipe(v.number(), v.finite()), term: count }),
    })), v.maxLength(100_000)),
  })),
});
/** A node entry must sit under its node's key, and hold that node's reservations only. */
function nodeKeyMismatch(key: string, x: NodeValue): string | undefined {
  const r = x.record;
  if (!r) return undefined;
  if (keyOf(r.capacity.node_id) !== key) return `it is node ${JSON.stringify(r.capacity.node_id)}'s, not this key's`;
  const stray = r.reservations.find((res) => res.allocation.node_id !== r.capacity.node_id);
  return stray ? `reservation of ${stray.task_id} is on node ${JSON.stringify(stray.allocation.node_id)}, not this one` : undefined;
}

const encode = (x: unknown) => new TextEncoder().encode(JSON.stringify(x));
const decode = <T>(b: Uint8Array): T => JSON.parse(new TextDecoder().decode(b)) as T;

function wrongRevision(e: unknown): boolean {
  const err = e as { api_error?: { err_code?: number }; message?: string };
  return err?.api_error?.err_code === 10071 || /wrong last sequence/i.test(err?.message ?? '');
}

async function inBatches<T>(items: readonly T[], f: (x: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += BATCH) await Promise.all(items.slice(i, i + BATCH).map(f));
}

export interface LedgerStoreOptions {
  /**
   * The highest leader term ever issued (the election's durable record). A stored term above it
   * was written by no leader: the entry is overwritten, not obeyed (a forged term once deposed
   * every leader in turn). Without it every later term is obeyed.
   */
  highestIssued?: () => Promise<number>;
  log?: Log;
}

/** The term an entry was written by; an entry that does not read as one counts as no term (-1), so it is overwritten. */
function storedTerm(value: Uint8Array): number {
  try {
    const t = decode<{ term?: unknown }>(value)?.term;
    return Number.isSafeInteger(t) && (t as number) >= 0 ? (t as number) : -1;
  } catch {
    return -1;
  }
}

export class JetStreamLedgerStore implements LedgerStore {
  /** The revision of each key as this store last read or wrote it (0: never existed). */
  private readonly revisions = new Map<string, number>();
  /** Node keys holding a live (not tombstoned) node, as far as this store knows. */
  private readonly present = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly kv: KV, private readonly o: LedgerStoreOptions, private readonly bucket: string) {}

  static async open(js: JetStreamClient, bucket: string = LEDGER_BUCKET, o: LedgerStoreOptions = {}): Promise<JetStreamLedgerStore> {
    return new JetStreamLedgerStore(await js.views.kv(bucket, { history: 1, storage: StorageType.File }), o, bucket);
  }

  load(): Promise<LedgerState | undefined> {
    return this.serially(async () => {
      const keys: string[] = [];
      for await (const k of await this.kv.keys()) keys.push(k);
      let meta: MetaValue | undefined;
      const nodes: NodeRecord[] = [];
      await inBatches(keys, async (k) => {
        const e = await this.kv.get(k);
        if (!e) return;
        this.revisions.set(k, e.revision);
        if (e.operation !== 'PUT' || !e.value.length) return;
        let x: unknown;
        try { x = decode(e.value); } catch { x = undefined; }
        // Anyone who could write the bucket could have written this: an entry that is not one is
        // left out and said, never restored (the node's agent registers its real capacity again).
        const why = k === META ? whyNot(StoredMeta, x) : whyNot(StoredNode, x) ?? nodeKeyMismatch(k, x as NodeValue);
        if (why) { this.o.log?.(`${this.bucket} ${k} ignored: ${why}`, 'warn'); return; }
        if (k === META) meta = x as MetaValue;
        else {
          const v = x as NodeValue;
          if (v.record) {
            nodes.push(v.record);
            this.present.add(k);
          }
        }
      });
      if (!meta && !nodes.length) return undefined;
      // A stable order (the KV's is by last write), so a restored ledger does not depend on timing.
      nodes.sort((a, b) => (a.capacity.node_id < b.capacity.node_id ? -1 : a.capacity.node_id > b.capacity.node_id ? 1 : 0));
      return {
        format: 1 as const,
        term: meta?.term ?? 0,
        version: nodes.reduce((v, n) => Math.max(v, n.version), meta?.version ?? 0),
        nodes,
      };
    });
  }

  save(state: LedgerState | LedgerChanges): Promise<void> {
    return this.serially(async () => {
      const term = state.term;
      const writes = new Map(state.nodes.map((n) => [keyOf(n.capacity.node_id), n]));
      const removed = 'format' in state ? [...this.present].filter((k) => !writes.has(k)) : state.removed.map(keyOf);
      await this.write(META, { format: 1, term, version: state.version } satisfies MetaValue, term);
      await inBatches([...writes], async ([k, record]) => {
        await this.write(k, { term, record } satisfies NodeValue, term);
        this.present.add(k);
      });
      await inBatches(removed, async (k) => {
        await this.write(k, { term } satisfies NodeValue, term);
        this.present.delete(k);
      });
    });
  }

  /** Compare-and-set on the key's revision; overwrites an earlier term's write, refuses a later one's. */
  private async write(key: string, value: MetaValue | NodeValue, term: number): Promise<void> {
    const data = encode(value);
    for (;;) {
      const rev = this.revisions.get(key) ?? 0;
      try {
        this.revisions.set(key, rev === 0 ? await this.kv.create(key, data) : await this.kv.update(key, data, rev));
        return;
      } catch (e) {
        if (!wrongRevision(e)) throw e;
        const cur = await this.kv.get(key);
        const stored = cur && cur.operation === 'PUT' && cur.value.length ? storedTerm(cur.value) : -1;
        if (stored > term && !(await this.neverIssued(stored, key))) throw new StaleLedgerWriteError(term, stored, key);
        this.revisions.set(key, cur?.revision ?? 0);
      }
    }
  }

  /** Whether `stored` is above every term issued: then `key`'s entry is forged, and overwritten. */
  private async neverIssued(stored: number, key: string): Promise<boolean> {
    const highest = await this.o.highestIssued?.();
    if (highest === undefined || stored <= highest) return false;
    this.o.log?.(`ledger ${key} carries term ${stored}, above the highest ever issued (${highest}): forged, overwritten`, 'warn');
    return true;
  }

  /** Saves and loads run one at a time: each needs the revisions the previous one left. */
  private serially<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f, f);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
