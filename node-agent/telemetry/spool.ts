/**
 * A local, append-only spool of rows (one ILP line each) that outlives the process and any
 * outage of the database.
 *
 * Files: `<dir>/NNNNNNNNNNNN.ilp` segments, numbered in append order. Appends go to the newest
 * segment, each batch of concurrent appends as one write and one fdatasync (group commit); a
 * segment is sealed once it reaches `segmentBytes` and a new one begun. A process never appends
 * to a segment it did not create, so a segment's only possibly torn part is its tail.
 *
 * Draining hands whole lines to a delivery function, oldest first, at most about `chunkBytes`
 * at a time, and deletes a sealed segment only after all its lines were delivered. After a
 * crash a segment is delivered again from its start: the receiver must be idempotent (the
 * QuestDB tables deduplicate on their keys).
 *
 * One process at a time: `spool.lock` holds the owner's pid (a dead owner's lock is taken over).
 *
 * What is skipped, never blocking the rows behind it: a torn tail (bytes after a segment's last
 * newline, from a crash mid-write) and lines holding NUL bytes (unwritten blocks after a power
 * loss). A line the receiver refuses as invalid is moved to `rejected.jsonl` with the reason.
 */
import { closeSync, fdatasync, fstatSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, unlinkSync, write, writeFileSync, writeSync } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Log } from '../../shared/log.js';

const writeFd = promisify(write);
const datasyncFd = promisify(fdatasync);

const SEGMENT = /^(\d{12})\.ilp$/;
const NL = 0x0a;

export const segmentName = (seq: number) => `${String(seq).padStart(12, '0')}.ilp`;

/** Thrown by a delivery function for the one line of a chunk (0-based) the receiver will never take. */
export class RejectedLineError extends Error {
  constructor(readonly line: number, readonly reason: string) {
    super(`line ${line + 1} refused: ${reason}`);
    this.name = 'RejectedLineError';
  }
}

/** Another live process holds the spool: two writers would deliver and delete each other's segments. */
export class SpoolLockedError extends Error {
  constructor(readonly dir: string, readonly pid: number) {
    super(`spool ${dir} is in use by process ${pid}`);
    this.name = 'SpoolLockedError';
  }
}

export interface SpoolOptions {
  /** Seal the current segment once it holds at least this many bytes (default 16 MiB). */
  segmentBytes?: number;
  /** Bytes handed to the delivery function at once, rounded down to whole lines (default 4 MiB). */
  chunkBytes?: number;
  log?: Log;
}

interface Segment {
  seq: number;
  file: string;
  /** Bytes written and synced: what may be delivered. */
  bytes: number;
  /** No longer appended to: from an earlier process, full, or after a failed write. */
  sealed: boolean;
}

interface Pending {
  buf: Buffer;
  resolve: () => void;
  reject: (e: unknown) => void;
}

function countLines(buf: Buffer, end = buf.length): number {
  let n = 0;
  for (let i = buf.indexOf(NL); i >= 0 && i < end; i = buf.indexOf(NL, i + 1)) n++;
  return n;
}

/** Newlines in a whole file, read in bounded chunks. */
function countFileLines(file: string): number {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let n = 0;
    for (let got; (got = readSync(fd, buf, 0, buf.length, null)) > 0;) n += countLines(buf, got);
    return n;
  } finally {
    closeSync(fd);
  }
}

