/**
 * The services' structured logs (issue 20): JSON objects with member, component and the level the
 * call site gave (info when none), filtered by --log-level, secrets redacted; a terminal gets
 * readable lines. A plain `(message) => void` is a Log too.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Writable } from 'node:stream';
import { memberLogger, parseLogLevel, sentenceLog, type LineLevel, type Log } from '../../shared/log.js';

function capture(): { stream: Writable; lines: () => string[] } {
  let text = '';
  const stream = new Writable({ write(chunk, _e, cb) { text += String(chunk); cb(); } });
  return { stream, lines: () => text.split('\n').filter(Boolean) };
}

const json = (lines: string[]) => lines.map((l) => JSON.parse(l) as Record<string, string>);

test('each line is one JSON object naming the member, the component in brackets and the level given, with credentials redacted', () => {
  const c = capture();
  const log = sentenceLog(memberLogger('coordinator/c1', { format: 'json', stream: c.stream }));
  log('[leader c1 t3] j1 placed on node-a: 2 cores');
  log('could not POST the alert to https://ops:secret@hooks.example/x?token=abc: 500', 'warn');
  const [a, b] = json(c.lines());
  assert.is(a.member, 'coordinator/c1');
  assert.is(a.component, 'leader c1 t3');
  assert.is(a.level, 'info');
  assert.match(a.msg, /j1 placed on node-a/);
  assert.ok(Date.parse(a.time) > 0);
  assert.is(b.level, 'warn');
  assert.is(b.component, undefined);
  assert.not.match(c.lines().join('\n'), /secret|token=abc/);
});

test('a line is written at exactly the level it is given, whatever its words', () => {
  const c = capture();
  const log = sentenceLog(memberLogger('node/n1', { format: 'json', level: 'trace', stream: c.stream }));
  const levels: LineLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
  for (const l of levels) log(`[agent n1] a line at ${l}`, l);
  // Sentences the old inference read as warn or error: without a level they are info.
  log('[agent n1] lost contact with the leader: UNAVAILABLE');
  log('could not start leading: boom');
  log('submission consumer failed, retrying: x');
  // And one that reads as routine, written at error because the call site says so.
  log('[agent n1] j1 succeeded in 2.00 s', 'error');
  assert.equal(json(c.lines()).map((o) => o.level), [...levels, 'info', 'info', 'info', 'error']);
  assert.equal(json(c.lines()).map((o) => o.msg).slice(0, 2), ['[agent n1] a line at trace', '[agent n1] a line at debug']);
});

test('--log-level warn (memberLogger\'s level) writes warn and above only', () => {
  const c = capture();
  const log = sentenceLog(memberLogger('node/n1', { format: 'json', level: 'warn', stream: c.stream }));
  log('[agent n1] serving gRPC on 127.0.0.1:1');
  log('[agent n1] quality PSNR 40 dB', 'debug');
  log('[agent n1] registered with leader c1', 'info');
  log('[agent n1] lost contact with the leader: UNAVAILABLE', 'warn');
  log('[agent n1] j1 failed: ffmpeg exited 1', 'error');
  assert.equal(json(c.lines()).map((o) => [o.level, o.msg]), [
    ['warn', '[agent n1] lost contact with the leader: UNAVAILABLE'],
    ['error', '[agent n1] j1 failed: ffmpeg exited 1'],
  ]);
});

test('PRESCIENT_LOG_LEVEL=warn filters the same way when no level option is given; info is the default', () => {
  const before = process.env.PRESCIENT_LOG_LEVEL;
  try {
    process.env.PRESCIENT_LOG_LEVEL = 'warn';
    const c = capture();
    const log = sentenceLog(memberLogger('coordinator/c1', { format: 'json', stream: c.stream }));
    log('[leader c1 t1] elected');
    log('[leader c1 t1] per-job detail', 'debug');
    log('[leader c1 t1] could not save the ledger (will retry with the next change): x', 'warn');
    assert.equal(json(c.lines()).map((o) => o.level), ['warn']);

    delete process.env.PRESCIENT_LOG_LEVEL;
    const d = capture();
    const byDefault = sentenceLog(memberLogger('coordinator/c1', { format: 'json', stream: d.stream }));
    byDefault('[leader c1 t1] per-job detail', 'debug');
    byDefault('[leader c1 t1] elected');
    assert.equal(json(d.lines()).map((o) => o.level), ['info']);
  } finally {
    if (before === undefined) delete process.env.PRESCIENT_LOG_LEVEL;
    else process.env.PRESCIENT_LOG_LEVEL = before;
  }
});

test('on a terminal a line reads as time, level (unless info) and the sentence', () => {
  const c = capture();
  const log = sentenceLog(memberLogger('node/n1', { format: 'text', stream: c.stream }));
  log('[agent n1] registered with leader c1');
  log('refused an enrolment from a caller with no member certificate', 'warn');
  log('refused to enrol n2 (join-x): the token is used up');
  const [a, b, d] = c.lines();
  assert.match(a, /^\d{4}-\d\d-\d\dT[\d:.]+Z \[agent n1\] registered with leader c1$/);
  assert.match(b, /Z WARN refused an enrolment/);
  assert.match(d, /Z refused to enrol n2/);
});

test('a plain (message) => void is a Log: it is handed the level and may ignore it', () => {
  const lines: string[] = [];
  const plain: Log = (m) => lines.push(m);
  plain('could not reach Consul, retrying', 'warn');
  plain('registered');
  assert.equal(lines, ['could not reach Consul, retrying', 'registered']);
  const seen: [string, LineLevel | undefined][] = [];
  const levelled: Log = (m, level) => { seen.push([m, level]); };
  levelled('a', 'error');
  levelled('b');
  assert.equal(seen, [['a', 'error'], ['b', undefined]]);
  // 'silent' only filters: no line is written at it.
  // @ts-expect-error 'silent' is not a LineLevel
  plain('never', 'silent');
});

test('--log-level takes the known levels only, naming the flag', () => {
  assert.is(parseLogLevel('debug'), 'debug');
  assert.is(parseLogLevel('silent'), 'silent');
  assert.is(parseLogLevel(undefined), undefined);
  assert.throws(() => parseLogLevel('loud'), /^--log-level: must be one of/);
});

test.run();
