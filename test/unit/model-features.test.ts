/** Feature spec features-v4: how an EncodeRecord becomes the vector the networks read (models/features.ts). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateEncodingSchema } from '../../shared/index.js';
import {
  CATEGORIES, FEATURE_SPEC_VERSION, checkFeatureState, describeSchema, emptyRecord, encodeFeatures, featureNames, fitFeatures, newNotes,
  type EncodeRecord, type FeatureState,
} from '../../models/index.js';

const ENCODER_OF: Record<string, string> = { h264: 'libx264', hevc: 'libx265', vp9: 'libvpx-vp9', av1: 'libsvtav1' };

/**
 * Ten training records: five h264, three hevc, two vp9 (too rare for a column); CRF on even
 * rows and a bitrate on odd ones (so both are sometimes missing); noise 0–90; an extra column
 * on the first six; no row knows SI/TI, GOP or frame types.
 */
function trainingRecord(i: number): EncodeRecord {
  const codec = i < 5 ? 'h264' : i < 8 ? 'hevc' : 'vp9';
  const [width, height] = [[640, 360], [1280, 720], [1920, 1080]][i % 3];
  return {
    output: {
      codec, encoder: ENCODER_OF[codec], preset: codec === 'vp9' ? '4' : 'medium', width, height, fps: 30, passes: 1,
      ...(i % 2 ? { rc_mode: 'bitrate', bitrate_kbps: 1000 + 500 * i } : { rc_mode: 'crf', crf: 20 + i }),
    },
    input: { codec: 'rawvideo', width, height, fps: [24, 25, 30][i % 3], duration_s: 2 + i },
    content: { noise: 10 * i },
    node: { cores: 2 ** (i % 4), hw_class: 'epyc', gpus: 0 },
    extra: i < 6 ? { size_ratio: i / 10 } : {},
  };
}
const TRAINING = Array.from({ length: 10 }, (_, i) => trainingRecord(i));
const STATE = fitFeatures(TRAINING);

/** A copy of a training record with `patch` applied. */
function variant(i: number, patch: (r: EncodeRecord) => void): EncodeRecord {
  const r = structuredClone(TRAINING[i]);
  patch(r);
  return r;
}
/** Encodes `r` under STATE and reads columns by name. */
function encoded(r: EncodeRecord, o: Parameters<typeof encodeFeatures>[3] = {}, s: FeatureState = STATE) {
  const notes = newNotes();
  const x = encodeFeatures(s, r, undefined, { ...o, notes });
  const col = (name: string) => {
    const i = s.names.indexOf(name);
    assert.ok(i >= 0, `no column ${name} in ${s.names.join(', ')}`);
    return x[i];
  };
  return { x, notes, col };
}
const numeric = (name: string, s: FeatureState = STATE) => {
  const n = s.numeric.find((c) => c.name === name);
  assert.ok(n, `no numeric column ${name}`);
  return n!;
};
const close = (got: number, want: number, what: string) => assert.ok(Math.abs(got - want) <= 1e-9, `${what}: got ${got}, want ${want}`);

test('the vector has one column per name, categories first, in the order featureNames gives', () => {
  assert.equal(STATE.spec, FEATURE_SPEC_VERSION);
  assert.equal(STATE.names, featureNames(STATE));
  assert.is(new Set(STATE.names).size, STATE.names.length, 'column names are unique');
  const { x, col } = encoded(TRAINING[0]);
  assert.is(x.length, STATE.names.length);
  // Categories first, each as its vocabulary (most frequent first) and then `other`.
  const categoryColumns = (Object.keys(CATEGORIES) as (keyof typeof CATEGORIES)[]).flatMap((c) => [...STATE.vocab[c].map((v) => `${c}=${v}`), `${c}=other`]);
  assert.equal(STATE.names.slice(0, categoryColumns.length), categoryColumns);
  assert.equal(STATE.vocab.codec, ['h264', 'hevc']);
  assert.equal(STATE.names.slice(categoryColumns.length), STATE.numeric.flatMap((n) => (n.flag ? [n.name, `${n.name}_known`] : [n.name])));
  // Exactly one column is hot per category, and it is the record's own value.
  for (const c of Object.keys(CATEGORIES) as (keyof typeof CATEGORIES)[]) {
    const hot = STATE.names.filter((n, i) => n.startsWith(`${c}=`) && x[i] === 1);
    const cold = STATE.names.filter((n, i) => n.startsWith(`${c}=`) && x[i] === 0);
    assert.is(hot.length, 1, `${c}: ${hot.join(', ')}`);
    assert.is(hot.length + cold.length, STATE.vocab[c].length + 1);
  }
  assert.is(col('codec=h264'), 1);
  assert.is(col('encoder=libx264'), 1);
  assert.is(col('hw_class=epyc'), 1);
  // A number is standardised with the training mean and spread.
  const px = numeric('log_out_pixels');
  close(col('log_out_pixels'), (Math.log2(640 * 360) - px.mean) / px.std, 'log_out_pixels');
  close(col('noise'), (0 - numeric('noise').mean) / numeric('noise').std, 'noise');
});

