import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateEncodingSchema } from '../../shared/index.js';
import { compileComplexityProbe, compileQuality, parseQuality, parseSiti } from '../../node-agent/ffmpeg/args.js';
import { parseListing } from '../../node-agent/ffmpeg/capabilities.js';
import { QUALITY_SEGMENT_S, QUALITY_WHOLE_UP_TO_S, qualityMethod } from '../../node-agent/ffmpeg/probe.js';

const schema = validateEncodingSchema({
  input: { synthetic: { source: 'testsrc2', noise: 20 }, resolution: '640x360', fps: 25, duration_s: 10 },
  output: { codec: 'h264', preset: 'fast', rate_control: { mode: 'crf', crf: 23 } },
}, { allowedInputRoots: [] });
const grant = { core_ids: [0], gpu_ids: [] };
const after = (argv: string[], flag: string) => argv[argv.indexOf(flag) + 1];

test('quality with VMAF chains psnr, ssim and libvmaf over a three-way split of the reference', () => {
  const graph = after(compileQuality(schema, '/out/j.mp4', grant, { vmaf: true }), '-filter_complex');
  assert.match(graph, /\[r\]split=3\[r1\]\[r2\]\[r3\];\[d\]\[r1\]psnr\[dp\];\[dp\]\[r2\]ssim\[dq\];\[dq\]\[r3\]libvmaf=n_threads=1$/);
  assert.not.match(after(compileQuality(schema, '/out/j.mp4', grant), '-filter_complex'), /libvmaf/);
});

test('a quality segment seeks both the output and its reference to the same stretch', () => {
  const argv = compileQuality(schema, '/out/j.mp4', grant, { segment: { start_s: 4, duration_s: 2 } });
  const inputs = argv.flatMap((a, i) => (a === '-i' ? [i] : []));
  assert.is(inputs.length, 2);
  for (const i of inputs) assert.equal(argv.slice(i - 4, i), ['-ss', '4', '-t', '2'], `before ${argv[i + 1]}`);
  assert.throws(() => compileQuality(schema, '/out/j.mp4', grant, { segment: { start_s: -1, duration_s: 2 } }), /segment.start_s/);
  // From the start: no seek at all (a seek to 0 in an mp4 lands a frame off its reference).
  assert.not.ok(compileQuality(schema, '/out/j.mp4', grant, { segment: { start_s: 0, duration_s: 2 } }).includes('-ss'));
});

test('short outputs are compared whole, longer ones on three segments spread over their length', () => {
  assert.equal(qualityMethod(undefined).segments, undefined);
  assert.equal(qualityMethod(QUALITY_WHOLE_UP_TO_S).segments, undefined);
  const { segments, method } = qualityMethod(60);
  assert.equal(segments!.map((x) => x.start_s), [5, 29, 53]);
  assert.ok(segments!.every((x) => x.duration_s === QUALITY_SEGMENT_S));
  assert.match(method, /3 segments of 2 s/);
  // Never past the end, never before the start.
  const short = qualityMethod(7).segments!;
  assert.ok(short.every((x) => x.start_s >= 0 && x.start_s + x.duration_s <= 7), JSON.stringify(short));
});

test('the VMAF score line is read when present and absent otherwise', () => {
  assert.equal(parseQuality('[Parsed_libvmaf_4 @ 0x1] VMAF score: 93.412\n'), { vmaf: 93.412 });
  assert.equal(parseQuality('[Parsed_psnr_2 @ 0x1] PSNR y:40 u:44 v:45 average:41.20 min:39 max:43\n'), { psnr_db: 41.2 });
});

test('the complexity probe reads only the first frames of the input through siti', () => {
  const argv = compileComplexityProbe(schema, grant, 12);
  assert.is(after(argv, '-vf'), 'siti=print_summary=1');
  assert.is(after(argv, '-frames:v'), '12');
  assert.equal(argv.slice(-3), ['-f', 'null', '-']);
});

test('a SITI summary becomes spatial and temporal means and maxima', () => {
  const text = `[Parsed_siti_0 @ 0x5634] SITI Summary:\nTotal frames: 51\n\nSpatial Information:\nAverage: 74.002724\nMax: 74.778847\nMin: 72.394768\n\nTemporal Information:\nAverage: 14.864540\nMax: 16.006655\nMin: 0.000000\n`;
  assert.equal(parseSiti(text, 2), { si_mean: 74.002724, si_max: 74.778847, ti_mean: 14.86454, ti_max: 16.006655, probe_s: 2 });
  assert.is(parseSiti('no summary here', 2), undefined);
});

test('encoder and filter listings yield their names, not the legend', () => {
  const text = ' V..... = Video\n ------\n V....D libx264              libx264 H.264 / AVC\n ... siti              V->V       Calculate spatial\n T.C libvmaf           VV->V      Calculate the VMAF\n';
  assert.equal([...parseListing(text)].sort(), ['libvmaf', 'libx264', 'siti']);
});

test.run();
