import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SchemaValidationError, validateEncodingSchema, type EncodingSchema } from '../../shared/index.js';
import {
  compileComplexityProbe, compileEncode, compilePilot, compileQuality, parseQuality, parseVideoKb, LOSSLESS_PSNR_DB, PILOT_FRAMES, UnsupportedEncodeError,
  type EncodeTarget, type Grant,
} from '../../node-agent/ffmpeg/index.js';

const ctx = { allowedInputRoots: ['/media'] };
const target: EncodeTarget = { task_id: 'j123abc', output_dir: '/out', passlog_prefix: '/scratch/pass' };
const oneCore: Grant = { core_ids: [0], gpu_ids: [] };
const synthetic = { synthetic: { source: 'testsrc2' }, resolution: '320x240', fps: 25, duration_s: 1 };

function schema(output: Record<string, unknown>, input: Record<string, unknown> = synthetic): EncodingSchema {
  return validateEncodingSchema({ input, output }, ctx);
}
function encodeArgs(output: Record<string, unknown>, grant = oneCore, input?: Record<string, unknown>): string[][] {
  return compileEncode(schema(output, input), grant, target).passes;
}
/** The value following `flag`, or undefined when the flag is absent. */
function after(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i < 0 ? undefined : argv[i + 1];
}
function containsRun(argv: string[], run: string[]): boolean {
  return argv.some((_, i) => run.every((a, j) => argv[i + j] === a));
}
const crf = (n: number) => ({ mode: 'crf', crf: n });
const kbps = (n: number) => ({ mode: 'bitrate', bitrate_kbps: n });

test('a synthetic input becomes a lavfi source limited with -t', () => {
  const [argv] = encodeArgs({ codec: 'h264', rate_control: crf(23) });
  assert.ok(containsRun(argv, ['-f', 'lavfi', '-t', '1', '-i', 'testsrc2=size=320x240:rate=25']));
});

test('noise adds a temporal noise filter to the source graph', () => {
  const [argv] = encodeArgs({ codec: 'h264', rate_control: crf(23) }, oneCore, { ...synthetic, synthetic: { source: 'smptebars', noise: 40 } });
  assert.is(after(argv, '-i'), 'smptebars=size=320x240:rate=25,noise=alls=40:allf=t');
});

test('the life source gets a fixed seed so the quality pass can regenerate it', () => {
  const [argv] = encodeArgs({ codec: 'h264', rate_control: crf(23) }, oneCore, { ...synthetic, synthetic: { source: 'life' } });
  assert.is(after(argv, '-i'), 'life=size=320x240:rate=25:seed=1');
});

test('a file input is read through the file: protocol', () => {
  const [argv] = encodeArgs({ codec: 'h264', rate_control: crf(23) }, oneCore, { path: '/media/in put.mov' });
  assert.is(after(argv, '-i'), 'file:/media/in put.mov');
  assert.not.ok(argv.includes('lavfi'));
});

test('a pass granted every core but one thread (the quality and complexity passes after release) runs one thread of each kind; more threads than cores is refused', () => {
  const s = schema({ codec: 'h264', rate_control: crf(23) }, { path: '/media/a.mov', duration_s: 8 });
  const idle: Grant = { core_ids: [0, 1, 2, 3], gpu_ids: [], threads: 1 };
  for (const argv of [compileQuality(s, '/out/x.mp4', idle), compileComplexityProbe(s, idle)]) {
    assert.is(after(argv, '-filter_threads'), '1', argv.join(' '));
    assert.is(after(argv, '-threads'), '1', argv.join(' '));
  }
  assert.is(after(compileQuality(s, '/out/x.mp4', { core_ids: [0, 1, 2, 3], gpu_ids: [] }), '-filter_threads'), '4', 'without `threads`, one per core');
  assert.throws(() => compileQuality(s, '/out/x.mp4', { core_ids: [0, 1], gpu_ids: [], threads: 3 }), (e: Error) => e instanceof UnsupportedEncodeError && /threads/.test(e.message));
});

