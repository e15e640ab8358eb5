/**
 * Hostile input against a node's ffmpeg (issue 17): a symlink or a playlist inside the allowed
 * input root that leads outside it, and what ffmpeg and ffprobe may do if one got through anyway
 * (their user and capabilities). Real ffmpeg, ffprobe and setpriv through the Piscina runner and
 * the probe, as the agent uses them (node-agent/ffmpeg/inputs.ts, sandbox.ts).
 *
 * "Never read" is shown with FIFOs outside the root: whatever opened one to read it would block
 * (nothing ever writes to it), and a writer's non-blocking open afterwards finds no reader.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, parseCpuList, validateEncodingSchema } from '../../shared/index.js';
import { createEncodeRunner, UnsupportedEncodeError, type EncodeJob } from '../../node-agent/runner/index.js';
import { describeFfmpegPrivileges, ffmpegUser, openInput, runFfmpeg } from '../../node-agent/ffmpeg/index.js';
import { probeInput } from '../../node-agent/ffmpeg/probe.js';

const base = mkdtempSync(path.join(os.tmpdir(), 'prescient-hostile-input-'));
const root = path.join(base, 'media');
const outside = path.join(base, 'outside');
const out = path.join(base, 'output');
for (const d of [root, outside, out]) mkdirSync(d);
const runner = createEncodeRunner({ maxThreads: 1 });
const core = [parseCpuList(/^Cpus_allowed_list:\s*(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1])[0]];
const isRoot = process.geteuid?.() === 0;

const ffmpeg = (...args: string[]) => execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...args]);
const clip = (file: string, seconds = 1) => ffmpeg('-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25', '-t', String(seconds), '-c:v', 'libx264', '-preset', 'ultrafast', file);
/** Whether some process has `fifo` open for reading: a non-blocking writer's open fails with ENXIO when none has. */
function hasReader(fifo: string): boolean {
  try {
    closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENXIO') return false;
    throw e;
  }
}
function job(task_id: string, input: Record<string, unknown>, output: Record<string, unknown> = { codec: 'h264', preset: 'ultrafast', rate_control: { mode: 'crf', crf: 30 } }): EncodeJob {
  // The coordinator's own check is lexical: every path below passes it.
  const schema = validateEncodingSchema({ input, output }, { allowedInputRoots: [root] });
  return { task_id, schema, core_ids: core, gpu_ids: [], memory_gb: 1, output_dir: out, input_roots: [root], quality: true };
}
async function refusal(run: Promise<unknown>): Promise<UnsupportedEncodeError> {
  try {
    await run;
  } catch (e) {
    assert.instance(e, UnsupportedEncodeError, String(e));
    return e as UnsupportedEncodeError;
  }
  return assert.unreachable('expected a refusal') as never;
}
/** The ffmpeg whose handed directory (descriptor 4) is `dir`, and its /proc status. */
function ffmpegWriting(dir: string): string | undefined {
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'ffmpeg' && readlinkSync(`/proc/${p}/fd/4`) === dir) return readFileSync(`/proc/${p}/status`, 'utf8');
    } catch { /* gone, or not ours to read */ }
  }
  return undefined;
}
const field = (status: string, name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1].trim().split(/\s+/);

test.before(() => {
  clip(path.join(root, 'clip.mp4'));
  clip(path.join(outside, 'secret.mp4'));
  clip(path.join(outside, 'secret.ts'));
  execFileSync('mkfifo', [path.join(outside, 'never.mp4'), path.join(outside, 'never.ts')]);
  symlinkSync(path.join(outside, 'secret.mp4'), path.join(root, 'escape.mp4'));
  symlinkSync(path.join(outside, 'never.mp4'), path.join(root, 'escape-fifo.mp4'));
  symlinkSync(outside, path.join(root, 'linked-dir'));
  symlinkSync(path.join(root, 'clip.mp4'), path.join(root, 'inner.mp4'));
  const playlist = (segment: string) => `#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n${segment}\n#EXT-X-ENDLIST\n`;
  writeFileSync(path.join(root, 'secret.m3u8'), playlist(path.join(outside, 'secret.ts')));
  writeFileSync(path.join(root, 'never.m3u8'), playlist(path.join(outside, 'never.ts')));
  writeFileSync(path.join(root, 'never.ffconcat'), `ffconcat version 1.0\nfile '${path.join(outside, 'never.mp4')}'\n`);
});
test.after(async () => {
  await runner.close();
  rmSync(base, { recursive: true, force: true });
});

