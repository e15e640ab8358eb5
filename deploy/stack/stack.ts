/**
 * Bringing the stack up and down. The stack file is the only shared state: every process that
 * wants the stack reads it, and every change to it happens under the state dir's lock.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { pkiDirFor, stackFile } from '../../shared/config.js';
import { initCa } from '../../shared/pki/index.js';
import { ServiceStartError, StackLockedError, StackNotFoundError } from './errors.js';
import { checkStackHost, freePort, LOOPBACK } from './net.js';
import { isAlive, logTail, signalGroup, spawnDetached, terminate, waitForExit, type Spawned } from './proc.js';
import { endpointsFrom, SPECS, type LaunchPlan } from './services.js';
import { SERVICE_NAMES, type ServiceName, type ServiceRecord, type ServiceStatus, type StackOptions, type StackRecord, type StackStatus } from './types.js';
import type { Log } from '../../shared/log.js';

const PROBE_TIMEOUT_MS = 2000;
const LOCK_WAIT_MS = 180_000;
const REHEALTH_GRACE_MS = 10_000;

interface Ctx {
  dir: string;
  file: string;
  log: Log;
  /** The cluster's certificates and secrets (shared/pki). */
  pkiDir: string;
}

function ctx(o: StackOptions): Ctx {
  const dir = path.resolve(o.stateDir);
  return { dir, file: stackFile(dir), log: o.log ?? (() => {}), pkiDir: pkiDirFor(dir) };
}

const logFile = (c: Ctx, name: ServiceName) => path.join(c.dir, 'logs', `${name}.log`);
const dataDir = (c: Ctx, name: ServiceName) => path.join(c.dir, name);
/** Identifies a service's process: its binary plus this stack's data dir, so two stacks never mix. */
const markers = (r: ServiceRecord, name: ServiceName) => [SPECS[name].marker, r.data_dir];
const alive = (r: ServiceRecord | undefined, name: ServiceName) => !!r && isAlive(r.pid, markers(r, name));

function readRecord(c: Ctx): StackRecord {
  if (!existsSync(c.file)) return { services: {} };
  const rec = JSON.parse(readFileSync(c.file, 'utf8')) as Partial<StackRecord>;
  return { host: typeof rec.host === 'string' ? rec.host : undefined, durable: rec.durable === true || undefined, endpoints: rec.endpoints, services: rec.services ?? {} };
}

/** What a service needs to plan, probe and configure: the certificates and the address the stack serves on. */
const serviceCx = (c: Ctx, rec: StackRecord) => ({ pkiDir: c.pkiDir, host: rec.host ?? LOOPBACK, durable: rec.durable === true });