test('a file input may only be read over the file protocol, so no demuxer can reach the network or another protocol', () => {
  const [argv] = encodeArgs({ codec: 'h264', rate_control: crf(23) }, oneCore, { path: '/media/a.mov' });
  assert.ok(containsRun(argv, ['-protocol_whitelist', 'file']), argv.join(' '));
  assert.ok(argv.indexOf('-protocol_whitelist') < argv.indexOf('-i'), 'an input option, before its -i');
  const q = compileQuality(schema({ codec: 'h264', rate_control: crf(23) }, { path: '/media/a.mov' }), '/out/x.mp4', oneCore);
  assert.is(q.filter((a) => a === '-protocol_whitelist').length, 2, 'both inputs of the quality pass');
  const [lavfi] = encodeArgs({ codec: 'h264', rate_control: crf(23) });
  assert.not.ok(lavfi.includes('-protocol_whitelist'), 'a lavfi source opens nothing');
});

test('a file input handed by the agent is opened by its descriptor, with only the demuxer its check found', () => {
  const handed = { path: '/proc/self/fd/3', format: 'mov,mp4,m4a,3gp,3g2,mj2' };
  const s = schema({ codec: 'h264', rate_control: crf(23) }, { path: '/media/a.mov', duration_s: 2 });
  const [argv] = compileEncode(s, oneCore, { ...target, input: handed }).passes;
  assert.ok(containsRun(argv, ['-protocol_whitelist', 'file', '-format_whitelist', handed.format]), argv.join(' '));
  assert.is(after(argv, '-i'), 'file:/proc/self/fd/3');
  assert.not.ok(argv.some((a) => a.includes('/media/a.mov')), 'the schema\'s path is never opened by ffmpeg');
  const q = compileQuality(s, '/proc/self/fd/5', oneCore, { input: handed });
  assert.ok(containsRun(q, ['-t', '2', '-i', 'file:/proc/self/fd/3']), q.join(' '));
  assert.throws(() => compileEncode(s, oneCore, { ...target, input: { ...handed, format: 'mov -i x' } }), (e: unknown) => e instanceof UnsupportedEncodeError && e.field === 'input.path');
});

test('a file input with a duration is encoded only that far from its start, and compared only that far', () => {
  const [argv] = encodeArgs({ codec: 'h264', rate_control: crf(23) }, oneCore, { path: '/media/a.mov', duration_s: 7.5 });
  assert.ok(containsRun(argv, ['-t', '7.5', '-i', 'file:/media/a.mov']), argv.join(' '));
  const [whole] = encodeArgs({ codec: 'h264', rate_control: crf(23) }, oneCore, { path: '/media/a.mov' });
  assert.not.ok(whole.includes('-t'));
  const q = compileQuality(schema({ codec: 'h264', rate_control: crf(23) }, { path: '/media/a.mov', duration_s: 7.5 }), '/out/x.mp4', oneCore);
  assert.ok(containsRun(q, ['-t', '7.5', '-i', 'file:/media/a.mov']), q.join(' '));
});

test('each encoder gets its own preset flags', () => {
  const cases: [Record<string, unknown>, string[]][] = [
    [{ codec: 'h264', preset: 'veryfast' }, ['-c:v', 'libx264', '-preset', 'veryfast']],
    [{ codec: 'hevc', preset: 'slow' }, ['-c:v', 'libx265', '-preset', 'slow']],
    [{ codec: 'vp9', preset: '5' }, ['-c:v', 'libvpx-vp9', '-deadline', 'good', '-cpu-used', '5', '-row-mt', '1']],
    [{ codec: 'av1', encoder: 'libsvtav1', preset: '10' }, ['-c:v', 'libsvtav1', '-preset', '10']],
    [{ codec: 'av1', encoder: 'libaom-av1', preset: '6' }, ['-c:v', 'libaom-av1', '-cpu-used', '6', '-row-mt', '1']],
    [{ codec: 'h264', encoder: 'h264_nvenc', preset: 'p5' }, ['-c:v', 'h264_nvenc', '-preset', 'p5']],
  ];
  for (const [output, expected] of cases) {
    const [argv] = encodeArgs({ ...output, rate_control: kbps(1000) }, { core_ids: [0], gpu_ids: [0] });
    assert.ok(containsRun(argv, expected), `${expected.join(' ')} in ${argv.join(' ')}`);
  }
});