// ── paths that leave the root ───────────────────────────────────────────────────────────

test('a symlink inside the input root to a file outside it is refused naming input.path, before ffprobe or ffmpeg opens it', async () => {
  const e = await refusal(runner.run(job('escape', { path: path.join(root, 'escape.mp4') })));
  assert.is(e.field, 'input.path');
  assert.match(e.message, `resolves to ${path.join(outside, 'secret.mp4')}, outside the allowed input roots`);
  const t0 = Date.now();
  await refusal(runner.run(job('escape-fifo', { path: path.join(root, 'escape-fifo.mp4') })));
  assert.ok(Date.now() - t0 < 5000, 'refused at once: nothing sat waiting on the FIFO');
  assert.not.ok(hasReader(path.join(outside, 'never.mp4')));
  assert.equal(readdirSync(out), [], 'no output, no work directory');
});

test('a path through a symlinked directory inside the root is refused the same way', async () => {
  const e = await refusal(runner.run(job('linked-dir', { path: path.join(root, 'linked-dir', 'secret.mp4') })));
  assert.is(e.field, 'input.path');
  assert.match(e.message, 'outside the allowed input roots');
});

test('a node\'s probe of an escaping path finds nothing, while a submitter\'s (no roots: its own rights) still resolves it', async () => {
  assert.is(await probeInput({ kind: 'file', path: path.join(root, 'escape.mp4') }, { by: 'node', roots: [root] }), undefined);
  const own = await probeInput({ kind: 'file', path: path.join(root, 'escape.mp4') }, { by: 'submitter' });
  assert.is(own?.width, 160);
});

test('a symlink that stays inside the root is followed: a two-pass encode of it keeps its pass logs in its work directory, then hands the output back', async () => {
  const r = await runner.run(job('inner', { path: path.join(root, 'inner.mp4') }, { codec: 'h264', preset: 'ultrafast', passes: 2, rate_control: { mode: 'bitrate', bitrate_kbps: 200 } }));
  assert.is(r.output_path, path.join(out, 'inner.mp4'));
  assert.ok(r.psnr_db! > 25, `the quality pass read both files: PSNR ${r.psnr_db}`);
  assert.equal(readdirSync(out), ['inner.mp4'], 'the work directory and its pass logs are gone');
  assert.is(statSync(r.output_path).uid, process.geteuid!(), 'the finished output is the agent\'s, not ffmpeg\'s');
});

// ── playlists and concat lists ─────────────────────────────────────────────────────────

test('the playlist used below does make an unguarded ffprobe read a file outside the root', () => {
  const seen = execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width', '-of', 'csv=p=0', `file:${path.join(root, 'secret.m3u8')}`], { encoding: 'utf8' });
  assert.match(seen, 'h264,160');
});

test('an HLS playlist in the root naming a file outside it is refused as a playlist, and that file is never opened', async () => {
  const t0 = Date.now();
  const e = await refusal(runner.run(job('playlist', { path: path.join(root, 'never.m3u8') })));
  assert.is(e.field, 'input.path');
  assert.match(e.message, /hls demuxer, which opens the files or streams it names/);
  assert.ok(Date.now() - t0 < 5000, 'refused at once');
  assert.not.ok(hasReader(path.join(outside, 'never.ts')));
  assert.is(await probeInput({ kind: 'file', path: path.join(root, 'never.m3u8') }, { by: 'submitter' }), undefined, 'nor does a probe read it');
  assert.not.ok(hasReader(path.join(outside, 'never.ts')));
});

test('an ffconcat list is refused as a concat list, and what it lists is never opened', async () => {
  const e = await refusal(openInput(path.join(root, 'never.ffconcat'), { roots: [root] }));
  assert.match(e.message, /concat demuxer/);
  assert.not.ok(hasReader(path.join(outside, 'never.mp4')));
});