/** Reads into `buf` (grown when too small); what was read is a view of it, valid until the next read. */
async function readAt(file: string, offset: number, length: number, buf: { b: Buffer }): Promise<Buffer> {
  if (buf.b.length < length) buf.b = Buffer.allocUnsafe(length);
  const fh = await open(file, 'r');
  try {
    const { bytesRead } = await fh.read(buf.b, 0, length, offset);
    return buf.b.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

export class Spool {
  readonly dir: string;
  private readonly segmentBytes: number;
  private readonly chunkBytes: number;
  private readonly log: Log;
  /** Oldest first; the last one is being appended to unless sealed. */
  private readonly segments: Segment[] = [];
  /** Delivered bytes of segments[0]. */
  private delivered = 0;
  private rows = 0;
  private fd?: number;
  private queue: Pending[] = [];
  private writer?: Promise<void>;
  private closed = false;
  /** One read buffer for every drain: allocating chunks anew keeps the GC busy at high rates. */
  private readonly readBuf = { b: Buffer.alloc(0) };

  /** Opens (creating) the spool in `dir`, taking over the segments an earlier process left. */
  constructor(dir: string, o: SpoolOptions = {}) {
    this.dir = dir;
    this.segmentBytes = o.segmentBytes ?? 16 << 20;
    this.chunkBytes = o.chunkBytes ?? 4 << 20;
    this.log = o.log ?? (() => undefined);
    mkdirSync(dir, { recursive: true });
    this.lock();
    const found = readdirSync(dir).flatMap((f) => { const m = SEGMENT.exec(f); return m ? [{ seq: Number(m[1]), file: path.join(dir, f) }] : []; });
    for (const { seq, file } of found.sort((a, b) => a.seq - b.seq)) {
      const bytes = statSync(file).size;
      if (!bytes) { unlinkSync(file); continue; }
      this.segments.push({ seq, file, bytes, sealed: true });
      this.rows += countFileLines(file);
    }
  }

  /** `spool.lock` holds the owner's pid; a dead owner's lock (a crash) is taken over. */
  private lock(): void {
    const file = path.join(this.dir, 'spool.lock');
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const pid = Number(readFileSync(file, 'utf8'));
    if (pid && isAlive(pid)) throw new SpoolLockedError(this.dir, pid);
    writeFileSync(file, String(process.pid));
  }

  /** Rows spooled and not yet delivered (a torn tail is not a row). */
  pending(): number {
    return this.rows;
  }

  /** Whether there are synced bytes not yet delivered. */
  hasUndelivered(): boolean {
    const first = this.segments[0];
    return !!first && (this.delivered < first.bytes || first.sealed || this.segments.length > 1);
  }

  /**
   * Appends whole lines (`\n`-terminated); resolves once they are synced to disk. Appends made
   * while a write is in progress are written together by the next one.
   */
  append(lines: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`spool ${this.dir} is closed`));
    if (!lines) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.queue.push({ buf: Buffer.from(lines), resolve, reject });
      this.startWriter();
    });
  }

  /** One writer at a time; appends queued while it finishes start the next one. */
  private startWriter(): void {
    if (this.writer || !this.queue.length) return;
    this.writer = this.writeQueued().finally(() => {
      this.writer = undefined;
      this.startWriter();
    });
  }

  private async writeQueued(): Promise<void> {
    while (this.queue.length) {
      const batch = this.queue.splice(0);
      const buf = batch.length === 1 ? batch[0].buf : Buffer.concat(batch.map((p) => p.buf));
      let seg: Segment | undefined;
      try {
        seg = this.current();
        for (let off = 0; off < buf.length;) off += (await writeFd(this.fd!, buf, off, buf.length - off, null)).bytesWritten;
        await datasyncFd(this.fd!);
        seg.bytes += buf.length;
        this.rows += countLines(buf);
        if (seg.bytes >= this.segmentBytes) this.seal(seg);
        for (const p of batch) p.resolve();
      } catch (e) {
        // Part of the batch may be in the file: seal the segment at its real end, so that part
        // is read as a torn tail, and begin a new segment with the next write.
        if (seg && this.fd !== undefined) {
          const before = seg.bytes;
          seg.bytes = fstatSync(this.fd).size;
          this.rows += countLines(buf, seg.bytes - before);
          this.seal(seg);
        }
        for (const p of batch) p.reject(e);
      }
    }
  }

  /** The segment appends go to, created on first use (its directory entry synced). */
  private current(): Segment {
    const last = this.segments.at(-1);
    if (last && !last.sealed) return last;
    const seq = (last?.seq ?? 0) + 1;
    const file = path.join(this.dir, segmentName(seq));
    this.fd = openSync(file, 'a');
    const seg = { seq, file, bytes: 0, sealed: false };
    this.segments.push(seg);
    const dirFd = openSync(this.dir, 'r');
    try { fsyncSync(dirFd); } finally { closeSync(dirFd); }
    return seg;
  }

  private seal(seg: Segment): void {
    seg.sealed = true;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /**
   * Delivers every synced line, oldest first, until none is left; throws the delivery
   * function's error (those lines stay for the next drain). Must not run twice at once.
   */
  async drain(deliver: (lines: Buffer) => Promise<void>): Promise<void> {
    for (let seg = this.segments[0]; seg; seg = this.segments[0]) {
      if (this.delivered >= seg.bytes) {
        if (!seg.sealed) return;
        await unlink(seg.file); // async: freeing a segment's page cache takes a while
        this.segments.shift();
        this.delivered = 0;
        continue;
      }
      const left = seg.bytes - this.delivered;
      let want = Math.min(this.chunkBytes, left);
      let chunk = await readAt(seg.file, this.delivered, want, this.readBuf);
      // A line longer than a chunk: read on until it ends (lines are bounded by the writer).
      while (chunk.lastIndexOf(NL) < 0 && chunk.length === want && want < left) chunk = await readAt(seg.file, this.delivered, (want = Math.min(want * 2, left)), this.readBuf);
      const whole = chunk.lastIndexOf(NL) + 1;
      // A file shorter than recorded (cut by hand) ends here too.
      const atEnd = chunk.length < want || want === left;
      // The current segment's synced bytes end a line; only a sealed one can end torn.
      const consumed = atEnd && seg.sealed ? left : whole;
      if (!consumed) return; // the current segment shorter than written: nothing whole to send
      if (consumed > whole) this.log(`telemetry spool: skipped a torn line (${consumed - whole} bytes) at the end of ${seg.file}`, 'warn');
      let lines = chunk.subarray(0, whole);
      if (lines.includes(0)) lines = this.withoutNulLines(lines, seg.file);
      await this.deliverAll(lines, seg.file, deliver);
      this.delivered += consumed;
      this.rows -= countLines(chunk, whole);
    }
  }

  private withoutNulLines(lines: Buffer, file: string): Buffer {
    const kept: Buffer[] = [];
    let dropped = 0;
    for (let start = 0; start < lines.length;) {
      const end = lines.indexOf(NL, start) + 1;
      const line = lines.subarray(start, end);
      if (line.includes(0)) dropped++; else kept.push(line);
      start = end;
    }
    this.log(`telemetry spool: skipped ${dropped} line(s) holding NUL bytes in ${file} (blocks never written before a crash)`, 'warn');
    return Buffer.concat(kept);
  }

  /** Delivers `lines`, setting aside each line the receiver refuses and retrying the rest. */
  private async deliverAll(lines: Buffer, file: string, deliver: (lines: Buffer) => Promise<void>): Promise<void> {
    while (lines.length) {
      try {
        await deliver(lines);
        return;
      } catch (e) {
        if (!(e instanceof RejectedLineError)) throw e;
        let start = 0;
        for (let i = 0; i < e.line && start < lines.length; i++) start = lines.indexOf(NL, start) + 1;
        if (start >= lines.length) throw e; // names no line of this chunk: not something to set aside
        const end = lines.indexOf(NL, start) + 1;
        this.reject(lines.subarray(start, end).toString('utf8'), file, e.reason);
        lines = Buffer.concat([lines.subarray(0, start), lines.subarray(end)]);
      }
    }
  }

  private reject(line: string, file: string, reason: string): void {
    const fd = openSync(path.join(this.dir, 'rejected.jsonl'), 'a');
    try {
      writeSync(fd, JSON.stringify({ at: new Date().toISOString(), segment: path.basename(file), reason, line: line.trimEnd() }) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.log(`telemetry spool: a row was refused and set aside in ${path.join(this.dir, 'rejected.jsonl')}: ${reason}`, 'warn');
  }

  /** Waits for appends in progress, then closes the file; the segments stay for the next process. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.writer) await this.writer;
    const last = this.segments.at(-1);
    if (last && !last.sealed) this.seal(last);
    rmSync(path.join(this.dir, 'spool.lock'), { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
