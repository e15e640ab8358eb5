/**
 * One host's capacity counted once. Every agent on a host writes what it was granted (cores,
 * memory, GPUs) into one host-wide claims file before it registers: two agents granted the same
 * core, or more memory between them than the host has, are refused with an error naming the
 * other agent; an agent given no grant takes what the others left (never the whole host twice).
 *
 *   decideClaim   pure: the others' live claims and what this agent asks → its grant, or why not
 *   HostClaims    the file: a lock (O_EXCL, its holder's pid; a dead holder's lock is broken),
 *                 claims of processes that are gone dropped (pid and start time), one's own
 *                 released when the agent stops
 *
 * The file is /run/prescient/host-claims.json for root (so agents under any state directory
 * meet there), else one per user in the temporary directory; PRESCIENT_HOST_CLAIMS names another.
 */
import { mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, v, whyNot } from '../shared/index.js';
import { parsePidStat } from './sampling/index.js';
import type { Log } from '../shared/log.js';

export interface HostClaim {
  node_id: string;
  pid: number;
  /** The process's start time (/proc/<pid>/stat field 22): a pid reused by another process is not the claimant. */
  pid_start: string;
  cores: number[];
  memory_gb: number;
  gpus: number[];
  at: string;
}

export interface ClaimRequest {
  node_id: string;
  /** Cores asked for (--cores); absent: every core this process may run on that no other agent holds. */
  cores?: number[];
  /** Every core this process may run on. */
  allowed_cores: number[];
  /** Memory asked for (--memory-gb); absent: what the host has that no other agent holds. */
  memory_gb?: number;
  host_memory_gb: number;
  /** The host's GPUs (nvidia-smi ids): an agent takes those no other agent holds. */
  gpus: number[];
}

export type ClaimDecision = { cores: number[]; memory_gb: number; gpus: number[] } | { field: string; why: string };

const held = (c: HostClaim) => `${c.node_id} (pid ${c.pid})`;

/** What this agent may hold, given the live claims of the host's other agents. */
export function decideClaim(others: readonly HostClaim[], r: ClaimRequest): ClaimDecision {
  const same = others.find((c) => c.node_id === r.node_id);
  if (same) return { field: '--node-id', why: `an agent with node id ${r.node_id} already runs on this host (pid ${same.pid})` };
  const owner = new Map<number, HostClaim>();
  for (const c of others) for (const core of c.cores) owner.set(core, c);
  let cores: number[];
  if (r.cores) {
    const taken = r.cores.filter((c) => owner.has(c));
    if (taken.length) {
      const free = r.allowed_cores.filter((c) => !owner.has(c));
      return { field: '--cores', why: `${taken.map((c) => `core ${c} is held by agent ${held(owner.get(c)!)}`).join('; ')} on this host; cores no agent holds: ${free.length ? free.join(',') : 'none'}` };
    }
    cores = r.cores;
  } else {
    cores = r.allowed_cores.filter((c) => !owner.has(c));
    if (!cores.length) return { field: '--cores', why: `every core this agent may use is held by another agent on this host: ${[...new Set(owner.values())].map(held).join(', ')}` };
  }
  const claimed = others.reduce((s, c) => s + c.memory_gb, 0);
  const left = Math.max(0, r.host_memory_gb - claimed);
  if (r.memory_gb !== undefined && r.memory_gb > left + 1e-9) {
    return { field: '--memory-gb', why: `${r.memory_gb} GB asked, but only ${left.toFixed(1)} of this host's ${r.host_memory_gb.toFixed(1)} GB are not held by other agents (${others.map((c) => `${held(c)}: ${c.memory_gb} GB`).join(', ')})` };
  }
  const memory_gb = r.memory_gb ?? Math.floor(left * 10) / 10;
  if (!(memory_gb > 0)) return { field: '--memory-gb', why: `no memory is left on this host: other agents hold ${claimed.toFixed(1)} of ${r.host_memory_gb.toFixed(1)} GB` };
  const gpuOwners = new Set(others.flatMap((c) => c.gpus));
  return { cores, memory_gb, gpus: r.gpus.filter((g) => !gpuOwners.has(g)) };
}