test('a category value seen fewer than three times, or never, is encoded as other and reported unseen', () => {
  const rare = encoded(TRAINING[8]); // vp9 / libvpx-vp9: two training rows
  assert.is(rare.col('codec=other'), 1);
  assert.is(rare.col('encoder=other'), 1);
  assert.not.ok(STATE.names.includes('codec=vp9'), 'a value with two rows has no column');
  assert.ok(rare.notes.unseen.includes('codec') && rare.notes.unseen.includes('encoder'), `unseen: ${rare.notes.unseen}`);

  const never = encoded(variant(0, (r) => { r.output.codec = 'av1'; r.node.hw_class = 'graviton'; }));
  assert.is(never.col('codec=other'), 1);
  assert.is(never.col('codec=h264'), 0);
  assert.is(never.col('hw_class=other'), 1);
  assert.equal(never.notes.unseen, ['codec', 'hw_class']);

  assert.equal(encoded(TRAINING[0]).notes.unseen, [], 'known values are not reported');
});

test('asOther encodes a known value as other without reporting it unseen', () => {
  const { col, notes } = encoded(TRAINING[0], { asOther: new Set(['codec', 'hw_class'] as const) });
  assert.is(col('codec=other'), 1);
  assert.is(col('codec=h264'), 0);
  assert.is(col('hw_class=other'), 1);
  assert.is(col('hw_class=epyc'), 0);
  assert.is(col('encoder=libx264'), 1, 'other categories are untouched');
  assert.equal(notes.unseen, []);
});

test('a number missing from some training rows gets a _known column and reads the mean when absent', () => {
  for (const name of ['crf', 'log_bitrate', 'extra.size_ratio']) {
    assert.ok(numeric(name).flag, `${name} is flagged`);
    assert.ok(STATE.names.includes(`${name}_known`), `${name}_known is a column`);
  }
  const crfRow = encoded(TRAINING[2]), bitrateRow = encoded(TRAINING[3]);
  assert.is(crfRow.col('crf_known'), 1);
  close(crfRow.col('crf'), (22 / 51 - numeric('crf').mean) / numeric('crf').std, 'crf share of the x264 scale');
  assert.is(bitrateRow.col('crf_known'), 0);
  assert.is(bitrateRow.col('crf'), 0, 'an absent number reads the mean (0)');
  assert.is(bitrateRow.col('log_bitrate_known'), 1);
  assert.is(crfRow.col('log_bitrate'), 0);
  assert.equal(bitrateRow.notes.missing, [], 'a number the training rows did not always have is not reported missing');
});

test('a number missing from every training row has no column at all', () => {
  for (const name of ['si', 'ti', 'log_gop', 'i_share', 'log_in_size', 'log_in_bitrate']) {
    assert.not.ok(STATE.names.includes(name), `${name} has a column`);
    assert.not.ok(STATE.names.includes(`${name}_known`), `${name}_known has a column`);
  }
  const withSi = encoded(variant(0, (r) => { r.content.si_mean = 40; r.output.gop = 60; }));
  assert.is(withSi.x.length, STATE.names.length);
  assert.equal(withSi.x, encoded(TRAINING[0]).x, 'values the model has no column for change nothing');
});

test('a number every training row had is reported missing when a record lacks it, and reads the mean', () => {
  assert.not.ok(numeric('noise').flag);
  assert.not.ok(STATE.names.includes('noise_known'));
  const { col, notes } = encoded(variant(0, (r) => { delete r.content.noise; }));
  assert.is(col('noise'), 0);
  assert.equal(notes.missing, ['noise']);
});

test('a probed number every training row had still gets a _known column, is not reported missing, and unprobed hides it', () => {
  // Logs measure content complexity on every row; a submitted schema never carries it.
  const s = fitFeatures(TRAINING.map((r, i) => ({ ...r, content: { ...r.content, si_mean: 30 + i } })));
  assert.ok(numeric('si', s).flag, 'si is flagged although every row had it');
  const probed = encoded({ ...TRAINING[7], content: { ...TRAINING[7].content, si_mean: 37 } }, {}, s);
  assert.is(probed.col('si_known'), 1);
  assert.ok(probed.col('si') !== 0);
  const schemaOnly = encoded(TRAINING[7], {}, s);
  assert.is(schemaOnly.col('si_known'), 0);
  assert.equal(schemaOnly.notes.missing, [], 'a probed number is not reported missing');
  assert.is(schemaOnly.notes.unprobed, 1, 'the note counts what a probe gives that is absent (si; not the log\'s extra column, which many inputs never have)');
  const hidden = encoded({ ...TRAINING[7], content: { ...TRAINING[7].content, si_mean: 37 } }, { unprobed: true }, s);
  assert.equal(hidden.x, schemaOnly.x, 'unprobed encodes a probed record as one without the probe');
  assert.equal(encoded(TRAINING[4], { unprobed: true }).x, encoded(TRAINING[4]).x.map((v, i) => (STATE.names[i] === 'extra.size_ratio_known' || STATE.names[i] === 'extra.size_ratio' ? 0 : v)),
    'extra columns from a log count as probed');
});

