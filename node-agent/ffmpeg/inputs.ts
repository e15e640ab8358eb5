/**
 * How a file input reaches ffmpeg on a node. The coordinator checked `input.path` lexically
 * (under an allowed root once normalised); here it is checked again as the filesystem sees it:
 *
 *   input.path ─realpath─▶ inside a root (roots realpath'd too)? ─open─▶ the kernel's name for what
 *   was opened still inside? a regular file? ─ffprobe─▶ its demuxer, if not one that opens other files
 *
 * ffprobe runs unprivileged (sandbox.ts) on the handed descriptor, with `-protocol_whitelist file`
 * and a `-format_whitelist` of every demuxer this ffmpeg has but FOLLOWING_DEMUXERS: an HLS
 * playlist or an ffconcat list is refused before its demuxer reads a line of it, nested ones too
 * (ffmpeg copies the whitelists into every context a demuxer opens). Every ffmpeg run on the input
 * then allows only the demuxer ffprobe found (InputAccess).
 *
 * What remains: a hard link inside a root to a file elsewhere is inside as far as any path can
 * tell (fs.protected_hardlinks keeps users from linking files they cannot write), and so is a bind
 * mount; the file's bytes may change after the check (its demuxer may not). ffmpeg's user reads
 * nothing its own permissions do not allow.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { InputAccess } from './args.js';
import { ffmpegCapabilities } from './capabilities.js';
import { FfmpegExitError, UnsupportedEncodeError } from './errors.js';
import { ffmpegPath } from './run.js';
import { ffmpegUser, handedPath, handedStdio, privilegeArgs } from './sandbox.js';

/**
 * Demuxers never used on an input, because they read further files or streams named inside it
 * (or run code), which the roots check never saw.
 */
export const FOLLOWING_DEMUXERS: readonly string[] = [
  'hls', 'applehttp', // HLS playlists: every segment URI
  'dash', // DASH manifests
  'concat', // ffconcat lists
  'imf', // IMF composition playlists: their asset maps
  'image2', // a numbered sequence of files next to the named one
  'lavfi', // a filter graph, whose movie= source opens any file
  'sdp', 'rtp', 'rtsp', 'sap', // network sessions
  'avisynth', 'vapoursynth', // scripts (not in Debian's build; refused where another build has them)
];

/** The ffprobe next to the ffmpeg in use (PRESCIENT_FFPROBE overrides). */
export function ffprobePath(): string {
  return process.env.PRESCIENT_FFPROBE || path.join(path.dirname(ffmpegPath()), 'ffprobe');
}

/** How long one ffprobe may take: it reads headers and a few packets, not the whole file. */
const FFPROBE_TIMEOUT_MS = 20_000;
const FFPROBE_MAX_STDOUT = 8 * 2 ** 20;

/** An input opened and checked by openInput: hand `fd` as HANDED.input and open it through `access`. */
export interface HandedInput {
  fd: number;
  /** The kernel's name for the file opened (symlinks resolved). */
  real_path: string;
  size: number;
  mtime_ms: number;
  /** What ffmpeg opens it by, and the one demuxer it may use. */
  access: InputAccess;
  /** ffprobe's `-show_format -show_streams` JSON of it: from its headers alone unless opened with `streams`. */
  ffprobe: unknown;
  close(): Promise<void>;
}

/** `roots` as the filesystem has them (symlinks resolved); a root that does not exist holds nothing. */
export async function realRoots(roots: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const r of roots) {
    try {
      out.push(await realpath(r));
    } catch {
      // not there: nothing can be inside it
    }
  }
  return out;
}

const inside = (p: string, roots: readonly string[]) => roots.some((r) => p === r || p.startsWith(r.endsWith(path.sep) ? r : r + path.sep));

/**
 * `file` with every symlink resolved, refused (UnsupportedEncodeError on `input.path`) when that
 * lies outside `roots` or cannot be resolved. Without `roots`, only resolved: the caller's own
 * rights are all a probe would use (a submitter's probe).
 */
