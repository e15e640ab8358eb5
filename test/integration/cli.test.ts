/**
 * The two ways a person first meets Prescient: `prescient dev` (one coordinator and one agent
 * in one process) and `prescient demo` (the README's main job), both run as real processes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { stackDown, stackStatus } from '../../deploy/stack/index.js';
import { CLI, cli, cliRun, smallJob, startStack, waitFor, type TestStack } from '../helpers/cluster.js';

let s: TestStack;
test.before(async () => { s = await startStack('cli'); });
test.after(async () => { await s?.down(); });

test('prescient dev runs a coordinator and an agent that encode a submitted job, and stops on SIGTERM', async () => {
  const dev = cli(s, ['dev', '--cores', '0', '--memory-gb', '2']);
  let out = '';
  dev.stdout!.on('data', (d) => (out += d));
  dev.stderr!.on('data', (d) => (out += d));
  try {
    await waitFor('the dev cluster to be ready', () => out.includes('dev cluster running'), 30_000);
    const file = path.join(s.dir, 'dev.yaml');
    writeFileSync(file, YAML.stringify(smallJob()));
    const r = await cliRun(s, ['submit', file, '--wait', '--json']);
    assert.is(r.code, 0, r.stderr);
    const job = (JSON.parse(r.stdout) as { jobs: Array<{ state: string; node_id: string }> }).jobs[0];
    assert.is(job.state, 'succeeded');
    assert.is(job.node_id, 'dev-node');
  } finally {
    dev.kill('SIGTERM');
    await waitFor('dev to exit', () => dev.exitCode !== null, 15_000);
  }
  assert.is(dev.exitCode, 0);
});

test('prescient demo brings up its own stack, encodes the demo batch, reads every row back from QuestDB, and stops the stack', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'prescient-demo-'));
  try {
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [CLI, '--state-dir', dir, 'demo', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '', stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      p.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    assert.is(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { jobs: Array<{ state: string; predicted: unknown; result: { actual: { duration_s: number } } }>; questdb_rows: number };
    assert.ok(out.jobs.length >= 5);
    assert.ok(out.jobs.every((j) => j.state === 'succeeded' && j.predicted && j.result.actual.duration_s > 0));
    assert.is(out.questdb_rows, out.jobs.length);
    const st = await stackStatus({ stateDir: dir });
    assert.not.ok(st.services.some((x) => x.running), 'the demo stopped the stack it started');
  } finally {
    await stackDown({ stateDir: dir }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