test('values beyond the training range are held to it and reported outside, so the networks never extrapolate', () => {
  const far = encoded(variant(0, (r) => { r.content.noise = 10_000; r.input.duration_s = 1e-6; }));
  const edge = (name: string, at: 'min' | 'max') => (numeric(name)[at] - numeric(name).mean) / numeric(name).std;
  close(far.col('noise'), edge('noise', 'max'), 'noise 10,000 reads as the largest training noise');
  close(far.col('log_duration'), edge('log_duration', 'min'), 'a microsecond reads as the shortest training clip');
  assert.ok(far.notes.outside.includes('noise') && far.notes.outside.includes('log_duration'), `outside: ${far.notes.outside}`);
  // Within a tenth of the training range (0–90) beyond its end: held to the range, not reported.
  const near = encoded(variant(0, (r) => { r.content.noise = 95; }));
  assert.equal(near.notes.outside, []);
  close(near.col('noise'), edge('noise', 'max'), 'noise 95');
  // Inside the range a number is standardised as it is.
  const inside = encoded(variant(0, (r) => { r.content.noise = 45; }));
  close(inside.col('noise'), (45 - numeric('noise').mean) / numeric('noise').std, 'noise 45');
});

test('extra columns from a mapping file become extra.<name> columns', () => {
  assert.equal(STATE.extras, ['size_ratio']);
  assert.ok(STATE.names.includes('extra.size_ratio'));
  const { col } = encoded(variant(7, (r) => { r.extra.size_ratio = 0.3; }));
  assert.is(col('extra.size_ratio_known'), 1);
  const s = numeric('extra.size_ratio');
  close(col('extra.size_ratio'), (0.3 - s.mean) / s.std, 'extra.size_ratio');
  // An extra the model was not trained with is ignored.
  assert.equal(encoded(variant(0, (r) => { r.extra.other_thing = 7; })).x, encoded(TRAINING[0]).x);
});

test('a column constant over the training rows gets a unit spread and reads 0 for the training value, and for any other', () => {
  // Five encodes of one 29.97 fps camera: the sum of squares loses the (zero) variance to rounding.
  const rows = Array.from({ length: 5 }, (_, i) => ({ ...emptyRecord(), output: { codec: 'h264', fps: 29.97, width: 1280 + 64 * i, height: 720 } }));
  const s = fitFeatures(rows);
  assert.is(numeric('out_fps', s).std, 1, `the spread of a constant column is ${numeric('out_fps', s).std}`);
  const same = encoded(rows[0], {}, s), near = encoded({ ...rows[0], output: { ...rows[0].output, fps: 30 } }, {}, s);
  assert.ok(Math.abs(same.col('out_fps')) < 1e-9, `the training value reads ${same.col('out_fps')}`);
  // Held to the training range (one value): nothing was learned about another rate.
  assert.ok(Math.abs(near.col('out_fps')) < 1e-9, `30 fps under a 29.97 fps training set reads ${near.col('out_fps')}`);
});

test('describeSchema reads a validated synthetic CPU encode', () => {
  const s = validateEncodingSchema({
    input: { synthetic: { source: 'testsrc2', noise: 20 }, resolution: '1280x720', fps: 30, duration_s: 4 },
    output: { codec: 'h264', preset: 'veryfast', rate_control: { mode: 'crf', crf: 23 }, gop: 60 },
  }, { allowedInputRoots: ['/srv/media'] });
  const r = describeSchema(s, { cores: 8, hw_class: 'AMD EPYC' });
  assert.equal(JSON.parse(JSON.stringify(r)), {
    output: { codec: 'h264', encoder: 'libx264', preset: 'veryfast', width: 1280, height: 720, fps: 30, rc_mode: 'crf', crf: 23, passes: 1, gop: 60 },
    input: { codec: 'lavfi_testsrc2', width: 1280, height: 720, fps: 30, duration_s: 4, frames: 120 },
    content: { noise: 20 },
    node: { cores: 8, hw_class: 'AMD EPYC', gpus: 0 },
    extra: {},
  });
});

