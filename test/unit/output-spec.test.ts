import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SchemaValidationError, expandOutputPath, renditionName, validateEncodingSchema, type EncodingSchema, type EncodingTask, type FieldIssue } from '../../shared/index.js';
import { compileEncode, UnsupportedEncodeError, type EncodeTarget, type Grant } from '../../node-agent/ffmpeg/index.js';
import { mediaSegments, rfc6381Codecs, segmentBandwidth } from '../../node-agent/ffmpeg/hls.js';
import { masterPlaylist } from '../../coordinator/core/core.js';

const ctx = { allowedInputRoots: ['/srv/media'], allowedOutputRoots: ['/srv/out'] };
const synthetic = { synthetic: { source: 'testsrc2' }, resolution: '320x240', fps: 25, duration_s: 1 };
const file = { path: '/srv/media/clip.mp4' };
const h264 = { codec: 'h264', preset: 'ultrafast', rate_control: { mode: 'crf', crf: 28 } };
const target: EncodeTarget = { task_id: 'j123abc', output_dir: '/out', passlog_prefix: '/scratch/pass' };
const oneCore: Grant = { core_ids: [0], gpu_ids: [] };

const doc = (output: Record<string, unknown> = {}, input: Record<string, unknown> = synthetic, extra: Record<string, unknown> = {}) => ({ input, output: { ...h264, ...output }, ...extra });
const valid = (output: Record<string, unknown> = {}, input: Record<string, unknown> = synthetic, extra: Record<string, unknown> = {}): EncodingSchema => validateEncodingSchema(doc(output, input, extra), ctx);
function issues(d: unknown, c: Parameters<typeof validateEncodingSchema>[1] = ctx): FieldIssue[] {
  try {
    validateEncodingSchema(d, c);
  } catch (e) {
    assert.instance(e, SchemaValidationError);
    return (e as SchemaValidationError).issues;
  }
  assert.unreachable('the document was accepted');
  return [];
}
const fieldOf = (is: FieldIssue[]) => is.map((i) => i.field);
const ladder = { id: 'ladder-1', size: 2 };
const argv = (s: EncodingSchema, t: Partial<EncodeTarget> = {}) => compileEncode(s, oneCore, { ...target, ...t }).passes.at(-1)!;
const after = (a: string[], flag: string) => (a.indexOf(flag) < 0 ? undefined : a[a.indexOf(flag) + 1]);
const run = (a: string[], r: string[]) => a.some((_, i) => r.every((x, j) => a[i + j] === x));

// ── output.path ──────────────────────────────────────────────────────────────────────────

test('an output path inside an output root is accepted, normalised, with its placeholders kept', () => {
  const s = valid({ path: '/srv/out/./{group}/x/../{rendition}.m3u8' }, synthetic, { group: ladder });
  assert.is(s.output.path, '/srv/out/{group}/{rendition}.m3u8');
  assert.is(s.output.format, 'hls', 'a .m3u8 path means an HLS output');
  assert.is(valid({ path: '/srv/out/{job_id}.mp4' }).output.format, undefined, 'an .mp4 path is a plain file');
});

test('an output path that escapes the output root is refused, naming output.path', () => {
  for (const p of ['/srv/out/../etc/passwd.mp4', '/srv/outside/{job_id}.mp4', '/srv/out/{job_id}/../../x.mp4', '/tmp/x.mp4']) {
    const is = issues(doc({ path: p }));
    assert.equal(fieldOf(is), ['output.path'], p);
    assert.match(is[0].reason, /outside the allowed output roots \(\/srv\/out\)/);
  }
});

test('an output path is refused where no output root is configured', () => {
  const is = issues(doc({ path: '/srv/out/{job_id}.mp4' }), { allowedInputRoots: ['/srv/media'] });
  assert.equal(fieldOf(is), ['output.path']);
  assert.match(is[0].reason, /none configured/);
});

