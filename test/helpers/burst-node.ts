/**
 * A burst instance's first boot, played on this machine from the user data the cloud was given:
 *
 *   cloudInitSchema   cloud-init's own schema validator (Debian's package, unpacked by
 *                     deploy/install.sh) on the document, as cloud-init reads it at boot
 *   bootBurstNode     writes the document's files under a scratch root, then runs what runcmd and
 *                     systemd would: prescient-install, then prescient-burst-node with the env file
 *                     loaded (EnvironmentFile) — so the agent that joins is started by the node's own
 *                     script, with `prescient` being this checkout's CLI
 *
 * Only the paths differ from a real boot (a scratch root instead of /, the test's state dir instead
 * of /var/lib/prescient): the scripts themselves run unchanged.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { CLI } from './cluster.js';

export const CLOUD_INIT_DIR = process.env.PRESCIENT_CLOUD_INIT_DIR ?? '/opt/prescient/cloud-init';

/** `cloud-init schema -c FILE` from the unpacked package, on Debian's python3 (where its dependencies are). */
export function cloudInitSchema(userData: string): { valid: boolean; output: string } {
  const bin = path.join(CLOUD_INIT_DIR, 'usr/bin/cloud-init');
  if (!existsSync(bin)) throw new Error(`cloud-init is not unpacked at ${CLOUD_INIT_DIR} (bash deploy/install.sh)`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-cloud-init-'));
  try {
    const file = path.join(dir, 'user-data');
    writeFileSync(file, userData);
    const r = spawnSync('/usr/bin/python3', [bin, 'schema', '-c', file], {
      env: { PATH: '/usr/bin:/bin', PYTHONPATH: path.join(CLOUD_INIT_DIR, 'usr/lib/python3/dist-packages') }, encoding: 'utf8',
    });
    return { valid: r.status === 0, output: `${r.stdout}${r.stderr}`.trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The files a cloud-config document writes, by path. */
function writeFiles(userData: string): Map<string, string> {
  const doc = YAML.parse(userData) as { write_files?: Array<{ path: string; content: string }> };
  return new Map((doc.write_files ?? []).map((f) => [f.path, f.content]));
}

export interface BurstNodeOptions {
  /** The agent's state dir (the env file's /var/lib/prescient). */
  stateDir: string;
  /** Where Prescient would be installed (the env file's /opt/prescient/src); default a scratch dir. */
  srcDir?: string;
  /** Put this checkout's CLI on PATH as `prescient` (what an image with Prescient has). Default true. */
  withCli?: boolean;
}

export interface Script { code: number | null; output: string }

/** A booted burst node: the install script's result, and the agent process its boot script exec'd. */
export interface BurstNode {
  root: string;
  install: Script;
  /** The boot script (bash, then the agent it execs); undefined when the install failed. */
  proc?: ChildProcess;
  output(): string;
  /** Resolves with the boot script's exit code (the agent's, after exec). */
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** Writes the document's files under a scratch root; returns the root and a runner of its scripts. */
export function unpackUserData(userData: string, o: BurstNodeOptions) {
  const root = mkdtempSync(path.join(os.tmpdir(), 'prescient-burst-root-'));
  for (const [p, content] of writeFiles(userData)) {
    const f = path.join(root, p);
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(f, content);
    chmodSync(f, 0o755);
  }
  const bin = path.join(root, 'test-bin');
  mkdirSync(bin);
  if (o.withCli !== false) {
    writeFileSync(path.join(bin, 'prescient'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`);
    chmodSync(path.join(bin, 'prescient'), 0o755);
  }
  const srcDir = o.srcDir ?? path.join(root, 'opt/prescient/src');
  /** Runs one of the document's scripts as runcmd/systemd would: env file loaded (then `overrides`), then the script. */
  const run = (script: string, overrides: Record<string, string> = {}) => {
    const vars = Object.entries({ PRESCIENT_STATE_DIR: o.stateDir, PRESCIENT_SRC_DIR: srcDir, ...overrides }).map(([k, v]) => `${k}=${v}`);
    return spawn('bash', ['-c', 'set -a && . "$1" && set +a && for kv in "${@:3}"; do export "$kv"; done && exec "$2"',
      'boot', path.join(root, 'etc/prescient/burst.env'), path.join(root, script), ...vars], {
      env: { ...process.env, PATH: `${bin}:/usr/bin:/bin:/usr/sbin:/sbin` }, stdio: ['ignore', 'pipe', 'pipe'],
    });
  };
  return { root, srcDir, run };
}

/** Collects a process's output and exit code. */
export function finished(p: ChildProcess): Promise<Script> {
  return new Promise((resolve) => {
    let output = '';
    p.stdout!.on('data', (d) => (output += d));
    p.stderr!.on('data', (d) => (output += d));
    p.on('close', (code) => resolve({ code, output }));
  });
}

/** Boots a burst node from its user data: prescient-install, then prescient-burst-node (left running). */
export async function bootBurstNode(userData: string, o: BurstNodeOptions): Promise<BurstNode> {
  const { root, run } = unpackUserData(userData, o);
  const install = await finished(run('usr/local/sbin/prescient-install'));
  let output = '';
  const cleanup = () => rmSync(root, { recursive: true, force: true });
  if (install.code !== 0) {
    cleanup();
    return { root, install, output: () => install.output, exited: Promise.resolve(null), stop: async () => undefined };
  }
  const proc = run('usr/local/sbin/prescient-burst-node');
  proc.stdout!.on('data', (d) => (output += d));
  proc.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  return {
    root, install, proc, output: () => output, exited,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
      cleanup();
    },
  };
}
