/**
 * The leader gives memory back after a burst of large submissions (issue 17's poison bench):
 * a full collection per `stepBytes` taken and one once quiet, never for a trickle.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setTimeout as sleep } from 'node:timers/promises';
import { Reclaimer } from '../../coordinator/leader/reclaim.js';

test('a burst of large submissions is collected as it comes and once more when it is over', async () => {
  let runs = 0;
  const r = new Reclaimer({ gc: () => { runs++; }, stepBytes: 1000, quietMs: 50, largeBytes: 100 });
  for (let i = 0; i < 10; i++) r.took(300); // 3,000 bytes: three steps
  await new Promise((res) => setImmediate(res));
  assert.ok(runs >= 1 && runs <= 3, `collections while taking: ${runs}`);
  const during = runs;
  await sleep(120);
  assert.is(runs, during + 1, 'one more once quiet');
  r.stop();
});

test('only the collection once quiet compacts, and it compacts with V8 told to', async () => {
  const log: string[] = [];
  let compacting = false;
  const r = new Reclaimer({
    gc: () => { log.push(compacting ? 'compacting' : 'plain'); }, stepBytes: 1000, quietMs: 50, largeBytes: 100,
    compacting: (collect) => { compacting = true; try { collect(); } finally { compacting = false; } },
  });
  for (let i = 0; i < 4; i++) r.took(300);
  await new Promise((res) => setImmediate(res));
  await sleep(120);
  assert.equal(log, ['plain', 'compacting']);
  r.stop();
  // The default sets V8's flag for that one collection, and clears it again after.
  const v8 = (await import('node:v8')).default;
  const seen: string[] = [];
  const set = v8.setFlagsFromString;
  (v8 as { setFlagsFromString: (f: string) => void }).setFlagsFromString = (f: string) => { seen.push(f); set(f); };
  try {
    const d = new Reclaimer({ gc: () => { seen.push('gc'); }, stepBytes: 1_000_000, quietMs: 20 });
    d.took(400_000);
    await sleep(60);
    d.stop();
  } finally {
    (v8 as { setFlagsFromString: (f: string) => void }).setFlagsFromString = set;
  }
  assert.equal(seen, ['--compact-on-every-full-gc', 'gc', '--no-compact-on-every-full-gc']);
});

test('a trickle of large submissions never costs a collection', async () => {
  let runs = 0;
  const r = new Reclaimer({ gc: () => { runs++; }, stepBytes: 1_000_000, quietMs: 20, largeBytes: 100 });
  for (let i = 0; i < 50; i++) r.took(1000); // 50 KB, under a quarter of a step
  await sleep(80);
  assert.is(runs, 0);
  r.stop();
});

test('ordinary submissions never count, however many (a busy leader pays no collection for them)', async () => {
  let runs = 0;
  const r = new Reclaimer({ gc: () => { runs++; }, stepBytes: 100_000, quietMs: 20 });
  for (let i = 0; i < 10_000; i++) r.took(2000); // 20 MB of 2 KB jobs
  await sleep(80);
  assert.is(runs, 0);
  r.stop();
});

test('a stopped reclaimer runs no collection after its quiet period', async () => {
  let runs = 0;
  const r = new Reclaimer({ gc: () => { runs++; }, stepBytes: 1_000_000, quietMs: 30 });
  r.took(400_000); // one large submission, over a quarter of a step
  r.stop();
  await sleep(80);
  assert.is(runs, 0);
});

test.run();
