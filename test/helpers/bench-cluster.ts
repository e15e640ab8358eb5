/**
 * Benchmark scaffolding over the real services (see cluster.ts for the test scaffolding it
 * builds on): running one batch of jobs through a leader and collecting every job's events,
 * a coordinator as its own process (so it can be CPU-profiled and shares no event loop with the
 * load the benchmark generates), a
 * fleet of registered nodes that accepts assignments without encoding, and the small
 * statistics the benchmarks report.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ConsulLeaderLookup, CoordinatorClient, TERMINAL_STATES, agentService, isFinalEvent, loadIdentity, newJobId, serve,
  type AgentHandlers, type Assignment, type NodeCapacity, type TaskEvent, type grpc,
} from '../../shared/index.js';
import { publishSubmission } from '../../coordinator/index.js';
import { CLI, TEST_OWNER, events, type TestStack } from './cluster.js';

// ── statistics ────────────────────────────────────────────────────────────────────────────

export const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

/** The p-quantile (0..1) by the nearest-rank method: a value that was actually measured. */
export function quantile(xs: readonly number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
}

export const round = (x: number, digits = 3) => (Number.isFinite(x) ? +x.toFixed(digits) : x);

// ── one batch through a leader ────────────────────────────────────────────────────────────

export interface JobRun {
  id: string;
  /** The schema as submitted. */
  schema: Record<string, unknown>;
  submitted_at: number;
  /** Every event of the job, first to last (the last is terminal unless it timed out). */
  events: TaskEvent[];
}

/**
 * Submits every schema (in order, as fast as JetStream acknowledges them) and follows each job
 * until it is terminal. `startedAt` is taken just before the first submission.
 */
export async function runBatch(s: TestStack, schemas: readonly Record<string, unknown>[], timeoutMs: number): Promise<{ startedAt: number; jobs: JobRun[] }> {
  const js = s.nc.jetstream();
  const startedAt = Date.now();
  const submitted: { id: string; schema: Record<string, unknown>; submitted_at: number }[] = [];
  for (const schema of schemas) {
    const id = newJobId();
    const submitted_at = Date.now();
    await publishSubmission(js, TEST_OWNER, { job_id: id, submitted_at, schema });
    submitted.push({ id, schema, submitted_at });
  }
  const jobs = await Promise.all(submitted.map(async (j) => ({ ...j, events: await events(s, j.id, timeoutMs) })));
  return { startedAt, jobs };
}

// ── a coordinator in its own process ──────────────────────────────────────────────────────

export interface CoordinatorProcess {
  child: ChildProcess;
  pid: number;
  /** Its output so far (the leader logs one line per task state change). */
  output(): string;
  /** Stops it (SIGTERM, then SIGKILL after `graceMs`); resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Runs `prescient coordinator` against the stack as a separate process, with `nodeArgs` for
 * node itself (e.g. `--cpu-prof`), and waits until it leads (its address is in Consul).
 */
/** The node flags the CLI's shebang starts it with (`#!/usr/bin/env -S node FLAGS`): a process spawned here runs as `prescient` would. */
const SHEBANG = /^#!\S*env(?: -S)?((?: [A-Z_]+=\S*)*) node(.*)$/.exec(readFileSync(CLI, 'utf8').split('\n', 1)[0]);
export const CLI_NODE_FLAGS: readonly string[] = SHEBANG ? SHEBANG[2].trim().split(/\s+/).filter(Boolean) : [];
/** The environment the shebang sets (`env -S NAME=VALUE … node`): glibc's malloc settings. */
export const CLI_ENV: Readonly<Record<string, string>> = Object.fromEntries(
  (SHEBANG?.[1].trim().split(/\s+/).filter(Boolean) ?? []).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]),
);

/**
 * Starts the CLI as `prescient` would run (the shebang's node flags, then `nodeArgs`), keeping
 * only the tail of its output: a leader writes a line per state change, thousands in a run.
 * `wrap` runs it inside another command (`ip netns exec NS`: test/helpers/netns.ts), `label`
 * starts its log file's name, `env` is added to this process's environment.
 */