// ── who ffmpeg is ──────────────────────────────────────────────────────────────────────

test('ffmpeg runs with no capabilities and no way to gain one, and as the unprivileged user when the agent is root', async () => {
  const abort = new AbortController();
  let status: string | undefined;
  const run = runner.run(job('whoami', { synthetic: { source: 'testsrc2' }, resolution: '640x480', fps: 25, duration_s: 600 }), {
    signal: abort.signal,
    onProgress: (p) => {
      if (status || p.frame === 0) return;
      status = ffmpegWriting(path.join(out, 'whoami.work'));
      abort.abort();
    },
  });
  await run.catch(() => undefined);
  assert.ok(status, 'the encoding ffmpeg was found while it ran');
  for (const caps of ['CapInh', 'CapPrm', 'CapEff', 'CapAmb']) assert.is(field(status!, caps)![0], '0000000000000000', caps);
  assert.is(field(status!, 'NoNewPrivs')![0], '1');
  if (!isRoot) return console.log('  skipped: the user change (this test is not root, so ffmpeg keeps its user)');
  const u = ffmpegUser()!;
  assert.ok(u.uid > 0);
  assert.equal(field(status!, 'Uid'), [u.uid, u.uid, u.uid, u.uid].map(String));
  assert.equal(field(status!, 'Gid'), [u.gid, u.gid, u.gid, u.gid].map(String));
  assert.is(field(status!, 'CapBnd')![0], '0000000000000000');
});

test('ffprobe runs the same way', async () => {
  // A wrapper that records its own status and then runs the real ffprobe; ffmpeg's user must be able to run it and write the record.
  const bin = mkdtempSync(path.join(os.tmpdir(), 'prescient-ffprobe-wrap-'));
  chmodSync(bin, 0o755);
  const record = path.join(bin, 'status');
  writeFileSync(record, '');
  chmodSync(record, 0o666);
  const wrapper = path.join(bin, 'ffprobe');
  writeFileSync(wrapper, `#!/bin/sh\ncat /proc/self/status > ${record}\nexec ${execFileSync('sh', ['-c', 'command -v ffprobe'], { encoding: 'utf8' }).trim()} "$@"\n`, { mode: 0o755 });
  const saved = process.env.PRESCIENT_FFPROBE;
  process.env.PRESCIENT_FFPROBE = wrapper;
  try {
    const input = await openInput(path.join(root, 'clip.mp4'), { roots: [root] });
    await input.close();
  } finally {
    if (saved === undefined) delete process.env.PRESCIENT_FFPROBE;
    else process.env.PRESCIENT_FFPROBE = saved;
  }
  const status = readFileSync(record, 'utf8');
  rmSync(bin, { recursive: true, force: true });
  assert.is(field(status, 'CapEff')![0], '0000000000000000');
  assert.is(field(status, 'NoNewPrivs')![0], '1');
  if (!isRoot) return console.log('  skipped: the user change (not root)');
  assert.is(field(status, 'Uid')![0], String(ffmpegUser()!.uid));
});

test('a root agent whose ffmpeg user does not exist refuses to run ffmpeg rather than run it as root', async () => {
  if (!isRoot) return console.log('  skipped: only root changes user');
  const saved = process.env.PRESCIENT_FFMPEG_USER;
  process.env.PRESCIENT_FFMPEG_USER = 'prescient-no-such-user';
  try {
    assert.throws(() => describeFfmpegPrivileges(), (e: unknown) => e instanceof ConfigError && e.setting === 'PRESCIENT_FFMPEG_USER' && /does not exist/.test(e.message));
    const e = await runFfmpeg(['-hide_banner', '-version'], { core_ids: core }).then(() => undefined, (x: unknown) => x);
    assert.instance(e, ConfigError);
  } finally {
    if (saved === undefined) delete process.env.PRESCIENT_FFMPEG_USER;
    else process.env.PRESCIENT_FFMPEG_USER = saved;
  }
  assert.not.ok(existsSync(path.join(out, 'whoami.work')));
});

test.run();
