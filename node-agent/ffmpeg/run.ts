/**
 * Runs one ffmpeg argv pinned to its granted cores and reports what it used:
 *
 *   setpriv PRIVILEGES --pdeathsig KILL -- [prlimit --data=N --] taskset -c CORES $PRESCIENT_FFMPEG ARGS...   (no shell)
 *
 * PRIVILEGES (sandbox.ts) leave ffmpeg no capability, no way to gain one, and, when the agent is
 * root, an unprivileged user; what it reads and writes it gets as handed descriptors (`handed`).
 * setpriv, prlimit and taskset exec in place, so the child's pid ends up being ffmpeg's. The
 * parent-death signal makes the kernel SIGKILL ffmpeg when the thread that spawned it exits, so a
 * terminated Piscina worker or a crashed agent never leaves an orphan encode running. With a
 * Confinement (enforce/), the process is spawned into the task's cgroups, prlimit is there only
 * where no memory cgroup is, and the environment shows ffmpeg only its reserved GPUs.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { UsageSummary } from '../../shared/index.js';
import type { Confinement } from '../enforce/index.js';
import { Sampler, type SamplingOptions } from '../sampling/index.js';
import { EncodeAbortedError, FfmpegExitError } from './errors.js';
import { handedStdio, privilegeArgs, type Handed } from './sandbox.js';

/** One `-progress` report. */
export interface FfmpegProgress {
  frame: number;
  fps: number;
  /** Encode speed as a multiple of real time. */
  speed: number;
  /** Bytes muxed so far. */
  total_size: number;
  out_time_s: number;
  /** ffmpeg's last report (`progress=end`). */
  done: boolean;
}

/** What one finished ffmpeg process used. */
export interface FfmpegRun {
  /** From spawn to exit, ffmpeg's start-up included. */
  wall_s: number;
  /** utime + stime while transcoding, from `-benchmark`; absent if ffmpeg did not print it. */
  cpu_s?: number;
  /** `-benchmark`'s rtime: wall time of the transcode itself, without start-up and option parsing. */
  transcode_s?: number;
  /** The samples' summary; its memory_gb_peak also counts `-benchmark`'s maxrss where that is ffmpeg's own. */
  usage: UsageSummary;
  /** Bytes passed through read() (rchar of /proc/<pid>/io, so page-cache hits count too), as last sampled. */
  read_bytes: number;
  /**
   * ffmpeg's affinity was exactly the requested cores, and every thread was on one of them,
   * whenever it was looked at: once it had exec'd, then at every sample.
   */
  pinned: boolean;
  last_progress?: FfmpegProgress;
  /** The last stderr lines. */
  stderr: string;
}

export interface RunFfmpegOptions {
  core_ids: readonly number[];
  /** Aborting sends SIGTERM, then SIGKILL after KILL_GRACE_MS; the promise settles only once ffmpeg has exited. */
  signal?: AbortSignal;
  /**
   * A graceful stop, for a live channel: SIGINT makes ffmpeg write its trailer (a live playlist
   * gets #EXT-X-ENDLIST) and exit, and the run resolves as a success. SIGKILL after STOP_GRACE_MS.
   */
  stop?: AbortSignal;
  onProgress?: (p: FfmpegProgress) => void;
  /** Each line ffmpeg writes to stderr (its log), as it comes. */
  onLog?: (line: string) => void;
  /** GPUs granted to the run, whose nvidia-smi readings go into the samples. */
  gpu_ids?: readonly number[];
  /** The run is always sampled (for `usage` and `pinned`); this says how often and where samples go. */
  sampling?: SamplingOptions;
  /**
   * Holds ffmpeg to the task's reservation (cgroups, rlimit, visible GPUs) and may turn a failure
   * into the limit that caused it. Without one ffmpeg is only pinned to `core_ids`.
   */
  confinement?: Confinement;
  /**
   * Run at the lowest CPU priority (nice 19): work done after a reservation was released (the
   * quality pass) takes only cycles the reserved encodes leave idle.
   */
  idle?: boolean;
  /** Descriptors the agent opened for ffmpeg, passed at sandbox.ts's HANDED numbers; the argv names them by handedPath. */
  handed?: Handed;
}