export function spawnCli(args: string[], nodeArgs: readonly string[] = [], o: { wrap?: string[]; env?: NodeJS.ProcessEnv; label?: string } = {}): CoordinatorProcess {
  const argv = [process.execPath, ...CLI_NODE_FLAGS, ...nodeArgs, CLI, ...args];
  const [cmd, ...rest] = [...(o.wrap ?? []), ...argv];
  const child = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...CLI_ENV, ...o.env } });
  let out = '';
  // PRESCIENT_TEST_LOGDIR keeps every line, one file per process, to follow a failing run.
  // Named by the command and its first plain word (a node or coordinator id), never a path or a token.
  const words = args.filter((a) => /^[a-z][a-z0-9-]{0,20}$/.test(a)).slice(0, 2);
  const logFile = process.env.PRESCIENT_TEST_LOGDIR ? path.join(process.env.PRESCIENT_TEST_LOGDIR, `${[o.label, ...words].filter(Boolean).join('-')}-${child.pid}.log`) : undefined;
  const keep = (d: Buffer) => { out = (out + d.toString()).slice(-20_000); if (logFile) appendFileSync(logFile, d); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child, pid: child.pid!, output: () => out,
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Starts a coordinator process without waiting for it to lead (a standby). */
export function spawnStandby(s: TestStack, id: string, args: string[] = []): CoordinatorProcess {
  return spawnCli(['--state-dir', s.dir, 'coordinator', '--id', id, ...args]);
}

export async function spawnCoordinator(s: TestStack, id: string, args: string[] = [], nodeArgs: string[] = [], timeoutMs = 30_000): Promise<CoordinatorProcess> {
  const handle = spawnCli(['--state-dir', s.dir, 'coordinator', '--id', id, ...args], nodeArgs);
  const { child } = handle;
  try {
    const lookup = new ConsulLeaderLookup(s.endpoints.consul_http);
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`coordinator ${id} exited with ${child.exitCode}: ${handle.output().slice(-2000)}`);
      const leader = await lookup.currentLeader().catch(() => null);
      if (leader?.id === id) break;
      if (Date.now() > until) throw new Error(`coordinator ${id} did not become leader within ${timeoutMs} ms: ${handle.output().slice(-2000)}`);
      await sleep(100);
    }
  } catch (e) {
    await handle.stop(2000);
    throw e;
  }
  return handle;
}

/** CPU seconds (user + system, all its threads) a process has used so far, from /proc; NaN once it is gone. */
export function cpuSeconds(pid: number | undefined): number {
  if (!pid) return NaN;
  let stat: string;
  try { stat = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return NaN; }
  // Fields after the command name, which is in parentheses and may hold spaces.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100 on Linux)
}

// ── a fleet that accepts assignments without encoding ─────────────────────────────────────

export interface AcceptingFleetOptions {
  consulHttp: string;
  /** The stack's certificates: each stand-in shows its own node certificate, as a real agent does. */
  pkiDir: string;
  nodes: number;
  coresPerNode: number;
  memoryGbPerNode: number;
  bandwidthMbpsPerNode: number;
}

/**
 * Registers `nodes` nodes with the current leader through its real Register RPC, heartbeats
 * them, and serves the real Agent gRPC service for each (one server per node, as real agents
 * have), accepting every assignment and holding it: nothing is encoded, nothing is reported.
 * This is a stand-in for node agents, for measuring the leader's control plane at rates no
 * real encoding fleet on this machine could absorb (test/bench/submit-latency.ts says why).
 */
export class AcceptingFleet {
  /** Assignments accepted, per task id: the time (epoch ms) each arrived. */
  readonly accepted = new Map<string, number>();
  /** Tasks held and not yet reported finished: the node (index) holding each, and its allocation's term. */
  private readonly holding = new Map<string, { node: number; term: number }>();
  private readonly ids: string[] = [];
  private readonly servers: grpc.Server[] = [];
  private readonly clients: CoordinatorClient[] = [];
  private heartbeats?: NodeJS.Timeout;
  private stopping = false;
  heartbeatFailures = 0;

  private constructor(private readonly o: AcceptingFleetOptions) {}

  static async start(o: AcceptingFleetOptions): Promise<AcceptingFleet> {
    const f = new AcceptingFleet(o);
    try {
      await f.register();
    } catch (e) {
      await f.stop();
      throw e;
    }
    return f;
  }

  private async register(): Promise<void> {
    const leader = await new ConsulLeaderLookup(this.o.consulHttp).currentLeader();
    if (!leader) throw new Error('no leader to register the fleet with');
    const cpu_model = os.cpus()[0]?.model.trim() ?? 'unknown';
    const ids: string[] = [];
    let heartbeatMs = 2000;
    for (let n = 0; n < this.o.nodes; n++) {
      const node_id = `standin-${String(n).padStart(3, '0')}`;
      const index = n;
      const handlers: AgentHandlers = {
        AssignBatch: (call, cb) => {
          const now = Date.now();
          for (const a of call.request.assignments) this.hold(a, index, now);
          cb(null, { replies: call.request.assignments.map(() => ({ accepted: true, reason: '' })) });
        },
        Cancel: (_call, cb) => cb(null, { ok: false, reason: 'not running here', refusal: 'NOT_RUNNING' }),
        Probe: (_call, cb) => cb(null, { ok: false, reason: 'a stand-in node reads no files', probe_json: '' }),
      };
      const identity = loadIdentity(this.o.pkiDir, { role: 'node', name: node_id });
      const { server, port } = await serve(agentService(), handlers, '127.0.0.1', 0, identity);
      this.servers.push(server);
      const client = new CoordinatorClient(leader.address, identity);
      this.clients.push(client);
      const capacity: NodeCapacity = {
        node_id, address: `127.0.0.1:${port}`, core_ids: Array.from({ length: this.o.coresPerNode }, (_, i) => i),
        memory_gb: this.o.memoryGbPerNode, bandwidth_mbps: this.o.bandwidthMbpsPerNode, gpus: [], cpu_model,
      };
      // The leader's address is in Consul a moment before its Leader object is up, and until
      // then it answers "not the leader": retry for a while.
      const until = Date.now() + 15_000;
      let reply: Awaited<ReturnType<CoordinatorClient['register']>>;
      for (;;) {
        try {
          reply = await client.register({ capacity, running: [] });
          break;
        } catch (e) {
          if (Date.now() > until) throw e;
          await sleep(200);
        }
      }
      heartbeatMs = reply.heartbeat_interval_ms || heartbeatMs;
      ids.push(node_id);
    }
    this.ids.push(...ids);
    // Heartbeats spread over the interval, as independent agents' would be.
    let next = 0;
    const every = Math.max(5, Math.floor(heartbeatMs / Math.max(1, ids.length)));
    this.heartbeats = setInterval(() => {
      if (this.stopping) return;
      const i = next++ % ids.length;
      this.clients[i].heartbeat({ node_id: ids[i], running: [] }).then(
        (r) => { if (r.reregister) this.heartbeatFailures++; },
        () => { this.heartbeatFailures++; },
      );
    }, every);
  }

