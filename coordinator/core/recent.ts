/**
 * The last `max` values set, by key: setting a key again makes it the newest, and past `max` the
 * oldest is forgotten. What a Map does with delete, set, and deleting `keys().next()`, but the
 * oldest is found in O(1): a V8 Map keeps deleted entries as holes until it rehashes, and its
 * first key is found by skipping every hole before it, so evicting one entry per insert cost
 * thousands of steps each at 10,000 entries (the leader's ended tasks, one per job).
 */
export class Recent<V> {
  private readonly byKey = new Map<string, Entry<V>>();
  /** Entries oldest first from `head`; one set again since is marked stale and skipped. */
  private order: Entry<V>[] = [];
  private head = 0;
  /** Stale entries from `head` on. */
  private stale = 0;

  constructor(private readonly max: number) {}

  get size(): number { return this.byKey.size; }
  has(key: string): boolean { return this.byKey.has(key); }
  get(key: string): V | undefined { return this.byKey.get(key)?.value; }

  /** Sets `key` as the newest, and forgets the oldest beyond `max`. */
  set(key: string, value: V): void {
    const before = this.byKey.get(key);
    if (before) { before.stale = true; this.stale++; }
    const e: Entry<V> = { key, value, stale: false };
    this.byKey.set(key, e);
    this.order.push(e);
    while (this.byKey.size > this.max) {
      const old = this.order[this.head++];
      if (old.stale) this.stale--;
      else this.byKey.delete(old.key);
    }
    // The forgotten and the stale are dropped once they are most of the array: amortised O(1) per set.
    const waste = this.head + this.stale;
    if (waste > 1024 && waste * 2 > this.order.length) {
      this.order = this.order.slice(this.head).filter((e) => !e.stale);
      this.head = this.stale = 0;
    }
  }

  /** The values, oldest first. */
  *values(): IterableIterator<V> {
    for (let i = this.head; i < this.order.length; i++) if (!this.order[i].stale) yield this.order[i].value;
  }
}

interface Entry<V> { key: string; value: V; stale: boolean }
