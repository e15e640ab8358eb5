/**
 * The spool's on-disk format and its delivery rules, on real files in a temporary directory.
 * The receiver here is a function collecting what it is handed; delivery into QuestDB is
 * covered by the integration tests.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { RejectedLineError, Spool, SpoolLockedError, segmentName } from '../../node-agent/telemetry/spool.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'prescient-spool-'));
  dirs.push(d);
  return d;
}
test.after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const lines = (from: number, n: number) => Array.from({ length: n }, (_, i) => `t,job_id=j v=${from + i}i ${from + i}000000\n`).join('');
const rejection = (p: Promise<unknown>) => p.then(() => assert.unreachable('expected a rejection'), (e: Error) => e) as Promise<Error>;
const segments = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.ilp')).sort();

/** A receiver that keeps every line it is handed. */
function collector() {
  const got: string[] = [];
  return { got, deliver: async (b: Buffer) => { got.push(...b.toString('utf8').split('\n').filter(Boolean)); } };
}

test('appended rows land in a numbered segment, one line per row, synced before append resolves', async () => {
  const dir = tmp();
  const s = new Spool(dir);
  await s.append(lines(0, 3));
  assert.equal(segments(dir), [segmentName(1)]);
  assert.is(segmentName(1), '000000000001.ilp');
  assert.is(readFileSync(path.join(dir, segmentName(1)), 'utf8'), lines(0, 3));
  assert.is(s.pending(), 3);
  await s.close();
});

test('the current segment is sealed at its size limit and appends go on in the next one, in order', async () => {
  const dir = tmp();
  const s = new Spool(dir, { segmentBytes: 100 });
  for (let i = 0; i < 10; i++) await s.append(lines(i * 2, 2));
  const files = segments(dir);
  assert.ok(files.length >= 4, `expected rollover, got ${files.join(',')}`);
  assert.equal(files, files.map((_, i) => segmentName(i + 1)));
  assert.is(files.map((f) => readFileSync(path.join(dir, f), 'utf8')).join(''), lines(0, 20));
  assert.is(s.pending(), 20);
  await s.close();
});

test('concurrent appends all resolve and are stored in the order they were made', async () => {
  const dir = tmp();
  const s = new Spool(dir, { segmentBytes: 4096 });
  await Promise.all(Array.from({ length: 200 }, (_, i) => s.append(lines(i, 1))));
  assert.is(segments(dir).map((f) => readFileSync(path.join(dir, f), 'utf8')).join(''), lines(0, 200));
  assert.is(s.pending(), 200);
  await s.close();
});

test('a drain delivers every row oldest first and deletes each sealed segment once all of it is delivered', async () => {
  const dir = tmp();
  const s = new Spool(dir, { segmentBytes: 200, chunkBytes: 128 });
  for (let i = 0; i < 10; i++) await s.append(lines(i * 3, 3));
  const c = collector();
  await s.drain(c.deliver);
  assert.equal(c.got, lines(0, 30).trimEnd().split('\n'));
  assert.is(s.pending(), 0);
  // Only the segment still being appended to may remain, fully delivered.
  assert.ok(segments(dir).length <= 1, segments(dir).join(','));
  await s.append(lines(30, 2));
  await s.drain(c.deliver);
  assert.is(c.got.length, 32);
  await s.close();
});

test('a failed delivery keeps the rows, and the next drain goes on from where it stopped', async () => {
  const dir = tmp();
  const s = new Spool(dir, { segmentBytes: 300, chunkBytes: 100 });
  for (let i = 0; i < 8; i++) await s.append(lines(i * 2, 2));
  const c = collector();
  let calls = 0;
  assert.match((await rejection(s.drain(async (b) => { if (++calls === 3) throw new Error('questdb down'); await c.deliver(b); }))).message, /questdb down/);
  const sent = c.got.length;
  assert.ok(sent > 0 && sent < 16);
  assert.is(s.pending(), 16 - sent);
  assert.ok(segments(dir).length > 0);
  await s.drain(c.deliver);
  assert.equal(c.got, lines(0, 16).trimEnd().split('\n'), 'every row once, in order');
  assert.is(s.pending(), 0);
  await s.close();
});

