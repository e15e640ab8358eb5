/**
 * The rights ffmpeg and ffprobe run with, and how the agent hands them what they may touch.
 *
 * Privileges. Every ffmpeg and ffprobe starts through
 *
 *   setpriv --no-new-privs --inh-caps=-all --bounding-set=-all [--reuid U --regid G --init-groups] --pdeathsig KILL -- …
 *
 * so it holds no capability and can gain none (no setuid binary, no file capability). When the
 * agent is root it also becomes PRESCIENT_FFMPEG_USER (default `prescient`, which
 * deploy/install.sh creates); if that user does not exist, nothing runs (ConfigError) rather than
 * ffmpeg running as root. An agent that is not root cannot change user: ffmpeg runs as the agent's
 * own, still without capabilities.
 *
 * Handing over. ffmpeg never opens a path the agent resolved. The agent opens the input (after
 * the checks of inputs.ts), the task's directory and the file to compare against, and passes the
 * descriptors at fixed numbers (HANDED); ffmpeg opens `/proc/self/fd/N`, or a name inside it. That
 * reopens the very file or directory the agent checked (no path is walked again, so a symlink
 * swapped in later changes nothing), needs no search right on the directories above it (the
 * state dir may be root's own), and still checks the file's permissions against ffmpeg's user:
 * a descriptor never lends ffmpeg the agent's rights to what it reads.
 */
import { execFileSync } from 'node:child_process';
import { constants } from 'node:fs';
import { chown, lchown, mkdir, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../../shared/errors.js';

/** Who ffmpeg runs as when the agent is root. */
export interface FfmpegUser {
  name: string;
  uid: number;
  gid: number;
}

export const DEFAULT_FFMPEG_USER = 'prescient';
const users = new Map<string, FfmpegUser>();

/**
 * The user ffmpeg runs as: PRESCIENT_FFMPEG_USER (default `prescient`) when this process is root,
 * undefined when it is not (ffmpeg keeps the agent's user). Throws ConfigError when the agent is
 * root and that user does not exist or is root itself. Looked up once per name and thread.
 */
export function ffmpegUser(): FfmpegUser | undefined {
  if (process.geteuid?.() !== 0) return undefined;
  const name = process.env.PRESCIENT_FFMPEG_USER || DEFAULT_FFMPEG_USER;
  const known = users.get(name);
  if (known) return known;
  let fields: string[] | undefined;
  try {
    fields = execFileSync('getent', ['passwd', name], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0].split(':');
  } catch {
    fields = undefined; // getent exits 2 for a user it does not know
  }
  if (!fields || fields.length < 4) {
    throw new ConfigError('PRESCIENT_FFMPEG_USER', `user ${JSON.stringify(name)} does not exist on this node, and this agent runs as root, which ffmpeg never does: `
      + `create it (deploy/install.sh does: useradd --system --no-create-home --shell /usr/sbin/nologin ${name}) or name another unprivileged user`);
  }
  const user = { name: fields[0], uid: Number(fields[2]), gid: Number(fields[3]) };
  if (!(user.uid > 0) || !(user.gid > 0)) throw new ConfigError('PRESCIENT_FFMPEG_USER', `${name} is uid ${fields[2]}, gid ${fields[3]}: ffmpeg must run as an unprivileged user`);
  users.set(name, user);
  return user;
}

/** setpriv's options (before its `--`) that take every privilege from what it starts. */
export function privilegeArgs(): string[] {
  const u = ffmpegUser();
  // Not root: --bounding-set is a no-op without CAP_SETPCAP, and dropping the inheritable set
  // clears ambient capabilities too, so the exec'd ffmpeg holds none either way.
  return ['--no-new-privs', '--inh-caps=-all', '--bounding-set=-all', ...(u ? ['--reuid', String(u.uid), '--regid', String(u.gid), '--init-groups'] : [])];
}

/** One line for the agent's log: who ffmpeg runs as. Throws ConfigError as ffmpegUser does. */
export function describeFfmpegPrivileges(): string {
  const u = ffmpegUser();
  const who = u ? `user ${u.name} (uid ${u.uid}, gid ${u.gid})` : `this agent's own user (uid ${process.geteuid?.() ?? '?'}; only root could change it)`;
  return `ffmpeg and ffprobe run as ${who}, with no capabilities and no new privileges`;
}

/** Where ffmpeg finds what the agent opened for it: descriptor numbers in the child. */
export const HANDED = {
  /** The input file (inputs.ts openInput). */
  input: 3,
  /** The directory it writes into: the task's work dir, or a live channel's directory. */
  dir: 4,
  /** The encoded file the quality pass compares with the input. */
  distorted: 5,
} as const;
export type Handed = Partial<Record<keyof typeof HANDED, number>>;

/** The path ffmpeg opens a handed descriptor by. */
export function handedPath(slot: keyof typeof HANDED): string {
  return `/proc/self/fd/${HANDED[slot]}`;
}

/** spawn's `stdio` with the agent's descriptors at their HANDED numbers (nothing else is inherited). */
export function handedStdio(h: Handed = {}): ('ignore' | 'pipe' | number)[] {
  const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'pipe', 'pipe'];
  for (const slot of Object.keys(HANDED) as (keyof typeof HANDED)[]) {
    const fd = h[slot];
    if (fd === undefined) continue;
    while (stdio.length <= HANDED[slot]) stdio.push('ignore');
    stdio[HANDED[slot]] = fd;
  }
  return stdio;
}

/**
 * Makes `dir` afresh (anything there is removed), owned by ffmpeg's user, and opens it to be
 * handed as HANDED.dir. Only this directory is ffmpeg's: the output directory above it stays
 * the agent's, and finished files are moved out of it and reclaimed.
 */
export async function ffmpegDir(dir: string, mode = 0o700): Promise<FileHandle> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.dirname(dir), { recursive: true });
  await mkdir(dir, { mode });
  const u = ffmpegUser();
  if (u) await chown(dir, u.uid, u.gid);
  return open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
}

/**
 * Gives what ffmpeg wrote back to the agent's user (a directory: with the files in it), so a
 * later ffmpeg, which runs as the same user, cannot alter another task's finished output.
 */
export async function reclaim(p: string): Promise<void> {
  if (!ffmpegUser()) return;
  const uid = process.geteuid!(), gid = process.getegid!();
  const entries = await readdir(p, { withFileTypes: true }).catch(() => []);
  // lchown: a link ffmpeg made must not turn this into a chown of whatever it points at.
  for (const e of entries) await lchown(path.join(p, e.name), uid, gid).catch(() => undefined); // a live window may drop a segment meanwhile
  await lchown(p, uid, gid);
}
