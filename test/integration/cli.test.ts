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

test('an agent or coordinator config file with problems is refused before anything starts, every problem at once, each naming its key', async () => {
  const agentFile = path.join(s.dir, 'agent.yaml');
  writeFileSync(agentFile, YAML.stringify({ node_id: 'cfg-node', memory_gb: -1, sample_ms: 'fast', accounted_only: ['cpu', 'disk'], colour: 'blue' }));
  const a = await cliRun(s, ['agent', '--config', agentFile]);
  assert.is.not(a.code, 0);
  assert.match(a.stderr, `--config: ${agentFile}: 4 problems: `);
  for (const p of ['memory_gb -1 is not at least', 'sample_ms "fast" is not a number', 'accounted_only.1 "disk" is not one of "cpu" | "memory" | "gpu" | "bandwidth"', 'colour is not a setting here']) assert.match(a.stderr, p);
  const coordFile = path.join(s.dir, 'coordinator.yaml');
  writeFileSync(coordFile, YAML.stringify({ placement: 'anywhere', coverage: 2, grpc_port: 70_000 }));
  const c = await cliRun(s, ['coordinator', '--config', coordFile]);
  assert.is.not(c.code, 0);
  for (const p of ['3 problems', 'placement "anywhere" is not one of "best-fit"', 'coverage 2 is not at most 0.999', 'grpc_port 70000 is not at most 65535']) assert.match(c.stderr, p);
  writeFileSync(coordFile, 'placement: [unclosed');
  assert.match((await cliRun(s, ['coordinator', '--config', coordFile])).stderr, 'is not YAML or JSON');
});

test('a config file sets what its flags would, and a flag given on the command line wins', async () => {
  const file = path.join(s.dir, 'dev.yaml');
  writeFileSync(file, YAML.stringify({ node_id: 'cfg-dev', cores: '0-1', memory_gb: 1.5 }));
  const dev = cli(s, ['dev', '--config', file, '--cores', '1']);
  let out = '';
  dev.stdout!.on('data', (d) => (out += d));
  dev.stderr!.on('data', (d) => (out += d));
  try {
    await waitFor('the dev cluster to be ready', () => out.includes('dev cluster running'), 30_000);
    type NodeRow = { node_id: string; cores: { total: number; free_ids: number[] }; memory_gb: { total: number } };
    const node = await waitFor('cfg-dev in the saved ledger', async () => (JSON.parse((await cliRun(s, ['nodes', '--json'])).stdout) as { nodes: NodeRow[] }).nodes.find((n) => n.node_id === 'cfg-dev'), 20_000, 500);
    assert.equal(node!.cores.free_ids, [1], '--cores 1 on the command line over the file\'s 0-1');
    assert.is(node!.memory_gb.total, 1.5, 'memory_gb from the file');
  } finally {
    dev.kill('SIGTERM');
    await waitFor('dev to exit', () => dev.exitCode !== null, 15_000);
  }
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
