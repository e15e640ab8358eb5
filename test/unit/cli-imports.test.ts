/**
 * The CLI loads only what a command uses (issue 15): its help and the commands that only talk to
 * NATS load no cloud SDK, no brain.js, no gRPC, Consul, Piscina or QuestDB client. Each command
 * runs in a child process against a state directory with no stack, so the NATS commands load
 * their modules and then fail to find one. What a command costs in CPU is measured by
 * `npm run bench -- cli-start`, not here.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../coordinator/cli/main.js', import.meta.url));
const TRACE = new URL('../helpers/module-trace.js', import.meta.url).href;
const HEAVY = [
  '@google-cloud/compute', '@aws-sdk/client-ec2', '@azure/arm-compute', '@azure/identity', 'brain.js',
  '@grpc/grpc-js', '@grpc/proto-loader', 'consul', 'piscina', '@questdb/nodejs-client',
];

/** Runs `prescient ARGS` with no stack and returns its exit status, stderr and every module it loaded. */
function load(args: string[]): { status: number | null; stderr: string; modules: string[] } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-cli-imports-'));
  try {
    const file = path.join(dir, 'modules.txt');
    writeFileSync(path.join(dir, 'job.yaml'), 'input: { synthetic: { source: testsrc2 }, resolution: 320x240, fps: 25, duration_s: 1 }\noutput: { codec: h264, rate_control: { mode: crf, crf: 28 } }\n');
    const { PRESCIENT_NATS_URL: _, ...env } = process.env;
    const r = spawnSync(process.execPath, ['--import', TRACE, CLI, '--state-dir', dir, ...args.map((a) => a.replace('JOB', path.join(dir, 'job.yaml')))], {
      env: { ...env, PRESCIENT_MODULES_FILE: file }, encoding: 'utf8', timeout: 60_000,
    });
    return { status: r.status, stderr: r.stderr, modules: readFileSync(file, 'utf8').split('\n').filter(Boolean) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const packages = (modules: string[]) => new Set(modules.flatMap((m) => {
  const p = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(m);
  return p ? [p[1]] : [];
}));

const heavyIn = (modules: string[]) => HEAVY.filter((h) => packages(modules).has(h));

test('prescient --help loads commander and none of the heavy packages', () => {
  const r = load(['--help']);
  assert.is(r.status, 0, r.stderr);
  assert.ok(packages(r.modules).has('commander'), 'the trace sees the packages loaded');
  assert.equal(heavyIn(r.modules), []);
});

test('prescient submit loads YAML and NATS but no cloud SDK, brain.js, gRPC or Consul', () => {
  const r = load(['submit', 'JOB', '--no-probe']);
  assert.is(r.status, 1);
  assert.match(r.stderr, /no running stack/);
  assert.ok(packages(r.modules).has('yaml') && packages(r.modules).has('nats'), [...packages(r.modules)].join(', '));
  assert.equal(heavyIn(r.modules), []);
});

test('prescient status loads NATS and none of the heavy packages', () => {
  const r = load(['status', 'j-none']);
  assert.is(r.status, 1);
  assert.ok(packages(r.modules).has('nats'));
  assert.equal(heavyIn(r.modules), []);
});

test('prescient scale status loads the burst controller but no cloud provider or its SDK', () => {
  const r = load(['scale', 'status']);
  assert.is(r.status, 1);
  assert.ok(r.modules.some((m) => m.endsWith('/coordinator/burst/index.js')));
  assert.not.ok(r.modules.some((m) => m.includes('/coordinator/burst/providers/') && !m.endsWith('/types.js')));
  assert.equal(heavyIn(r.modules), []);
});

test.run();
