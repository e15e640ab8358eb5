import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BrainPredictor, FEATURE_COUNT, FEATURE_NAMES, encodeFeatures, loadModel, priorSamples, ModelLoadError } from '../../models/index.js';
import { validateEncodingSchema } from '../../shared/index.js';

const schema = (over: Record<string, unknown> = {}) => validateEncodingSchema({
  input: { synthetic: { source: 'testsrc2' }, resolution: '1280x720', fps: 30, duration_s: 10 },
  output: { codec: 'h264', preset: 'medium', rate_control: { mode: 'crf', crf: 23 }, ...over },
}, { allowedInputRoots: [] });

test('the feature vector has one documented column per value', () => {
  const v = encodeFeatures(schema());
  assert.is(v.length, FEATURE_COUNT);
  assert.is(FEATURE_NAMES.length, FEATURE_COUNT);
  assert.ok(v.every(Number.isFinite));
});

test('the shipped model predicts finite positive usage with an upper bound above the estimate', () => {
  const m = loadModel();
  const p = m.predict(schema());
  for (const k of ['cpu_cores', 'memory_gb', 'bandwidth_mbps', 'duration_s'] as const) {
    assert.ok(Number.isFinite(p.expected[k]) && p.expected[k] > 0, `${k} = ${p.expected[k]}`);
    assert.ok(p.upper[k] >= p.expected[k], `${k} upper below expected`);
  }
});

test('a slower preset is predicted to need more CPU time than a faster one', () => {
  const m = loadModel();
  const fast = m.predict(schema({ preset: 'ultrafast' }), 1), slow = m.predict(schema({ preset: 'veryslow' }), 1);
  assert.ok(slow.expected.duration_s > 3 * fast.expected.duration_s, `${slow.expected.duration_s} vs ${fast.expected.duration_s}`);
});

test('granting fewer cores predicts a longer encode', () => {
  const m = loadModel();
  const s = schema({ resolution: '1920x1080' });
  assert.ok(m.predict(s, 1).expected.duration_s > m.predict(s, 8).expected.duration_s);
});

test('a model file built for another feature spec is refused with a clear error', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-model-'));
  const good = BrainPredictor.train(priorSamples(50), { version: 't', source: 'test', margins: { cpu_cores: 1, memory_gb: 1, bandwidth_mbps: 1, cpu_s_per_frame: 1 }, iterations: 10 });
  const file = path.join(dir, 'm.json');
  writeFileSync(file, JSON.stringify({ ...good.file, feature_spec: 'features-v0' }));
  assert.throws(() => loadModel(file), (e: Error) => e instanceof ModelLoadError && /features-v0/.test(e.message));
  writeFileSync(file, '{not json');
  assert.throws(() => loadModel(file), (e: Error) => e instanceof ModelLoadError && /cannot load model/.test(e.message));
});

test.run();
