/**
 * What the local ffmpeg build can do, asked once per process. VMAF in particular is only
 * measured where this build has libvmaf (Debian's ffmpeg 5.1 does not): it is never faked.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ffmpegPath } from './run.js';

const run = promisify(execFile);

export interface FfmpegCapabilities {
  version: string;
  encoders: ReadonlySet<string>;
  filters: ReadonlySet<string>;
  /** Every name its demuxers answer to (`mov,mp4,…` is six), as `-format_whitelist` matches them. */
  demuxers: ReadonlySet<string>;
  vmaf: boolean;
}

/** Names in the listing `ffmpeg -encoders` / `-filters` prints: one per line after the flags column. */
export function parseListing(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^\s*[A-Z.|]{2,}\s+([A-Za-z0-9_-]+)\s/.exec(line);
    if (m && m[1] !== '=') names.add(m[1]);
  }
  return names;
}

/** Demuxer names in `ffmpeg -demuxers`: the second column after the `--` line, each comma-separated name on its own. */
export function parseDemuxers(text: string): Set<string> {
  const names = new Set<string>();
  const lines = text.split('\n');
  for (const line of lines.slice(lines.findIndex((l) => l.trim() === '--') + 1)) {
    const m = /^\s*[A-Za-z.]+\s+([A-Za-z0-9_,-]+)/.exec(line);
    if (m) for (const n of m[1].split(',')) if (n) names.add(n);
  }
  return names;
}

let cached: Promise<FfmpegCapabilities> | undefined;

export function ffmpegCapabilities(): Promise<FfmpegCapabilities> {
  cached ??= (async () => {
    const bin = ffmpegPath();
    const [v, enc, fil, dem] = await Promise.all([
      run(bin, ['-hide_banner', '-version'], { timeout: 10_000 }),
      run(bin, ['-hide_banner', '-encoders'], { timeout: 10_000 }),
      run(bin, ['-hide_banner', '-filters'], { timeout: 10_000 }),
      run(bin, ['-hide_banner', '-demuxers'], { timeout: 10_000 }),
    ]);
    const filters = parseListing(fil.stdout);
    return {
      version: /ffmpeg version (\S+)/.exec(v.stdout)?.[1] ?? 'unknown', encoders: parseListing(enc.stdout), filters,
      demuxers: parseDemuxers(dem.stdout), vmaf: filters.has('libvmaf'),
    };
  })();
  return cached;
}
