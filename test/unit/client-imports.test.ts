/**
 * The client is what a user imports (`import { Prescient } from 'prescient/client'`), so it
 * resolves through package.json "exports" to the built JS and its declarations, and loading it
 * costs little: NATS, shared/ and the bus, never a cloud SDK, brain.js, gRPC, Consul, Piscina,
 * QuestDB's client, the agent, the models or the CLI. It is loaded in a child process that
 * imports it by the package's own name, as a user's program would.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TRACE = new URL('../helpers/module-trace.js', import.meta.url).href;
const HEAVY = [
  '@google-cloud/compute', '@aws-sdk/client-ec2', '@azure/arm-compute', '@azure/identity', 'brain.js',
  '@grpc/grpc-js', '@grpc/proto-loader', 'consul', 'piscina', '@questdb/nodejs-client', 'prom-client', 'commander',
];

/** Imports `prescient/client` in a new process from the package root; what it printed and every module it loaded. */
function load(): { status: number | null; stdout: string; stderr: string; modules: string[] } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-client-imports-'));
  try {
    const file = path.join(dir, 'modules.txt');
    const r = spawnSync(process.execPath, ['--import', TRACE, '--input-type=module', '-e',
      "const m = await import('prescient/client'); console.log(import.meta.resolve('prescient/client')); console.log(Object.keys(m).sort().join(','));"], {
      cwd: ROOT, env: { ...process.env, PRESCIENT_MODULES_FILE: file }, encoding: 'utf8', timeout: 60_000,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, modules: readFileSync(file, 'utf8').split('\n').filter(Boolean) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const packages = (modules: string[]) => new Set(modules.flatMap((m) => {
  const p = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(m);
  return p ? [p[1]] : [];
}));

const r = load();

test('prescient/client resolves through package.json "exports" to the built client, which exports Prescient and its errors', () => {
  assert.is(r.status, 0, r.stderr);
  const [url, names] = r.stdout.trim().split('\n');
  assert.is(fileURLToPath(url), path.join(ROOT, 'dist/coordinator/client/index.js'));
  for (const n of ['Prescient', 'SchemaValidationError', 'NoSuchJobError', 'WrongKindError', 'UnknownKindError', 'WaitTimeoutError', 'ClientClosedError', 'ConfigError']) {
    assert.ok(names.split(',').includes(n), `${n} missing from ${names}`);
  }
});

test('the package\'s "types" for prescient/client are built, and declare the client and its options', () => {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { types: string; default: string }>; bin: Record<string, string> };
  const entry = pkg.exports['./client'];
  assert.is(entry.default, './dist/coordinator/client/index.js');
  assert.ok(pkg.bin.prescient, 'the bin entry is kept');
  const types = path.join(ROOT, entry.types);
  assert.ok(existsSync(types), `${types} was not built (npm run build emits it)`);
  const d = readFileSync(types, 'utf8');
  assert.match(d, /export declare class Prescient\b/);
  assert.match(d, /static connect\(o\?: ConnectOptions\): Promise<Prescient>/);
  assert.match(d, /watch\(id: string/);
});

test('loading the client loads NATS, shared/ and the bus only: no heavy package, agent, models, CLI or leader', () => {
  const pk = packages(r.modules);
  assert.ok(pk.has('nats'), [...pk].join(', '));
  assert.equal(HEAVY.filter((h) => pk.has(h)), []);
  const dist = path.join(ROOT, 'dist') + path.sep;
  const ours = r.modules.map((m) => (m.startsWith('file:') ? fileURLToPath(m) : m)).filter((m) => m.startsWith(dist)).map((m) => m.slice(dist.length));
  assert.ok(ours.length > 0, 'the trace sees the project\'s modules');
  assert.equal(ours.filter((m) => !/^(shared|coordinator\/(client|bus))\//.test(m)), []);
});

test.run();