test('crf is passed as -crf, with a zero target bitrate for libvpx and libaom', () => {
  assert.ok(containsRun(encodeArgs({ codec: 'h264', rate_control: crf(20) })[0], ['-crf', '20']));
  assert.not.ok(encodeArgs({ codec: 'h264', rate_control: crf(20) })[0].includes('-b:v'));
  assert.ok(containsRun(encodeArgs({ codec: 'vp9', rate_control: crf(31) })[0], ['-crf', '31', '-b:v', '0']));
  assert.ok(containsRun(encodeArgs({ codec: 'av1', encoder: 'libaom-av1', rate_control: crf(31) })[0], ['-crf', '31', '-b:v', '0']));
});

test('nvenc takes crf as constant quality in VBR mode', () => {
  const [argv] = encodeArgs({ codec: 'hevc', encoder: 'hevc_nvenc', rate_control: crf(25) }, { core_ids: [0], gpu_ids: [1] });
  assert.ok(containsRun(argv, ['-rc', 'vbr', '-cq', '25', '-b:v', '0']));
  assert.not.ok(argv.includes('-crf'));
});

test('bitrate mode sets the target, a 1.5x maxrate and a two-second buffer', () => {
  const [argv] = encodeArgs({ codec: 'h264', rate_control: kbps(2500) });
  assert.ok(containsRun(argv, ['-b:v', '2500k', '-maxrate', '3750k', '-bufsize', '5000k']));
  assert.not.ok(argv.includes('-crf'));
});

test('two-pass x264 runs pass 1 into /dev/null and pass 2 into the .part file with one passlog', () => {
  const passes = encodeArgs({ codec: 'h264', rate_control: kbps(800), passes: 2 });
  assert.is(passes.length, 2);
  assert.ok(containsRun(passes[0], ['-pass', '1', '-passlogfile', '/scratch/pass']));
  assert.equal(passes[0].slice(-3), ['-f', 'null', '/dev/null']);
  assert.ok(containsRun(passes[1], ['-pass', '2', '-passlogfile', '/scratch/pass']));
  assert.equal(passes[1].slice(-3), ['-f', 'mp4', 'file:/out/j123abc.part.mp4']);
});

test('two-pass x265 carries pass and stats in x265-params, since its wrapper ignores -pass', () => {
  const passes = encodeArgs({ codec: 'hevc', rate_control: kbps(800), passes: 2 });
  assert.is(after(passes[0], '-x265-params'), 'pools=1:pass=1:stats=/scratch/pass.x265');
  assert.is(after(passes[1], '-x265-params'), 'pools=1:pass=2:stats=/scratch/pass.x265');
  assert.not.ok(passes[1].includes('-pass'));
});

test('two-pass libsvtav1 is refused as unsupported by ffmpeg 5.1, by the schema and again by the compiler', () => {
  assert.throws(() => encodeArgs({ codec: 'av1', rate_control: kbps(800), passes: 2 }), (e: unknown) => e instanceof SchemaValidationError && e.issues[0].field === 'output.passes');
  const onePass = schema({ codec: 'av1', rate_control: kbps(800) });
  const forged = { ...onePass, output: { ...onePass.output, passes: 2 as const } };
  assert.throws(() => compileEncode(forged, oneCore, target), (e: unknown) => e instanceof UnsupportedEncodeError && e.field === 'output.passes');
});

test('a single pass writes straight to the .part file, webm for vp9 and mp4 otherwise', () => {
  const vp9 = compileEncode(schema({ codec: 'vp9', rate_control: crf(30) }), oneCore, target);
  assert.equal(vp9.passes[0].slice(-3), ['-f', 'webm', 'file:/out/j123abc.part.webm']);
  assert.is(vp9.final_path, '/out/j123abc.webm');
  for (const codec of ['h264', 'hevc', 'av1']) {
    assert.is(compileEncode(schema({ codec, rate_control: crf(30) }), oneCore, target).container, 'mp4');
  }
});