export async function resolveInput(file: string, roots?: readonly string[]): Promise<string> {
  if (typeof file !== 'string' || !path.isAbsolute(file) || /[\0\r\n]/.test(file)) {
    throw new UnsupportedEncodeError('input.path', 'must be an absolute path without control characters');
  }
  let real: string;
  try {
    real = await realpath(file);
  } catch (e) {
    throw new UnsupportedEncodeError('input.path', `${file} cannot be opened on this node (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (roots) {
    const real_roots = await realRoots(roots);
    if (!inside(real, real_roots)) throw new UnsupportedEncodeError('input.path', `${file} resolves to ${real}, outside the allowed input roots (${real_roots.join(', ') || 'none exists on this node'})`);
  }
  return real;
}

/**
 * Opens a file input for ffmpeg after the checks in the module comment. Throws
 * UnsupportedEncodeError (`input.path`) for what is refused, FfmpegExitError when ffprobe cannot
 * read it (not media). The caller closes it once the last ffmpeg on it has exited.
 *
 * `streams`: ffprobe also reads packets to measure the streams (a probe wants them). Without it
 * only the headers are read, so an encode's own reads still find the file uncached where it was
 * (its disk throttle applies to the encode, not to this check, which runs outside its cgroups).
 */
export async function openInput(file: string, o: { roots?: readonly string[]; signal?: AbortSignal; streams?: boolean } = {}): Promise<HandedInput> {
  const real = await resolveInput(file, o.roots);
  // O_NONBLOCK: a FIFO (refused below) must not hang the open; O_NOFOLLOW: a link swapped in since realpath is not followed.
  let handle: FileHandle;
  try {
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    throw new UnsupportedEncodeError('input.path', `${file} cannot be opened on this node (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    // What was opened, whatever changed since realpath: a directory above it swapped for a link shows here.
    const opened = await readlink(`/proc/self/fd/${handle.fd}`);
    if (o.roots && !inside(opened, await realRoots(o.roots))) throw new UnsupportedEncodeError('input.path', `${file} was replaced while it was opened: what was opened is ${opened}, outside the allowed input roots`);
    const st = await handle.stat();
    if (!st.isFile()) throw new UnsupportedEncodeError('input.path', `${file} is not a regular file`);
    const { format, json } = await vetFormat(handle.fd, file, o.streams === true, o.signal);
    return {
      fd: handle.fd, real_path: opened, size: st.size, mtime_ms: st.mtimeMs, access: { path: handedPath('input'), format }, ffprobe: json,
      close: () => handle.close(),
    };
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/** Opens a file the agent itself made (an encode's output) to hand to ffmpeg: no link followed. */
export function openOwn(file: string): Promise<FileHandle> {
  return open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
}

/** ffprobe on the handed input with both whitelists: its demuxer's name and its JSON, or why not. */
async function vetFormat(fd: number, file: string, streams: boolean, signal?: AbortSignal): Promise<{ format: string; json: unknown }> {
  const { demuxers } = await ffmpegCapabilities();
  const allowed = [...demuxers].filter((d) => !FOLLOWING_DEMUXERS.includes(d));
  const r = await runFfprobe([
    '-v', 'error', '-protocol_whitelist', 'file', '-format_whitelist', allowed.join(','), ...(streams ? [] : ['-nofind_stream_info']),
    '-print_format', 'json', '-show_format', '-show_streams', `file:${handedPath('input')}`,
  ], fd, signal);
  // "[hls @ 0x55…] Format not on whitelist '…'": refused before the demuxer read its header.
  const refused = /^\[([\w,-]+) @ 0x[0-9a-f]+\] Format not on whitelist/m.exec(r.stderr);
  if (refused) throw new UnsupportedEncodeError('input.path', `${file} is read by ffmpeg's ${refused[1]} demuxer, which opens the files or streams it names (a playlist, manifest or concat list): refused`);
  if (r.code !== 0 && /Permission denied/.test(r.stderr)) {
    const u = ffmpegUser();
    throw new UnsupportedEncodeError('input.path', `${file} is not readable by ${u ? `user ${u.name}` : 'this agent\'s user'}, whom ffmpeg runs as`);
  }
  if (r.code !== 0) throw new FfmpegExitError(r.code, r.signal, r.stderr.trim().split('\n').slice(-15).join('\n'));
  let json: unknown;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    throw new FfmpegExitError(r.code, r.signal, `ffprobe printed no JSON for ${file}`);
  }
  const format = (json as { format?: { format_name?: unknown } })?.format?.format_name;
  if (typeof format !== 'string' || !/^[\w,-]+$/.test(format) || format.split(',').some((f) => FOLLOWING_DEMUXERS.includes(f))) {
    throw new UnsupportedEncodeError('input.path', `${file}: ffprobe named no demuxer ffmpeg may use on it (${JSON.stringify(format)})`);
  }
  return { format, json };
}

/** ffprobe, unprivileged like ffmpeg, with the input handed as HANDED.input. */
function runFfprobe(args: string[], fd: number, signal?: AbortSignal): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    let argv: string[];
    try {
      argv = [...privilegeArgs(), '--pdeathsig', 'KILL', '--', ffprobePath(), ...args];
    } catch (e) {
      return reject(e);
    }
    const child = spawn('setpriv', argv, { stdio: handedStdio({ input: fd }), timeout: FFPROBE_TIMEOUT_MS, killSignal: 'SIGKILL', signal });
    let stdout = '', stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (stdout.length > FFPROBE_MAX_STDOUT) child.kill('SIGKILL');
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-64 * 1024); });
    child.on('error', reject);
    child.on('close', (code, sig) => resolve({ code, signal: sig, stdout, stderr }));
  });
}