const StoredClaims = v.array(v.object({
  node_id: v.string(), pid: v.pipe(v.number(), v.integer(), v.minValue(1)), pid_start: v.string(),
  cores: v.array(v.pipe(v.number(), v.integer(), v.minValue(0))), memory_gb: v.pipe(v.number(), v.finite(), v.minValue(0)),
  gpus: v.array(v.pipe(v.number(), v.integer(), v.minValue(0))), at: v.string(),
}));

/** A process's start time, or undefined when it is gone. */
function startOf(pid: number): string | undefined {
  try {
    return String(parsePidStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).starttime);
  } catch {
    return undefined;
  }
}

export function defaultClaimsFile(): string {
  if (process.env.PRESCIENT_HOST_CLAIMS) return process.env.PRESCIENT_HOST_CLAIMS;
  return process.getuid?.() === 0 ? '/run/prescient/host-claims.json' : path.join(os.tmpdir(), `prescient-${process.getuid?.() ?? 'user'}`, 'host-claims.json');
}

/** How long an agent waits for another to finish claiming. */
const LOCK_WAIT_MS = 10_000;
/** An empty lock file older than this was left by a holder that died before writing its pid. */
const STALE_EMPTY_LOCK_MS = 2000;

const mtimeOf = (file: string): number | undefined => { try { return statSync(file).mtimeMs; } catch { return undefined; } };

export class HostClaims {
  private mine?: HostClaim;

  constructor(readonly file: string = defaultClaimsFile(), private readonly log: Log = () => undefined) {}

  /** Claims this agent's grant (see decideClaim); a ConfigError naming the flag when it cannot. */
  async claim(r: ClaimRequest): Promise<{ cores: number[]; memory_gb: number; gpus: number[] }> {
    return this.locked(() => {
      const others = this.live();
      const d = decideClaim(others, r);
      if ('why' in d) throw new ConfigError(d.field, d.why);
      this.mine = { node_id: r.node_id, pid: process.pid, pid_start: startOf(process.pid) ?? '', ...d, at: new Date().toISOString() };
      this.write([...others, this.mine]);
      return d;
    });
  }

  /** Gives this agent's claim back (at stop). */
  async release(): Promise<void> {
    const mine = this.mine;
    if (!mine) return;
    this.mine = undefined;
    await this.locked(() => this.write(this.live().filter((c) => !(c.pid === mine.pid && c.node_id === mine.node_id))));
  }

  /** The claims of processes still running; an unreadable file is read as none, and said. */
  private live(): HostClaim[] {
    let text: string;
    try { text = readFileSync(this.file, 'utf8'); } catch { return []; }
    let claims: unknown;
    try { claims = JSON.parse(text); } catch { claims = undefined; }
    const why = whyNot(StoredClaims, claims);
    if (why) { this.log(`host claims in ${this.file} ignored: ${why}`, 'warn'); return []; }
    return (claims as HostClaim[]).filter((c) => startOf(c.pid) === c.pid_start);
  }

  private write(claims: HostClaim[]): void {
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(claims, null, 2)}\n`, { mode: 0o644 });
    renameSync(tmp, this.file);
  }

  /** Runs `fn` holding the file's lock (created exclusively, holding the pid; one whose holder is gone is broken). */
  private async locked<T>(fn: () => T): Promise<T> {
    mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o755 });
    const lock = `${this.file}.lock`;
    const until = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        writeFileSync(lock, `${process.pid} ${startOf(process.pid) ?? ''}`, { flag: 'wx', mode: 0o644 });
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const [pid, start] = (() => { try { return readFileSync(lock, 'utf8').trim().split(' '); } catch { return []; } })();
        // Its holder is gone; or it is empty for longer than a write takes (the holder died between creating and writing it).
        const stale = pid ? startOf(Number(pid)) !== start : Date.now() - (mtimeOf(lock) ?? Date.now()) > STALE_EMPTY_LOCK_MS;
        if (stale) { try { unlinkSync(lock); } catch { /* broken by another */ } continue; }
        if (Date.now() > until) throw new Error(`${lock} is held by pid ${pid || '?'} for more than ${LOCK_WAIT_MS / 1000} s`);
        await sleep(20);
      }
    }
    try {
      return fn();
    } finally {
      try { unlinkSync(lock); } catch { /* gone */ }
    }
  }
}