test('a pilot encode on the probe becomes CPU per frame and Mbit/s at the output rate, probed columns a schema alone lacks', () => {
  const s = validateEncodingSchema({
    input: { synthetic: { source: 'testsrc2' }, resolution: '1280x720', fps: 50, duration_s: 4, probe: { by: 'submitter', pilot: { frames: 12, cpu_s: 0.6, video_kb: 300 } } },
    output: { codec: 'h264', preset: 'slow', rate_control: { mode: 'crf', crf: 20 }, fps: 25 },
  }, { allowedInputRoots: ['/srv/media'] });
  const r = describeSchema(s, { cores: 2 });
  close(r.content.pilot_cpu_per_frame!, 0.05, 'CPU seconds per frame');
  close(r.content.pilot_bits_per_frame!, (300 * 8192) / 12, 'bits per frame');
  const piloted = TRAINING.map((t, i) => ({ ...t, content: { ...t.content, pilot_cpu_per_frame: 0.01 * (i + 1), pilot_bits_per_frame: 1e5 * (i + 1) } }));
  const state = fitFeatures(piloted);
  const { col, notes } = encoded(r, {}, state);
  const cpu = numeric('log_pilot_cpu', state), mbps = numeric('log_pilot_mbps', state);
  close(col('log_pilot_cpu') * cpu.std + cpu.mean, Math.log10(0.05), 'log_pilot_cpu');
  close(col('log_pilot_mbps') * mbps.std + mbps.mean, Math.log10(((300 * 8192) / 12) * 25 / 1e6), 'log_pilot_mbps at the output rate');
  assert.is(col('log_pilot_cpu_known'), 1);
  const bare = encoded(describeSchema({ ...s, input: { ...s.input, probe: undefined } }, { cores: 2 }), {}, state);
  assert.is(bare.col('log_pilot_cpu_known'), 0);
  assert.ok(bare.notes.unprobed > notes.unprobed, `probed columns lacking: ${bare.notes.unprobed} without the pilot, ${notes.unprobed} with it`);
});

test('describeSchema reads a validated NVENC file encode: output rate times duration frames, one GPU', () => {
  const s = validateEncodingSchema({
    input: { path: '/srv/media/clip.mov', codec: 'prores', resolution: '1920x1080', fps: 25, bitrate_kbps: 120000, duration_s: 10 },
    output: { codec: 'hevc', encoder: 'hevc_nvenc', preset: 'p5', rate_control: { mode: 'bitrate', bitrate_kbps: 4000 }, resolution: '1280x720', fps: 50 },
  }, { allowedInputRoots: ['/srv/media'] });
  const r = describeSchema(s);
  assert.equal(JSON.parse(JSON.stringify(r)), {
    output: { codec: 'hevc', encoder: 'hevc_nvenc', preset: 'p5', width: 1280, height: 720, fps: 50, rc_mode: 'bitrate', bitrate_kbps: 4000, passes: 1 },
    input: { codec: 'prores', width: 1920, height: 1080, fps: 25, bitrate_kbps: 120000, duration_s: 10, frames: 500 },
    content: {},
    node: { gpus: 1 },
    extra: {},
  });
});

test('checkFeatureState accepts a fitted state, also after a JSON round trip', () => {
  assert.is(checkFeatureState(STATE), undefined);
  assert.is(checkFeatureState(JSON.parse(JSON.stringify(STATE))), undefined);
});

test('checkFeatureState refuses names that do not match the vocabularies and numeric columns', () => {
  const swapped = structuredClone(STATE);
  [swapped.names[0], swapped.names[1]] = [swapped.names[1], swapped.names[0]];
  assert.match(checkFeatureState(swapped) ?? '', /features\.names does not match/);
  const extraWord = structuredClone(STATE);
  extraWord.vocab.codec.push('av1');
  assert.match(checkFeatureState(extraWord) ?? '', /features\.names does not match/);
  const dropped = structuredClone(STATE);
  dropped.names.pop();
  assert.match(checkFeatureState(dropped) ?? '', /features\.names does not match/);
});

test('checkFeatureState refuses a zero or non-finite spread, an unknown column and another spec', () => {
  const zero = structuredClone(STATE);
  zero.numeric[0].std = 0;
  assert.match(checkFeatureState(zero) ?? '', new RegExp(`features\\.numeric\\.${zero.numeric[0].name} has a non-finite or zero spread`));
  const nan = JSON.parse(JSON.stringify({ ...STATE, numeric: STATE.numeric.map((n, i) => (i === 2 ? { ...n, mean: NaN } : n)) }));
  assert.match(checkFeatureState(nan) ?? '', /non-finite or zero spread/);
  const unknown = structuredClone(STATE);
  unknown.numeric[0].name = 'bogus';
  assert.match(checkFeatureState(unknown) ?? '', /unknown column "bogus"/);
  assert.match(checkFeatureState({ ...STATE, spec: 'features-v1' as never }) ?? '', /features-v1/);
});

test.run();