test('a new spool takes over the segments left behind, delivers them first and appends to a new segment', async () => {
  const dir = tmp();
  const a = new Spool(dir);
  await a.append(lines(0, 4));
  await a.close();
  const b = new Spool(dir);
  assert.is(b.pending(), 4);
  await b.append(lines(4, 2));
  assert.equal(segments(dir), [segmentName(1), segmentName(2)]);
  assert.is(readFileSync(path.join(dir, segmentName(1)), 'utf8'), lines(0, 4), 'the old segment is not appended to');
  const c = collector();
  await b.drain(c.deliver);
  assert.equal(c.got, lines(0, 6).trimEnd().split('\n'));
  await b.close();
});

test('a torn last line is skipped and the rows behind it are still delivered', async () => {
  const dir = tmp();
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, segmentName(1)), lines(0, 3) + 't,job_id=j v=99i 9');
  writeFileSync(path.join(dir, segmentName(2)), lines(3, 2));
  const logs: string[] = [];
  const s = new Spool(dir, { log: (m) => logs.push(m) });
  assert.is(s.pending(), 5, 'a torn line is not a row');
  const c = collector();
  await s.drain(c.deliver);
  assert.equal(c.got, lines(0, 5).trimEnd().split('\n'));
  assert.is(s.pending(), 0);
  assert.equal(segments(dir), []);
  assert.ok(logs.some((l) => /torn line/.test(l)), logs.join('\n'));
});

test('lines holding NUL bytes (blocks never written before a power loss) are skipped', async () => {
  const dir = tmp();
  writeFileSync(path.join(dir, segmentName(1)), lines(0, 2) + '\0\0\0\0\0\0\n' + lines(2, 1) + '\0'.repeat(32));
  const s = new Spool(dir);
  const c = collector();
  await s.drain(c.deliver);
  assert.equal(c.got, lines(0, 3).trimEnd().split('\n'));
  assert.is(s.pending(), 0);
  assert.equal(segments(dir), []);
});

test('a line the receiver refuses is set aside in rejected.jsonl and the rows around it are delivered', async () => {
  const dir = tmp();
  const s = new Spool(dir);
  await s.append(lines(0, 2) + 't,job_id=j v="text"i 5000000\n' + lines(2, 2));
  const c = collector();
  await s.drain(async (b) => {
    const i = b.toString().split('\n').findIndex((l) => l.includes('"text"'));
    if (i >= 0) throw new RejectedLineError(i, 'cast error');
    await c.deliver(b);
  });
  assert.equal(c.got, lines(0, 4).trimEnd().split('\n'));
  const rejected = readFileSync(path.join(dir, 'rejected.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { line: string; reason: string });
  assert.is(rejected.length, 1);
  assert.is(rejected[0].line, 't,job_id=j v="text"i 5000000');
  assert.is(rejected[0].reason, 'cast error');
  assert.is(s.pending(), 0);
  await s.close();
});

test('a line longer than the read chunk is delivered whole', async () => {
  const dir = tmp();
  const s = new Spool(dir, { chunkBytes: 64 });
  const long = `t,job_id=j s="${'x'.repeat(500)}" 1000000\n`;
  await s.append(lines(0, 1) + long + lines(1, 1));
  const c = collector();
  await s.drain(c.deliver);
  assert.equal(c.got, [lines(0, 1).trimEnd(), long.trimEnd(), lines(1, 1).trimEnd()]);
  await s.close();
});

test('empty segments are removed on open and a closed spool refuses appends', async () => {
  const dir = tmp();
  writeFileSync(path.join(dir, segmentName(7)), '');
  const s = new Spool(dir);
  assert.not.ok(existsSync(path.join(dir, segmentName(7))));
  assert.is(s.pending(), 0);
  await s.close();
  assert.match((await rejection(s.append(lines(0, 1)))).message, /closed/);
  appendFileSync(path.join(dir, 'unrelated.txt'), 'x');
  assert.is(new Spool(dir).pending(), 0, 'other files are not segments');
});

test('a spool held by a live process is refused; the lock of one that died is taken over', async () => {
  const dir = tmp();
  const s = new Spool(dir);
  assert.throws(() => new Spool(dir), (e: Error) => e instanceof SpoolLockedError && e.pid === process.pid);
  await s.close();
  const dead = spawnSync(process.execPath, ['-e', '']).pid!;
  writeFileSync(path.join(dir, 'spool.lock'), String(dead));
  const t = new Spool(dir);
  assert.is(readFileSync(path.join(dir, 'spool.lock'), 'utf8'), String(process.pid));
  await t.close();
  assert.not.ok(existsSync(path.join(dir, 'spool.lock')), 'close releases it');
});

test.run();