/** Atomic replace, so a reader (loadEndpoints in another process) never sees half a file. */
function writeRecord(c: Ctx, rec: StackRecord): void {
  const tmp = `${c.file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ host: rec.host, durable: rec.durable, endpoints: rec.endpoints, services: rec.services }, null, 2) + '\n');
  renameSync(tmp, c.file);
}

/**
 * Serializes stack changes per state dir across processes (two `up`s racing would start two
 * stacks). An O_EXCL lock file holding the owner's pid; a dead owner's lock is taken over.
 */
async function withLock<T>(c: Ctx, fn: () => Promise<T>): Promise<T> {
  mkdirSync(c.dir, { recursive: true });
  const lock = path.join(c.dir, 'stack.lock');
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder: number | undefined;
    try {
      holder = Number(readFileSync(lock, 'utf8')) || undefined;
    } catch { continue; } // released meanwhile
    // An empty file is a writer between create and write, unless it has been empty for long.
    const stale = holder ? !isAlive(holder, []) : Date.now() - statSync(lock).mtimeMs > 5000;
    if (stale) { rmSync(lock, { force: true }); continue; }
    if (Date.now() > deadline) throw new StackLockedError(lock, holder);
    await delay(100);
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

async function serviceStatus(c: Ctx, rec: StackRecord, name: ServiceName): Promise<ServiceStatus> {
  const r = rec.services[name];
  const running = alive(r, name);
  const healthy = running && (await SPECS[name].probe(r!.ports, PROBE_TIMEOUT_MS, serviceCx(c, rec)).then(() => true, () => false));
  return { name, pid: r?.pid, running, healthy, endpoint: r ? SPECS[name].endpoint(r.ports, serviceCx(c, rec).host) : '', log_file: logFile(c, name) };
}

async function statusOf(c: Ctx): Promise<StackStatus> {
  const rec = readRecord(c);
  const services = await Promise.all(SERVICE_NAMES.map((n) => serviceStatus(c, rec, n)));
  return { state_dir: c.dir, up: services.every((s) => s.healthy), endpoints: rec.endpoints, services };
}

/** Ports for a fresh start: pinned ones from options, the rest free and distinct. */
async function allocatePorts(o: StackOptions, host: string, names: ServiceName[]): Promise<Record<ServiceName, Record<string, number>>> {
  const pinned = new Set(Object.values(o.ports ?? {}));
  const taken = new Set<number>(pinned);
  const out = {} as Record<ServiceName, Record<string, number>>;
  for (const name of names) {
    const spec = SPECS[name];
    const ports: Record<string, number> = { ...spec.disabled };
    for (const p of spec.ports) {
      const key = spec.pinnedBy[p];
      const want = key ? o.ports?.[key] : undefined;
      ports[p] = want ?? (await freePort(host, taken));
      taken.add(ports[p]);
    }
    out[name] = ports;
  }
  return out;
}

/** Where a service's files go and what runs; resolving it first means a missing binary fails before anything starts. */
function prepare(c: Ctx, rec: StackRecord, name: ServiceName, ports: Record<string, number>): { r: ServiceRecord; plan: LaunchPlan } {
  const r: ServiceRecord = { ports, data_dir: dataDir(c, name), log_file: logFile(c, name) };
  mkdirSync(r.data_dir, { recursive: true });
  mkdirSync(path.dirname(r.log_file), { recursive: true });
  return { r, plan: SPECS[name].plan(r.data_dir, ports, serviceCx(c, rec)) };
}

/** Spawns one service and records its pid at once (so a crash mid-start leaves a trail for down). */
function launch(c: Ctx, rec: StackRecord, name: ServiceName, { r, plan }: { r: ServiceRecord; plan: LaunchPlan }): Spawned {
  const proc = spawnDetached(plan.cmd, plan.args, { cwd: r.data_dir, env: plan.env, logFile: r.log_file });
  rec.services[name] = { ...r, pid: proc.pid, started_at: new Date().toISOString() };
  writeRecord(c, rec);
  c.log(`${name}: started pid ${proc.pid} (${SPECS[name].endpoint(r.ports, serviceCx(c, rec).host)}), log ${r.log_file}`);
  return proc;
}

/** Polls the health probe until it passes; fails fast if the process dies, with its log tail. */
async function awaitHealthy(c: Ctx, rec: StackRecord, name: ServiceName, proc?: Spawned, cancelled = () => false): Promise<void> {
  const spec = SPECS[name];
  const r = rec.services[name]!;
  const t0 = Date.now();
  // A process found running that was healthy before gets a short grace (it is hung, not booting);
  // one still booting gets what is left of its start budget.
  const startedAt = proc ? t0 : Date.parse(r.started_at ?? '') || t0;
  const timeoutMs = !proc && r.healthy_at ? REHEALTH_GRACE_MS : Math.max(REHEALTH_GRACE_MS, spec.startTimeoutMs - (t0 - startedAt));
  let last = 'not probed yet';
  for (let wait = 50; ; wait = Math.min(wait * 2, 500)) {
    try {
      await spec.probe(r.ports, PROBE_TIMEOUT_MS, serviceCx(c, rec));
      if (proc) await spec.configure?.(r.ports, serviceCx(c, rec));
      r.healthy_at ??= new Date().toISOString();
      c.log(`${name}: healthy after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      return;
    } catch (e) {
      last = (e as Error).message;
    }
    if (cancelled()) throw new Error(`${name}: start abandoned because another service failed`);
    const tail = () => logTail(r.log_file, proc?.logOffset ?? 0);
    if (!alive(r, name)) throw new ServiceStartError(name, r.log_file, `process ${r.pid} ${proc?.exited() ?? 'is gone'}`, tail());
    if (Date.now() - t0 > timeoutMs) throw new ServiceStartError(name, r.log_file, `not healthy after ${Math.round(timeoutMs / 1000)} s (last check: ${last})`, tail());
    await delay(wait);
  }
}