test('output resolution, frame rate and gop become -vf scale, -r and -g', () => {
  const [argv] = encodeArgs({ codec: 'h264', rate_control: crf(23), resolution: '160x120', fps: 12.5, gop: 50 });
  assert.is(after(argv, '-vf'), 'scale=160:120');
  assert.is(after(argv, '-r'), '12.5');
  assert.is(after(argv, '-g'), '50');
  const [plain] = encodeArgs({ codec: 'h264', rate_control: crf(23) });
  for (const flag of ['-vf', '-r', '-g']) assert.not.ok(plain.includes(flag), flag);
});

test('extra options map to their flags and pix_fmt defaults to yuv420p', () => {
  const [argv] = encodeArgs({ codec: 'h264', rate_control: crf(23), options: { tune: 'film', profile: 'high', level: '4.1', bf: 3, refs: 4 } });
  assert.is(after(argv, '-tune'), 'film');
  assert.is(after(argv, '-profile:v'), 'high');
  assert.is(after(argv, '-level'), '4.1');
  assert.is(after(argv, '-bf'), '3');
  assert.is(after(argv, '-refs'), '4');
  assert.is(after(argv, '-pix_fmt'), 'yuv420p');
  assert.is(after(encodeArgs({ codec: 'vp9', rate_control: crf(30), options: { pix_fmt: 'yuv420p10le' } })[0], '-pix_fmt'), 'yuv420p10le');
});

test("x265's level goes into x265-params, since its wrapper ignores -level", () => {
  const [argv] = encodeArgs({ codec: 'hevc', rate_control: crf(23), options: { level: '5.1' } });
  assert.is(after(argv, '-x265-params'), 'level-idc=5.1:pools=1');
  assert.not.ok(argv.includes('-level'));
});

test('the thread count equals the number of granted cores, for every encoder', () => {
  const grant: Grant = { core_ids: [2, 3, 5], gpu_ids: [] };
  for (const output of [{ codec: 'h264' }, { codec: 'hevc' }, { codec: 'vp9' }, { codec: 'av1' }, { codec: 'av1', encoder: 'libaom-av1' }]) {
    const [argv] = encodeArgs({ ...output, rate_control: crf(30) }, grant);
    assert.is(after(argv, '-threads'), '3', output.codec);
    assert.is(after(argv, '-filter_threads'), '3');
  }
  assert.is(after(encodeArgs({ codec: 'hevc', rate_control: crf(30) }, grant)[0], '-x265-params'), 'pools=3');
  assert.is(after(encodeArgs({ codec: 'av1', rate_control: crf(30) }, grant)[0], '-svtav1-params'), 'lp=3');
});

test('an encode granted no core is refused', () => {
  assert.throws(() => encodeArgs({ codec: 'h264', rate_control: crf(23) }, { core_ids: [], gpu_ids: [] }), /core_ids/);
});

test('nvenc runs on the first granted GPU and is refused without one', () => {
  const [argv] = encodeArgs({ codec: 'h264', encoder: 'h264_nvenc', rate_control: crf(23) }, { core_ids: [0], gpu_ids: [3, 1] });
  assert.is(after(argv, '-gpu'), '3');
  assert.throws(() => encodeArgs({ codec: 'h264', encoder: 'h264_nvenc', rate_control: crf(23) }), /gpu_ids/);
  assert.not.ok(encodeArgs({ codec: 'h264', rate_control: crf(23) }, { core_ids: [0], gpu_ids: [3] })[0].includes('-gpu'));
});

test('every run is non-interactive, overwrites, reports progress on stdout and benchmarks itself', () => {
  for (const argv of [encodeArgs({ codec: 'h264', rate_control: crf(23) })[0], compileQuality(schema({ codec: 'h264', rate_control: crf(23) }), '/out/x.mp4', oneCore)]) {
    for (const flag of ['-nostdin', '-hide_banner', '-y', '-benchmark']) assert.ok(argv.includes(flag), flag);
    assert.ok(containsRun(argv, ['-progress', 'pipe:1', '-stats_period', '0.5']));
  }
  assert.ok(containsRun(encodeArgs({ codec: 'h264', rate_control: crf(23) })[0], ['-an', '-sn', '-dn']));
});