test('relative paths, control characters, unknown placeholders and stray braces are refused', () => {
  const cases: [string, RegExp][] = [
    ['out/{job_id}.mp4', /absolute/],
    ['/srv/out/a\nb.mp4', /control characters/],
    ['/srv/out/{jobid}.mp4', /unknown placeholder \{jobid\}/],
    ['/srv/out/{job_id}}.mp4', /brace/],
    ['/srv/out/{job_id}.mp4.', /must end in \.mp4/],
    ['/srv/out/a b/{job_id} x.mp4', /file name/],
    ['/srv/out/%d.m3u8', /file name/],
  ];
  for (const [p, why] of cases) {
    const is = issues(doc({ path: p }));
    assert.equal(fieldOf(is), ['output.path'], p);
    assert.match(is[0].reason, why, p);
  }
  assert.is(valid({ path: '/srv/out/My Videos/{job_id}.mp4' }).output.path, '/srv/out/My Videos/{job_id}.mp4', 'a directory may have spaces: ffmpeg never sees it');
});

test('the extension must match the codec and format', () => {
  assert.match(issues(doc({ codec: 'vp9', rate_control: { mode: 'crf', crf: 30 }, preset: undefined, path: '/srv/out/{job_id}.mp4' }))[0].reason, /must end in \.webm/);
  assert.match(issues(doc({ format: 'hls', path: '/srv/out/{job_id}.mp4' }))[0].reason, /must end in \.m3u8 for an HLS output/);
  assert.match(issues(doc({ format: 'file', path: '/srv/out/{job_id}.m3u8' }))[0].reason, /must end in \.mp4/);
});

test('{group} needs a group, and a group must tell its renditions apart', () => {
  assert.match(issues(doc({ path: '/srv/out/{group}/{job_id}.mp4' }))[0].reason, /no group/);
  const is = issues(doc({ path: '/srv/out/{group}/index.m3u8' }, synthetic, { group: ladder }));
  assert.equal(fieldOf(is), ['output.path']);
  assert.match(is[0].reason, /every rendition would be written to the same file/);
});

test('an actor may not name an output path', () => {
  assert.ok(fieldOf(issues({ kind: 'actor', input: { synthetic: { source: 'testsrc2' }, resolution: '320x240', fps: 25 }, output: { ...h264, path: '/srv/out/{job_id}.m3u8' } })).includes('output.path'));
});

test('a validated schema with an output path validates again to itself', () => {
  const s = valid({ path: '/srv/out/{group}/{rendition}.m3u8', rendition: '240p', audio: { mode: 'aac', bitrate_kbps: 96 } }, synthetic, { group: ladder });
  assert.equal(validateEncodingSchema(JSON.parse(JSON.stringify(s)), ctx), s);
});

test('placeholders expand to single safe segments, and an unsafe or missing value is refused', () => {
  const values = { job_id: 'j1', group: 'ladder-1', rendition: '720p', height: '720', width: '1280', codec: 'h264', node: 'enc-1' };
  assert.is(expandOutputPath('/srv/out/{group}/{node}/{rendition}-{codec}.m3u8', values), '/srv/out/ladder-1/enc-1/720p-h264.m3u8');
  for (const bad of [{ node: '..' }, { node: 'a/b' }, { node: undefined }, { node: '.hidden' }]) {
    try {
      expandOutputPath('/srv/out/{node}/x.mp4', { ...values, ...bad });
      assert.unreachable(JSON.stringify(bad));
    } catch (e) {
      assert.instance(e, SchemaValidationError);
      assert.is((e as SchemaValidationError).issues[0].field, 'output.path');
    }
  }
});

test('a rendition is named by output.rendition, else by its height', () => {
  assert.is(renditionName(valid({ rendition: 'hi' })), 'hi');
  assert.is(renditionName(valid({ resolution: '640x360' })), '360p');
  assert.is(renditionName(valid({}, file)), 'source', 'an unprobed file input: its height is not known');
  assert.is(renditionName(valid({}, file), 1080), '1080p');
});

// ── output.audio ─────────────────────────────────────────────────────────────────────────