/** How long ffmpeg may flush after SIGTERM before it is killed; a cancelled output is discarded anyway. */
const KILL_GRACE_MS = 1000;
/** How long a stopped live channel may take to close its output before it is killed. */
const STOP_GRACE_MS = 10_000;
const STDERR_LINES_KEPT = 200;
const STDERR_LINES_IN_ERROR = 15;
/** Lines every run prints, which would only bury the reason in an error message. */
const ROUTINE_STDERR = /^(bench:|ffmpeg stats and -progress period set to)/;

/** A maxrss this far above this process's RSS at the fork is ffmpeg's own (see runFfmpeg). */
const MAXRSS_MARGIN = 1.05;

/** The ffmpeg binary: PRESCIENT_FFMPEG, else Debian's. */
export function ffmpegPath(): string {
  return process.env.PRESCIENT_FFMPEG || '/usr/bin/ffmpeg';
}

export function runFfmpeg(args: readonly string[], opts: RunFfmpegOptions): Promise<FfmpegRun> {
  if (opts.signal?.aborted) return Promise.reject(new EncodeAbortedError());
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const c = opts.confinement;
    // prlimit, nice and taskset need no privilege for what they do here (lower a limit, lower the
    // priority, narrow the affinity), so they run after setpriv has dropped it.
    const argv = [...privilegeArgs(), '--pdeathsig', 'KILL', '--', ...(c?.command_prefix ?? []), ...(opts.idle ? ['nice', '-n', '19'] : []), ...(c?.pin_cores === false ? [] : ['taskset', '-c', opts.core_ids.join(',')]), ffmpegPath(), ...args];
    const options = { stdio: handedStdio(opts.handed), ...(c && { env: { ...process.env, ...c.env } }) };
    // The child is forked from this process, and the kernel carries a process's peak RSS across
    // exec: -benchmark's maxrss is never below what this process held at the fork (a 643 MB
    // node process gave a 1 s 320x240 encode a maxrss of 604 MB). Only a maxrss above that is
    // ffmpeg's own; below it, VmHWM (the peak of the exec'd image alone) is read at every progress
    // report, the last one included, so even an encode shorter than a sample has its peak.
    const inheritedKb = process.memoryUsage().rss / 1024;
    let hwmKb = 0;
    const readHwm = () => {
      if (child.pid === undefined || exited) return;
      try {
        const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) hwmKb = Math.max(hwmKb, Number(m[1]));
      } catch {
        // Already gone: the samples and maxrss have the rest.
      }
    };
    const child = c ? c.spawn(() => spawn('setpriv', argv, options)) : spawn('setpriv', argv, options);
    let exited = false;
    let aborted = false;
    let spawnError: Error | undefined;
    let samplerError: Error | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const stderr: string[] = [];
    const bench: { cpu_s?: number; transcode_s?: number; maxrss_kb?: number } = {};
    const sampler = new Sampler();
    let last: FfmpegProgress | undefined;

    createInterface({ input: child.stderr! }).on('line', (line) => {
      const t = /^bench: utime=([\d.]+)s stime=([\d.]+)s rtime=([\d.]+)s/.exec(line);
      if (t) Object.assign(bench, { cpu_s: Number(t[1]) + Number(t[2]), transcode_s: Number(t[3]) });
      const m = /^bench: maxrss=(\d+)kB/.exec(line);
      if (m) bench.maxrss_kb = Number(m[1]);
      stderr.push(line);
      if (stderr.length > STDERR_LINES_KEPT) stderr.shift();
      opts.onLog?.(line);
    });

    const block = new Map<string, string>();
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const eq = line.indexOf('=');
      if (eq < 0) return;
      const key = line.slice(0, eq).trim();
      const value = line.slice(eq + 1).trim();
      if (key !== 'progress') return void block.set(key, value);
      last = {
        frame: num(block.get('frame')),
        fps: num(block.get('fps')),
        speed: num(block.get('speed')?.replace(/x$/, '')),
        total_size: num(block.get('total_size')),
        out_time_s: num(block.get('out_time_us')) / 1e6,
        done: value === 'end',
      };
      block.clear();
      readHwm();
      opts.onProgress?.(last);
    });

    // Sampling starts once taskset has exec'd into ffmpeg: before that the affinity is not set yet.
    const pid = child.pid;
    const sampling = pid === undefined ? Promise.resolve(false) : untilExec(pid, () => !exited)
      .then((ok) => ok && !exited && sampler.start(pid, { ...opts.sampling, core_ids: opts.core_ids, gpu_ids: opts.gpu_ids ?? [] }))
      .catch((e: Error) => { samplerError = e; child.kill('SIGKILL'); return false; }); // an unmeasured encode is of no use

    const onAbort = () => {
      aborted = true;
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let stopping = false;
    const onStop = () => {
      stopping = true;
      child.kill('SIGINT');
      killTimer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    };
    if (opts.stop?.aborted) onStop();
    else opts.stop?.addEventListener('abort', onStop, { once: true });

    child.on('error', (e) => { spawnError = e; });
    child.on('close', async (code, signal) => {
      exited = true;
      const wall_s = (performance.now() - started) / 1000;
      const sampled = await sampling;
      const usage = sampler.stop(Math.max(hwmKb, bench.maxrss_kb !== undefined && bench.maxrss_kb > inheritedKb * MAXRSS_MARGIN ? bench.maxrss_kb : 0));
      clearTimeout(killTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      opts.stop?.removeEventListener('abort', onStop);
      if (aborted) return reject(new EncodeAbortedError());
      if (spawnError ?? samplerError) return reject(spawnError ?? samplerError);
      // After SIGINT ffmpeg exits 255 having closed its output ("Exiting normally, received signal 2").
      const stoppedCleanly = stopping && signal === null && (code === 255 || code === 0) && stderr.some((l) => /Exiting normally, received signal/.test(l));
      if (code !== 0 && !stoppedCleanly) {
        const tail = stderr.filter((l) => !ROUTINE_STDERR.test(l)).slice(-STDERR_LINES_IN_ERROR).join('\n');
        return reject(opts.confinement?.breach({ code, signal, stderr: stderr.join('\n') }) ?? new FfmpegExitError(code, signal, tail));
      }
      resolve({
        wall_s,
        ...(bench.cpu_s !== undefined && { cpu_s: bench.cpu_s, transcode_s: bench.transcode_s }),
        usage,
        read_bytes: sampler.last?.read_bytes ?? 0,
        pinned: sampled && usage.stayed_on_cores,
        ...(last && { last_progress: last }),
        stderr: stderr.join('\n'),
      });
    });
  });
}

/** Resolves true once setpriv, prlimit and taskset have exec'd into ffmpeg (taskset sets the affinity just before its exec), false if it exited first. */
async function untilExec(pid: number, alive: () => boolean): Promise<boolean> {
  const ffmpegComm = path.basename(ffmpegPath()).slice(0, 15); // the kernel keeps 15 characters
  while (alive()) {
    try {
      if ((await readFile(`/proc/${pid}/comm`, 'utf8')).trim() === ffmpegComm) return true;
    } catch {
      return false;
    }
    await sleep(5);
  }
  return false;
}

/** ffmpeg writes N/A for values it does not know yet. */
function num(v: string | undefined): number {
  const n = Number(v);
  return Number.isFinite(n) ? Math.max(0, n) : 0;
}
