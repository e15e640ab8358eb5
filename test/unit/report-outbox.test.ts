/**
 * The agent's outbox (node-agent/outbox.ts): finished reports a leader has not taken yet outlive
 * the agent, and what is read back is checked before it is sent.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ReportOutbox, storedReport } from '../../node-agent/outbox.js';

const invalidStoredReport = (x: unknown, node: string) => { const r = storedReport(x, node); return 'why' in r ? r.why : undefined; };
import type { TaskStatusReport } from '../../shared/index.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'outbox-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const report = (task_id: string, state: TaskStatusReport['state'], node_id = 'na'): TaskStatusReport => ({
  task_id, node_id, state, reason: '', actual: state === 'succeeded' ? { cpu_cores: 1, gpu_percent: 0, memory_gb: 0.1, bandwidth_mbps: NaN, duration_s: 2 } : null,
  output_bytes: 10, output_path: '/out/x.mp4', psnr_db: NaN, ssim: 0.99, pinned: true, frames: 25, term: 3, quality: 'pending',
});

test('a finished report not yet delivered is there for the next agent to send, NaN figures and all; running reports are not kept', () => {
  const file = path.join(dir, 'a.json');
  const first = new ReportOutbox(file, 'na', () => undefined);
  first.push(report('j1', 'running'));
  first.push(report('j1', 'succeeded'));
  first.push(report('j2', 'failed'));
  first.shift(); // the running report was delivered
  // The agent is killed here: a new one reads the file.
  const next = new ReportOutbox(file, 'na', () => undefined);
  assert.is(next.load(), 2);
  assert.is(next.first?.task_id, 'j1');
  assert.is(next.first?.state, 'succeeded');
  assert.ok(Number.isNaN(next.first?.psnr_db), 'psnr_db NaN, as sent');
  assert.ok(Number.isNaN(next.first?.actual?.bandwidth_mbps));
  assert.is(next.first?.ssim, 0.99);
  next.shift();
  assert.is(new ReportOutbox(file, 'na', () => undefined).load(), 1, 'the report still to deliver stays on disk');
  next.shift();
  assert.not.ok(existsSync(file), 'with nothing left to deliver the file goes (no empty list written and synced)');
  assert.is(new ReportOutbox(file, 'na', () => undefined).load(), 0, 'delivered reports are gone from disk too');
});

test('what is read back is checked: another node\'s report, a broken entry and a file that is not JSON are dropped and said, the good ones kept', () => {
  const file = path.join(dir, 'b.json');
  const bad = [
    report('x', 'succeeded', 'nb'),
    { ...report('y', 'succeeded'), output_bytes: 'lots' },
    { ...report('z', 'succeeded'), actual: 'fast' },
    { ...report('w', 'running') },
    report('ok', 'succeeded'),
  ];
  writeFileSync(file, JSON.stringify(bad));
  const said: string[] = [];
  const box = new ReportOutbox(file, 'na', (m) => said.push(m));
  assert.is(box.load(), 1);
  assert.is(box.first?.task_id, 'ok');
  assert.is(said.length, 4);
  assert.match(said[0], 'node_id "nb" is not this node');
  assert.match(said[1], 'output_bytes "lots" is not a number');
  assert.match(said[2], 'actual "fast" is not a mapping');
  assert.match(said[3], 'state "running"');
  writeFileSync(file, '{"torn');
  const said2: string[] = [];
  assert.is(new ReportOutbox(file, 'na', (m) => said2.push(m)).load(), 0);
  assert.match(said2[0], 'not JSON');
});

test('a report check names the field that is wrong', () => {
  // As read back: JSON wrote NaN as null.
  const stored = (id: string) => JSON.parse(JSON.stringify(report(id, 'succeeded')));
  assert.is(invalidStoredReport(stored('a'), 'na'), undefined);
  assert.match(invalidStoredReport({ ...stored('a'), pinned: 'yes' }, 'na')!, 'pinned');
  assert.match(invalidStoredReport({ ...stored('a'), task_id: '' }, 'na')!, 'task_id');
  assert.match(invalidStoredReport({ ...stored('a'), actual: { ...stored('a').actual, duration_s: 'x' } }, 'na')!, 'actual.duration_s');
  assert.match(invalidStoredReport(null, 'na')!, 'null is not a mapping');
});

test('the file is written whole each time (no torn list after a crash), readable only by the agent', () => {
  const file = path.join(dir, 'c.json');
  const box = new ReportOutbox(file, 'na', () => undefined);
  for (let i = 0; i < 20; i++) box.push(report(`t${i}`, 'succeeded'));
  assert.is(JSON.parse(readFileSync(file, 'utf8')).length, 20);
  assert.is(statSync(file).mode & 0o777, 0o600);
  for (let i = 0; i < 18; i++) box.shift();
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).map((r: TaskStatusReport) => r.task_id), ['t18', 't19']);
});

test.run();