async function stopOne(c: Ctx, rec: StackRecord, name: ServiceName): Promise<void> {
  const r = rec.services[name];
  if (!r?.pid) return;
  const how = await terminate(r.pid, markers(r, name), SPECS[name].stopGraceMs);
  c.log(`${name}: pid ${r.pid} ${how === 'killed' ? 'did not stop in time, killed' : 'stopped'}`, how === 'killed' ? 'warn' : 'info');
  delete r.pid;
  delete r.started_at;
  delete r.healthy_at;
}

async function up(o: StackOptions): Promise<StackStatus> {
  const c = ctx(o);
  // The cluster CA every member's certificate comes from (shared/pki); this host holds its key,
  // so coordinators and agents started here are issued theirs on first start.
  if (initCa(c.pkiDir)) c.log(`cluster CA created in ${c.pkiDir}`);
  const rec = readRecord(c);
  const live = SERVICE_NAMES.filter((n) => alive(rec.services[n], n));
  // A partly running stack keeps its ports: clients already hold those endpoints.
  // A fresh stack serves on the address asked for; a partly running one stays where it is.
  if (live.length === 0) {
    rec.host = o.host && o.host !== LOOPBACK ? checkStackHost(o.host) : undefined;
    rec.durable = o.durable || undefined;
  } else {
    if (o.host && o.host !== (rec.host ?? LOOPBACK)) c.log(`the stack runs on ${rec.host ?? LOOPBACK}: --host ${o.host} applies once it is down`, 'warn');
    if (o.durable !== undefined && o.durable !== (rec.durable === true)) c.log(`the stack runs Consul ${rec.durable ? 'as a durable server' : 'in dev mode'}: --durable applies once it is down`, 'warn');
  }
  const fresh = live.length === 0 ? await allocatePorts(o, rec.host ?? LOOPBACK, [...SERVICE_NAMES]) : undefined;
  if (fresh) rec.endpoints = undefined;
  const prepared = {} as Record<ServiceName, ReturnType<typeof prepare>>;
  for (const name of SERVICE_NAMES) {
    const ports = fresh?.[name] ?? rec.services[name]?.ports;
    if (!ports) throw new StackNotFoundError(c.file, `${name} has no recorded ports while the rest of the stack runs`);
    prepared[name] = prepare(c, rec, name, ports);
  }

  const started: ServiceName[] = [];
  let failed = false; // one failure abandons the other waits instead of letting a JVM finish booting
  const results = await Promise.allSettled(
    SERVICE_NAMES.map(async (name) => {
      try {
        if (live.includes(name)) {
          try {
            return await awaitHealthy(c, rec, name, undefined, () => failed); // maybe still starting (another `up`, a slow JVM)
          } catch (e) {
            if (failed) throw e;
            c.log(`${name}: running but unhealthy (${(e as Error).message.split('\n')[0]}); restarting it`, 'warn');
            await stopOne(c, rec, name);
          }
        }
        const proc = launch(c, rec, name, prepared[name]);
        started.push(name);
        await awaitHealthy(c, rec, name, proc, () => failed);
      } catch (e) {
        failed = true;
        throw e;
      }
    }),
  );
  if (failed) {
    // Leave nothing half-started behind: stop what this call launched.
    await Promise.all(started.map((n) => stopOne(c, rec, n)));
    writeRecord(c, rec);
    // The first real failure, not the "abandoned" ones it caused.
    const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
    throw errors.find((e) => !/start abandoned/.test(e.message)) ?? errors[0];
  }
  rec.endpoints = endpointsFrom({ nats: rec.services.nats!.ports, consul: rec.services.consul!.ports, questdb: rec.services.questdb!.ports }, serviceCx(c, rec).host);
  writeRecord(c, rec);
  return statusOf(c);
}

