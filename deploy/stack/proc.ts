/** Detached service processes: spawn, liveness, signals. Linux semantics (/proc, process groups). */
import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

export interface Spawned {
  pid: number;
  /** Offset of the log file where this run's output starts, for quoting it on failure. */
  logOffset: number;
  /** Set when the process exits while the spawning process still watches it. */
  exited: () => string | undefined;
}

/**
 * Starts `cmd` in its own session/process group with stdio appended to `logFile` and drops every
 * handle on it, so the service outlives the CLI that started it and signals can target the group.
 */
export function spawnDetached(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; logFile: string }): Spawned {
  const logOffset = existsSync(opts.logFile) ? statSync(opts.logFile).size : 0;
  const fd = openSync(opts.logFile, 'a');
  let exit: string | undefined;
  try {
    writeSync(fd, `\n=== ${new Date().toISOString()} prescient stack: ${cmd} ${args.join(' ')}\n`);
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['ignore', fd, fd] });
    child.on('error', (e) => { exit = e.message; });
    child.on('exit', (code, signal) => { exit = signal ? `killed by ${signal}` : `exited with code ${code}`; });
    child.unref();
    if (child.pid === undefined) throw new Error(`could not spawn ${cmd}`);
    return { pid: child.pid, logOffset: logOffset, exited: () => exit };
  } finally {
    closeSync(fd); // the child holds its own copy
  }
}

/**
 * True when `pid` is a live (non-zombie) process whose command line contains every `marker`.
 * The markers (binary name + this stack's data dir) guard against a recycled pid being taken
 * for our service after a reboot or a long-dead stack file.
 */
export function isAlive(pid: number | undefined, markers: string[]): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (!existsSync('/proc/self/stat')) return true; // no procfs: the signal test is all we have
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    return markers.every((m) => cmdline.includes(m));
  } catch {
    return false; // exited between the checks
  }
}

/** Sends `signal` to the whole process group led by `pid`; ignores a group that is already gone. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

/** Polls until the process is gone; false on timeout. */
export async function waitForExit(pid: number, markers: string[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid, markers)) {
    if (Date.now() > deadline) return false;
    await delay(50);
  }
  // An exiting process loses its command line before it is gone (the marker test above already
  // fails): wait, briefly, until the pid is gone or a zombie, so "stopped" means stopped. Brief,
  // because the pid may already name another process.
  const settled = Math.min(deadline, Date.now() + 2000);
  while (!exited(pid) && Date.now() < settled) await delay(20);
  return true;
}

/** The pid is gone, or a zombie waiting to be reaped. */
function exited(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
  } catch {
    return true;
  }
}

/**
 * SIGTERM (plus SIGCONT, so a SIGSTOPped service can act on it), wait `graceMs`, then SIGKILL.
 * Resolves once the process is gone.
 */
export async function terminate(pid: number, markers: string[], graceMs: number, first: NodeJS.Signals = 'SIGTERM'): Promise<'exited' | 'killed'> {
  if (!isAlive(pid, markers)) return 'exited';
  signalGroup(pid, first);
  signalGroup(pid, 'SIGCONT');
  if (await waitForExit(pid, markers, graceMs)) return 'exited';
  signalGroup(pid, 'SIGKILL');
  if (!(await waitForExit(pid, markers, 5000))) throw new Error(`pid ${pid} survived SIGKILL`);
  return 'killed';
}

/** Up to `maxBytes` of what a log file gained since `offset`, trimmed to whole lines. */
export function logTail(file: string, offset: number, maxBytes = 3000): string {
  try {
    const size = statSync(file).size;
    const start = Math.max(offset, size - maxBytes);
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(size - start);
      readSync(fd, buf, 0, buf.length, start);
      const text = buf.toString('utf8');
      return (start > offset ? text.slice(text.indexOf('\n') + 1) : text).trimEnd();
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

/** Resolves an executable: an explicit override, else PATH plus the sbin dirs (nats-server lives in /usr/sbin). */
export function findExecutable(name: string, override?: string): string | undefined {
  const candidates = override ? [override] : [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'].filter(Boolean).map((d) => path.join(d, name));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch { /* next */ }
  }
  return undefined;
}
