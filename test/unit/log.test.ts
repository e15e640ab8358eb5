/**
 * The services' structured logs (issue 20): JSON objects with member, component and a level read
 * from the sentence, filtered by --log-level, secrets redacted; a terminal gets readable lines.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Writable } from 'node:stream';
import { levelOf, memberLogger, parseLogLevel, sentenceLog } from '../../shared/log.js';

function capture(): { stream: Writable; lines: () => string[] } {
  let text = '';
  const stream = new Writable({ write(chunk, _e, cb) { text += String(chunk); cb(); } });
  return { stream, lines: () => text.split('\n').filter(Boolean) };
}

test('each line is one JSON object naming the member, the component in brackets and the level, with credentials redacted', () => {
  const c = capture();
  const log = sentenceLog(memberLogger('coordinator/c1', { format: 'json', stream: c.stream }));
  log('[leader c1 t3] j1 placed on node-a: 2 cores');
  log('could not POST the alert to https://ops:secret@hooks.example/x?token=abc: 500');
  const [a, b] = c.lines().map((l) => JSON.parse(l) as Record<string, string>);
  assert.is(a.member, 'coordinator/c1');
  assert.is(a.component, 'leader c1 t3');
  assert.is(a.level, 'info');
  assert.match(a.msg, /j1 placed on node-a/);
  assert.ok(Date.parse(a.time) > 0);
  assert.is(b.level, 'warn');
  assert.not.match(c.lines().join('\n'), /secret|token=abc/);
});

test('the level filters what is written', () => {
  const c = capture();
  const log = sentenceLog(memberLogger('node/n1', { format: 'json', level: 'warn', stream: c.stream }));
  log('[agent n1] serving gRPC on 127.0.0.1:1');
  log('[agent n1] lost contact with the leader: UNAVAILABLE');
  assert.equal(c.lines().map((l) => JSON.parse(l).level), ['warn']);
});

test('on a terminal a line reads as time, level (unless info) and the sentence', () => {
  const c = capture();
  const log = sentenceLog(memberLogger('node/n1', { format: 'text', stream: c.stream }));
  log('[agent n1] registered with leader c1');
  log('refused an enrolment from a caller with no member certificate');
  const [a, b] = c.lines();
  assert.match(a, /^\d{4}-\d\d-\d\dT[\d:.]+Z \[agent n1\] registered with leader c1$/);
  assert.match(b, / WARN refused an enrolment/);
});

test('sentences are levelled by how they start, past a bracketed component', () => {
  assert.is(levelOf('[leader c1 t1] j1 placed on n: 1 core'), 'info');
  assert.is(levelOf('[agent a] lost contact with the leader'), 'warn');
  assert.is(levelOf('could not save the ledger (will retry with the next change): x'), 'warn');
  assert.is(levelOf('submission consumer failed, retrying: x'), 'warn');
  assert.is(levelOf('could not start leading: boom'), 'error');
});

test('--log-level takes the known levels only, naming the flag', () => {
  assert.is(parseLogLevel('debug'), 'debug');
  assert.is(parseLogLevel(undefined), undefined);
  assert.throws(() => parseLogLevel('loud'), /^--log-level: must be one of/);
});

test.run();