/** Brings the stack up; a healthy stack already recorded in `stateDir` is returned as it is (same pids). */
export async function stackUp(o: StackOptions): Promise<StackStatus> {
  const c = ctx(o);
  return withLock(c, async () => {
    const current = await statusOf(c);
    if (current.up) return current;
    return up(o);
  });
}

/** Stops every recorded service (SIGTERM to its process group, SIGKILL after a grace period) and drops pids and endpoints from the stack file. */
export async function stackDown(o: StackOptions): Promise<StackStatus> {
  const c = ctx(o);
  return withLock(c, async () => {
    if (!existsSync(c.file)) return statusOf(c);
    const rec = readRecord(c);
    await Promise.all(SERVICE_NAMES.map((n) => stopOne(c, rec, n)));
    // Without endpoints, loadEndpoints() says "no running stack" instead of pointing at dead ports.
    writeRecord(c, { host: rec.host, durable: rec.durable, services: rec.services });
    return statusOf(c);
  });
}

/** What is running right now: each recorded pid checked for liveness, then its health probed. */
export async function stackStatus(o: StackOptions): Promise<StackStatus> {
  return statusOf(ctx(o));
}

/** Signals that end a process, so stopService waits for the exit; others (SIGSTOP to simulate a hang) are only delivered. */
const ENDING: ReadonlySet<NodeJS.Signals> = new Set(['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGKILL']);

/**
 * For failure tests: sends `signal` (default SIGTERM) to one service's process group. Ending
 * signals are waited on (SIGTERM/SIGINT/SIGQUIT escalate to SIGKILL after the grace period);
 * ports and data stay recorded so startService can bring it back as it was.
 */
export async function stopService(o: StackOptions, name: ServiceName, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const c = ctx(o);
  await withLock(c, async () => {
    const rec = readRecord(c);
    const r = rec.services[name];
    if (!r) throw new StackNotFoundError(c.file, name);
    if (!alive(r, name)) return;
    if (!ENDING.has(signal)) {
      signalGroup(r.pid!, signal);
      c.log(`${name}: sent ${signal} to pid ${r.pid}`);
      return;
    }
    if (signal === 'SIGKILL') {
      signalGroup(r.pid!, 'SIGKILL');
      await waitForExit(r.pid!, markers(r, name), 5000);
    } else {
      await terminate(r.pid!, markers(r, name), SPECS[name].stopGraceMs, signal);
    }
    c.log(`${name}: pid ${r.pid} stopped by ${signal}`);
  });
}

/** Restarts one service on the same ports and data dir; a healthy one is left alone, a hung one is replaced. */
export async function startService(o: StackOptions, name: ServiceName): Promise<void> {
  const c = ctx(o);
  await withLock(c, async () => {
    const rec = readRecord(c);
    const r = rec.services[name];
    if (!r) throw new StackNotFoundError(c.file, name);
    if (alive(r, name)) {
      if (await SPECS[name].probe(r.ports, PROBE_TIMEOUT_MS, serviceCx(c, rec)).then(() => true, () => false)) return;
      await stopOne(c, rec, name);
    }
    const proc = launch(c, rec, name, prepare(c, rec, name, r.ports));
    try {
      await awaitHealthy(c, rec, name, proc);
      writeRecord(c, rec); // with healthy_at
    } catch (e) {
      await stopOne(c, rec, name);
      writeRecord(c, rec);
      throw e;
    }
  });
}
