/**
 * moto's server (PyPI `moto[server]`) as a local EC2-compatible endpoint on loopback: the fake at
 * the outermost boundary, standing in for the one service the tests cannot reach (AWS).
 *
 * `startMoto()` runs `moto_server` (or `python3 -m moto.server`) on a free 127.0.0.1 port, waits
 * until it answers, and returns its endpoint, `reset()` (drops every resource, between tests) and
 * `stop()`. It validates instance types and AMIs on RunInstances as EC2 does (moto skips both
 * unless told). `deploy/install.sh` installs it (its virtualenv is tried first, then PATH);
 * PRESCIENT_MOTO_SERVER names another binary.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../../deploy/stack/index.js';
import { findExecutable } from '../../deploy/stack/proc.js';

/** Resolves once `fn` succeeds, retrying every 100 ms (this file stays free of the cluster helpers' imports). */
async function answering(fn: () => Promise<unknown>, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      await fn();
      return;
    } catch (e) {
      if (Date.now() > until) throw new Error(`moto_server did not answer within ${timeoutMs} ms (${e})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Where deploy/install.sh puts moto (PRESCIENT_MOTO_VENV) unless a moto_server on PATH was already there. */
export const MOTO_VENV_SERVER = path.join(process.env.PRESCIENT_MOTO_VENV ?? '/opt/prescient/moto', 'bin', 'moto_server');

export interface MotoServer {
  /** `http://127.0.0.1:PORT`, for the SDK's `endpoint`. */
  endpoint: string;
  /** Forgets every resource (instances, tags, …) and turns request authentication back off. */
  reset(): Promise<void>;
  /** From now on moto checks credentials like AWS: unknown access keys get AuthFailure. */
  requireAuth(): Promise<void>;
  stop(): Promise<void>;
}

function motoCommand(): [string, string[]] {
  const venv = existsSync(MOTO_VENV_SERVER) ? MOTO_VENV_SERVER : undefined;
  const bin = process.env.PRESCIENT_MOTO_SERVER ? findExecutable('moto_server', process.env.PRESCIENT_MOTO_SERVER) : venv ?? findExecutable('moto_server');
  if (bin) return [bin, []];
  const py = findExecutable('python3');
  if (py && spawnSync(py, ['-c', 'import moto.server'], { stdio: 'ignore' }).status === 0) return [py, ['-m', 'moto.server']];
  throw new Error("moto's server is not installed (bash deploy/install.sh, or pip install 'moto[server]')");
}

export async function startMoto(): Promise<MotoServer> {
  const [cmd, pre] = motoCommand();
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const proc: ChildProcess = spawn(cmd, [...pre, '-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp',
      MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION: 'true',
      MOTO_ENABLE_AMI_VALIDATION: 'true',
    },
  });
  let tail = '';
  proc.stderr!.on('data', (d) => { tail = (tail + d).slice(-4000); });
  const post = async (path: string, body?: string) => {
    const r = await fetch(endpoint + path, { method: 'POST', body });
    if (!r.ok) throw new Error(`moto ${path}: HTTP ${r.status}`);
  };
  const exited = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`moto_server exited early (${code})`))));
  exited.catch(() => undefined);
  try {
    await Promise.race([exited, answering(() => post('/moto-api/reset'), 30_000)]);
  } catch (e) {
    proc.kill('SIGKILL');
    throw new Error(`${(e as Error).message}\n${tail}`);
  }
  return {
    endpoint,
    async reset() {
      await post('/moto-api/reset');
      await post('/moto-api/reset-auth', '1e9');
    },
    requireAuth: () => post('/moto-api/reset-auth', '0'),
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Every variable through which the SDK's default chain could find real credentials or a profile. */
const AWS_CREDENTIAL_ENV = [
  'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_CREDENTIAL_EXPIRATION', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE',
  'AWS_SHARED_CREDENTIALS_FILE', 'AWS_CONFIG_FILE', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN', 'AWS_ROLE_SESSION_NAME',
  'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_AUTHORIZATION_TOKEN',
  'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE', 'AWS_EC2_METADATA_DISABLED', 'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_ENDPOINT_URL',
  'AWS_ENDPOINT_URL_EC2',
];

/**
 * Sets the process's AWS environment for the provider under test and returns a function that puts
 * it back. With `credentials`, the FAKE test key moto accepts (never a real one); without, nothing
 * at all. Either way no shared config or credentials file is read and instance metadata (IMDS) is
 * never asked, so a missing credential fails at once instead of waiting on 169.254.169.254.
 */
export function awsTestEnv(credentials: { access_key_id: string; secret_access_key: string } | null): () => void {
  const saved = Object.fromEntries(AWS_CREDENTIAL_ENV.map((k) => [k, process.env[k]]));
  for (const k of AWS_CREDENTIAL_ENV) delete process.env[k];
  process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/prescient-test/aws-credentials';
  process.env.AWS_CONFIG_FILE = '/nonexistent/prescient-test/aws-config';
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  if (credentials) {
    process.env.AWS_ACCESS_KEY_ID = credentials.access_key_id;
    process.env.AWS_SECRET_ACCESS_KEY = credentials.secret_access_key;
  }
  return () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}

/** The fake credentials moto takes (it checks none unless `requireAuth()` was called). */
export const MOTO_FAKE_CREDENTIALS = { access_key_id: 'testing', secret_access_key: 'testing-fake-secret-for-moto' } as const;
