import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { calibrationMatrix, DEFAULT_CONTENTS } from '../../node-agent/calibrate/matrix.js';

const ctx = { allowedInputRoots: ['/srv/media'] };

test('the default matrix spans every CPU codec, three presets, three sizes, two rate controls and four contents', () => {
  const runs = calibrationMatrix({}, ctx, 2);
  // h264, hevc, vp9 and av1 (svt + aom) = 5 CPU encoders
  assert.is(runs.length, 5 * 3 * 3 * 2 * DEFAULT_CONTENTS.length);
  assert.ok(runs.every((r) => !r.schema.output.encoder.endsWith('nvenc')));
  assert.is(new Set(runs.map((r) => r.label)).size, runs.length, 'labels are unique');
});

test('GPU encoders are calibrated only on a node with a GPU', () => {
  const runs = calibrationMatrix({ codecs: ['h264'] }, ctx, 2, true);
  assert.ok(runs.some((r) => r.schema.output.encoder === 'h264_nvenc'));
});

test('a limit keeps runs spread over every dimension of the matrix, without repeats', () => {
  const cut = calibrationMatrix({ limit: 12 }, ctx, 2);
  assert.is(cut.length, 12);
  assert.is(new Set(cut.map((r) => r.label)).size, 12);
  assert.is(new Set(cut.map((r) => r.schema.output.encoder)).size, 5);
  const content = (r: (typeof cut)[number]) => (r.schema.input.kind === 'synthetic' ? `${r.schema.input.source}+${r.schema.input.noise}` : 'file');
  assert.ok(new Set(cut.map(content)).size >= 3, 'contents vary');
  assert.ok(new Set(cut.map((r) => r.schema.output.resolution?.width)).size === 3, 'sizes vary');
  assert.equal(calibrationMatrix({ limit: 12 }, ctx, 2).map((r) => r.label), cut.map((r) => r.label), 'deterministic');
});

test('user files join the matrix as file inputs and core counts multiply it', () => {
  const runs = calibrationMatrix({ codecs: ['vp9'], resolutions: ['640x360'], contents: [{ path: '/srv/media/a.mp4' }], core_counts: [1, 2] }, ctx, 2);
  assert.is(runs.length, 3 * 2 * 2);
  assert.ok(runs.every((r) => r.schema.input.kind === 'file'));
  assert.equal([...new Set(runs.map((r) => r.cores))], [1, 2]);
});

test('core counts the node does not have are refused', () => {
  assert.throws(() => calibrationMatrix({ core_counts: [4] }, ctx, 2), /between 1 and 2/);
});

test('a file outside the allowed roots is refused like any job', () => {
  assert.throws(() => calibrationMatrix({ contents: [{ path: '/etc/passwd' }] }, ctx, 2), /input\.path/);
});

test.run();