  private hold(a: Assignment, node: number, at: number): void {
    this.accepted.set(a.task_id, at);
    this.holding.set(a.task_id, { node, term: Number(a.allocation.term) });
  }

  /**
   * Reports every task held as succeeded (the leader's real ReportStatus, `parallel` at a time),
   * which releases their reservations: the fleet is empty again for the next measurement.
   */
  async finishAll(parallel = 64): Promise<number> {
    const held = [...this.holding];
    this.holding.clear();
    const none = { cpu_cores: 0, gpu_percent: 0, memory_gb: 0, bandwidth_mbps: 0, duration_s: 0 };
    let i = 0, failed = 0;
    await Promise.all(Array.from({ length: parallel }, async () => {
      while (i < held.length) {
        const [task_id, { node, term }] = held[i++];
        await this.clients[node].reportStatus({
          task_id, node_id: this.ids[node], state: 'succeeded', reason: '', actual: none, output_bytes: 0, output_path: '', psnr_db: NaN, ssim: NaN,
          pinned: false, frames: 0, term, quality: '', amend: false, quality_method: '',
        }).then((a) => { if (!a.ok) failed++; }, () => { failed++; });
      }
    }));
    return failed;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.heartbeats);
    for (const c of this.clients) c.close();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.tryShutdown(() => r()))));
  }
}

// ── an agent in its own process, and what a batch's processes used ───────────────────────

/** The handle of an agent run as its own process: as a coordinator's (output, stop). */
export type AgentProcess = CoordinatorProcess;

export interface SpawnAgentOptions {
  /** Cores granted, e.g. `0-1`. */
  cores: string;
  memoryGb: number;
  /** More `prescient agent` flags (e.g. `--sample-ms 100`; none: the defaults, sampling at 1 Hz). */
  args?: string[];
  /** Flags for node itself (e.g. `--cpu-prof`). */
  nodeArgs?: string[];
  timeoutMs?: number;
}

/**
 * Runs `prescient agent` against the stack as a separate process, as a node would run it (no
 * interface shaped: the host's interfaces carry the stack), and waits until it has registered
 * with the leader.
 */
export async function spawnAgent(s: TestStack, nodeId: string, o: SpawnAgentOptions): Promise<AgentProcess> {
  const args = ['--state-dir', s.dir, 'agent', '--node-id', nodeId, '--cores', o.cores, '--memory-gb', String(o.memoryGb), '--shape-interfaces', '', ...(o.args ?? [])];
  const handle: AgentProcess = spawnCli(args, o.nodeArgs);
  const { child } = handle;
  const timeoutMs = o.timeoutMs ?? 30_000;
  const until = Date.now() + timeoutMs;
  // Only this process's first registration is waited for: the output is a tail, but registering is the first thing an agent does.
  while (!handle.output().includes(`[agent ${nodeId}] registered with leader`)) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`agent ${nodeId} exited with ${child.exitCode ?? child.signalCode}: ${handle.output().slice(-2000)}`);
    }
    if (Date.now() > until) {
      await handle.stop(2000);
      throw new Error(`agent ${nodeId} did not register within ${timeoutMs} ms: ${handle.output().slice(-2000)}`);
    }
    await sleep(50);
  }
  return handle;
}

/**
 * CPU seconds (user + system) that a process's reaped children used so far (cutime + cstime in
 * /proc: an agent's ffmpeg and ffprobe runs, counted once each has exited); NaN once it is gone.
 */
export function childrenCpuSeconds(pid: number | undefined): number {
  if (!pid) return NaN;
  let stat: string;
  try { stat = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return NaN; }
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / 100;
}

/**
 * The event that released a job's reservation: its first terminal one. A success may be
 * followed by a second `succeeded` carrying its quality figures (shared isFinalEvent); until
 * then the first terminal event is also the last.
 */
export function releasedEvent(j: JobRun): TaskEvent | undefined {
  return j.events.find((e) => TERMINAL_STATES.has(e.state));
}

/** The job's last event when it is final (shared isFinalEvent); undefined while the job had not ended. */
export function finalEvent(j: JobRun): TaskEvent | undefined {
  const last = j.events.at(-1);
  return last && isFinalEvent(last) ? last : undefined;
}
