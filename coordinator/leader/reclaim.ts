/**
 * Memory given back after a burst. A leader that takes a flood of large submissions (the poison
 * bench: 1,000 messages of 10 KB to 600 KB, 30 MB in all) is left holding them as garbage: V8
 * runs no full collection while its heap is small, so the message buffers stay allocated and the
 * process grows by what it was sent; glibc's malloc also keeps what is freed (so the CLI's shebang
 * preloads jemalloc: cli/allocator.ts).
 *
 * So a full collection runs each time `stepBytes` (4 MB) of large submissions (over `largeBytes`,
 * 8 KB; a valid job is a few KB) have been taken, and once more when the leader has been quiet
 * for `quietMs` after taking some. Collecting as the bytes come, not only at the end, lets freed
 * buffers be reused instead of piling up. Ordinary submissions never count: a full collection of
 * a busy leader's heap costs tens of milliseconds, and counting every submission cost the
 * submit-latency bench's fastest phase placements. Without `--expose-gc` (the shebang gives it)
 * this does nothing.
 *
 * The collection once quiet also compacts every page (V8's `--compact-on-every-full-gc`, set for
 * that one collection): a burst leaves the old generation's pages part-used, and V8 keeps a page
 * while anything lives on it. Poison bench, jemalloc, RSS after ÷ before: 1.005–1.097 over ten
 * runs without it (half of them 1.08–1.10), 0.991–1.092 over thirteen with it (median 1.067).
 */
import v8 from 'node:v8';

export class Reclaimer {
  private bytes = 0;
  private sinceCollect = 0;
  private timer?: NodeJS.Timeout;
  private pending = false;
  private readonly gc?: () => void;
  private readonly compacting: (collect: () => void) => void;
  private readonly stepBytes: number;
  private readonly quietMs: number;

  private readonly largeBytes: number;

  constructor(o: { gc?: () => void; stepBytes?: number; quietMs?: number; largeBytes?: number; compacting?: (collect: () => void) => void } = {}) {
    this.gc = 'gc' in o ? o.gc : (globalThis as { gc?: () => void }).gc;
    this.compacting = o.compacting ?? compactingAll;
    this.stepBytes = o.stepBytes ?? 4 * 1024 * 1024;
    this.largeBytes = o.largeBytes ?? 8 * 1024;
    this.quietMs = o.quietMs ?? 1000;
  }

  /** Counts a submission taken in; only large ones (`largeBytes`, 8 KB: a valid job is a few KB) count. */
  took(bytes: number): void {
    if (!this.gc || bytes < this.largeBytes) return;
    this.bytes += bytes;
    this.sinceCollect += bytes;
    if (this.sinceCollect >= this.stepBytes && !this.pending) {
      this.pending = true;
      setImmediate(() => this.collect());
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { if (this.bytes >= this.stepBytes / 4) this.compacting(() => this.collect()); this.bytes = 0; }, this.quietMs);
    this.timer.unref();
  }

  private collect(): void {
    this.pending = false;
    this.sinceCollect = 0;
    this.gc!();
  }

  stop(): void { clearTimeout(this.timer); }
}

/** Runs `collect` with V8 compacting every page at full collections (V8 reads the flag at each one). */
function compactingAll(collect: () => void): void {
  v8.setFlagsFromString('--compact-on-every-full-gc');
  try {
    collect();
  } finally {
    v8.setFlagsFromString('--no-compact-on-every-full-gc');
  }
}