test('audio settings are validated with the field named', () => {
  assert.equal(valid({ audio: 'aac' }).output.audio, { mode: 'aac', bitrate_kbps: 128 });
  assert.equal(valid({ audio: { mode: 'aac', bitrate_kbps: 64 } }).output.audio, { mode: 'aac', bitrate_kbps: 64 });
  assert.equal(valid({ audio: 'none' }).output.audio, { mode: 'none' });
  assert.equal(fieldOf(issues(doc({ audio: 'mp3' }))), ['output.audio']);
  assert.equal(fieldOf(issues(doc({ audio: { mode: 'aac', bitrate_kbps: 4 } }))), ['output.audio.bitrate_kbps']);
  assert.equal(fieldOf(issues(doc({ audio: { mode: 'copy', bitrate_kbps: 96 } }))), ['output.audio.bitrate_kbps']);
  assert.match(issues(doc({ codec: 'vp9', preset: undefined, rate_control: { mode: 'crf', crf: 30 }, audio: 'aac' }))[0].reason, /WebM .* Opus/);
  assert.match(issues(doc({ audio: 'opus' }))[0].reason, /WebM \(vp9\) outputs only/);
  assert.equal(fieldOf(issues(doc({}, { ...synthetic, synthetic: { source: 'testsrc2', audio: 'yes' } }))), ['input.synthetic.audio']);
});

test('a file input keeps its audio by default: streams mapped explicitly, AAC when its codec is unknown', () => {
  const a = argv(valid({}, file));
  assert.ok(run(a, ['-map', '0:v:0', '-map', '0:a?']), a.join(' '));
  assert.is(after(a, '-c:a'), 'aac');
  assert.is(after(a, '-b:a'), '128k');
  assert.not.ok(a.includes('-an'));
});

test('auto copies audio the container carries, and encodes what it does not', () => {
  assert.is(after(argv(valid({}, file), { audio_codecs: ['aac'] }), '-c:a'), 'copy');
  assert.is(after(argv(valid({}, file), { audio_codecs: ['pcm_s16le'] }), '-c:a'), 'aac');
  const vp9 = valid({ codec: 'vp9', preset: undefined, rate_control: { mode: 'crf', crf: 30 } }, file);
  assert.is(after(argv(vp9, { audio_codecs: ['opus'] }), '-c:a'), 'copy');
  assert.is(after(argv(vp9, { audio_codecs: ['aac'] }), '-c:a'), 'libopus', 'WebM takes Opus, not AAC');
});

test('-an only when audio is dropped or there is none', () => {
  assert.ok(argv(valid({ audio: 'none' }, file)).includes('-an'), 'asked to drop it');
  assert.ok(argv(valid({}, file), { audio_codecs: [] }).includes('-an'), 'the input has no audio');
  assert.ok(argv(valid({})).includes('-an'), 'a synthetic source has none unless asked');
  assert.not.ok(argv(valid({ audio: { mode: 'aac', bitrate_kbps: 96 } }, file)).includes('-an'));
});

test('a synthetic tone is a second lavfi input, encoded to AAC', () => {
  const a = argv(valid({}, { ...synthetic, synthetic: { source: 'testsrc2', audio: true } }));
  assert.is(a.filter((x) => x === '-i').length, 2);
  assert.ok(run(a, ['-map', '0:v:0', '-map', '1:a:0']));
  assert.is(after(a, '-c:a'), 'aac');
  assert.throws(() => argv(valid({ audio: 'copy' }, { ...synthetic, synthetic: { source: 'testsrc2', audio: true } })), (e: unknown) => e instanceof UnsupportedEncodeError && e.field === 'output.audio');
});

test('copy of audio the container cannot carry fails naming output.audio', () => {
  assert.throws(() => argv(valid({ audio: 'copy' }, file), { audio_codecs: ['pcm_s16le'] }), (e: unknown) => e instanceof UnsupportedEncodeError && e.field === 'output.audio');
});

test('the first of two passes reads no audio; the second maps it', () => {
  const passes = compileEncode(valid({ passes: 2, rate_control: { mode: 'bitrate', bitrate_kbps: 300 } }, file), oneCore, target).passes;
  assert.ok(passes[0].includes('-an'));
  assert.not.ok(passes[0].includes('0:a?'));
  assert.ok(passes[1].includes('0:a?'));
});

test('an HLS output writes a VOD playlist of fMP4 segments named after it, keyframes at segment boundaries', () => {
  const plan = compileEncode(valid({ format: 'hls' }), oneCore, { ...target, hls_name: '720p' });
  const a = plan.passes[0];
  assert.is(plan.container, 'hls');
  assert.is(plan.final_path, '/out/720p.m3u8');
  assert.is(after(a, '-hls_playlist_type'), 'vod');
  assert.is(after(a, '-hls_segment_type'), 'fmp4');
  assert.is(after(a, '-hls_fmp4_init_filename'), '720p-init.mp4');
  assert.is(after(a, '-hls_segment_filename'), '/out/720p-%05d.m4s');
  assert.match(after(a, '-force_key_frames')!, /n_forced\*4/);
  assert.is(a.at(-1), 'file:/out/720p.m3u8');
  assert.throws(() => compileEncode(valid({ format: 'hls' }), oneCore, { ...target, hls_name: '%d' }), (e: unknown) => e instanceof UnsupportedEncodeError);
});