test('no encode argument contains a shell metacharacter', () => {
  const outputs = [
    { codec: 'h264', rate_control: crf(23), resolution: '640x360', fps: 30, gop: 60, options: { tune: 'zerolatency', profile: 'main', level: '3.1' } },
    { codec: 'hevc', rate_control: kbps(1200), passes: 2 },
    { codec: 'vp9', rate_control: crf(33), passes: 1 },
    { codec: 'av1', rate_control: crf(35) },
  ];
  for (const output of outputs) {
    for (const argv of encodeArgs(output, oneCore, { ...synthetic, synthetic: { source: 'mandelbrot', noise: 10 } })) {
      for (const a of argv) assert.not.match(a, /[;&|$`<>(){}\\'"*?!\s]/, `argument ${JSON.stringify(a)}`);
    }
  }
});

test('a tampered schema carrying shell or filter syntax is refused before any argv is built', () => {
  const valid = schema({ codec: 'h264', rate_control: crf(23) });
  const tampered: ((s: EncodingSchema) => void)[] = [
    (s) => { s.output.preset = 'fast; rm -rf /'; },
    (s) => { s.output.codec = 'vp9'; },
    (s) => { s.output.options = { tune: '$(reboot)' }; },
    (s) => { s.output.options = { 'x264-params': 'threads=64' }; },
    (s) => { s.output.options = { level: '4.1:x=1' }; },
    (s) => { (s.output.rate_control as { crf: unknown }).crf = '23 -vf drawtext'; },
    (s) => { (s.input as { source: string }).source = 'testsrc2,drawtext=text=x'; },
    (s) => { (s.input as { noise: unknown }).noise = '5:allf=t[a];[a]'; },
    (s) => { (s.input as { fps: unknown }).fps = '25,noise'; },
    (s) => { s.output.resolution = { width: '320:flags=x' as unknown as number, height: 240 }; },
  ];
  for (const tamper of tampered) {
    const s = structuredClone(valid);
    tamper(s);
    assert.throws(() => compileEncode(s, oneCore, target), (e: unknown) => e instanceof UnsupportedEncodeError, tamper.toString());
  }
  assert.throws(() => compileEncode(valid, oneCore, { ...target, task_id: '../escape' }), /task_id/);
});

test('quality compares the output with its regenerated synthetic source', () => {
  const s = schema({ codec: 'h264', rate_control: crf(23) }, { ...synthetic, synthetic: { source: 'testsrc2', noise: 20 } });
  const argv = compileQuality(s, '/out/j.part.mp4', { core_ids: [0, 1], gpu_ids: [] });
  assert.ok(containsRun(argv, ['-threads', '2', '-i', 'file:/out/j.part.mp4']));
  assert.ok(containsRun(argv, ['-f', 'lavfi', '-t', '1', '-i', 'testsrc2=size=320x240:rate=25,noise=alls=20:allf=t']));
  assert.is(after(argv, '-filter_complex'), '[0:v]format=yuv420p,setpts=PTS-STARTPTS[d];[1:v]format=yuv420p,setpts=PTS-STARTPTS[r];[r]split=2[r1][r2];[d][r1]psnr[dp];[dp][r2]ssim');
  assert.equal(argv.slice(-3), ['-f', 'null', '-']);
});

test('quality brings a rescaled, resampled output back to the source geometry and rate', () => {
  const s = schema({ codec: 'h264', rate_control: crf(23), resolution: '160x120', fps: 10 });
  const graph = after(compileQuality(s, '/out/j.mp4', oneCore), '-filter_complex');
  assert.is(graph, '[0:v]format=yuv420p,fps=25,setpts=PTS-STARTPTS[d];[1:v]format=yuv420p,setpts=PTS-STARTPTS[r];[d][r]scale2ref=flags=bicubic[ds][rs];[rs]split=2[r1][r2];[ds][r1]psnr[dp];[dp][r2]ssim');
});

test('quality against a file of unknown frame rate converts the reference to the output rate', () => {
  const s = schema({ codec: 'h264', rate_control: crf(23), fps: 24 }, { path: '/media/a.mp4' });
  const argv = compileQuality(s, '/out/j.mp4', oneCore);
  assert.is(after(argv.slice(argv.indexOf('file:/out/j.mp4') + 1), '-i'), 'file:/media/a.mp4');
  assert.match(after(argv, '-filter_complex')!, /^\[0:v\]format=yuv420p,setpts=PTS-STARTPTS\[d\];\[1:v\]format=yuv420p,fps=24,setpts=PTS-STARTPTS\[r\];/);
});

test('a pilot encodes the job\'s first frames with its own settings, in one pass on one thread, without audio, and writes nothing', () => {
  const job = schema({ codec: 'h264', preset: 'slow', rate_control: kbps(900), passes: 2, gop: 48, audio: 'aac' }, { ...synthetic, synthetic: { source: 'testsrc2', audio: true } });
  const argv = compilePilot(job, { core_ids: [0, 1], gpu_ids: [], threads: 1 });
  const [, second] = compileEncode(job, { core_ids: [0, 1], gpu_ids: [], threads: 1 }, target).passes;
  for (const flag of ['-c:v', '-preset', '-b:v', '-maxrate', '-g', '-threads']) assert.is(after(argv, flag), after(second, flag), flag);
  assert.is(after(argv, '-frames:v'), String(PILOT_FRAMES));
  assert.is(after(argv, '-threads'), '1');
  assert.ok(argv.includes('-an'), 'no audio');
  assert.not.ok(argv.includes('-pass'), 'one pass');
  assert.not.ok(argv.some((a) => a.startsWith('file:') && a !== 'file:/dev/null'), `writes nothing: ${argv.join(' ')}`);
  assert.equal(argv.slice(-3), ['-f', 'null', '-']);
});

test('a pilot of an HLS rendition is a plain stream of the same encode', () => {
  const argv = compilePilot(validateEncodingSchema({ input: synthetic, output: { codec: 'hevc', preset: 'fast', rate_control: crf(28), path: '/out/r.m3u8' } }, { ...ctx, allowedOutputRoots: ['/out'] }), oneCore, 6);
  assert.is(after(argv, '-c:v'), 'libx265');
  assert.is(after(argv, '-frames:v'), '6');
  assert.not.ok(argv.includes('hls'));
});

test('parseVideoKb reads the kilobytes of video from ffmpeg\'s closing line', () => {
  assert.is(parseVideoKb('frame=   12 fps=0.0\nvideo:509kB audio:0kB subtitle:0kB other streams:0kB global headers:0kB muxing overhead: unknown\n'), 509);
  assert.is(parseVideoKb('no such line'), undefined);
});

test('parseQuality reads the final PSNR and SSIM averages', () => {
  const stderr = [
    '[Parsed_ssim_4 @ 0x5581] SSIM Y:0.990000 (20.0) U:0.980000 (17.0) V:0.970000 (15.2) All:0.985432 (18.359)',
    '[Parsed_psnr_3 @ 0x5580] PSNR y:41.2 u:44.0 v:45.1 average:42.123456 min:38.0 max:50.0',
    'bench: utime=0.100s stime=0.010s rtime=0.200s',
  ].join('\n');
  assert.equal(parseQuality(stderr), { psnr_db: 42.123456, ssim: 0.985432 });
});

test('identical streams report the lossless PSNR cap instead of inf', () => {
  const stderr = '[Parsed_psnr_3 @ 0x1] PSNR y:inf u:inf v:inf average:inf min:inf max:inf\n[Parsed_ssim_4 @ 0x2] SSIM Y:1.000000 (inf) All:1.000000 (inf)';
  assert.equal(parseQuality(stderr), { psnr_db: LOSSLESS_PSNR_DB, ssim: 1 });
});

test('a run without quality lines yields no metrics', () => {
  assert.equal(parseQuality('Conversion failed!'), {});
});

test.run();
