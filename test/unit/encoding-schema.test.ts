import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SchemaValidationError, validateEncodingSchema, type FieldIssue } from '../../shared/index.js';

const ctx = { allowedInputRoots: ['/srv/media'] };
const good = () => ({
  input: { synthetic: { source: 'testsrc2' }, resolution: '1280x720', fps: 30, duration_s: 4 },
  output: { codec: 'h264', preset: 'veryfast', rate_control: { mode: 'crf', crf: 23 } },
  priority: 'premium',
  submitter: 'alice',
});

/** The issues a document is rejected with (fails the test if it is accepted). */
function issues(doc: unknown): FieldIssue[] {
  try {
    validateEncodingSchema(doc, ctx);
  } catch (e) {
    assert.instance(e, SchemaValidationError);
    return (e as SchemaValidationError).issues;
  }
  assert.unreachable('document was accepted');
  return [];
}
const fields = (doc: unknown) => issues(doc).map((i) => i.field);

test('a complete synthetic job is accepted with defaults applied', () => {
  const s = validateEncodingSchema(good(), ctx);
  assert.equal(s.output.encoder, 'libx264');
  assert.equal(s.output.passes, 1);
  assert.equal(s.input, { kind: 'synthetic', source: 'testsrc2', resolution: { width: 1280, height: 720 }, fps: 30, duration_s: 4, noise: 0 });
});

test('a validated schema validates again to itself, so it can be re-checked after travelling', () => {
  const once = validateEncodingSchema(good(), ctx);
  assert.equal(validateEncodingSchema(JSON.parse(JSON.stringify(once)), ctx), once);
  const file = validateEncodingSchema({ ...good(), input: { path: '/srv/media/x.mp4', fps: 25 } }, ctx);
  assert.equal(validateEncodingSchema(JSON.parse(JSON.stringify(file)), ctx), file);
});

test('an unknown codec is rejected naming output.codec', () => {
  const d = good(); d.output.codec = 'divx';
  const i = issues(d);
  assert.equal(i[0].field, 'output.codec');
  assert.match(i[0].reason, /unknown value "divx"/);
});

test('a negative bitrate is rejected naming the bitrate field', () => {
  const d = good() as any; d.output.rate_control = { mode: 'bitrate', bitrate_kbps: -500 };
  const i = issues(d);
  assert.equal(i.map((x) => x.field), ['output.rate_control.bitrate_kbps']);
  assert.match(i[0].reason, /must not be negative/);
});

test('a 0x0 resolution is rejected naming width and height', () => {
  const d = good(); d.input.resolution = '0x0';
  assert.equal(fields(d), ['input.resolution.width', 'input.resolution.height']);
});

test('a missing input is rejected naming input', () => {
  const d = good() as any; delete d.input;
  const i = issues(d);
  assert.equal(i[0], { field: 'input', reason: 'is required' });
});

test('an input path outside the allowed roots is rejected', () => {
  const d = good() as any; d.input = { path: '/etc/passwd' };
  const i = issues(d);
  assert.equal(i[0].field, 'input.path');
  assert.match(i[0].reason, /outside the allowed input roots/);
});

test('a path that climbs out of an allowed root with .. is rejected', () => {
  const d = good() as any; d.input = { path: '/srv/media/../../etc/shadow' };
  assert.equal(fields(d), ['input.path']);
});

test('a path inside an allowed root is accepted and normalised', () => {
  const d = good() as any; d.input = { path: '/srv/media/a/../clip.mp4', codec: 'h264', bitrate_kbps: 8000 };
  const s = validateEncodingSchema(d, ctx);
  assert.equal(s.input.kind === 'file' && s.input.path, '/srv/media/clip.mp4');
});

test('an option that is not in the allow-list is rejected naming it', () => {
  const d = good() as any; d.output.options = { 'x264-params': 'a=b', tune: 'film' };
  const i = issues(d);
  assert.equal(i.map((x) => x.field), ['output.options.x264-params']);
  assert.match(i[0].reason, /not in the allow-list/);
});

test('an allowed option with a shell-like value is rejected', () => {
  const d = good() as any; d.output.options = { tune: 'film; rm -rf /' };
  assert.equal(fields(d), ['output.options.tune']);
});

test('a preset from another encoder is rejected', () => {
  const d = good(); d.output.preset = 'p4';
  assert.equal(fields(d), ['output.preset']);
});

test('every wrong field is reported at once', () => {
  const d = good() as any;
  d.output.codec = 'h265'; d.input.fps = 0; d.priority = 'urgent'; d.color = 'red';
  assert.equal(fields(d).sort(), ['color', 'input.fps', 'output.codec', 'priority']);
});

test('two-pass with CRF is refused because it needs a bitrate', () => {
  const d = good() as any; d.output.passes = 2;
  assert.equal(fields(d), ['output.passes']);
});

test('odd dimensions are refused for 4:2:0 output', () => {
  const d = good() as any; d.output.resolution = '1281x720';
  assert.equal(fields(d), ['output.resolution']);
});

test('a job group is accepted with spread placement by default', () => {
  const s = validateEncodingSchema({ ...good(), group: { id: 'ladder-1', size: 3 } }, ctx);
  assert.equal(s.group, { id: 'ladder-1', size: 3, placement: 'spread' });
  assert.equal(validateEncodingSchema({ ...good(), group: { id: 'l', size: 2, placement: 'together' } }, ctx).group?.placement, 'together');
});

test('a job group with a bad id, size or placement is refused naming each field', () => {
  assert.equal(fields({ ...good(), group: { id: 'a b', size: 1, placement: 'nearby', extra: 1 } }).sort(), ['group.extra', 'group.id', 'group.placement', 'group.size']);
  assert.equal(fields({ ...good(), group: { id: 'g' } }), ['group.size']);
  assert.equal(fields({ ...good(), group: { id: 'g', size: 33 } }), ['group.size']);
});

test('a rate control whose mode is wrong or missing names only the mode, as the other keys depend on it', () => {
  for (const [rc, reason] of [[{ mode: 'vbr', crf: 20 }, 'unknown value "vbr" (expected one of: crf, bitrate)'], [{ crf: 20 }, 'is required']] as const) {
    const d = good() as any; d.output.rate_control = rc;
    assert.equal(issues(d), [{ field: 'output.rate_control.mode', reason }]);
  }
});

test('a document that is not a mapping is refused', () => {
  assert.equal(fields('just a string'), ['(document)']);
});

test.run();