// ── master playlists ─────────────────────────────────────────────────────────────────────

test('a media playlist gives its segments, and they give the peak and mean bandwidth', () => {
  const segs = mediaSegments('#EXTM3U\n#EXT-X-MAP:URI="a-init.mp4"\n#EXTINF:4.000000,\na-00000.m4s\n#EXTINF:2.000000,\na-00001.m4s\n#EXTINF:1,\n../evil.m4s\n#EXT-X-ENDLIST\n');
  assert.equal(segs.map((s) => s.uri), ['a-00000.m4s', 'a-00001.m4s']);
  assert.equal(segmentBandwidth([{ duration_s: 4, bytes: 100_000 }, { duration_s: 2, bytes: 100_000 }]), { peak_bps: 400_000, average_bps: 266_667 });
});

test('codec strings are read from an init segment: avc1 and mp4a.40.2', () => {
  const box = (type: string, ...parts: Buffer[]) => { const body = Buffer.concat(parts); const h = Buffer.alloc(8); h.writeUInt32BE(8 + body.length); h.write(type, 4, 'latin1'); return Buffer.concat([h, body]); };
  const avcC = box('avcC', Buffer.from([1, 0x64, 0x00, 0x1f, 0xff]));
  const avc1 = box('avc1', Buffer.alloc(78), avcC);
  const esds = box('esds', Buffer.from([0, 0, 0, 0, 0x03, 25, 0, 1, 0, 0x04, 17, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05, 2, 0x11, 0x90]));
  const mp4a = box('mp4a', Buffer.alloc(28), esds);
  const stsd = (entry: Buffer) => box('stsd', Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]), entry);
  const trak = (entry: Buffer) => box('trak', box('mdia', box('minf', box('stbl', stsd(entry)))));
  const init = Buffer.concat([box('ftyp', Buffer.from('iso5')), box('moov', trak(avc1), trak(mp4a))]);
  assert.is(rfc6381Codecs(init), 'avc1.64001f,mp4a.40.2');
  assert.is(rfc6381Codecs(Buffer.concat([box('moov', trak(box('vp09', Buffer.alloc(78))))])), undefined, 'a codec it cannot name leaves CODECS out');
});

test('a master playlist lists each rendition with its bandwidth, resolution and codecs, by a relative path', () => {
  const member = (id: string, height: number, p: string, bw: number): EncodingTask => ({
    id, schema: valid({ format: 'hls', resolution: `${(height * 4) / 3}x${height}` }), state: 'succeeded', submitted_at: 0, updated_at: 0, term: 1, attempts: 1,
    result: {
      actual: { cpu_cores: 1, gpu_percent: 0, memory_gb: 0.1, bandwidth_mbps: 1, duration_s: 1 }, output_bytes: 1000, output_path: p, pinned: true, frames: 25,
      media: { format: 'hls', width: (height * 4) / 3, height, frame_rate: 25, codecs: 'avc1.64001f,mp4a.40.2', bandwidth_bps: bw, average_bandwidth_bps: bw - 1 },
    },
  });
  const text = masterPlaylist([member('a', 480, '/srv/out/l/480p.m3u8', 900_000), member('b', 240, '/srv/out/l/sub dir/240p.m3u8', 300_000)], '/srv/out/l');
  assert.is(text, [
    '#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-INDEPENDENT-SEGMENTS',
    '#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=899999,RESOLUTION=640x480,FRAME-RATE=25.000,CODECS="avc1.64001f,mp4a.40.2"', '480p.m3u8',
    '#EXT-X-STREAM-INF:BANDWIDTH=300000,AVERAGE-BANDWIDTH=299999,RESOLUTION=320x240,FRAME-RATE=25.000,CODECS="avc1.64001f,mp4a.40.2"', 'sub%20dir/240p.m3u8',
    '',
  ].join('\n'));
});

test.run();
