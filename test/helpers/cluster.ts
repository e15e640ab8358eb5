/**
 * Test scaffolding over the real services: a fresh stack per test file (own state dir, free
 * loopback ports), coordinators and agents in-process or as separate processes, and polling.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stackDown, stackUp } from '../../deploy/stack/index.js';
import { disconnectMember, loadEndpoints, loadIdentity, newJobId, pkiDirOf, retryUnavailable, type Identity, type Role, type StackEndpoints, type TaskEvent, type ValidationContext } from '../../shared/index.js';
import { connectBus, ensureStreams, followJob, publishSubmission, startCoordinator, type CoordinatorHandle } from '../../coordinator/index.js';
import { startAgent, type AgentHandle } from '../../node-agent/index.js';
import type { NatsConnection } from 'nats';

export const CLI = fileURLToPath(new URL('../../coordinator/cli/main.js', import.meta.url));

export interface TestStack {
  dir: string;
  endpoints: StackEndpoints;
  validation: ValidationContext;
  logs: string[];
  log: (m: string) => void;
  nc: NatsConnection;
  down(): Promise<void>;
}

/** Starts a stack of real NATS, Consul and QuestDB in a new temporary state dir. */
export async function startStack(name: string): Promise<TestStack> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `prescient-${name}-`));
  await stackUp({ stateDir: dir });
  const endpoints = loadEndpoints(dir);
  // The tests speak as an operator named `test`: every job they submit is `test`'s.
  const nc = await connectBus(endpoints.nats_url, loadIdentity(pkiDirOf(endpoints), { role: 'admin', name: TEST_OWNER }), `test-${name}`);
  await retryUnavailable(() => ensureStreams(nc));
  const logs: string[] = [];
  return {
    dir, endpoints, logs, nc,
    validation: { allowedInputRoots: [path.join(dir, 'media')], allowedOutputRoots: [path.join(dir, 'output')] },
    log: (m) => { logs.push(m); if (process.env.PRESCIENT_TEST_VERBOSE) console.error(m); },
    async down() {
      await disconnectMember(nc);
      await stackDown({ stateDir: dir });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function coordinator(s: TestStack, id: string, extra: Partial<Parameters<typeof startCoordinator>[0]> = {}): Promise<CoordinatorHandle> {
  return startCoordinator({ id, endpoints: s.endpoints, validation: s.validation, log: s.log, leaseMs: 6000, heartbeatMs: 500, modelDir: path.join(s.dir, 'models'), ...extra });
}

export function agent(s: TestStack, nodeId: string, cores: string, memoryGb = 2, extra: Partial<Parameters<typeof startAgent>[0]> = {}): Promise<AgentHandle> {
  return startAgent({
    nodeId, endpoints: s.endpoints, validation: s.validation, log: s.log, grant: { cores, memoryGb }, sampleIntervalMs: 100,
    outputDir: path.join(s.dir, 'output', nodeId), spoolDir: path.join(s.dir, 'spool', nodeId),
    // The host's own interfaces carry the test stack (and whatever else the machine does): left unshaped.
    enforcement: { shape_interfaces: [] },
    ...extra,
  });
}

/** A member's certificate from the test stack's CA (issued on first use, as a single-host stack does). */
export function identity(s: TestStack, role: Role, name: string): Identity {
  return loadIdentity(pkiDirOf(s.endpoints), { role, name });
}

/** Runs `prescient` as a separate process against the test stack. */
export function cli(s: TestStack, args: string[]): ChildProcess {
  return spawn(process.execPath, [CLI, '--state-dir', s.dir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs a CLI command to completion, collecting its output. */
export function cliRun(s: TestStack, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = cli(s, args);
    let stdout = '', stderr = '';
    p.stdout!.on('data', (d) => (stdout += d));
    p.stderr!.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A small real encode: 320x240 testsrc2, libx264 ultrafast unless overridden. */
export function smallJob(over: { output?: Record<string, unknown>; input?: Record<string, unknown>; priority?: string } = {}): Record<string, unknown> {
  return {
    input: { synthetic: { source: 'testsrc2' }, resolution: '320x240', fps: 25, duration_s: 1, ...over.input },
    output: { codec: 'h264', preset: 'ultrafast', rate_control: { mode: 'crf', crf: 28 }, ...over.output },
    priority: over.priority ?? 'standard',
    submitter: 'test',
  };
}

/** Who the test stack's own connection is (an operator): the owner of the jobs `submit` publishes. */
export const TEST_OWNER = 'test';

export async function submit(s: TestStack, schema: unknown): Promise<string> {
  const id = newJobId();
  await publishSubmission(s.nc.jetstream(), TEST_OWNER, { job_id: id, submitted_at: Date.now(), schema });
  return id;
}

/** Every event of a job (whoever submitted it), from the first, until it is terminal. */
export async function events(s: TestStack, id: string, timeoutMs = 120_000, until: 'final' | 'released' = 'final'): Promise<TaskEvent[]> {
  const all: TaskEvent[] = [];
  await followJob(s.nc.jetstream(), { owner: '*', id }, (e) => all.push(e), timeoutMs, until);
  return all;
}

/** Polls until `fn` returns something truthy; fails with `what` after the timeout. */
export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 30_000, everyMs = 200): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** True while a process with this pid exists. */
export function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** The smallest cluster: a stack, coordinator `c1` and one agent `node-a` on `cores`; `down` stops all three. */
export interface OneNodeCluster { s: TestStack; c: CoordinatorHandle; a: AgentHandle; down(): Promise<void> }
export async function oneNodeCluster(name: string, cores = '0'): Promise<OneNodeCluster> {
  const s = await startStack(name);
  const c = await coordinator(s, 'c1').catch(async (e) => { await s.down(); throw e; });
  const a = await agent(s, 'node-a', cores).catch(async (e) => { await c.stop(); await s.down(); throw e; });
  return { s, c, a, async down() { await a.stop(); await c.stop(); await s.down(); } };
}
